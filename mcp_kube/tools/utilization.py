"""gpu_utilization: how busy the GPUs are, per node, namespace, Job or pod, over a window.

Read from dcgm-exporter's metrics in each cluster's Prometheus (``clusters.metrics`` in the
settings): mean and 95th-percentile utilization, framebuffer memory used of total, and power.
A cluster whose metrics cannot be read is reported unavailable; the others are still served.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mcp_kube.domain import DnsLabel, DnsSubdomain
from mcp_kube.kube.objects import PodInfo
from mcp_kube.kube.port import ClusterPort
from mcp_kube.tools.base import ToolContext, ToolOutput, ToolSpec
from mcp_kube.tools.common import ClusterStatus, FleetInput, fan_out, unavailable_lines
from mcp_kube.tools.gpumetrics import DeviceStats, GroupStats, device_stats, group_stats
from mcp_kube.tools.gpumetrics import holder_matchers as matchers_for

__all__ = ["GPU_UTILIZATION", "JOB_LABELS", "group_keys"]

JOB_LABELS = ("batch.kubernetes.io/job-name", "job-name")
NO_HOLDER = "(free)"


class GpuUtilizationInput(FleetInput):
    group_by: Literal["node", "namespace", "job", "pod"] = Field(
        "namespace", description="one row per node, namespace, Job or pod"
    )
    namespace: DnsLabel | None = Field(None, description="only GPUs held in this namespace")
    node: DnsSubdomain | None = Field(None, description="only this node's GPUs")
    window_hours: float = Field(1.0, gt=0.0166, le=24 * 30, description="window length, hours")
    limit: int = Field(50, ge=1, le=500, description="rows returned")


class GpuUtilization(ToolOutput):
    clusters: list[ClusterStatus] = Field(description="unreachable ones: metrics unavailable")
    window_hours: float
    group_by: str
    rows: list[GroupStats] = Field(description="utilization in percent, memory in MiB, power W")
    rows_total: int
    note: str


def group_keys(
    devs: list[DeviceStats], group_by: str, jobs: dict[tuple[str, str, str], str]
) -> dict[int, str]:
    """The row each device belongs to; ``jobs``: (cluster, namespace, pod) -> Job name."""
    out: dict[int, str] = {}
    for i, d in enumerate(devs):
        if group_by == "node":
            out[i] = d.node
        elif not d.pod:
            if group_by == "namespace":
                out[i] = NO_HOLDER
        elif group_by == "namespace":
            out[i] = d.namespace
        elif group_by == "pod":
            out[i] = f"{d.namespace}/{d.pod}"
        else:
            job = jobs.get((d.cluster, d.namespace, d.pod))
            if job:
                out[i] = f"{d.namespace}/{job}"
    return out


def _job_of(pod: PodInfo) -> str | None:
    return next((pod.labels[k] for k in JOB_LABELS if pod.labels.get(k)), None)


async def _utilization(ctx: ToolContext, args: GpuUtilizationInput) -> GpuUtilization:
    window_s = max(60, round(args.window_hours * 3600))
    matchers = matchers_for(args.namespace, args.node, held=False)

    async def one(port: ClusterPort) -> tuple[list[DeviceStats], dict[tuple[str, str, str], str]]:
        devs = await device_stats(port, window_s, matchers)
        jobs: dict[tuple[str, str, str], str] = {}
        if args.group_by == "job":
            for pod in await port.pods():
                job = _job_of(pod)
                if job:
                    jobs[port.name, pod.namespace, pod.name] = job
        return devs, jobs

    got, status = await fan_out(ctx.clusters(args.cluster), one, strict=args.cluster is not None)
    devs = [d for ds, _ in got.values() for d in ds]
    jobs = {k: v for _, js in got.values() for k, v in js.items()}
    rows = group_stats(devs, group_keys(devs, args.group_by, jobs), window_s / 3600)
    rows.sort(key=lambda r: (-r.gpus, r.cluster, r.group))
    return GpuUtilization(
        clusters=status,
        window_hours=args.window_hours,
        group_by=args.group_by,
        rows=rows[: args.limit],
        rows_total=len(rows),
        note=(
            "From dcgm-exporter through Prometheus. Utilization is weighted by the time each "
            "GPU or MIG slice reported (p95: each device's 95th percentile over the window); "
            "memory and power are the group's totals averaged over the window. Free GPUs "
            "appear under '(free)' by namespace."
        ),
    )


def _summary(out: GpuUtilization) -> str:
    lines = unavailable_lines(out.clusters)
    lines.append(f"GPU utilization over {out.window_hours:g} h by {out.group_by}:")
    lines += [
        f"  {r.cluster} {r.group}: {r.gpus} GPUs, mean {r.utilization_mean}%, p95 "
        f"{r.utilization_p95}%, memory {r.memory_used_mib:.0f}/{r.memory_total_mib:.0f} MiB, "
        f"{r.power_w} W"
        for r in out.rows[:20]
    ]
    if out.rows_total > min(len(out.rows), 20):
        lines.append(f"  ... {out.rows_total} rows in all")
    return "\n".join(lines)


GPU_UTILIZATION: ToolSpec[GpuUtilizationInput, GpuUtilization] = ToolSpec(
    name="gpu_utilization",
    title="GPU utilization",
    description=(
        "How busy GPUs are (from dcgm-exporter metrics): mean and p95 utilization, memory "
        "used of total, power, per node, namespace, job or pod, over a window (default 1 h). "
        "Default: every cluster."
    ),
    input=GpuUtilizationInput,
    output=GpuUtilization,
    run=_utilization,
    summary=_summary,
    examples=(
        ("How busy are team-a's GPUs today?", {"namespace": "team-a", "window_hours": 24}),
        ("GPU utilization per node on gpu-east", {"cluster": "gpu-east", "group_by": "node"}),
    ),
)
