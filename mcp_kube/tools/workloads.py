"""Who holds the GPUs, what they may hold, and what they used: workloads, quotas, usage.

All three tools default to the fleet view (every cluster); an unreachable cluster is listed
as unavailable rather than failing the call, so one dead API server never hides the rest.
Usage is computed from the pods that still exist (start/finish times x GPU requests): it needs
no metrics stack, and the report says that deleted pods are not counted.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import anyio
from pydantic import Field, TypeAdapter, ValidationError, field_validator

from mcp_kube.domain import ClusterName, DnsLabel, LabelKey, is_gpu_resource
from mcp_kube.errors import ToolError
from mcp_kube.kube.objects import PodInfo, parse_quantity
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.tools.base import (
    ClusterInput,
    Page,
    ToolContext,
    ToolOutput,
    ToolSpec,
    clamp_limit,
    paginate,
)

__all__ = [
    "GPU_QUOTA",
    "GPU_USAGE_REPORT",
    "GPU_WORKLOADS",
    "ClusterStatus",
    "fan_out",
    "group_key",
    "quantity",
    "usage_by_group",
]

T = TypeVar("T")
Json = dict[str, Any]
QUEUE_LABELS = ("kueue.x-k8s.io/queue-name", "kai.scheduler/queue")
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
MAX_ROWS = 200  # cap of every list that is not paged
_LABEL_KEY: TypeAdapter[str] = TypeAdapter(LabelKey)


def cut(value: str | None, n: int = 253) -> str:
    """Bound a string taken from the cluster (names are bounded there, labels may not be)."""
    value = value or ""
    return value if len(value) <= n else value[: n - 1] + "…"


def quantity(value: Any) -> int | None:
    """A GPU quantity as an integer count; None when absent or unparsable."""
    if value is None:
        return None
    try:
        return int(parse_quantity(str(value)))
    except ValueError:
        return None


class ClusterStatus(ToolOutput):
    cluster: str
    reachable: bool = True
    error: str | None = None


def _tool_error(exc: BaseException) -> ToolError | None:
    """The ToolError behind ``exc``, also out of a task group's exception group."""
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        inner = [_tool_error(e) for e in exc.exceptions]
        if all(inner):  # only deliberate failures: a bug must still surface as one
            return inner[0]
    return None


async def fan_out(
    ports: list[ClusterPort],
    fn: Callable[[ClusterPort], Awaitable[T]],
    strict: bool,
) -> tuple[dict[str, T], list[ClusterStatus]]:
    """Run ``fn`` on every cluster at once. ``strict`` (one named cluster): its ToolError is
    raised; otherwise a failing cluster is reported unavailable and the others are served."""
    got: dict[str, T] = {}
    failed: dict[str, ToolError] = {}

    async def one(port: ClusterPort) -> None:
        try:
            got[port.name] = await fn(port)
        except Exception as e:
            err = _tool_error(e)
            if err is None:
                raise
            failed[port.name] = err

    async with anyio.create_task_group() as tg:
        for port in ports:
            tg.start_soon(one, port)
    if strict and failed:
        raise next(iter(failed.values()))
    status = [
        ClusterStatus(
            cluster=p.name,
            reachable=p.name not in failed,
            error=cut(str(failed[p.name]), 300) if p.name in failed else None,
        )
        for p in ports
    ]
    return got, status


class FleetInput(ClusterInput):
    cluster: ClusterName | None = Field(None, description="one cluster; default: every cluster")


# ---------------------------------------------------------------------------- gpu_workloads


class GpuWorkloadsInput(FleetInput):
    namespace: DnsLabel | None = Field(None, description="only this namespace")
    limit: int | None = Field(None, ge=1, le=1000, description="pods per page")
    cursor: str | None = Field(None, max_length=64)


