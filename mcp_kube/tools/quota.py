"""gpu_quota: what GPUs each team may hold, and how much of it is used.

ResourceQuota GPU lines per namespace, Kueue ClusterQueues (nominal quota, borrowing limit,
usage per flavor) and LocalQueues, KAI-Scheduler and Volcano queues. A scheduler that is not
installed gives empty lists (its CRDs are optional kinds of the port), not an error.
"""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import Field

from mcp_kube.domain import DnsLabel, Json, is_gpu_resource
from mcp_kube.kube.objects import QuotaInfo
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.kube.scalars import parse_count
from mcp_kube.tools.base import ToolContext, ToolOutput, ToolSpec
from mcp_kube.tools.common import ClusterStatus, FleetInput, clip, fan_out, unavailable_lines
from mcp_kube.tools.kueueview import (
    flavor_status,
    workload_findings,
    workload_gpus,
    workload_queue,
    workload_state,
)

__all__ = ["GPU_QUOTA", "cluster_queue_view", "quota_view"]

MAX_ROWS = 200  # cap of every list: quotas and queues are not paged
MAX_PENDING = 20  # waiting workloads listed per ClusterQueue


class GpuQuotaInput(FleetInput):
    namespace: DnsLabel | None = Field(
        None, description="only this namespace's quotas and local queues (and their queues)"
    )


class QuotaResource(ToolOutput):
    resource: str = Field(description="quota key, e.g. requests.nvidia.com/gpu")
    hard: int | None
    used: int | None


class ResourceQuotaView(ToolOutput):
    cluster: str
    namespace: str
    name: str
    resources: list[QuotaResource]


class FlavorQuota(ToolOutput):
    flavor: str
    resource: str
    nominal: int | None
    borrowing_limit: int | None = None
    used: int | None = Field(None, description="status.flavorsUsage, when reported")
    reserved: int | None = Field(None, description="status.flavorsReservation, when reported")
    borrowed: int | None = Field(None, description="of the usage, borrowed from the cohort")


class QueuedWorkload(ToolOutput):
    namespace: str
    name: str
    local_queue: str
    gpus: int
    state: str = Field(description="pending, quota_reserved, evicted or inactive")
    message: str = Field(description="Kueue's reason, quoted from the Workload")


class ClusterQueueView(ToolOutput):
    cluster: str
    name: str
    cohort: str | None = None
    held: bool = Field(False, description="stopPolicy Hold/HoldAndDrain: admits nothing")
    flavors: list[FlavorQuota]
    pending_workloads: int | None = None
    reserving_workloads: int | None = None
    admitted_workloads: int | None = None
    pending: list[QueuedWorkload] = Field(
        default_factory=list, description="workloads waiting in this queue (at most 20)"
    )


class LocalQueueView(ToolOutput):
    cluster: str
    namespace: str
    name: str
    cluster_queue: str


class KaiQueueView(ToolOutput):
    cluster: str
    name: str
    parent_queue: str | None = None
    gpu_quota: float | None = None
    gpu_limit: float | None = None
    over_quota_weight: float | None = None


class VolcanoQueueView(ToolOutput):
    cluster: str
    name: str
    gpu_capability: int | None = None
    weight: int | None = None
    state: str | None = None


class GpuQuota(ToolOutput):
    clusters: list[ClusterStatus]
    resource_quotas: list[ResourceQuotaView]
    cluster_queues: list[ClusterQueueView]
    local_queues: list[LocalQueueView]
    kai_queues: list[KaiQueueView]
    volcano_queues: list[VolcanoQueueView]


def _meta(obj: Json, key: str) -> str:
    return clip(str((obj.get("metadata") or {}).get(key) or ""), 253)


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def quota_view(cluster: str, obj: Json) -> ResourceQuotaView | None:
    """GPU lines of a ResourceQuota (requests.X, limits.X or bare X for a GPU resource X)."""
    quota = QuotaInfo.from_json(obj)
    if not quota.gpu_lines:
        return None
    return ResourceQuotaView(
        cluster=cluster,
        namespace=clip(quota.namespace, 253),
        name=clip(quota.name, 253),
        resources=[
            QuotaResource(resource=line.key, hard=line.hard, used=line.used)
            for line in quota.gpu_lines
        ],
    )


