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
argument counts as approval: only an approver's ``mcp-kube approve ID`` (their own kubeconfig
credentials, identified by the API server with a SelfSubjectReview) moves a request to
approved. Every state change is a merge patch carrying the ``resourceVersion`` that was read,
so the API server refuses the second of two concurrent changes (409): two replicas cannot both
consume one approval, and two approvers cannot both decide one request.

Who approved is vouched for by the API server, not by whoever wrote the ConfigMap. Approvers
need ``patch`` on these ConfigMaps, and RBAC cannot say what they may write, so the
ValidatingAdmissionPolicy ``mcp-kube-approvals`` (``deploy/base/approvals-admission.yaml``)
does, in CEL, against the request's authenticated ``userInfo``: only the server (whoever RBAC
allows the verb ``manage`` on ``approvals.mcp-kube.io``) files, uses, expires and re-files
records; nobody else changes the request part or the labels; a decision is made once, on a
pending request, with ``decided-by`` equal to the user making the change, ``decided-groups``
among that user's groups and the request's approver groups, and, under four-eyes, never an
approval by the requester. That is why the decision lives in plain data keys: CEL in
Kubernetes cannot parse the JSON. When the server uses an approval it checks again what it can
check alone (approved, ``decided-by`` set and not the requester under four-eyes, a decided group
among the approver groups), then asks the API server for a dry run of a change to the decided
record's ``decided-by``: the policy refuses it when in force; if the API server accepts it,
nothing vouches for the approval and it is refused. So without the policy no approval counts,
and a record approved by its own requester is refused even then.

Why an admission policy and not an approval endpoint on the server: the approver's identity
then comes from the cluster's own authentication (certificates, OIDC, whatever the site uses
for ``kubectl``), with no second login, token store or listening port to secure; the check runs
in the API server for every writer, including a hand-typed ``kubectl patch``, and every
replica shares it; and it is declarative CEL that an operator can review next to the RBAC, in
the same language as mcp-kube's policies.

The server reads and writes the records with its own identity, never impersonating the caller:
requesters need no access to the approvals namespace; approvers need ``get``, ``list`` and
``patch`` on its ConfigMaps. Expiry is judged by the clock of whoever checks (server replica or
approver).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from mcp_kube.canonical import canonical_json
from mcp_kube.domain import ACTING_FOR, Json, Principal
from mcp_kube.errors import (
    ApprovalPending,
    ApprovalRefused,
    Forbidden,
    InvalidArgument,
    NotFound,
    UpstreamError,
)
from mcp_kube.kube.port import ClusterPort, Kind