class GpuWorkload(ToolOutput):
    cluster: str
    namespace: str
    pod: str
    owner_kind: str | None = Field(None, description="Job, ReplicaSet, StatefulSet, ...")
    owner_name: str | None = None
    node: str
    phase: str
    gpus: dict[str, int]
    age_s: int | None = Field(None, description="seconds since the pod started")
    queue: str | None = Field(None, description="Kueue or KAI-Scheduler queue label")


class NamespaceGpus(ToolOutput):
    cluster: str
    namespace: str
    pods: int
    gpus: dict[str, int]


class GpuWorkloads(ToolOutput):
    clusters: list[ClusterStatus]
    workloads: list[GpuWorkload]
    totals: list[NamespaceGpus] = Field(description="per cluster and namespace, all pages")
    page: Page


def _owner(pod: PodInfo) -> tuple[str | None, str | None]:
    if pod.owner_kind:
        return pod.owner_kind, cut(pod.owner_name)
    for key in JOB_NAME_LABELS:  # an orphaned Job pod still names its Job
        if key in pod.labels:
            return "Job", cut(pod.labels[key])
    return None, None


def _queue(pod: PodInfo) -> str | None:
    return next((cut(pod.labels[k], 128) for k in QUEUE_LABELS if k in pod.labels), None)


def workload_rows(cluster: str, pods: Iterable[PodInfo], now: dt.datetime) -> list[GpuWorkload]:
    rows = []
    for pod in pods:
        if not pod.holds_gpus:
            continue
        kind, name = _owner(pod)
        since = pod.started or pod.created
        rows.append(
            GpuWorkload(
                cluster=cluster,
                namespace=pod.namespace,
                pod=pod.name,
                owner_kind=kind,
                owner_name=name,
                node=pod.node,
                phase=pod.phase,
                gpus=dict(sorted(pod.gpus.items())),
                age_s=max(int((now - since).total_seconds()), 0) if since else None,
                queue=_queue(pod),
            )
        )
    return rows


def _totals(rows: list[GpuWorkload]) -> list[NamespaceGpus]:
    acc: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}
    for r in rows:
        n, gpus = acc.get((r.cluster, r.namespace), (0, {}))
        for res, count in r.gpus.items():
            gpus[res] = gpus.get(res, 0) + count
        acc[r.cluster, r.namespace] = (n + 1, gpus)
    out = [
        NamespaceGpus(cluster=c, namespace=ns, pods=n, gpus=dict(sorted(g.items())))
        for (c, ns), (n, g) in acc.items()
    ]
    out.sort(key=lambda t: (-sum(t.gpus.values()), t.cluster, t.namespace))
    return out[:MAX_ROWS]


async def _workloads(ctx: ToolContext, args: GpuWorkloadsInput) -> GpuWorkloads:
    async def pods(port: ClusterPort) -> list[PodInfo]:
        return await port.pods()

    ports = ctx.clusters(args.cluster)
    got, status = await fan_out(ports, pods, strict=args.cluster is not None)
    now = dt.datetime.now(dt.UTC)
    rows: list[GpuWorkload] = []
    for port in ports:
        selected = [p for p in got.get(port.name, []) if args.namespace in (None, p.namespace)]
        rows += workload_rows(port.name, selected, now)
    rows.sort(key=lambda r: (r.cluster, r.namespace, r.pod))
    page_rows, page = paginate(rows, args.cursor, clamp_limit(args.limit, ctx.limits))
    return GpuWorkloads(clusters=status, workloads=page_rows, totals=_totals(rows), page=page)


def _unavailable(clusters: list[ClusterStatus]) -> list[str]:
    return [f"{c.cluster}: unavailable ({c.error})" for c in clusters if not c.reachable]


def _gpus(gpus: dict[str, int]) -> str:
    return ", ".join(f"{n} {r}" for r, n in gpus.items()) or "none"


