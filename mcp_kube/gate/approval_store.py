"""Out-of-band approvals: a write waits server-side until a human approver says yes.

What the server does with a write that needs an out-of-band approval (file a request, report
it pending, spend it once approved) and what an approver does (approve, reject). The record,
its states and the checks on it are ``mcp_kube.policy.approvals`` (pure); reading and changing
records, ``mcp_kube.gate.approval_records``.

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

Expiry is judged by the clock of whoever checks (server replica or approver).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from mcp_kube.canonical import canonical_json
from mcp_kube.domain import Json, Principal
from mcp_kube.errors import ApprovalPending, ApprovalRefused, Conflict, InvalidArgument, NotFound
from mcp_kube.gate.approval_records import ConfigMapRecords, identify
from mcp_kube.policy.approvals import (
    ADMISSION_FILE,
    ADMISSION_POLICY,
    DECIDED_BY_KEY,
    ApprovalRecord,
    ApprovalTerms,
    check_id,
    decided,
    in_groups,
    manifest_sha256,
    now_utc,
    request_id,
    rfc3339,
    vouch,
)

__all__ = ["ApprovalStore", "identify"]

_MAX_PREVIEW_BYTES = 256 * 1024  # a ConfigMap holds at most 1 MiB


def _left(until: datetime, now: datetime) -> str:
    seconds = max(0, int((until - now).total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _new_record(
    requester: Principal,
    tool: str,
    cluster: str,
    namespace: str,
    manifest_hash: str,
    preview: Json,
    terms: ApprovalTerms,
    now: datetime,
) -> ApprovalRecord:
    """A pending request for this write, as the server files it."""
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


def _pending_text(record: ApprovalRecord, now: datetime, note: str = "") -> str:
    """What the requester is told while a request waits."""
    groups = ", ".join(record.approvers) or "any"
    four = "; the requester cannot approve it" if record.four_eyes else ""
    return (
        f"{note}approval requested: {record.id}; an approver (groups: {groups}{four}) runs "
        f"`mcp-kube approve {record.id}`; then call this tool again with the same arguments "
        f"(it expires at {rfc3339(record.expires_at)}, in {_left(record.expires_at, now)})"
    )


class ApprovalStore(ConfigMapRecords):
    """Approval requests as ConfigMaps in ``namespace``, through one cluster port."""

    # ------------------------------------------------------------------ the requester's side
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
        at = now_utc(now)
        fresh = _new_record(
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
        at = now_utc(now)
        record, filed = await self.request(
            requester, tool, cluster, namespace, manifest, preview, terms, at
        )
        if filed:
            raise ApprovalPending(_pending_text(record, at))
        if record.state == "expired":  # reported once already: file a new request in its place
            new = _new_record(
                requester, tool, cluster, namespace, record.manifest_sha256, preview, terms, at
            )
            try:
                renewed = await self._transition(record, new)
            except Conflict:
                raise ApprovalPending(
                    f"approval request {record.id} changed meanwhile: call again"
                ) from None
            raise ApprovalPending(
                _pending_text(
                    renewed, at, f"the earlier request expired at {rfc3339(record.expires_at)}; "
                )
            )
        if record.expired(at):
            with suppress(Conflict):  # someone else changed it; the next call reads it again
                await self._transition(record, replace(record, state="expired"))
            raise ApprovalRefused(
                f"approval request {record.id} expired at {rfc3339(record.expires_at)} "
                f"(it was {record.state}): not run; calling this tool again with the same "
                "arguments files a new request"
            )
        if record.state == "pending":
            raise ApprovalPending(_pending_text(record, at, "still waiting: "))
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

        Before it counts, the decision is checked again (``vouch``) and the API server must
        show that it vouches for it (``_vouched_by_api_server``).
        """
        at = now_utc(now)
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
        vouch(record)
        try:
            await self._vouched_by_api_server(record)
            await self._transition(record, replace(record, state="used", used_at=at))
        except Conflict:
            raise ApprovalRefused(
                f"approval request {record.id} was already used: an approval runs exactly once"
            ) from None
        return f"out_of_band:{record.decided_by}"

    async def _vouched_by_api_server(self, record: ApprovalRecord) -> None:
        """The admission policy is in force on this very record, or no approval counts.

        A dry run of a change to the decided record's ``decided-by``: the policy refuses it
        (a decision is made once, by the user named in it); an API server that accepts it does
        not vouch for who approved. Raises Conflict when the record changed since it was read.
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

    async def approve(
        self, rid: str, approver: Principal, now: datetime | None = None
    ) -> ApprovalRecord:
        at = now_utc(now)
        record = await self._decidable(check_id(rid), at)
        if record.four_eyes and approver.subject == record.requester:
            raise ApprovalRefused(
                f"four-eyes: {approver.subject} requested {rid} and cannot approve it; "
                "another approver must"
            )
        if not in_groups(record, approver):
            raise ApprovalRefused(
                f"{approver.subject} is in none of the approver groups of {rid} "
                f"({', '.join(record.approvers)}): cannot approve"
            )
        return await self._decide(rid, record, decided(record, "approved", approver, at))

    async def reject(
        self, rid: str, approver: Principal, now: datetime | None = None
    ) -> ApprovalRecord:
        """Reject a request: an approver may, and so may the requester (withdrawing it)."""
        at = now_utc(now)
        record = await self._decidable(check_id(rid), at)
        if approver.subject != record.requester and not in_groups(record, approver):
            raise ApprovalRefused(
                f"{approver.subject} is in none of the approver groups of {rid} "
                f"({', '.join(record.approvers)}): cannot reject"
            )
        return await self._decide(rid, record, decided(record, "rejected", approver, at))

    async def _decide(
        self, rid: str, record: ApprovalRecord, new: ApprovalRecord
    ) -> ApprovalRecord:
        """Record an approver's decision, unless someone else changed the request meanwhile."""
        try:
            return await self._transition(record, new)
        except Conflict:
            raise ApprovalRefused(
                f"approval request {rid} changed meanwhile (decided by someone else?): "
                "look again with `mcp-kube approvals show`"
            ) from None
