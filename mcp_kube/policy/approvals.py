"""Out-of-band approvals: a write waits server-side until a human approver says yes.

A request is one ConfigMap ``mcpk-approval-<id>`` in the approvals namespace of the approvals
cluster (``Settings.approvals``), so every server replica sees the same requests and a restart
loses none. Its label ``mcp-kube.io/approval-state`` holds the state:

    pending -> approved -> used        (an approval runs exactly once)
    pending -> rejected
    any     -> expired                 (past ``expires_at``, reported once to the requester)
    expired -> pending                 (the same call again files a new request)

and its data keys hold the record, in two parts:

- the request, written by the server only: ``request`` (JSON: the id, the requester's groups,
  which tool, where, the SHA-256 of the final manifest, the preview shown to approvers,
  creation and expiry times), and as plain strings ``requester``, ``approver-groups`` (one
  group a line; empty: any authenticated user), ``four-eyes`` (``true``/``false``) and
  ``used-at``;
- the decision, written by the approver: ``decision`` (``approved``/``rejected``),
  ``decided-by`` (their user name), ``decided-groups`` (their groups among the approver
  groups, one a line) and ``decided-at``.

The id is deterministic: the first 16 hex characters of a SHA-256 over the requester, the tool,
the cluster, the namespace and the manifest hash. Calling the tool again with the same
arguments therefore finds its own request, on any replica. Nothing a caller passes as a tool
argument counts as approval: only an approver's ``mcp-kube approve ID`` moves a request to
approved. This module is the record and the checks on it, pure. The store that keeps the
records as ConfigMaps, and why the API server vouches for who approved, is in the gate:
``mcp_kube.gate.approval_store``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from mcp_kube.canonical import canonical_json
from mcp_kube.domain import Json, Principal
from mcp_kube.errors import ApprovalRefused, InvalidArgument

__all__ = [
    "ADMISSION_POLICY",
    "DECISION_KEYS",
    "DEFAULT_TTL",
    "STATE_LABEL",
    "ApprovalRecord",
    "ApprovalTerms",
    "State",
    "check_id",
    "configmap_name",
    "decided",
    "in_groups",
    "manifest_sha256",
    "now_utc",
    "parse_time",
    "request_id",
    "rfc3339",
    "vouch",
]

State = Literal["pending", "approved", "rejected", "used", "expired"]
STATES: tuple[State, ...] = ("pending", "approved", "rejected", "used", "expired")
Decision = Literal["", "approved", "rejected"]
DECISIONS: tuple[Decision, ...] = ("", "approved", "rejected")

DEFAULT_TTL = 3600
NAME_PREFIX = "mcpk-approval-"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mcp-kube"
STATE_LABEL = "mcp-kube.io/approval-state"
# The ValidatingAdmissionPolicy (and its binding) that vouches for decisions, and its file.
ADMISSION_POLICY = "mcp-kube-approvals"
ADMISSION_FILE = "deploy/base/approvals-admission.yaml"
# Data keys. The request part: written by the server only.
DATA_KEY = "request"  # JSON
REQUESTER_KEY = "requester"
APPROVERS_KEY = "approver-groups"  # one group a line
FOUR_EYES_KEY = "four-eyes"  # "true" / "false"
USED_AT_KEY = "used-at"
# The decision: written once, by the approver, as the API server knows them.
DECISION_KEY = "decision"  # "", "approved", "rejected"
DECIDED_BY_KEY = "decided-by"
DECIDED_GROUPS_KEY = "decided-groups"  # one group a line
DECIDED_AT_KEY = "decided-at"
DECISION_KEYS = (DECISION_KEY, DECIDED_BY_KEY, DECIDED_GROUPS_KEY, DECIDED_AT_KEY)
_ID = re.compile(r"^[0-9a-f]{16}$")
# Server-maintained parts of a live object: they change without the request changing.
_VOLATILE_META = ("resourceVersion", "managedFields", "generation")
# The fields of the ``request`` JSON this version knows; others are kept as they are (``extra``).
_REQUEST_FIELDS = frozenset(
    [
        "id",
        "requester_groups",
        "tool",
        "cluster",
        "namespace",
        "manifest_sha256",
        "preview",
        "created_at",
        "expires_at",
    ]
)


# ---------------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class ApprovalTerms:
    """What the policy asks of an out-of-band approval (``model.Approval`` has the same shape)."""

    approvers: tuple[str, ...] = ()  # groups that may approve; empty = any authenticated user
    four_eyes: bool = True  # the requester may not approve
    ttl_seconds: int = DEFAULT_TTL


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON, without status and server-kept metadata."""
    stable = {k: v for k, v in manifest.items() if k not in ("status", "_audit_id")}
    meta = stable.get("metadata")
    if isinstance(meta, Mapping):
        stable["metadata"] = {k: v for k, v in meta.items() if k not in _VOLATILE_META}
    return hashlib.sha256(canonical_json(stable).encode()).hexdigest()