def _workloads_summary(out: GpuWorkloads) -> str:
    lines = _unavailable(out.clusters)
    lines.append(f"{out.page.total} pods hold GPUs")
    lines += [f"  {t.cluster}/{t.namespace}: {t.pods} pods, {_gpus(t.gpus)}" for t in out.totals]
    for w in out.workloads[:20]:
        owner = f" ({w.owner_kind} {w.owner_name})" if w.owner_kind else ""
        lines.append(f"  {w.cluster}/{w.namespace}/{w.pod}{owner} on {w.node}: {_gpus(w.gpus)}")
    if out.page.next_cursor or out.page.returned > 20:
        lines.append(f"{out.page.returned} of {out.page.total} pods in this page; see results")
    return "\n".join(lines)


GPU_WORKLOADS: ToolSpec[GpuWorkloadsInput, GpuWorkloads] = ToolSpec(
    name="gpu_workloads",
    title="GPU workloads",
    description=(
        "Pods that hold GPUs now, with owner (Job, ReplicaSet, ...), node, GPU resources, age "
        "and Kueue/KAI queue, plus GPU totals per namespace. Default: every cluster."
    ),
    input=GpuWorkloadsInput,
    output=GpuWorkloads,
    run=_workloads,
    summary=_workloads_summary,
    examples=(
        ("Who is using GPUs in namespace ml-research?", {"namespace": "ml-research"}),
        ("What is running on the GPUs of gpu-west?", {"cluster": "gpu-west"}),
    ),
)


# ---------------------------------------------------------------------------- gpu_quota


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


class ClusterQueueView(ToolOutput):
    cluster: str
    name: str
    cohort: str | None = None
    flavors: list[FlavorQuota]
    pending_workloads: int | None = None
    admitted_workloads: int | None = None


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
    return cut(str((obj.get("metadata") or {}).get(key) or ""))


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def quota_view(cluster: str, obj: Json) -> ResourceQuotaView | None:
    """GPU lines of a ResourceQuota (requests.X, limits.X or bare X for a GPU resource X)."""
    hard = (obj.get("spec") or {}).get("hard") or {}
    used = (obj.get("status") or {}).get("used") or {}
    keys = sorted(
        k
        for k in {*hard, *used}
        if is_gpu_resource(k.removeprefix("requests.").removeprefix("limits."))
    )
    if not keys:
        return None
    return ResourceQuotaView(
        cluster=cluster,
        namespace=_meta(obj, "namespace"),
        name=_meta(obj, "name"),
        resources=[
            QuotaResource(resource=k, hard=quantity(hard.get(k)), used=quantity(used.get(k)))
            for k in keys
        ],
    )


def _flavor_status(status: Json, key: str) -> dict[tuple[str, str], int | None]:
    return {
        (str(f.get("name")), str(r.get("name"))): quantity(r.get("total"))
        for f in status.get(key) or []
        for r in f.get("resources") or []
    }


def cluster_queue_view(cluster: str, obj: Json) -> ClusterQueueView:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    used = _flavor_status(status, "flavorsUsage")
    reserved = _flavor_status(status, "flavorsReservation")
    flavors = [
        FlavorQuota(
            flavor=cut(str(f.get("name"))),
            resource=str(r.get("name")),
            nominal=quantity(r.get("nominalQuota")),
            borrowing_limit=quantity(r.get("borrowingLimit")),
            used=used.get((str(f.get("name")), str(r.get("name")))),
            reserved=reserved.get((str(f.get("name")), str(r.get("name")))),
        )
        for group in spec.get("resourceGroups") or []
        for f in group.get("flavors") or []
        for r in f.get("resources") or []
        if is_gpu_resource(str(r.get("name")))
    ]
    return ClusterQueueView(
        cluster=cluster,
        name=_meta(obj, "name"),
        cohort=cut(spec["cohort"]) if spec.get("cohort") else None,
        flavors=flavors[:MAX_ROWS],
        pending_workloads=quantity(status.get("pendingWorkloads")),
        admitted_workloads=quantity(status.get("admittedWorkloads")),
    )


