"""Approval routing: how a write gets the approval its policy review asks for.

- ``none``: it runs;
- ``elicitation``: the human behind the client is asked (MCP elicitation) and only an explicit
  yes counts; the question is bound to this very request (``approval_binding``: caller, tool
  and manifest), and a client that cannot ask, or fails to answer, has not said yes;
- ``out_of_band``: the write waits server-side until an approver approves it
  (``mcp_kube.gate.approval_store``); nothing a caller passes as an argument counts.

Anything else is refused. Before anyone is asked, a review that carries the policy's
``maxConcurrentGpusPerPrincipal`` has the caller's active Jobs counted, so nobody is asked to
approve a write the limit refuses anyway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_kube.canonical import canonical_json
from mcp_kube.domain import ACTING_FOR, ManifestReview, Principal
from mcp_kube.errors import ApprovalRefused
from mcp_kube.gate.approval_store import ApprovalStore
from mcp_kube.kube.objects import JobInfo
from mcp_kube.kube.port import ClusterSource, Kind
from mcp_kube.policy.approvals import ApprovalTerms
from mcp_kube.policy.decision import Policy
from mcp_kube.policy.limits import check_concurrent_gpus
from mcp_kube.policy.manifest import manifest_gpus
from mcp_kube.settings import ApprovalSettings
from mcp_kube.tools.jobspec import SUBMITTED_BY_LABEL, principal_label

__all__ = ["ApprovalRouter", "Elicit", "WriteCall", "approval_binding", "approval_text"]

# Asks the human behind the client (MCP elicitation); True only on an explicit yes. The second
# argument binds the answer to this very request (``approval_binding``).
Elicit = Callable[[str, str], Awaitable[bool]]


def approval_binding(principal: Principal, tool: str, manifest: dict[str, Any]) -> str:
    """A digest of caller, tool and manifest: an answer counts only for the request asked."""
    body = canonical_json([principal.subject, tool, manifest], ensure_ascii=True)
    return "approval:" + hashlib.sha256(body.encode()).hexdigest()


def approval_text(
    tool: str, principal: Principal, review: ManifestReview, preview: dict[str, Any]
) -> str:
    """The question put to the human: who asks for what, and what the policy changed."""
    lines = [f"{principal.subject} asks to run {tool}:", json.dumps(preview, indent=2)[:4000]]
    if review.changes:
        lines.append("Policy defaults applied: " + "; ".join(review.changes))
    if review.warnings:
        lines.append("Warnings: " + "; ".join(review.warnings))
    lines.append("Approve this write?")
    return "\n".join(lines)


@dataclass(frozen=True)
class WriteCall:
    """The call whose write needs approval: who, which tool, its validated arguments, and how
    to ask the human behind the client (None: the client cannot be asked)."""

    principal: Principal
    tool: str
    args: Mapping[str, Any]
    elicit: Elicit | None = None


class ApprovalRouter:
    """Obtains approvals for one gate; ``waiting`` counts writes waiting for a human now."""

    def __init__(self, clusters: ClusterSource, policy: Policy, where: ApprovalSettings) -> None:
        self._clusters = clusters
        self._policy = policy
        self._where = where
        self.waiting = 0

    async def obtain(self, call: WriteCall, review: ManifestReview, preview: dict[str, Any]) -> str:
        """How the write was approved (``none``, ``elicitation``, ``out_of_band:<approver>``);
        raises ``ApprovalRefused``, ``ApprovalPending`` or ``PolicyDenied`` otherwise."""
        self.waiting += 1
        try:
            await self._within_gpu_limit(call, review)  # before anyone is asked to approve
            if review.approval == "none":
                return "none"
            if review.approval == "elicitation":
                return await self._elicited(call, review, preview)
            if review.approval == "out_of_band":
                return await self._out_of_band(call, review, preview)
            raise ApprovalRefused(
                f"approval mode {review.approval!r} is not available here: refused"
            )
        finally:
            self.waiting -= 1

    async def _within_gpu_limit(self, call: WriteCall, review: ManifestReview) -> None:
        """The policy's maxConcurrentGpusPerPrincipal, counted from the caller's active Jobs."""
        limit = review.max_concurrent_gpus
        if limit is None:
            return
        port = self._clusters.get(call.args.get("cluster"))
        owner = principal_label(call.principal.subject)
        token = ACTING_FOR.set(None)  # counted as the server: the caller may not list everywhere
        try:
            jobs = await port.list_objects(
                Kind.JOBS, None, label_selector=f"{SUBMITTED_BY_LABEL}={owner}"
            )
        finally:
            ACTING_FOR.reset(token)
        running = sum(manifest_gpus(job) for job in jobs if not JobInfo.from_json(job).terminal)
        wanted = manifest_gpus(review.manifest)
        check_concurrent_gpus(limit, running, wanted, call.principal.subject)

    async def _elicited(
        self, call: WriteCall, review: ManifestReview, preview: dict[str, Any]
    ) -> str:
        if call.elicit is None:
            raise ApprovalRefused(
                "this write needs a human's approval and the client cannot ask one "
                "(no elicitation support): refused"
            )
        text = approval_text(call.tool, call.principal, review, preview)
        binding = approval_binding(call.principal, call.tool, review.manifest)
        try:
            approved = await call.elicit(text, binding)
        except ApprovalRefused:
            raise
        except Exception as e:  # a client that fails to answer has not said yes
            raise ApprovalRefused(
                f"approval could not be obtained ({type(e).__name__}): refused"
            ) from e
        if not approved:
            raise ApprovalRefused("the human declined this write")
        return "elicitation"

    async def _out_of_band(
        self, call: WriteCall, review: ManifestReview, preview: dict[str, Any]
    ) -> str:
        """Waits server-side in a ConfigMap; only `mcp-kube approve ID` approves it."""
        store = ApprovalStore(self._clusters.get(self._where.cluster), self._where.namespace)
        cluster = self._clusters.resolve(call.args.get("cluster"))
        meta = review.manifest.get("metadata") or {}
        namespace = str(call.args.get("namespace") or meta.get("namespace") or "")
        terms = self._policy.approval_terms(
            call.principal, call.tool, cluster, namespace, review.manifest, call.args
        )
        return await store.require(
            call.principal,
            call.tool,
            cluster,
            namespace,
            review.manifest,
            preview,
            terms or ApprovalTerms(),
        )