def request_id(subject: str, tool: str, cluster: str, namespace: str, manifest_hash: str) -> str:
    text = canonical_json([subject, tool, cluster, namespace, manifest_hash])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def configmap_name(rid: str) -> str:
    return NAME_PREFIX + rid


def check_id(rid: str) -> str:
    if not _ID.match(rid):
        raise InvalidArgument(f"{rid!r} is not an approval request id (16 hex characters)")
    return rid


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def now_utc(now: datetime | None = None) -> datetime:
    """``now`` (default: the clock) in UTC, to the second: how records keep time."""
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


def _lines(items: Sequence[str]) -> str:
    return "\n".join(items)


def _unlines(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.split("\n") if line)


@dataclass(frozen=True)
class ApprovalRecord:
    """One approval request as stored (``resource_version``: the version it was read at)."""

    id: str
    requester: str
    requester_groups: tuple[str, ...]
    tool: str
    cluster: str
    namespace: str
    manifest_sha256: str
    preview: Json
    approvers: tuple[str, ...]
    four_eyes: bool
    created_at: datetime
    expires_at: datetime
    state: State = "pending"
    decision: Decision = ""
    decided_by: str = ""
    decided_groups: tuple[str, ...] = ()
    decided_at: datetime | None = None
    used_at: datetime | None = None
    resource_version: str = ""
    extra: Json = field(default_factory=dict)  # request fields of a newer version, kept as is
    # the data as read from the API server (changes are patched against it)
    stored: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def approved_by(self) -> str | None:
        return self.decided_by if self.decision == "approved" else None

    @property
    def rejected_by(self) -> str | None:
        return self.decided_by if self.decision == "rejected" else None

    def expired(self, now: datetime | None = None) -> bool:
        return self.state == "expired" or now_utc(now) > self.expires_at

    def data(self) -> dict[str, str]:
        """The ConfigMap's data: the request part (server's) and the decision (approver's)."""

        def t(when: datetime | None) -> str:
            return rfc3339(when) if when else ""

        request = self.extra | {
            "id": self.id,
            "requester_groups": list(self.requester_groups),
            "tool": self.tool,
            "cluster": self.cluster,
            "namespace": self.namespace,
            "manifest_sha256": self.manifest_sha256,
            "preview": self.preview,
            "created_at": t(self.created_at),
            "expires_at": t(self.expires_at),
        }
        return {
            DATA_KEY: canonical_json(request),
            REQUESTER_KEY: self.requester,
            APPROVERS_KEY: _lines(self.approvers),
            FOUR_EYES_KEY: "true" if self.four_eyes else "false",
            USED_AT_KEY: t(self.used_at),
            DECISION_KEY: self.decision,
            DECIDED_BY_KEY: self.decided_by,
            DECIDED_GROUPS_KEY: _lines(self.decided_groups),
            DECIDED_AT_KEY: t(self.decided_at),
        }

    def to_json(self) -> Json:
        def t(when: datetime | None) -> str | None:
            return rfc3339(when) if when else None

        return self.extra | {
            "id": self.id,
            "requester": {"subject": self.requester, "groups": list(self.requester_groups)},
            "tool": self.tool,
            "cluster": self.cluster,
            "namespace": self.namespace,
            "manifest_sha256": self.manifest_sha256,
            "preview": self.preview,
            "approvers": list(self.approvers),
            "four_eyes": self.four_eyes,
            "created_at": t(self.created_at),
            "expires_at": t(self.expires_at),
            "decision": self.decision or None,
            "decided_by": self.decided_by or None,
            "decided_groups": list(self.decided_groups),
            "decided_at": t(self.decided_at),
            "used_at": t(self.used_at),
        }

    def summary(self) -> Json:
        """The record as shown by ``mcp-kube approvals``: the JSON plus its state."""
        return {"state": self.state} | self.to_json()

    @classmethod
    def from_configmap(cls, obj: Json) -> ApprovalRecord:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        try:
            stored = obj.get("data") or {}
            data = json.loads(stored[DATA_KEY])
            labels = meta.get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
                raise ValueError(f"not labelled {MANAGED_BY_LABEL}={MANAGED_BY}")
            state = labels.get(STATE_LABEL)
            if state not in STATES:
                raise ValueError(f"unknown state {state!r}")
            four_eyes = stored[FOUR_EYES_KEY]
            if four_eyes not in ("true", "false"):
                raise ValueError(f"{FOUR_EYES_KEY} is {four_eyes!r}")
            decision = stored.get(DECISION_KEY) or ""
            if decision not in DECISIONS:
                raise ValueError(f"unknown decision {decision!r}")

            def t(text: str | None) -> datetime | None:
                return parse_time(text) if text else None

            record = cls(
                id=str(data["id"]),
                requester=str(stored[REQUESTER_KEY]),
                requester_groups=tuple(str(g) for g in data.get("requester_groups") or ()),
                tool=str(data["tool"]),
                cluster=str(data["cluster"]),
                namespace=str(data["namespace"]),
                manifest_sha256=str(data["manifest_sha256"]),
                preview=dict(data.get("preview") or {}),
                approvers=_unlines(str(stored[APPROVERS_KEY])),
                four_eyes=four_eyes == "true",
                created_at=parse_time(data["created_at"]),
                expires_at=parse_time(data["expires_at"]),
                state=state,
                decision=decision,
                decided_by=str(stored.get(DECIDED_BY_KEY) or ""),
                decided_groups=_unlines(str(stored.get(DECIDED_GROUPS_KEY) or "")),
                decided_at=t(stored.get(DECIDED_AT_KEY)),
                used_at=t(stored.get(USED_AT_KEY)),
                resource_version=str(meta.get("resourceVersion") or ""),
                extra={k: v for k, v in data.items() if k not in _REQUEST_FIELDS},
                stored={str(k): str(v) for k, v in stored.items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ApprovalRefused(
                f"approval record {name} is malformed ({type(e).__name__}: {e}): refused"
            ) from None
        if configmap_name(record.id) != name:
            raise ApprovalRefused(f"approval record {name} names another id: refused")
        return record


# ---------------------------------------------------------------------------- checks


def vouch(record: ApprovalRecord) -> None:
    """What the server checks alone: who decided, against the request as it filed it."""
    rid = record.id
    if record.decision != "approved" or not record.decided_by or record.decided_at is None:
        raise ApprovalRefused(
            f"approval request {rid} is labelled approved but records no approval "
            f"(decision {record.decision or 'none'!r}, decided-by "
            f"{record.decided_by or 'none'!r}): refused"
        )
    if record.four_eyes and record.decided_by == record.requester:
        raise ApprovalRefused(
            f"four-eyes: approval request {rid} was approved by its own requester "
            f"{record.requester}: refused"
        )
    if record.approvers and not set(record.decided_groups) & set(record.approvers):
        raise ApprovalRefused(
            f"approval request {rid} was approved by {record.decided_by} as a member of "
            f"{', '.join(record.decided_groups) or 'no group'}, none of its approver groups "
            f"({', '.join(record.approvers)}): refused"
        )


def in_groups(record: ApprovalRecord, approver: Principal) -> bool:
    """Whether ``approver`` may decide ``record`` (no approver groups: anyone)."""
    return not record.approvers or bool(set(approver.groups) & set(record.approvers))


def decided(
    record: ApprovalRecord,
    decision: Literal["approved", "rejected"],
    approver: Principal,
    at: datetime,
) -> ApprovalRecord:
    """The decided record: the decider as the API server named them, and the groups by
    which they may decide (their groups among the approver groups)."""
    groups = tuple(g for g in approver.groups if g in record.approvers)
    return replace(
        record,
        state=decision,
        decision=decision,
        decided_by=approver.subject,
        decided_groups=groups,
        decided_at=at,
    )
