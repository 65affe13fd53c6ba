"""gpu_usage_report: GPU-hours over a recent window, grouped by namespace or a pod label.

Usage is computed from the pods that still exist (start/finish times x GPU requests): it needs
no metrics stack, and the report says that deleted pods are not counted. Where a cluster has a
metrics source, each group also gets the GPU-hours metered by dcgm-exporter (held and used, so
efficiency = used / held) and their cost at the configured price per GPU-hour of the product;
a cluster whose metrics cannot be read is named, and its allocation numbers still stand.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable

from pydantic import Field, TypeAdapter, ValidationError, field_validator

from mcp_kube.domain import LabelKey
from mcp_kube.kube.objects import PodInfo
from mcp_kube.kube.port import ClusterPort
from mcp_kube.tools.base import ToolContext, ToolOutput, ToolSpec
from mcp_kube.tools.common import ClusterStatus, FleetInput, clip, fan_out, unavailable_lines
from mcp_kube.tools.gpumetrics import Metered, cost_of, metered, product_of

__all__ = [
    "GPU_USAGE_REPORT",
    "NO_LABEL",
    "group_key",
    "pod_gpu_hours",
    "usage_by_group",
    "with_efficiency",
]

_LABEL_KEY: TypeAdapter[str] = TypeAdapter(LabelKey)


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
    metered_gpu_hours: float | None = Field(None, description="held, as metrics saw it")
    used_gpu_hours: float | None = Field(None, description="utilization x time held")
    efficiency: float | None = Field(None, description="used / metered, 0 to 1")
    cost: float | None = Field(None, description="metered GPU-hours x price per GPU-hour")


class GpuUsage(ToolOutput):
    clusters: list[ClusterStatus]
    since: str = Field(description="window start, UTC ISO 8601")
    group_by: str
    groups: list[UsageGroup] = Field(description="largest first")
    groups_total: int
    total_gpu_hours: float
    total_cost: float | None = Field(None, description="sum of the groups' cost")
    metrics_unavailable: list[str] = Field(
        default_factory=list, description="clusters without efficiency and cost, and why"
    )
    note: str


NO_LABEL = "(no label)"


def group_key(pod: PodInfo, group_by: str) -> str:
    if group_by == "namespace":
        return pod.namespace
    return clip(pod.labels.get(group_by.removeprefix("label:"), NO_LABEL), 128)


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


Price = Callable[[str, dict[str, str]], float | None]  # (cluster, device labels) -> price


def _metered_key(m: Metered, pods: dict[tuple[str, str, str], PodInfo], group_by: str) -> str:
    namespace = m.labels.get("namespace", "")
    if group_by == "namespace":
        return namespace
    pod = pods.get((m.cluster, namespace, m.labels.get("pod", "")))
    return group_key(pod, group_by) if pod is not None else NO_LABEL


def with_efficiency(
    groups: list[UsageGroup],
    metered_by_cluster: dict[str, list[Metered]],
    pods_by_cluster: dict[str, list[PodInfo]],
    group_by: str,
    price: Price,
) -> list[UsageGroup]:
    """``groups`` with the metered columns added (groups only metrics saw are added too)."""
    pods = {(c, p.namespace, p.name): p for c, ps in pods_by_cluster.items() for p in ps}
    held: dict[str, float] = defaultdict(float)
    used: dict[str, float] = defaultdict(float)
    cost: dict[str, float] = defaultdict(float)
    where: dict[str, set[str]] = defaultdict(set)
    for cluster, devices in metered_by_cluster.items():
        for m in devices:
            key = _metered_key(m, pods, group_by)
            held[key] += m.held_hours
            used[key] += m.used_hours
            cost[key] += cost_of(m, price(cluster, m.labels)) or 0.0
            where[key].add(cluster)
    known = {g.group: g for g in groups}
    for key in held.keys() - known.keys():
        known[key] = UsageGroup(
            group=key, gpu_hours=0.0, pods=0, by_resource={}, clusters=sorted(where[key])
        )
    out = [
        g.model_copy(
            update={
                "metered_gpu_hours": round(held[g.group], 3),
                "used_gpu_hours": round(used[g.group], 3),
                "efficiency": round(used[g.group] / held[g.group], 4) if held[g.group] else None,
                "cost": round(cost[g.group], 2),
            }
        )
        if g.group in held
        else g
        for g in known.values()
    ]
    out.sort(key=lambda g: (-max(g.gpu_hours, g.metered_gpu_hours or 0.0), g.group))
    return out


async def _usage(ctx: ToolContext, args: GpuUsageInput) -> GpuUsage:
    async def pods(port: ClusterPort) -> list[PodInfo]:
        return await port.pods()

    window_s = max(60, round(args.since_hours * 3600))

    async def meter(port: ClusterPort) -> list[Metered]:
        return await metered(port, window_s)

    ports = ctx.clusters(args.cluster)
    got, status = await fan_out(ports, pods, strict=args.cluster is not None)
    served = [p for p in ports if p.name in got]
    measured, meter_status = await fan_out(served, meter, strict=False)
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(hours=args.since_hours)
    by_name = {p.name: p for p in ports}

    def price(cluster: str, labels: dict[str, str]) -> float | None:
        return by_name[cluster].gpu_price(product_of(labels))

    groups = usage_by_group(got, args.group_by, start, now)
    groups = with_efficiency(groups, measured, got, args.group_by, price)
    costs = [g.cost for g in groups if g.cost is not None]
    return GpuUsage(
        clusters=status,
        since=start.isoformat(timespec="seconds"),
        group_by=args.group_by,
        groups=groups[: args.limit],
        groups_total=len(groups),
        total_gpu_hours=round(sum(g.gpu_hours for g in groups), 3),
        total_cost=round(sum(costs), 2) if costs else None,
        metrics_unavailable=[f"{c.cluster}: {c.error}" for c in meter_status if not c.reachable],
        note=(
            "GPU-hours = GPU units requested x hours held within the window (a MIG slice or a "
            "time-sliced replica counts as one unit), from pods that still exist: deleted pods "
            "are not counted. metered/used GPU-hours come from dcgm-exporter (efficiency = "
            "used / metered); cost = metered x the price per GPU-hour of the product (a MIG "
            "slice at its share), for products with a configured price."
        ),
    )


def _usage_summary(out: GpuUsage) -> str:
    lines = unavailable_lines(out.clusters)
    lines.append(f"{out.total_gpu_hours} GPU-hours since {out.since} by {out.group_by}")
    for g in out.groups[:20]:
        line = f"  {g.group}: {g.gpu_hours} GPU-h ({g.pods} pods)"
        if g.efficiency is not None:
            line += f", metered {g.metered_gpu_hours} GPU-h at {g.efficiency:.0%} efficiency"
        if g.cost is not None:
            line += f", cost {g.cost}"
        lines.append(line)
    lines += [f"  metrics unavailable: {m}" for m in out.metrics_unavailable]
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
