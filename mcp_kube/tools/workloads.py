"""gpu_workloads: the pods that hold GPUs now, with owner, node and queue, and totals.

Like every fleet tool it defaults to every cluster; an unreachable cluster is listed as
unavailable rather than failing the call, so one dead API server never hides the rest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pydantic import Field

from mcp_kube.domain import DnsLabel
from mcp_kube.kube.objects import PodInfo
from mcp_kube.kube.port import ClusterPort
from mcp_kube.tools.base import Page, ToolContext, ToolOutput, ToolSpec, clamp_limit, paginate
from mcp_kube.tools.common import (
    ClusterStatus,
    FleetInput,
    clip,
    fan_out,
    gpu_text,
    unavailable_lines,
)

__all__ = ["GPU_WORKLOADS", "workload_rows"]

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
MAX_ROWS = 200  # cap of the totals, which are not paged


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
        return pod.owner_kind, clip(pod.owner_name, 253)
    for key in JOB_NAME_LABELS:  # an orphaned Job pod still names its Job
        if key in pod.labels:
            return "Job", clip(pod.labels[key], 253)
    return None, None


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
                queue=clip(pod.queue, 128) if pod.queue else None,
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


def _workloads_summary(out: GpuWorkloads) -> str:
    lines = unavailable_lines(out.clusters)
    lines.append(f"{out.page.total} pods hold GPUs")
    lines += [f"  {t.cluster}/{t.namespace}: {t.pods} pods, {gpu_text(t.gpus)}" for t in out.totals]
    for w in out.workloads[:20]:
        owner = f" ({w.owner_kind} {w.owner_name})" if w.owner_kind else ""
        lines.append(f"  {w.cluster}/{w.namespace}/{w.pod}{owner} on {w.node}: {gpu_text(w.gpus)}")
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