def cluster_queue_view(cluster: str, obj: Json) -> ClusterQueueView:
    """A ClusterQueue's GPU quota per flavor and the usage its Kueue controller reports."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    used = flavor_status(status, "flavorsUsage")
    reserved = flavor_status(status, "flavorsReservation")
    flavors = []
    for group in spec.get("resourceGroups") or []:
        for f in group.get("flavors") or []:
            for r in f.get("resources") or []:
                key = (str(f.get("name")), str(r.get("name")))
                if not is_gpu_resource(key[1]):
                    continue
                flavors.append(
                    FlavorQuota(
                        flavor=clip(key[0], 253),
                        resource=key[1],
                        nominal=parse_count(r.get("nominalQuota")),
                        borrowing_limit=parse_count(r.get("borrowingLimit")),
                        used=used[key][0] if key in used else None,
                        reserved=reserved[key][0] if key in reserved else None,
                        borrowed=used[key][1] if key in used else None,
                    )
                )
    cohort = spec.get("cohortName") or spec.get("cohort")  # v1beta2 / v1beta1
    return ClusterQueueView(
        cluster=cluster,
        name=_meta(obj, "name"),
        cohort=clip(str(cohort), 253) if cohort else None,
        held=spec.get("stopPolicy") in ("Hold", "HoldAndDrain"),
        flavors=flavors[:MAX_ROWS],
        pending_workloads=parse_count(status.get("pendingWorkloads")),
        reserving_workloads=parse_count(status.get("reservingWorkloads")),
        admitted_workloads=parse_count(status.get("admittedWorkloads")),
    )


def queued_workloads(
    workloads: list[Json], local_to_cluster: dict[tuple[str, str], str]
) -> dict[str, list[QueuedWorkload]]:
    """ClusterQueue -> its workloads not admitted yet, with Kueue's blocking reason."""
    out: dict[str, list[QueuedWorkload]] = {}
    for wl in workloads:
        state = workload_state(wl)
        if state in ("admitted", "finished"):
            continue
        ns, lq = _meta(wl, "namespace"), workload_queue(wl)
        cq = local_to_cluster.get((ns, lq))
        if cq is None:
            continue
        said = [f for f in workload_findings(wl) if f.blocking]
        message = f"{said[0].reason}: {said[0].detail}" if said else "queued"
        rows = out.setdefault(cq, [])
        if len(rows) < MAX_PENDING:
            rows.append(
                QueuedWorkload(
                    namespace=ns,
                    name=_meta(wl, "name"),
                    local_queue=lq,
                    gpus=workload_gpus(wl),
                    state=state,
                    message=clip(message, 1100),
                )
            )
    return out


def kai_queue_view(cluster: str, obj: Json) -> KaiQueueView:
    spec = obj.get("spec") or {}
    gpu = (spec.get("resources") or {}).get("gpu") or {}
    return KaiQueueView(
        cluster=cluster,
        name=_meta(obj, "name"),
        parent_queue=clip(spec["parentQueue"], 253) if spec.get("parentQueue") else None,
        gpu_quota=_number(gpu.get("quota")),
        gpu_limit=_number(gpu.get("limit")),
        over_quota_weight=_number(gpu.get("overQuotaWeight")),
    )


def volcano_queue_view(cluster: str, obj: Json) -> VolcanoQueueView:
    spec = obj.get("spec") or {}
    return VolcanoQueueView(
        cluster=cluster,
        name=_meta(obj, "name"),
        gpu_capability=parse_count((spec.get("capability") or {}).get("nvidia.com/gpu")),
        weight=parse_count(spec.get("weight")),
        state=clip(str((obj.get("status") or {}).get("state") or ""), 64) or None,
    )


