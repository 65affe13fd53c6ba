"""recommend_placement: where a job of N whole GPUs can start now, across every cluster.

A pool is one product in one zone of one cluster. It fits when one schedulable node has N free
units of a whole-GPU resource (a job's pod cannot span nodes), the namespace exists and its
ResourceQuota has N of headroom, and, where the namespace has Kueue LocalQueues, one of their
ClusterQueues can still admit N GPUs of a flavor whose node labels the pool's nodes carry (a
queue with no quota left is not a place a job starts now). Data locality only ranks: a pool
in the zone of the PVC's volume beats one elsewhere in its cluster, which beats a cluster
without the PVC. Nothing is reserved; the answer is a snapshot.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import anyio
from pydantic import Field, model_validator

from mcp_kube.domain import DnsLabel, DnsSubdomain, Json
from mcp_kube.errors import Forbidden, NotFound
from mcp_kube.kube.objects import NodeInfo, QuotaInfo
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.tools.base import StrictInput, ToolContext, ToolOutput, ToolSpec
from mcp_kube.tools.common import ClusterStatus, clip, fan_out, unavailable_lines
from mcp_kube.tools.gpuview import NodeGpus, cluster_nodes
from mcp_kube.tools.kueueview import QueueFacts, queue_facts

__all__ = [
    "RECOMMEND_PLACEMENT",
    "ClusterFacts",
    "PvcFacts",
    "headroom",
    "rank",
]

PLACEABLE = ("nvidia.com/gpu", "amd.com/gpu")  # whole-GPU resources a job can ask N of
ZONE_KEYS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
MAX_OPTIONS = 10
MAX_NODES = 5


class PlacementInput(StrictInput):
    gpus: int = Field(ge=1, le=64, description="GPUs the job's pod needs on one node")
    product: str | None = Field(
        None, max_length=128, description="product substring, case-insensitive, e.g. 'H100'"
    )
    min_gpu_memory_gib: float | None = Field(None, gt=0, le=4096, description="per GPU")
    namespace: DnsLabel | None = Field(
        None, description="checks its GPU ResourceQuota and Kueue queue headroom"
    )
    near_pvc: DnsSubdomain | None = Field(
        None, description="prefer the cluster and zone of this PVC's volume (needs namespace)"
    )

    @model_validator(mode="after")
    def _pvc_needs_namespace(self) -> PlacementInput:
        if self.near_pvc and not self.namespace:
            raise ValueError("near_pvc needs namespace (a PVC lives in a namespace)")
        return self


class PlacementOption(ToolOutput):
    cluster: str
    zone: str
    product: str
    resource: str
    fits: bool
    nodes_that_fit: list[str] = Field(description="up to 5 nodes with enough free GPUs")
    free_gpus_in_pool: int = Field(description="free units on the pool's schedulable nodes")
    largest_free_block: int = Field(description="most free units on one schedulable node")
    quota_headroom: int | None = Field(None, description="hard - used; None: no quota")
    queue_headroom: int | None = Field(
        None, description="GPUs the namespace's Kueue queues can still admit here; None: none"
    )
    near_data: bool | None = Field(None, description="in the PVC's zone (None: no near_pvc)")
    score: float
    reason: str


class Placement(ToolOutput):
    clusters: list[ClusterStatus]
    options: list[PlacementOption] = Field(description="best first; fitting pools first")
    fits: bool
    note: str | None = None


@dataclass
class PvcFacts:
    """What is known of the PVC in one cluster."""

    found: bool
    bound: bool = False
    zones: frozenset[str] = frozenset()


@dataclass
class ClusterFacts:
    cluster: str
    nodes: list[NodeGpus]
    memory_mib: dict[str, int] = field(default_factory=dict)  # node -> per-GPU memory
    headroom: dict[str, int] = field(default_factory=dict)  # resource -> quota headroom
    queues: QueueFacts | None = None  # the namespace's Kueue queues (None: it has none)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> its labels
    namespace_exists: bool = True
    pvc: PvcFacts | None = None


def _memory_mib(node: NodeInfo) -> int | None:
    """Per-GPU memory from GPU feature discovery labels (NVIDIA MiB, AMD e.g. '192G')."""
    raw = node.labels.get("nvidia.com/gpu.memory")
    if raw and raw.isdigit():
        return int(raw)
    vram = node.labels.get("amd.com/gpu.vram", "").upper().removesuffix("B")
    for suffix, mib in (("T", 1024 * 1024), ("G", 1024), ("M", 1)):
        if vram.endswith(suffix) and vram[:-1].isdigit():
            return int(vram[:-1]) * mib
    return None


def headroom(quotas: list[Json]) -> dict[str, int]:
    """Smallest hard - used per placeable resource over the namespace's quotas (their
    requests.X and bare X lines)."""
    out: dict[str, int] = {}
    for quota in map(QuotaInfo.from_json, quotas):
        for line in quota.gpu_lines:
            res = line.resource
            if res in PLACEABLE and line.key in (f"requests.{res}", res) and line.hard is not None:
                left = line.hard - (line.used or 0)
                out[res] = min(out.get(res, left), left)
    return out


def pv_zones(pv: Json) -> frozenset[str]:
    terms = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
        "nodeSelectorTerms"
    ) or []
    return frozenset(
        str(v)
        for t in terms
        for e in t.get("matchExpressions") or []
        if e.get("key") in ZONE_KEYS and e.get("operator") == "In"
        for v in e.get("values") or []
    )


async def _pvc(port: ClusterPort, namespace: str, name: str) -> PvcFacts:
    try:
        pvc = await port.get(Kind.PVCS, name, namespace)
    except NotFound:
        return PvcFacts(found=False)
    volume = (pvc.get("spec") or {}).get("volumeName")
    if (pvc.get("status") or {}).get("phase") != "Bound" or not volume:
        return PvcFacts(found=True)
    try:
        pv = await port.get(Kind.PVS, str(volume))
    except (NotFound, Forbidden):  # PVs are cluster-scoped: a namespaced role may not read them
        return PvcFacts(found=True, bound=True)
    return PvcFacts(found=True, bound=True, zones=pv_zones(pv))


async def _namespace_exists(port: ClusterPort, namespace: str) -> bool:
    try:
        await port.get(Kind.NAMESPACES, namespace)
    except NotFound:
        return False
    except Forbidden:
        return True  # cannot tell; do not rule the cluster out
    return True


async def _queues(port: ClusterPort, namespace: str) -> QueueFacts | None:
    """The namespace's Kueue queues (None: Kueue absent, no LocalQueue, or unreadable)."""
    locals_ = await port.list_objects(Kind.KUEUE_LOCAL_QUEUES, namespace, limit=50)
    if not locals_:
        return None
    try:
        cqs = await port.list_objects(Kind.KUEUE_CLUSTER_QUEUES, limit=200)
        flavors = await port.list_objects(Kind.KUEUE_RESOURCE_FLAVORS, limit=200)
    except Forbidden:
        return None  # cannot read the ClusterQueues: do not rule the namespace out
    return queue_facts(locals_, cqs, flavors)