def kai_queue_view(cluster: str, obj: Json) -> KaiQueueView:
    spec = obj.get("spec") or {}
    gpu = (spec.get("resources") or {}).get("gpu") or {}
    return KaiQueueView(
        cluster=cluster,
        name=_meta(obj, "name"),
        parent_queue=cut(spec["parentQueue"]) if spec.get("parentQueue") else None,
        gpu_quota=_number(gpu.get("quota")),
        gpu_limit=_number(gpu.get("limit")),
        over_quota_weight=_number(gpu.get("overQuotaWeight")),
    )


def volcano_queue_view(cluster: str, obj: Json) -> VolcanoQueueView:
    spec = obj.get("spec") or {}
    return VolcanoQueueView(
        cluster=cluster,
        name=_meta(obj, "name"),
        gpu_capability=quantity((spec.get("capability") or {}).get("nvidia.com/gpu")),
        weight=quantity(spec.get("weight")),
        state=cut(str((obj.get("status") or {}).get("state") or ""), 64) or None,
    )


async def _cluster_quota(port: ClusterPort, namespace: str | None) -> GpuQuota:
    kinds = (
        Kind.RESOURCE_QUOTAS,
        Kind.KUEUE_CLUSTER_QUEUES,
        Kind.KUEUE_LOCAL_QUEUES,
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
            cluster_queue=cut(str((o.get("spec") or {}).get("clusterQueue") or "")),
        )
        for o in raw[Kind.KUEUE_LOCAL_QUEUES]
    ]
    wanted = {lq.cluster_queue for lq in locals_}
    queues = [
        o for o in raw[Kind.KUEUE_CLUSTER_QUEUES] if namespace is None or _meta(o, "name") in wanted
    ]
    return GpuQuota(
        clusters=[],
        resource_quotas=[
            v for o in raw[Kind.RESOURCE_QUOTAS] if (v := quota_view(name, o)) is not None
        ],
        cluster_queues=[cluster_queue_view(name, o) for o in queues],
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


def _quota_summary(out: GpuQuota) -> str:
    lines = _unavailable(out.clusters)
    for q in out.resource_quotas:
        lines.append(
            f"{q.cluster}/{q.namespace} quota {q.name}: "
            + ", ".join(f"{r.resource} {r.used}/{r.hard}" for r in q.resources)
        )
    for cq in out.cluster_queues:
        flavors = ", ".join(f"{f.flavor} {f.nominal}" for f in cq.flavors) or "no GPU flavors"
        lines.append(f"{cq.cluster} Kueue ClusterQueue {cq.name}: {flavors}")
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


# ---------------------------------------------------------------------------- gpu_usage_report


class GpuUsageInput(FleetInput):
    since_hours: float = Field(24.0, gt=0, le=24 * 90, description="window length, hours")
    group_by: str = Field(
        "namespace", max_length=260, description="'namespace' or 'label:<key>', e.g. label:team"
    )
    limit: int = Field(50, ge=1, le=500, description="largest groups returned")

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: str) -> str:
        if value == "namespace":
            return value
        if value.startswith("label:"):
            try:
                _LABEL_KEY.validate_python(value.removeprefix("label:"))
            except ValidationError:
                raise ValueError("label:<key> needs a valid label key, e.g. label:team") from None
            return value
        raise ValueError("must be 'namespace' or 'label:<key>'")


class UsageGroup(ToolOutput):
    group: str
    gpu_hours: float
    pods: int
    by_resource: dict[str, float] = Field(description="GPU-hours per GPU resource")
    clusters: list[str]


class GpuUsage(ToolOutput):
    clusters: list[ClusterStatus]
    since: str = Field(description="window start, UTC ISO 8601")
    group_by: str
    groups: list[UsageGroup] = Field(description="largest first")
    groups_total: int
    total_gpu_hours: float
    note: str


NO_LABEL = "(no label)"


