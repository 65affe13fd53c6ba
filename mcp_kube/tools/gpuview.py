"""The GPU view of a cluster's nodes, shared by gpu_inventory and recommend_placement.

Allocated GPUs on a node are the GPU requests of its non-terminal pods; free GPUs are
allocatable minus allocated on nodes that can take new work (Ready, not cordoned, no
NoSchedule/NoExecute taint). Capacity on other nodes is reported, never counted as free.
MIG (mixed strategy) profiles are their own resources; time-sliced GPUs count replicas.
Not a tool module (see ``common``).
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import Field

from mcp_kube.kube.objects import NodeInfo, PodInfo
from mcp_kube.kube.port import ClusterPort
from mcp_kube.tools.base import ToolOutput

__all__ = [
    "ClusterGpus",
    "NodeGpus",
    "ProductCount",
    "ResourceCount",
    "cluster_gpus",
    "cluster_nodes",
    "cluster_view",
    "merge_products",
    "sum_resources",
]

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


def sum_resources(rows: list[ResourceCount]) -> list[ResourceCount]:
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


def _node_product(n: NodeGpus) -> ProductCount:
    whole = [r for r in n.resources if r.resource in WHOLE_GPU]
    return ProductCount(
        vendor=n.vendor,
        product=n.product,
        nodes=1,
        gpus=n.gpus,
        allocatable=sum(r.allocatable for r in whole),
        allocated=sum(r.allocated for r in whole),
        free=sum(r.free for r in whole),
    )


def merge_products(groups: list[list[ProductCount]]) -> list[ProductCount]:
    """Product counts added up per (vendor, product), sorted."""
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
        resources=sum_resources([r for n in nodes for r in n.resources]),
        products=merge_products([[_node_product(n) for n in nodes]]),
    )


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
