"""GPU inventory per node, cluster and fleet, and the list of clusters.

Allocated GPUs on a node are the GPU requests of its non-terminal pods; free GPUs are
allocatable minus allocated on nodes that can take new work (Ready, not cordoned, no
NoSchedule/NoExecute taint). Capacity on other nodes is reported, never counted as free.
MIG (mixed strategy) profiles are their own resources; time-sliced GPUs count replicas.
"""

from __future__ import annotations

from collections import defaultdict

import anyio
from pydantic import Field

from mcp_kube.domain import ClusterName, DnsSubdomain
from mcp_kube.errors import ToolError
from mcp_kube.kube.objects import NodeInfo, PodInfo
from mcp_kube.kube.port import ClusterPort
from mcp_kube.tools.base import (
    ClusterInput,
    Page,
    StrictInput,
    ToolContext,
    ToolOutput,
    ToolSpec,
    clamp_limit,
    paginate,
)

__all__ = ["GPU_INVENTORY", "LIST_CLUSTERS", "ClusterGpus", "cluster_gpus"]

WHOLE_GPU = ("nvidia.com/gpu", "nvidia.com/gpu.shared", "amd.com/gpu")


class ResourceCount(ToolOutput):
    resource: str
    allocatable: int
    allocated: int
    free: int = Field(description="allocatable - allocated on nodes that accept new work")
    unavailable: int = Field(
        0, description="unallocated capacity on NotReady, cordoned or tainted nodes"
    )


class ProductCount(ToolOutput):
    vendor: str
    product: str
    nodes: int
    gpus: int = Field(description="physical devices (from node labels)")
    allocatable: int = Field(description="whole-GPU resource units (time-slicing counts replicas)")
    allocated: int
    free: int


class NodeGpus(ToolOutput):
    cluster: str
    name: str
    vendor: str
    product: str
    zone: str = ""
    gpus: int = Field(description="physical devices")
    gpu_memory_mib: int | None = None
    resources: list[ResourceCount]
    mig_profiles: dict[str, int] | None = None
    sharing: str | None = Field(None, description="e.g. 'time-slicing x4'")
    ready: bool
    cordoned: bool
    taints: list[str] = Field(default_factory=list)
    schedulable: bool


class ClusterGpus(ToolOutput):
    cluster: str
    reachable: bool = True
    error: str | None = None
    gpu_nodes: int = 0
    resources: list[ResourceCount] = Field(default_factory=list)
    products: list[ProductCount] = Field(default_factory=list)


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


def _vendor_product(node: NodeInfo) -> tuple[str, str]:
    labels = node.labels
    if "nvidia.com/gpu.product" in labels or any(
        r.startswith("nvidia.com/") for r in node.allocatable
    ):
        return "nvidia", labels.get("nvidia.com/gpu.product", "unknown")
    if "amd.com/gpu" in node.allocatable or "amd.com/gpu.product-name" in labels:
        return "amd", labels.get("amd.com/gpu.product-name", "unknown")
    return "other", "unknown"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _node_view(cluster: str, node: NodeInfo, used: dict[str, int], detail: bool) -> NodeGpus:
    vendor, product = _vendor_product(node)
    labels = node.labels
    resources = []
    for res, alloc in sorted(node.allocatable.items()):
        taken = used.get(res, 0)
        spare = max(alloc - taken, 0)
        resources.append(
            ResourceCount(
                resource=res,
                allocatable=alloc,
                allocated=taken,
                free=spare if node.schedulable else 0,
                unavailable=0 if node.schedulable else spare,
            )
        )
    mig = {
        r.removeprefix("nvidia.com/mig-"): n
        for r, n in node.allocatable.items()
        if r.startswith("nvidia.com/mig-")
    }
    replicas = labels.get("nvidia.com/gpu.replicas")
    sharing = None
    if replicas and replicas != "1":
        sharing = f"{labels.get('nvidia.com/gpu.sharing-strategy', 'time-slicing')} x{replicas}"
    gpus = _int(labels.get("nvidia.com/gpu.count") or labels.get("amd.com/gpu.count"))
    if gpus is None:
        gpus = sum(n for r, n in node.capacity.items() if r in WHOLE_GPU)
    memory = _int(labels.get("nvidia.com/gpu.memory"))
    return NodeGpus(
        cluster=cluster,
        name=node.name,
        vendor=vendor,
        product=product,
        zone=labels.get("topology.kubernetes.io/zone", ""),
        gpus=gpus,
        gpu_memory_mib=memory if detail else None,
        resources=resources,
        mig_profiles=(mig or None) if detail else None,
        sharing=sharing,
        ready=node.ready,
        cordoned=node.unschedulable,
        taints=[f"{k}:{e}" for k, e in node.taints],
        schedulable=node.schedulable,
    )


def allocated_by_node(pods: list[PodInfo]) -> dict[str, dict[str, int]]:
    used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for pod in pods:
        if pod.holds_gpus:
            for res, n in pod.gpus.items():
                used[pod.node][res] += n
    return used


