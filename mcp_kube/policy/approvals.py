"""Out-of-band approvals: a write waits server-side until a human approver says yes.

A request is one ConfigMap ``mcpk-approval-<id>`` in the approvals namespace of the approvals
cluster (``Settings.approvals``), so every server replica sees the same requests and a restart
loses none. Its ``request`` data key holds the request as JSON (who asked, which tool, where,
the SHA-256 of the final manifest, the preview shown to approvers, the approver groups, the
four-eyes flag, creation and expiry times, who decided and when, when it was used); its label
``mcp-kube.io/approval-state`` holds the state:

    pending -> approved -> used        (an approval runs exactly once)
    pending -> rejected
    any     -> expired                 (past ``expires_at``, reported once to the requester)
    expired -> pending                 (the same call again files a new request)

The id is deterministic: the first 16 hex characters of a SHA-256 over the requester, the tool,
the cluster, the namespace and the manifest hash. Calling the tool again with the same
arguments therefore finds its own request, on any replica. Nothing a caller passes as a tool
argument counts as approval: only an approver's ``mcp-kube approve ID`` (their own kubeconfig
credentials, identified by the API server with a SelfSubjectReview) moves a request to
approved. Every state change is a merge patch carrying the ``resourceVersion`` that was read,
so the API server refuses the second of two concurrent changes (409): two replicas cannot both
consume one approval, and two approvers cannot both decide one request.

The server reads and writes the records with its own identity, never impersonating the caller:
requesters need no access to the approvals namespace (and must not have ``patch`` there, or
they could edit a record by hand); approvers need ``get``, ``list`` and ``patch`` on its
ConfigMaps. Expiry is judged by the clock of whoever checks (server replica or approver).
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

from mcp_kube.domain import ACTING_FOR, Principal
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

Json = dict[str, Any]
State = Literal["pending", "approved", "rejected", "used", "expired"]
STATES: tuple[State, ...] = ("pending", "approved", "rejected", "used", "expired")

DEFAULT_TTL = 3600
NAME_PREFIX = "mcpk-approval-"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mcp-kube"
STATE_LABEL = "mcp-kube.io/approval-state"
DATA_KEY = "request"
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


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
    approved_by: str | None = None
    approved_at: datetime | None = None
    rejected_by: str | None = None
    rejected_at: datetime | None = None
    used_at: datetime | None = None
    resource_version: str = ""
    extra: Json = field(default_factory=dict)  # fields of a newer version, kept as they are

    def expired(self, now: datetime | None = None) -> bool:
        return self.state == "expired" or _now(now) > self.expires_at

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
            "approved_by": self.approved_by,
            "approved_at": t(self.approved_at),
            "rejected_by": self.rejected_by,
            "rejected_at": t(self.rejected_at),
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
            data = json.loads((obj.get("data") or {})[DATA_KEY])
            state = (meta.get("labels") or {}).get(STATE_LABEL)
            if state not in STATES:
                raise ValueError(f"unknown state {state!r}")
            requester = data["requester"]

            def t(key: str) -> datetime | None:
                return parse_time(data[key]) if data.get(key) else None

            known = set(cls.__dataclass_fields__) | {"requester"}
            record = cls(
                id=str(data["id"]),
                requester=str(requester["subject"]),
                requester_groups=tuple(str(g) for g in requester.get("groups") or ()),
                tool=str(data["tool"]),
                cluster=str(data["cluster"]),
                namespace=str(data["namespace"]),
                manifest_sha256=str(data["manifest_sha256"]),
                preview=dict(data.get("preview") or {}),
                approvers=tuple(str(g) for g in data.get("approvers") or ()),
                four_eyes=bool(data["four_eyes"]),
                created_at=parse_time(data["created_at"]),
                expires_at=parse_time(data["expires_at"]),
                state=state,
                approved_by=data.get("approved_by"),
                approved_at=t("approved_at"),
                rejected_by=data.get("rejected_by"),
                rejected_at=t("rejected_at"),
                used_at=t("used_at"),
                resource_version=str(meta.get("resourceVersion") or ""),
                extra={k: v for k, v in data.items() if k not in known},
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
            "data": {DATA_KEY: canonical_json(record.to_json())},
        }

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
        except UpstreamError as e:
            if _is_conflict(e):
                return None
            raise
        return ApprovalRecord.from_configmap(obj)

    async def _transition(self, record: ApprovalRecord, new: ApprovalRecord) -> ApprovalRecord:
        """Write ``new`` over ``record`` only if nobody changed it since it was read."""
        body = self._body(new)
        patch: Json = {
            "metadata": {
                "resourceVersion": record.resource_version,
                "labels": body["metadata"]["labels"],
            },
            "data": body["data"],
        }
        try:
            with _as_server():
                obj = await self.port.patch(
                    Kind.CONFIG_MAPS,
                    configmap_name(record.id),
                    self.namespace,
                    patch,
                    dry_run=False,
                )
        except NotFound:
            raise _Changed from None  # deleted meanwhile
        except Forbidden as e:
            raise self._forbidden(e) from None
        except UpstreamError as e:
            if _is_conflict(e):
                raise _Changed from None
            raise
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
        """Spend an approved request (at most once across every replica)."""
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
        try:
            await self._transition(record, replace(record, state="used", used_at=at))
        except _Changed:
            raise ApprovalRefused(
                f"approval request {record.id} was already used: an approval runs exactly once"
            ) from None
        return f"out_of_band:{record.approved_by}"

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
            who = record.approved_by or record.rejected_by
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
        new = replace(record, state="approved", approved_by=approver.subject, approved_at=at)
        return await self._decide(rid, record, new)

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
        new = replace(record, state="rejected", rejected_by=approver.subject, rejected_at=at)
        return await self._decide(rid, record, new)

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