async def _cluster_quota(port: ClusterPort, namespace: str | None) -> GpuQuota:
    kinds = (
        Kind.RESOURCE_QUOTAS,
        Kind.KUEUE_CLUSTER_QUEUES,
        Kind.KUEUE_LOCAL_QUEUES,
        Kind.KUEUE_WORKLOADS,
        Kind.KAI_QUEUES,
        Kind.VOLCANO_QUEUES,
    )
    raw: dict[Kind, list[Json]] = {}

    async def fetch(kind: Kind) -> None:
        raw[kind] = await port.list_objects(kind, namespace if kind.namespaced else None)

    async with anyio.create_task_group() as tg:
        for kind in kinds:
            tg.start_soon(fetch, kind)
    name = port.name
    locals_ = [
        LocalQueueView(
            cluster=name,
            namespace=_meta(o, "namespace"),
            name=_meta(o, "name"),
            cluster_queue=clip(str((o.get("spec") or {}).get("clusterQueue") or ""), 253),
        )
        for o in raw[Kind.KUEUE_LOCAL_QUEUES]
    ]
    wanted = {lq.cluster_queue for lq in locals_}
    queues = [
        o for o in raw[Kind.KUEUE_CLUSTER_QUEUES] if namespace is None or _meta(o, "name") in wanted
    ]
    waiting = queued_workloads(
        raw[Kind.KUEUE_WORKLOADS], {(lq.namespace, lq.name): lq.cluster_queue for lq in locals_}
    )
    views = [
        view.model_copy(update={"pending": waiting.get(view.name, [])})
        for view in (cluster_queue_view(name, o) for o in queues)
    ]
    return GpuQuota(
        clusters=[],
        resource_quotas=[
            v for o in raw[Kind.RESOURCE_QUOTAS] if (v := quota_view(name, o)) is not None
        ],
        cluster_queues=views,
        local_queues=locals_,
        kai_queues=[kai_queue_view(name, o) for o in raw[Kind.KAI_QUEUES]],
        volcano_queues=[volcano_queue_view(name, o) for o in raw[Kind.VOLCANO_QUEUES]],
    )


async def _quota(ctx: ToolContext, args: GpuQuotaInput) -> GpuQuota:
    async def one(port: ClusterPort) -> GpuQuota:
        return await _cluster_quota(port, args.namespace)

    ports = ctx.clusters(args.cluster)
    got, status = await fan_out(ports, one, strict=args.cluster is not None)
    parts = [got[p.name] for p in ports if p.name in got]
    return GpuQuota(
        clusters=status,
        resource_quotas=[q for p in parts for q in p.resource_quotas][:MAX_ROWS],
        cluster_queues=[q for p in parts for q in p.cluster_queues][:MAX_ROWS],
        local_queues=[q for p in parts for q in p.local_queues][:MAX_ROWS],
        kai_queues=[q for p in parts for q in p.kai_queues][:MAX_ROWS],
        volcano_queues=[q for p in parts for q in p.volcano_queues][:MAX_ROWS],
    )


def _flavor_words(f: FlavorQuota) -> str:
    words = f"{f.flavor} {f.resource}: {f.used if f.used is not None else '?'}/{f.nominal} used"
    if f.reserved is not None and f.reserved != f.used:
        words += f", {f.reserved} reserved"
    if f.borrowed:
        words += f", {f.borrowed} borrowed"
    return words


def _quota_summary(out: GpuQuota) -> str:
    lines = unavailable_lines(out.clusters)
    for q in out.resource_quotas:
        lines.append(
            f"{q.cluster}/{q.namespace} quota {q.name}: "
            + ", ".join(f"{r.resource} {r.used}/{r.hard}" for r in q.resources)
        )
    for cq in out.cluster_queues:
        flavors = ", ".join(_flavor_words(f) for f in cq.flavors) or "no GPU flavors"
        held = " (held: admits nothing)" if cq.held else ""
        lines.append(f"{cq.cluster} Kueue ClusterQueue {cq.name}{held}: {flavors}")
        for w in cq.pending:
            lines.append(f"  waiting {w.namespace}/{w.name} ({w.gpus} GPUs): {w.message}")
    for lq in out.local_queues:
        lines.append(f"{lq.cluster}/{lq.namespace} LocalQueue {lq.name} -> {lq.cluster_queue}")
    for kq in out.kai_queues:
        lines.append(f"{kq.cluster} KAI queue {kq.name}: gpu quota {kq.gpu_quota}")
    for vq in out.volcano_queues:
        lines.append(f"{vq.cluster} Volcano queue {vq.name}: gpu {vq.gpu_capability}")
    return "\n".join(lines) or "no GPU quotas or queues"


GPU_QUOTA: ToolSpec[GpuQuotaInput, GpuQuota] = ToolSpec(
    name="gpu_quota",
    title="GPU quotas and queues",
    description=(
        "GPU limits and their use: ResourceQuota GPU lines per namespace (hard/used), Kueue "
        "ClusterQueues (nominal quota, borrowing limit, usage per flavor) and LocalQueues, "
        "KAI-Scheduler and Volcano queues. Schedulers that are not installed give empty lists. "
        "Default: every cluster."
    ),
    input=GpuQuotaInput,
    output=GpuQuota,
    run=_quota,
    summary=_quota_summary,
    examples=(
        ("How much GPU quota does team-x have left?", {"namespace": "team-x"}),
        ("Show the GPU queues and quotas of gpu-west", {"cluster": "gpu-west"}),
    ),
)