def group_key(pod: PodInfo, group_by: str) -> str:
    if group_by == "namespace":
        return pod.namespace
    return cut(pod.labels.get(group_by.removeprefix("label:"), NO_LABEL), 128)


def pod_gpu_hours(pod: PodInfo, start: dt.datetime, now: dt.datetime) -> float:
    """Hours of the window [start, now] the pod held its GPUs (times one GPU)."""
    began = pod.started
    if began is None or not pod.gpus:
        return 0.0
    if pod.terminal:
        if pod.finished is None:
            return 0.0  # ended without a recorded finish: no reliable interval
        end = min(pod.finished, now)
    else:
        end = now
    return max((end - max(began, start)).total_seconds(), 0.0) / 3600.0


def usage_by_group(
    pods_by_cluster: dict[str, list[PodInfo]], group_by: str, start: dt.datetime, now: dt.datetime
) -> list[UsageGroup]:
    hours: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    count: dict[str, int] = defaultdict(int)
    where: dict[str, set[str]] = defaultdict(set)
    for cluster, pods in pods_by_cluster.items():
        for pod in pods:
            h = pod_gpu_hours(pod, start, now)
            if h <= 0:
                continue
            key = group_key(pod, group_by)
            for res, n in pod.gpus.items():
                hours[key][res] += h * n
            count[key] += 1
            where[key].add(cluster)
    groups = [
        UsageGroup(
            group=key,
            gpu_hours=round(sum(by_res.values()), 3),
            pods=count[key],
            by_resource={r: round(v, 3) for r, v in sorted(by_res.items())},
            clusters=sorted(where[key]),
        )
        for key, by_res in hours.items()
    ]
    groups.sort(key=lambda g: (-g.gpu_hours, g.group))
    return groups


async def _usage(ctx: ToolContext, args: GpuUsageInput) -> GpuUsage:
    async def pods(port: ClusterPort) -> list[PodInfo]:
        return await port.pods()

    ports = ctx.clusters(args.cluster)
    got, status = await fan_out(ports, pods, strict=args.cluster is not None)
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(hours=args.since_hours)
    groups = usage_by_group(got, args.group_by, start, now)
    return GpuUsage(
        clusters=status,
        since=start.isoformat(timespec="seconds"),
        group_by=args.group_by,
        groups=groups[: args.limit],
        groups_total=len(groups),
        total_gpu_hours=round(sum(g.gpu_hours for g in groups), 3),
        note=(
            "GPU-hours = GPU units requested x hours held within the window (a MIG slice or a "
            "time-sliced replica counts as one unit), from pods that still exist: deleted pods "
            "are not counted."
        ),
    )


def _usage_summary(out: GpuUsage) -> str:
    lines = _unavailable(out.clusters)
    lines.append(f"{out.total_gpu_hours} GPU-hours since {out.since} by {out.group_by}")
    lines += [f"  {g.group}: {g.gpu_hours} GPU-h ({g.pods} pods)" for g in out.groups[:20]]
    if out.groups_total > min(len(out.groups), 20):
        lines.append(f"  ... {out.groups_total} groups in all")
    return "\n".join(lines)


GPU_USAGE_REPORT: ToolSpec[GpuUsageInput, GpuUsage] = ToolSpec(
    name="gpu_usage_report",
    title="GPU usage report",
    description=(
        "GPU-hours over a recent window (default 24 h), grouped by namespace or by a pod label "
        "(group_by='label:<key>'), largest first, from pod start/finish times and GPU requests "
        "of the pods that still exist. Default: every cluster."
    ),
    input=GpuUsageInput,
    output=GpuUsage,
    run=_usage,
    summary=_usage_summary,
    examples=(
        ("Which teams used the most GPU hours in the last 3 days?", {"since_hours": 72}),
        ("Who used the most GPU time on gpu-west?", {"cluster": "gpu-west"}),
    ),
)
