"""The tool context: what a tool may use during one call, handed out by the gate.

It implements ``mcp_kube.tools.base.ToolContext`` (the tools' own view of it; they import
nothing of the gate): the caller, the limits, cluster ports by name, the policy's review of a
write's manifest, and the approval the review asks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcp_kube.domain import ManifestReview
from mcp_kube.gate.approval import WriteCall
from mcp_kube.kube.port import ClusterPort

if TYPE_CHECKING:
    from mcp_kube.gate.dispatch import Gate

__all__ = ["CallContext"]


class CallContext:
    """One call's view of the gate (a ``ToolContext``)."""

    def __init__(self, gate: Gate, call: WriteCall) -> None:
        self._gate = gate
        self._call = call
        self.principal = call.principal
        self.limits = gate.settings.limits
        self.approval = ""  # how a write was approved, for the audit record

    def review_manifest(
        self, cluster: str, namespace: str, manifest: dict[str, Any]
    ) -> ManifestReview:
        call = self._call
        return self._gate.policy.review(
            call.principal, call.tool, cluster, namespace, manifest, call.args
        )

    async def require_approval(self, review: ManifestReview, preview: dict[str, Any]) -> str:
        self.approval = await self._gate.approvals.obtain(self._call, review, preview)
        return self.approval

    def cluster(self, name: str | None) -> ClusterPort:
        return self._gate.clusters.get(name)

    def clusters(self, name: str | None) -> list[ClusterPort]:
        source = self._gate.clusters
        if name is not None:
            return [source.get(name)]
        source.resolve(None)  # no cluster at all is an error, never an empty fleet
        return [source.get(n) for n in source.names]

    def cluster_names(self) -> list[str]:
        return self._gate.clusters.names

    def permissions(self) -> list[tuple[str, bool, str]]:
        out = []
        for spec in self._gate.specs:
            d = self._gate.policy.decide(self.principal, spec.name, spec.read_only, {})
            out.append((spec.name, d.allowed, d.rule))
        return out

    @property
    def progress_patterns(self) -> Sequence[str]:
        return self._gate.settings.progress_log_patterns
