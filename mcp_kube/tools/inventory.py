"""gpu_inventory: GPUs per node, cluster and fleet, free counts first.

The numbers come from ``gpuview`` (what counts as allocated, free or unavailable is defined
there); this module filters them, pages the nodes and says the totals in words.
"""

from __future__ import annotations

from pydantic import Field

from mcp_kube.domain import ClusterName, DnsSubdomain
from mcp_kube.kube.port import ClusterPort
from mcp_kube.tools.base import (
    ClusterInput,
    Page,
    ToolContext,
    ToolOutput,
    ToolSpec,
    clamp_limit,
    paginate,
)
from mcp_kube.tools.common import fan_out
from mcp_kube.tools.gpuview import (
    ClusterGpus,
    NodeGpus,
    ProductCount,
    ResourceCount,
    cluster_gpus,
    cluster_view,
    merge_products,
    sum_resources,
)

__all__ = ["GPU_INVENTORY"]


class GpuInventoryInput(ClusterInput):
    cluster: ClusterName | None = Field(
        None, description="one cluster; default: every cluster (fleet view)"
    )
    product: str | None = Field(
        None, max_length=128, description="filter: product substring, e.g. 'H100', 'MI300'"
    )
    node: DnsSubdomain | None = Field(None, description="only this node")
    detail: bool = Field(False, description="include MIG profiles and memory per node")
    include_nodes: bool = Field(True, description="list nodes (paged); false = totals only")
    limit: int | None = Field(None, ge=1, le=1000, description="nodes per page")
    cursor: str | None = Field(None, max_length=64)


class GpuInventory(ToolOutput):
    clusters: list[ClusterGpus]
    fleet: list[ResourceCount] = Field(description="totals over every cluster listed")
    fleet_products: list[ProductCount]
    nodes: list[NodeGpus]
    page: Page


def _filter(nodes: list[NodeGpus], args: GpuInventoryInput) -> list[NodeGpus]:
    if args.product:
        needle = args.product.lower()
        nodes = [n for n in nodes if needle in n.product.lower()]
    if args.node:
        nodes = [n for n in nodes if n.name == args.node]
    return nodes


async def _inventory(ctx: ToolContext, args: GpuInventoryInput) -> GpuInventory:
    async def one(port: ClusterPort) -> tuple[list[NodeGpus], ClusterGpus]:
        return await cluster_view(port, args.detail)

    ports = ctx.clusters(args.cluster)
    got, status = await fan_out(ports, one, strict=args.cluster is not None)
    clusters: list[ClusterGpus] = []
    all_nodes: list[NodeGpus] = []
    for s in status:
        if not s.reachable:  # fleet view: report it, keep serving the rest
            clusters.append(ClusterGpus(cluster=s.cluster, reachable=False, error=s.error))
            continue
        nodes, totals = got[s.cluster]
        kept = _filter(nodes, args)
        clusters.append(totals if kept is nodes else cluster_gpus(s.cluster, kept))
        all_nodes += kept
    limit = clamp_limit(args.limit, ctx.limits)
    page_nodes, page = paginate(all_nodes if args.include_nodes else [], args.cursor, limit)
    return GpuInventory(
        clusters=clusters,
        fleet=sum_resources([r for c in clusters for r in c.resources]),
        fleet_products=merge_products([c.products for c in clusters]),
        nodes=page_nodes,
        page=page,
    )


def _node_state(n: NodeGpus) -> str:
    if not n.ready:
        return "NotReady"
    return "cordoned" if n.cordoned else "tainted " + ", ".join(n.taints)


def _node_free(n: NodeGpus) -> str:
    """``6`` for whole GPUs; ``11 mig-1g.10gb + 4 mig-3g.40gb`` when the units differ."""
    free = [r for r in n.resources if r.free > 0]
    if len(free) == 1 and free[0].resource.endswith("/gpu"):
        return str(free[0].free)
    return " + ".join(f"{r.free} {r.resource.split('/')[-1]}" for r in free)


def _node_lines(nodes: list[NodeGpus], most: int = 20) -> list[str]:
    """Which listed nodes have free GPUs (and how many), and which accept no new work."""
    free = [n for n in nodes if n.schedulable and any(r.free > 0 for r in n.resources)]
    lines = []
    if free:
        counts = ", ".join(f"{n.cluster}/{n.name} {_node_free(n)} free" for n in free[:most])
        more = f" and {len(free) - most} more nodes" if len(free) > most else ""
        lines.append(f"Nodes with free GPUs: {counts}{more}.")
    else:
        lines.append(f"No listed node has a free GPU ({len(nodes)} listed).")
    closed = [n for n in nodes if not n.schedulable]
    if closed:
        names = ", ".join(f"{n.cluster}/{n.name} ({_node_state(n)})" for n in closed[:most])
        more = f" and {len(closed) - most} more" if len(closed) > most else ""
        lines.append(f"Not accepting new work: {names}{more}.")
    return lines


def _summary(inv: GpuInventory) -> str:
    """Totals first, in words a reader (or a small model) can quote; then per cluster."""
    products = inv.fleet_products
    free, total = sum(p.free for p in products), sum(p.allocatable for p in products)
    kinds = ", ".join(f"{p.free} {p.product}" for p in products if p.free)
    lines = [f"Free now: {free} of {total} GPUs" + (f" ({kinds})." if kinds else ".")]
    if inv.nodes:
        lines += _node_lines(inv.nodes)
    for c in inv.clusters:
        if not c.reachable:
            lines.append(f"{c.cluster}: unavailable ({c.error})")
            continue
        parts = [f"{r.resource} {r.free} free of {r.allocatable}" for r in c.resources]
        lines.append(
            f"{c.cluster}: " + ("; ".join(parts) or "no GPUs") + f" on {c.gpu_nodes} GPU nodes"
        )
    for p in products:
        lines.append(f"  {p.product}: {p.free} free of {p.allocatable} on {p.nodes} nodes")
    if inv.page.next_cursor:
        lines.append(f"{inv.page.returned} of {inv.page.total} nodes listed; more with cursor")
    return "\n".join(lines)


GPU_INVENTORY: ToolSpec[GpuInventoryInput, GpuInventory] = ToolSpec(
    name="gpu_inventory",
    title="GPU inventory",
    description=(
        "GPUs per node, cluster and fleet: vendor, product, memory, allocatable, allocated and "
        "free counts, MIG profiles, time-slicing, and node state (Ready, cordoned, tainted). "
        "Free counts only nodes that accept new work. Default: every cluster."
    ),
    input=GpuInventoryInput,
    output=GpuInventory,
    run=_inventory,
    summary=_summary,
    examples=(
        ("How many GPUs are free across the fleet?", {}),
        ("How many GPUs does gpu-west have free?", {"cluster": "gpu-west"}),
        ("Which nodes have free A100s?", {"product": "A100"}),
        ("What GPUs are on node a100-3?", {"node": "a100-3"}),
    ),
)
