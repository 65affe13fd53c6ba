"""``mcp-kube approve`` and ``mcp-kube approvals``: decide, list and show out-of-band approvals.

The approver acts as the user of their own kubeconfig credentials; the API server says who
that is, and the approvals cluster's store enforces four-eyes and the approver groups.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_kube.cli.common import SubParsers
from mcp_kube.errors import NotFound

if TYPE_CHECKING:
    from mcp_kube.gate.approval_store import ApprovalStore
    from mcp_kube.kube.client import KubeCluster
    from mcp_kube.policy.approvals import ApprovalRecord
    from mcp_kube.settings import Settings

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    ap = sub.add_parser(
        "approve",
        help="approve (or --reject) a write waiting for out-of-band approval",
        description="Approve a pending request as the user of your kubeconfig credentials "
        "(the API server says who that is). Under four-eyes the requester cannot approve; "
        "approvers must be in one of the request's approver groups. The requester then calls "
        "the tool again, and the write runs once.",
    )
    ap.set_defaults(handler=approve)
    ap.add_argument("id", help="the request id from the tool's approval_pending error")
    ap.add_argument("--reject", action="store_true", help="reject the request instead")
    ap.add_argument(
        "--audit-log",
        type=Path,
        metavar="PATH",
        help="also record the decision in this audit log (default: $MCP_KUBE_AUDIT__PATH "
        "or ~/.local/state/mcp-kube/audit.jsonl)",
    )
    _target_args(ap)
    al = sub.add_parser("approvals", help="list and show out-of-band approval requests")
    asub = al.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = asub.add_parser("list", help="pending requests that have not expired")
    ls.set_defaults(handler=list_pending)
    ls.add_argument("--json", action="store_true", help="print JSON (with each preview)")
    _target_args(ls)
    sh = asub.add_parser("show", help="one request as JSON: what would run, who asked, state")
    sh.set_defaults(handler=show)
    sh.add_argument("id")
    _target_args(sh)


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubeconfig",
        type=Path,
        help="your kubeconfig (default: $KUBECONFIG): you act as its user",
    )
    p.add_argument(
        "--context",
        help="context of the approvals cluster (default: $MCP_KUBE_APPROVALS__CLUSTER, "
        "then the current context)",
    )
    p.add_argument(
        "--namespace",
        help="namespace of the approval requests (default: $MCP_KUBE_APPROVALS__NAMESPACE "
        "or mcp-kube-system)",
    )


@contextmanager
def _opened(
    args: argparse.Namespace, settings: Settings
) -> Iterator[tuple[KubeCluster, ApprovalStore]]:
    """The approvals cluster, as the kubeconfig's user, and its store; closed on exit."""
    from mcp_kube.gate.approval_store import ApprovalStore
    from mcp_kube.kube.client import ClusterRegistry
    from mcp_kube.settings import ClusterSettings

    context = args.context or settings.approvals.cluster
    clusters = ClusterSettings(
        kubeconfig=args.kubeconfig or settings.clusters.kubeconfig,
        contexts=[context] if context else [],
        request_timeout_s=settings.clusters.request_timeout_s,
        watch_cache=False,
    )
    registry = ClusterRegistry(clusters)
    try:
        port = registry.get(context)
        yield port, ApprovalStore(port, args.namespace or settings.approvals.namespace)
    finally:
        registry.close()


def approve(args: argparse.Namespace) -> int:
    import anyio

    from mcp_kube.gate.approval_store import identify
    from mcp_kube.policy.approvals import rfc3339
    from mcp_kube.settings import Settings

    settings = Settings()
    with _opened(args, settings) as (port, store):

        async def decide() -> ApprovalRecord:
            me = await identify(port)
            if args.reject:
                return await store.reject(args.id, me)
            return await store.approve(args.id, me)

        rec = anyio.run(decide)
        _audit_decision(args.audit_log or settings.audit.path, rec)
        if rec.state == "approved":
            print(
                f"approved {rec.id} as {rec.decided_by}: {rec.tool} for {rec.requester} on "
                f"{rec.cluster}/{rec.namespace}; it runs once when the requester calls again "
                f"before {rfc3339(rec.expires_at)}"
            )
        else:
            print(f"rejected {rec.id} as {rec.decided_by}: {rec.tool} for {rec.requester}")
    return 0


def _audit_decision(path: Path, rec: ApprovalRecord) -> None:
    """The approver's decision, as an ``approval`` record in the audit log."""
    from mcp_kube.audit import AuditLog

    with AuditLog(path) as log:
        log.append(
            {
                "kind": "approval",
                "request_id": rec.id,
                "decision": rec.state,
                "approver": rec.decided_by,
                "approver_groups": list(rec.decided_groups),
                "requester": rec.requester,
                "tool": rec.tool,
                "cluster": rec.cluster,
                "namespace": rec.namespace,
                "manifest_sha256": rec.manifest_sha256,
            }
        )


def show(args: argparse.Namespace) -> int:
    import anyio

    from mcp_kube.settings import Settings

    with _opened(args, Settings()) as (_, store):
        found = anyio.run(store.get, args.id)
        if found is None:
            raise NotFound(f"no approval request {args.id} in namespace {store.namespace}")
        print(json.dumps(found.summary(), indent=2))
    return 0


def list_pending(args: argparse.Namespace) -> int:
    import anyio

    from mcp_kube.policy.approvals import rfc3339
    from mcp_kube.settings import Settings

    with _opened(args, Settings()) as (port, store):
        pending = anyio.run(store.list_pending)
        if args.json:
            print(json.dumps([r.summary() for r in pending], indent=2))
            return 0
        if not pending:
            print(f"no pending approval requests in {store.namespace} of {port.name}")
            return 0
        print(f"{'ID':<17} {'REQUESTER':<16} {'TOOL':<12} {'WHERE':<28} EXPIRES")
        for r in pending:
            where = f"{r.cluster}/{r.namespace}"
            print(f"{r.id:<17} {r.requester:<16} {r.tool:<12} {where:<28} {rfc3339(r.expires_at)}")
    return 0