def _sum_resources(rows: list[ResourceCount]) -> list[ResourceCount]:
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        a = acc[r.resource]
        a[0] += r.allocatable
        a[1] += r.allocated
        a[2] += r.free
        a[3] += r.unavailable
    return [
        ResourceCount(resource=k, allocatable=v[0], allocated=v[1], free=v[2], unavailable=v[3])
        for k, v in sorted(acc.items())
    ]


def _sum_products(nodes: list[NodeGpus]) -> list[ProductCount]:
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for n in nodes:
        a = acc[n.vendor, n.product]
        a[0] += 1
        a[1] += n.gpus
        for r in n.resources:
            if r.resource in WHOLE_GPU:
                a[2] += r.allocatable
                a[3] += r.allocated
                a[4] += r.free
    return [
        ProductCount(
            vendor=v, product=p, nodes=a[0], gpus=a[1], allocatable=a[2], allocated=a[3], free=a[4]
        )
        for (v, p), a in sorted(acc.items())
    ]


async def cluster_view(
    port: ClusterPort, detail: bool = False
) -> tuple[list[NodeGpus], ClusterGpus]:
    """GPU view of every GPU node of one cluster and its totals; recomputed only when the
    cluster's nodes or pods changed."""

    def build(nodes: list[NodeInfo], pods: list[PodInfo]) -> tuple[list[NodeGpus], ClusterGpus]:
        used = allocated_by_node(pods)
        view = [
            _node_view(port.name, n, used.get(n.name, {}), detail)
            for n in sorted(nodes, key=lambda n: n.name)
            if n.allocatable or n.capacity
        ]
        return view, cluster_gpus(port.name, view)

    return await port.derived(f"gpu-view/detail={detail}", build)


async def cluster_nodes(port: ClusterPort, detail: bool = False) -> list[NodeGpus]:
    """GPU view of every GPU node of one cluster (shared by placement and fleet tools)."""
    return (await cluster_view(port, detail))[0]


def _merge_products(groups: list[list[ProductCount]]) -> list[ProductCount]:
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for group in groups:
        for p in group:
            a = acc[p.vendor, p.product]
            for i, v in enumerate((p.nodes, p.gpus, p.allocatable, p.allocated, p.free)):
                a[i] += v
    return [
        ProductCount(
            vendor=v, product=p, nodes=a[0], gpus=a[1], allocatable=a[2], allocated=a[3], free=a[4]
        )
        for (v, p), a in sorted(acc.items())
    ]


def cluster_gpus(name: str, nodes: list[NodeGpus]) -> ClusterGpus:
    return ClusterGpus(
        cluster=name,
        gpu_nodes=len(nodes),
        resources=_sum_resources([r for n in nodes for r in n.resources]),
        products=_sum_products(nodes),
    )


async def _inventory(ctx: ToolContext, args: GpuInventoryInput) -> GpuInventory:
    ports = ctx.clusters(args.cluster)
    per_cluster: dict[str, tuple[list[NodeGpus], ClusterGpus] | str] = {}

    async def one(port: ClusterPort) -> None:
        try:
            per_cluster[port.name] = await cluster_view(port, args.detail)
        except ToolError as e:
            if args.cluster is not None:
                raise
            per_cluster[port.name] = str(e)  # fleet view: report it, keep serving the rest

    async with anyio.create_task_group() as tg:
        for port in ports:
            tg.start_soon(one, port)

    clusters: list[ClusterGpus] = []
    all_nodes: list[NodeGpus] = []
    for port in ports:
        got = per_cluster[port.name]
        if isinstance(got, str):
            clusters.append(ClusterGpus(cluster=port.name, reachable=False, error=got))
            continue
        nodes, totals = got
        if args.product:
            needle = args.product.lower()
            nodes = [n for n in nodes if needle in n.product.lower()]
        if args.node:
            nodes = [n for n in nodes if n.name == args.node]
        clusters.append(totals if nodes is got[0] else cluster_gpus(port.name, nodes))
        all_nodes += nodes
    limit = clamp_limit(args.limit, ctx.limits)
    page_nodes, page = paginate(all_nodes if args.include_nodes else [], args.cursor, limit)
    return GpuInventory(
        clusters=clusters,
        fleet=_sum_resources([r for c in clusters for r in c.resources]),
        fleet_products=_merge_products([c.products for c in clusters]),
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


# ---------------------------------------------------------------------------- list_clusters


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
            out[name] = ClusterInfo(
                name=name,
                default=name == default,
                reachable=False,
                contexts=list(port.contexts),
                context=port.context,
                error=str(e),
            )
            return
        gpus: dict[str, int] = defaultdict(int)
        for n in nodes:
            for r, v in n.allocatable.items():
                gpus[r] += v
        out[name] = ClusterInfo(
            name=name,
            default=name == default,
            reachable=True,
            contexts=list(port.contexts),
            context=port.context,
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