def _queue_headroom(f: ClusterFacts, nodes: list[NodeGpus], resource: str) -> int | None:
    if f.queues is None or resource != "nvidia.com/gpu":
        return None  # no queue applies, or not a resource the queues meter
    return f.queues.headroom_on([f.labels.get(n.name, {}) for n in nodes])


async def gather(port: ClusterPort, args: PlacementInput) -> ClusterFacts:
    facts = ClusterFacts(cluster=port.name, nodes=[])

    async def nodes() -> None:
        facts.nodes = await cluster_nodes(port)
        infos = await port.nodes()
        facts.memory_mib = {n.name: m for n in infos if (m := _memory_mib(n)) is not None}
        facts.labels = {n.name: n.labels for n in infos}

    async def namespace(ns: str) -> None:
        facts.namespace_exists = await _namespace_exists(port, ns)
        facts.headroom = headroom(await port.list_objects(Kind.RESOURCE_QUOTAS, ns))
        facts.queues = await _queues(port, ns)

    async def pvc(ns: str, name: str) -> None:
        facts.pvc = await _pvc(port, ns, name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(nodes)
        if args.namespace:
            tg.start_soon(namespace, args.namespace)
            if args.near_pvc:
                tg.start_soon(pvc, args.namespace, args.near_pvc)
    return facts


def _free(node: NodeGpus, resource: str) -> int:
    return next((r.free for r in node.resources if r.resource == resource), 0)


def _locality(pvc: PvcFacts | None, zone: str) -> tuple[float, bool | None, str]:
    """(score bonus, near_data, words) for data locality."""
    if pvc is None:
        return 0.0, None, ""
    if not pvc.found:
        return 0.0, False, "the PVC is not in this cluster"
    if zone and zone in pvc.zones:
        return 40.0, True, "in the zone of the PVC's volume"
    if pvc.zones:
        return 15.0, False, f"the PVC's volume is in {', '.join(sorted(pvc.zones))}"
    return 25.0, None, "in the PVC's cluster (its volume has no zone)"


Pool = tuple[str, str, str]  # zone, product, resource


def _pools(f: ClusterFacts, args: PlacementInput) -> dict[Pool, list[NodeGpus]]:
    """The cluster's nodes that pass the product and memory filters, by pool."""
    needle = (args.product or "").lower()
    min_mib = args.min_gpu_memory_gib * 1024 if args.min_gpu_memory_gib else None
    pools: dict[Pool, list[NodeGpus]] = defaultdict(list)
    for node in f.nodes:
        if needle not in node.product.lower():
            continue
        mem = f.memory_mib.get(node.name)
        if min_mib is not None and (mem is None or mem < min_mib):
            continue
        for r in node.resources:
            if r.resource in PLACEABLE and r.allocatable > 0:
                pools[node.zone, node.product, r.resource].append(node)
    return pools


def _option(
    f: ClusterFacts, pool: Pool, nodes: list[NodeGpus], args: PlacementInput
) -> PlacementOption:
    """One pool scored, with the facts that decided it in words."""
    zone, product, res = pool
    free = [(n.name, _free(n, res)) for n in nodes if n.schedulable]
    block = max((n for _, n in free), default=0)
    fitting = sorted(name for name, n in free if n >= args.gpus)
    left = f.headroom.get(res) if args.namespace else None
    said: list[str] = []
    if fitting:
        said.append(f"{len(fitting)} node(s) with >= {args.gpus} free {res}")
    elif free:
        said.append(f"largest free block {block} < {args.gpus}")
    else:
        said.append("no schedulable node (all NotReady, cordoned or tainted)")
    quota_ok = left is None or left >= args.gpus
    if left is not None:
        said.append(
            f"quota headroom {left} {'>=' if quota_ok else '<'} {args.gpus} in {args.namespace}"
        )
    queue_left = _queue_headroom(f, nodes, res) if args.namespace else None
    if queue_left is not None and f.queues is not None:
        queue_ok = queue_left >= args.gpus
        quota_ok = quota_ok and queue_ok
        said.append(
            f"Kueue queue headroom {queue_left} {'>=' if queue_ok else '<'} {args.gpus} "
            f"({', '.join(f.queues.names)})"
        )
    if not f.namespace_exists:
        said.append(f"namespace {args.namespace} does not exist here")
    bonus, near, words = _locality(f.pvc, zone)
    said += [words] if words else []
    shared = any(n.sharing for n in nodes)
    if shared:
        said.append("GPUs are time-sliced replicas, not whole devices")
    fits = bool(fitting) and quota_ok and f.namespace_exists
    pool_free = sum(n for _, n in free)
    score = (100.0 if fits else 0.0) + bonus + min(10.0, 2.0 * pool_free / args.gpus)
    return PlacementOption(
        cluster=f.cluster,
        zone=zone,
        product=clip(product, 128),
        resource=res,
        fits=fits,
        nodes_that_fit=fitting[:MAX_NODES],
        free_gpus_in_pool=pool_free,
        largest_free_block=block,
        quota_headroom=left,
        queue_headroom=queue_left,
        near_data=near,
        score=round(score - (20.0 if shared else 0.0), 1),
        reason=f"{f.cluster}/{zone or '-'} {product}: " + "; ".join(said) + ".",
    )


def _nothing_fits(
    options: list[PlacementOption], blocks: dict[bool, int], args: PlacementInput
) -> str:
    """Why no pool fits: no pool at all, no block big enough, or quota and namespaces."""
    if not options:
        return "no GPU pool in the reachable clusters matches the product and memory filters"
    if max(blocks.values()) < args.gpus:
        note = f"nothing fits: largest free block {blocks[False]} < {args.gpus}"
        if blocks[True] > blocks[False]:
            note += f" ({blocks[True]} time-sliced replicas on one node)"
        return note
    return (
        f"nothing fits: nodes with {args.gpus} free GPUs exist, but not where "
        f"namespace {args.namespace} exists with enough quota and Kueue queue headroom"
    )


def rank(facts: list[ClusterFacts], args: PlacementInput) -> tuple[list[PlacementOption], str]:
    """Every matching pool scored, best first, and a note when none fits."""
    options: list[PlacementOption] = []
    blocks: dict[bool, int] = {False: 0, True: 0}  # time-sliced? -> largest free block
    for f in facts:
        for pool, nodes in sorted(_pools(f, args).items()):
            option = _option(f, pool, nodes, args)
            options.append(option)
            shared = any(n.sharing for n in nodes)
            blocks[shared] = max(blocks[shared], option.largest_free_block)
    options.sort(key=lambda o: (not o.fits, -o.score, o.cluster, o.zone, o.product))
    if any(o.fits for o in options):
        return options, ""
    return options, _nothing_fits(options, blocks, args)


async def _recommend(ctx: ToolContext, args: PlacementInput) -> Placement:
    async def one(port: ClusterPort) -> ClusterFacts:
        return await gather(port, args)

    ports = ctx.clusters(None)
    got, status = await fan_out(ports, one, strict=False)
    options, note = rank([got[p.name] for p in ports if p.name in got], args)
    return Placement(
        clusters=status,
        options=options[:MAX_OPTIONS],
        fits=any(o.fits for o in options),
        note=note or None,
    )


def _summary(out: Placement) -> str:
    lines = unavailable_lines(out.clusters)
    if out.note:
        lines.append(out.note)
    for o in out.options[:5]:
        nodes = f" [{', '.join(o.nodes_that_fit)}]" if o.nodes_that_fit else ""
        lines.append(f"{'FITS' if o.fits else 'no'} ({o.score}) {o.reason}{nodes}")
    return "\n".join(lines) or "no GPU pools"


RECOMMEND_PLACEMENT: ToolSpec[PlacementInput, Placement] = ToolSpec(
    name="recommend_placement",
    title="Recommend GPU placement",
    description=(
        "Where a job needing N GPUs on one node can start now, over every cluster: pools "
        "(cluster, zone, product) ranked by fit on a schedulable node, product and GPU memory "
        "filters, the namespace's GPU quota and Kueue queue headroom and, with near_pvc, the zone "
        "of the data. Says why when nothing fits. Reserves nothing."
    ),
    input=PlacementInput,
    output=Placement,
    run=_recommend,
    summary=_summary,
    examples=(
        ("Where can I run a job that needs 4 H100s?", {"gpus": 4, "product": "H100"}),
        ("Is there room anywhere for a 2 GPU job?", {"gpus": 2}),
    ),
)