__all__ = [
    "ADMISSION_POLICY",
    "DEFAULT_TTL",
    "ApprovalRecord",
    "ApprovalStore",
    "ApprovalTerms",
    "State",
    "configmap_name",
    "identify",
    "manifest_sha256",
    "request_id",
    "terms_of",
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
_MAX_PREVIEW_BYTES = 256 * 1024  # a ConfigMap holds at most 1 MiB
# Server-maintained parts of a live object: they change without the request changing.
_VOLATILE_META = ("resourceVersion", "managedFields", "generation")


# ---------------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class ApprovalTerms:
    """What the policy asks of an out-of-band approval (``model.Approval`` has the same shape)."""

    approvers: tuple[str, ...] = ()  # groups that may approve; empty = any authenticated user
    four_eyes: bool = True  # the requester may not approve
    ttl_seconds: int = DEFAULT_TTL


class _TermsLike(Protocol):
    @property
    def approvers(self) -> Sequence[str]: ...

    @property
    def four_eyes(self) -> bool: ...

    @property
    def ttl_seconds(self) -> int: ...


def terms_of(
    policy: object,
    principal: Principal,
    tool: str,
    cluster: str,
    namespace: str,
    manifest: Mapping[str, Any],
) -> ApprovalTerms:
    """The policy's approval terms for a write, or the defaults when it offers none.

    A policy offers them with ``approval_terms(principal, tool, cluster, namespace, manifest)``
    returning an object with ``approvers``, ``four_eyes`` and ``ttl_seconds`` (or None).
    """
    ask = getattr(policy, "approval_terms", None)
    found: _TermsLike | None = (
        ask(principal, tool, cluster, namespace, manifest) if callable(ask) else None
    )
    if found is None:
        return ApprovalTerms()
    return ApprovalTerms(
        approvers=tuple(str(g) for g in found.approvers),
        four_eyes=bool(found.four_eyes),
        ttl_seconds=int(found.ttl_seconds),
    )


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


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


def _left(until: datetime, now: datetime) -> str:
    seconds = max(0, int((until - now).total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


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
        return self.state == "expired" or _now(now) > self.expires_at

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

            known = {
                "id",
                "requester_groups",
                "tool",
                "cluster",
                "namespace",
                "manifest_sha256",
                "preview",
                "created_at",
                "expires_at",
            }
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
                extra={k: v for k, v in data.items() if k not in known},
                stored={str(k): str(v) for k, v in stored.items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ApprovalRefused(
                f"approval record {name} is malformed ({type(e).__name__}: {e}): refused"
            ) from None
        if configmap_name(record.id) != name:
            raise ApprovalRefused(f"approval record {name} names another id: refused")
        return record


# ---------------------------------------------------------------------------- the store


class _Changed(Exception):
    """The record changed since it was read (the API server answered 409)."""


def _is_conflict(e: UpstreamError) -> bool:
    return "conflict" in str(e)


@contextmanager
def _as_server() -> Iterator[None]:
    """Store calls use the server's own identity: a requester must not write approvals."""
    token = ACTING_FOR.set(None)
    try:
        yield
    finally:
        ACTING_FOR.reset(token)


class ApprovalStore:
    """Approval requests as ConfigMaps in ``namespace``, through one cluster port."""

    def __init__(self, port: ClusterPort, namespace: str) -> None:
        self.port = port
        self.namespace = namespace

    # ------------------------------------------------------------------ raw access
    def _forbidden(self, e: Forbidden) -> Forbidden:
        return Forbidden(
            f"{e} (approval requests are ConfigMaps in namespace {self.namespace} of cluster "
            f"{self.port.name}: the server needs get/list/create/patch there, approvers "
            "get/list/patch)"
        )

    async def get(self, rid: str) -> ApprovalRecord | None:
        check_id(rid)
        try:
            with _as_server():
                obj = await self.port.get(Kind.CONFIG_MAPS, configmap_name(rid), self.namespace)
        except NotFound:
            return None
        except Forbidden as e:
            raise self._forbidden(e) from None
        return ApprovalRecord.from_configmap(obj)

    async def list_pending(self, now: datetime | None = None) -> list[ApprovalRecord]:
        """Pending requests that have not expired, oldest first."""
        try:
            with _as_server():
                items = await self.port.list_objects(
                    Kind.CONFIG_MAPS,
                    self.namespace,
                    label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY},{STATE_LABEL}=pending",
                    limit=500,
                )
        except Forbidden as e:
            raise self._forbidden(e) from None
        records = [ApprovalRecord.from_configmap(o) for o in items]
        return sorted(
            (r for r in records if not r.expired(now)), key=lambda r: (r.created_at, r.id)
        )

    def _body(self, record: ApprovalRecord) -> Json:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": configmap_name(record.id),
                "namespace": self.namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY, STATE_LABEL: record.state},
            },
            "data": record.data(),
        }

    def _refused_by_api_server(self, rid: str, e: InvalidArgument) -> ApprovalRefused:
        return ApprovalRefused(f"the API server refused this change to approval request {rid}: {e}")

    async def _create(self, record: ApprovalRecord) -> ApprovalRecord | None:
        """Store a new record; None when one with this id appeared meanwhile."""
        try:
            with _as_server():
                obj = await self.port.create(
                    Kind.CONFIG_MAPS, self.namespace, self._body(record), dry_run=False
                )
        except NotFound as e:
            raise ApprovalRefused(
                f"out-of-band approval is not set up: {e}. An operator creates the namespace "
                f"{self.namespace} in cluster {self.port.name} (kubectl create namespace "
                f"{self.namespace}) and grants the server get/list/create/patch on configmaps "
                "there: refused"
            ) from None
        except Forbidden as e:
            raise self._forbidden(e) from None
        except InvalidArgument as e:
            raise self._refused_by_api_server(record.id, e) from None
        except UpstreamError as e:
            if _is_conflict(e):
                return None
            raise
        return ApprovalRecord.from_configmap(obj)

    def _patch_for(self, record: ApprovalRecord, new: ApprovalRecord) -> Json:
        """A merge patch from ``record`` as read to ``new``: only the keys that change, and
        the ``resourceVersion`` read, so a change made meanwhile makes it fail (409)."""
        before = record.stored or record.data()
        data = {k: v for k, v in new.data().items() if before.get(k) != v}
        return {
            "metadata": {
                "resourceVersion": record.resource_version,
                "labels": {STATE_LABEL: new.state},
            },
            "data": data,
        }

    async def _patch(self, rid: str, patch: Json, *, dry_run: bool) -> Json:
        """Patch a record (raises _Changed when it changed or went meanwhile)."""
        try:
            with _as_server():
                obj: Json = await self.port.patch(
                    Kind.CONFIG_MAPS, configmap_name(rid), self.namespace, patch, dry_run=dry_run
                )
        except NotFound:
            raise _Changed from None  # deleted meanwhile
        except Forbidden as e:
            raise self._forbidden(e) from None
        except UpstreamError as e:
            if _is_conflict(e):
                raise _Changed from None
            raise
        return obj

    async def _transition(self, record: ApprovalRecord, new: ApprovalRecord) -> ApprovalRecord:
        """Write ``new`` over ``record`` only if nobody changed it since it was read."""
        try:
            obj = await self._patch(record.id, self._patch_for(record, new), dry_run=False)
        except InvalidArgument as e:  # the admission policy (or the API server) said no
            raise self._refused_by_api_server(record.id, e) from None
        return ApprovalRecord.from_configmap(obj)

    # ------------------------------------------------------------------ the requester's side
    def _new(
        self,
        requester: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest_hash: str,
        preview: Json,
        terms: ApprovalTerms,
        now: datetime,
    ) -> ApprovalRecord:
        if len(canonical_json(preview)) > _MAX_PREVIEW_BYTES:
            preview = {"truncated": True, "note": "the preview was too large to store"}
        bad = [g for g in terms.approvers if not g or g != g.strip() or "\n" in g]
        if bad:  # stored one a line: the admission policy splits them at line breaks
            raise ApprovalRefused(f"approver group names {bad!r} cannot be stored: refused")
        return ApprovalRecord(
            id=request_id(requester.subject, tool, cluster, namespace, manifest_hash),
            requester=requester.subject,
            requester_groups=tuple(requester.groups),
            tool=tool,
            cluster=cluster,
            namespace=namespace,
            manifest_sha256=manifest_hash,
            preview=preview,
            approvers=tuple(terms.approvers),
            four_eyes=terms.four_eyes,
            created_at=now,
            expires_at=now + timedelta(seconds=terms.ttl_seconds),
        )

    def _pending_text(self, record: ApprovalRecord, now: datetime, note: str = "") -> str:
        groups = ", ".join(record.approvers) or "any"
        four = "; the requester cannot approve it" if record.four_eyes else ""
        return (
            f"{note}approval requested: {record.id}; an approver (groups: {groups}{four}) runs "
            f"`mcp-kube approve {record.id}`; then call this tool again with the same arguments "
            f"(it expires at {rfc3339(record.expires_at)}, in {_left(record.expires_at, now)})"
        )

    async def request(
        self,
        requester: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: Mapping[str, Any],
        preview: Json,
        terms: ApprovalTerms,
        now: datetime | None = None,
    ) -> tuple[ApprovalRecord, bool]:
        """The request for this write, filed when there is none: (record, newly filed)."""
        at = _now(now)
        fresh = self._new(
            requester, tool, cluster, namespace, manifest_sha256(manifest), preview, terms, at
        )
        for _ in range(3):
            found = await self.get(fresh.id)
            if found is not None:
                mine = (requester.subject, tool, cluster, namespace, fresh.manifest_sha256)
                if (
                    found.requester,
                    found.tool,
                    found.cluster,
                    found.namespace,
                    found.manifest_sha256,
                ) != mine:
                    raise ApprovalRefused(
                        f"approval record {fresh.id} belongs to another request: refused"
                    )
                return found, False
            created = await self._create(fresh)
            if created is not None:
                return created, True
        raise ApprovalRefused(f"approval request {fresh.id} keeps changing: try again")

    async def require(
        self,
        requester: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: Mapping[str, Any],
        preview: Json,
        terms: ApprovalTerms,
        now: datetime | None = None,
    ) -> str:
        """The gate's out-of-band step: returns ``out_of_band:<approver>`` or raises.

        ApprovalPending while the request waits (filing it on the first call); ApprovalRefused
        when it was rejected, has expired or was already used. An approved request is consumed
        here, exactly once, before the write runs.
        """
        at = _now(now)
        record, filed = await self.request(
            requester, tool, cluster, namespace, manifest, preview, terms, at
        )
        if filed:
            raise ApprovalPending(self._pending_text(record, at))
        if record.state == "expired":  # reported once already: file a new request in its place
            new = self._new(
                requester, tool, cluster, namespace, record.manifest_sha256, preview, terms, at
            )
            try:
                renewed = await self._transition(record, new)
            except _Changed:
                raise ApprovalPending(
                    f"approval request {record.id} changed meanwhile: call again"
                ) from None
            raise ApprovalPending(
                self._pending_text(
                    renewed, at, f"the earlier request expired at {rfc3339(record.expires_at)}; "
                )
            )
        if record.expired(at):
            with suppress(_Changed):  # someone else changed it; the next call reads it again
                await self._transition(record, replace(record, state="expired"))
            raise ApprovalRefused(
                f"approval request {record.id} expired at {rfc3339(record.expires_at)} "
                f"(it was {record.state}): not run; calling this tool again with the same "
                "arguments files a new request"
            )
        if record.state == "pending":
            raise ApprovalPending(self._pending_text(record, at, "still waiting: "))
        if record.state == "rejected":
            raise ApprovalRefused(
                f"approval request {record.id} was rejected by {record.rejected_by}: not run"
            )
        if record.state == "used":
            raise ApprovalRefused(
                f"approval request {record.id} was already used: an approval runs exactly once"
            )
        return await self.consume(record, at)

    async def consume(self, record: ApprovalRecord, now: datetime | None = None) -> str:
        """Spend an approved request (at most once across every replica).

        Before it counts, the decision is checked again (``_vouch``) and the API server must
        show that it vouches for it (``_vouched_by_api_server``).
        """
        at = _now(now)
        if record.state == "used":
            raise ApprovalRefused(
                f"approval request {record.id} was already used: an approval runs exactly once"
            )
        if record.state != "approved":
            raise ApprovalRefused(f"approval request {record.id} is {record.state}, not approved")
        if record.expired(at):
            raise ApprovalRefused(
                f"approval request {record.id} expired at {rfc3339(record.expires_at)}: not run"
            )
        self._vouch(record)
        try:
            await self._vouched_by_api_server(record)
            await self._transition(record, replace(record, state="used", used_at=at))
        except _Changed:
            raise ApprovalRefused(
                f"approval request {record.id} was already used: an approval runs exactly once"
            ) from None
        return f"out_of_band:{record.decided_by}"

    def _vouch(self, record: ApprovalRecord) -> None:
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

    async def _vouched_by_api_server(self, record: ApprovalRecord) -> None:
        """The admission policy is in force on this very record, or no approval counts.

        A dry run of a change to the decided record's ``decided-by``: the policy refuses it
        (a decision is made once, by the user named in it); an API server that accepts it does
        not vouch for who approved. Raises _Changed when the record changed since it was read.
        """
        probe: Json = {
            "metadata": {"resourceVersion": record.resource_version},
            "data": {DECIDED_BY_KEY: f"{record.decided_by} (mcp-kube check)"},
        }
        try:
            await self._patch(record.id, probe, dry_run=True)
        except InvalidArgument as e:
            if f"ValidatingAdmissionPolicy '{ADMISSION_POLICY}'" in str(e):
                return
            raise self._refused_by_api_server(record.id, e) from None
        raise ApprovalRefused(
            f"approval request {record.id} is not vouched for by the API server: the "
            f"ValidatingAdmissionPolicy {ADMISSION_POLICY} is not in force on namespace "
            f"{self.namespace} of cluster {self.port.name}, so anyone who may patch the record "
            f"could have written its approval. An operator applies {ADMISSION_FILE}: refused"
        )

    # ------------------------------------------------------------------ the approver's side
    async def _decidable(self, rid: str, now: datetime) -> ApprovalRecord:
        record = await self.get(rid)
        if record is None:
            raise NotFound(
                f"no approval request {rid} in namespace {self.namespace} of cluster "
                f"{self.port.name}"
            )
        if record.expired(now):
            raise ApprovalRefused(
                f"approval request {rid} expired at {rfc3339(record.expires_at)}: it can no "
                "longer be decided; the requester calls the tool again to file a new request"
            )
        if record.state != "pending":
            who = record.decided_by
            raise ApprovalRefused(
                f"approval request {rid} is already {record.state}"
                + (f" (by {who})" if who else "")
                + ": nothing to decide"
            )
        return record

    def _in_groups(self, record: ApprovalRecord, approver: Principal) -> bool:
        return not record.approvers or bool(set(approver.groups) & set(record.approvers))

    async def approve(
        self, rid: str, approver: Principal, now: datetime | None = None
    ) -> ApprovalRecord:
        at = _now(now)
        record = await self._decidable(check_id(rid), at)
        if record.four_eyes and approver.subject == record.requester:
            raise ApprovalRefused(
                f"four-eyes: {approver.subject} requested {rid} and cannot approve it; "
                "another approver must"
            )
        if not self._in_groups(record, approver):
            raise ApprovalRefused(
                f"{approver.subject} is in none of the approver groups of {rid} "
                f"({', '.join(record.approvers)}): cannot approve"
            )
        return await self._decide(rid, record, self._decision(record, "approved", approver, at))

    async def reject(
        self, rid: str, approver: Principal, now: datetime | None = None
    ) -> ApprovalRecord:
        """Reject a request: an approver may, and so may the requester (withdrawing it)."""
        at = _now(now)
        record = await self._decidable(check_id(rid), at)
        if approver.subject != record.requester and not self._in_groups(record, approver):
            raise ApprovalRefused(
                f"{approver.subject} is in none of the approver groups of {rid} "
                f"({', '.join(record.approvers)}): cannot reject"
            )
        return await self._decide(rid, record, self._decision(record, "rejected", approver, at))

    @staticmethod
    def _decision(
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

    async def _decide(
        self, rid: str, record: ApprovalRecord, new: ApprovalRecord
    ) -> ApprovalRecord:
        """Record an approver's decision, unless someone else changed the request meanwhile."""
        try:
            return await self._transition(record, new)
        except _Changed:
            raise ApprovalRefused(
                f"approval request {rid} changed meanwhile (decided by someone else?): "
                "look again with `mcp-kube approvals show`"
            ) from None


async def identify(port: ClusterPort) -> Principal:
    """Who the port's credentials are, as the API server sees them (SelfSubjectReview)."""
    body: Json = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    result = await port.create(Kind.SELF_SUBJECT_REVIEWS, "", body, dry_run=False)
    info = (result.get("status") or {}).get("userInfo") or {}
    username = info.get("username")
    if not isinstance(username, str) or not username:
        raise ApprovalRefused("the API server did not say who these credentials are: refused")
    groups = tuple(str(g) for g in info.get("groups") or ())
    return Principal(username, groups, "kubeconfig:selfsubjectreview")
