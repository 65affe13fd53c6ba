"""list_clusters: the clusters this server serves, with version, reachability and GPU totals.

One cluster however many kubeconfig contexts point at its API server: the contexts are listed
with the one whose credentials the server uses.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import anyio
from pydantic import Field

from mcp_kube.errors import ToolError
from mcp_kube.kube.port import ClusterPort
from mcp_kube.tools.base import StrictInput, ToolContext, ToolOutput, ToolSpec

__all__ = ["LIST_CLUSTERS"]


class ListClustersInput(StrictInput):
    pass


class ClusterInfo(ToolOutput):
    name: str
    default: bool
    reachable: bool
    contexts: list[str] = Field(
        default_factory=list,
        description="kubeconfig contexts that point at this cluster's API server (one cluster)",
    )
    context: str | None = Field(
        None, description="the context whose credentials the server uses for this cluster"
    )
    version: str | None = None
    nodes: int | None = None
    gpu_nodes: int | None = None
    gpus: dict[str, int] = Field(default_factory=dict, description="allocatable GPU resources")
    error: str | None = None


class ClusterList(ToolOutput):
    clusters: list[ClusterInfo]


def _info(name: str, port: ClusterPort, default: str, **facts: Any) -> ClusterInfo:
    return ClusterInfo(
        name=name,
        default=name == default,
        contexts=list(port.contexts),
        context=port.context,
        **facts,
    )


async def _list_clusters(ctx: ToolContext, _args: ListClustersInput) -> ClusterList:
    default = ctx.cluster(None).name  # no cluster at all: NoClusters, not an empty list
    names = ctx.cluster_names()
    out: dict[str, ClusterInfo] = {}

    async def one(name: str) -> None:
        port = ctx.cluster(name)
        try:
            version = await port.version()
            nodes = await port.nodes()
        except ToolError as e:
            out[name] = _info(name, port, default, reachable=False, error=str(e))
            return
        gpus: dict[str, int] = defaultdict(int)
        for n in nodes:
            for r, v in n.allocatable.items():
                gpus[r] += v
        out[name] = _info(
            name,
            port,
            default,
            reachable=True,
            version=str(version.get("gitVersion", "")),
            nodes=len(nodes),
            gpu_nodes=sum(1 for n in nodes if n.allocatable),
            gpus=dict(sorted(gpus.items())),
        )

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(one, name)
    return ClusterList(clusters=[out[n] for n in names])


def _contexts_note(c: ClusterInfo) -> str:
    if not c.contexts:
        return ""
    using = f" (credentials of {c.context})" if c.context else ""
    return f"; contexts: {', '.join(c.contexts)}{using}"


def _clusters_summary(out: ClusterList) -> str:
    return "\n".join(
        (
            f"{c.name}: {c.version}, {c.nodes} nodes, GPUs {dict(c.gpus)}"
            if c.reachable
            else f"{c.name}: unreachable ({c.error})"
        )
        + _contexts_note(c)
        for c in out.clusters
    )


LIST_CLUSTERS: ToolSpec[ListClustersInput, ClusterList] = ToolSpec(
    name="list_clusters",
    title="List clusters",
    description=(
        "Clusters this server serves: version, reachability, node and GPU totals, and the "
        "kubeconfig contexts that point at each (one cluster however many contexts)."
    ),
    input=ListClustersInput,
    output=ClusterList,
    run=_list_clusters,
    summary=_clusters_summary,
    examples=(("Which clusters can you see?", {}),),
)
