"""Approval records as ConfigMaps: read, file and change them, never blindly.

Every state change is a merge patch carrying the ``resourceVersion`` that was read, so the API
server refuses the second of two concurrent changes (409, ``Conflict``): two replicas cannot
both consume one approval, and two approvers cannot both decide one request. The records are
read and written with the server's own identity, never impersonating the caller: requesters
need no access to the approvals namespace; approvers need ``get``, ``list`` and ``patch`` on
its ConfigMaps. The record itself is ``mcp_kube.policy.approvals``; what the server and the
approvers do with it, ``mcp_kube.gate.approval_store``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from mcp_kube.domain import ACTING_FOR, Json, Principal
from mcp_kube.errors import ApprovalRefused, Conflict, Forbidden, InvalidArgument, NotFound
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.policy.approvals import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    STATE_LABEL,
    ApprovalRecord,
    check_id,
    configmap_name,
)

__all__ = ["ConfigMapRecords", "identify"]


class _Changed(Conflict):
    """The record changed since it was read (the API server answered 409)."""


@contextmanager
def _as_server() -> Iterator[None]:
    """Store calls use the server's own identity: a requester must not write approvals."""
    token = ACTING_FOR.set(None)
    try:
        yield
    finally:
        ACTING_FOR.reset(token)


class ConfigMapRecords:
    """Approval records as ConfigMaps in ``namespace``, through one cluster port."""

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
        except Conflict:
            return None
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
        except Conflict:
            raise _Changed from None
        return obj

    async def _transition(self, record: ApprovalRecord, new: ApprovalRecord) -> ApprovalRecord:
        """Write ``new`` over ``record`` only if nobody changed it since it was read."""
        try:
            obj = await self._patch(record.id, self._patch_for(record, new), dry_run=False)
        except InvalidArgument as e:  # the admission policy (or the API server) said no
            raise self._refused_by_api_server(record.id, e) from None
        return ApprovalRecord.from_configmap(obj)


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
