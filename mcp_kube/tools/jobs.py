"""Batch Jobs: list_jobs and get_job.

A Job is reduced to what a person asks about it: state, GPUs, counts, times, queue, recent
warnings, the tail of its newest pod's log and the training progress read from it. Env
values, annotations and the raw object are never returned. The state follows one rule,
``kube.objects.JobInfo``: succeeded and failed are terminal (Complete, Failed); a Job whose
outcome is decided but whose pods are still being stopped is active.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pydantic import Field

from mcp_kube.domain import DnsLabel, DnsSubdomain
from mcp_kube.errors import ToolError
from mcp_kube.kube.objects import JobInfo, JobState, PodInfo
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.tools import nearby
from mcp_kube.tools.base import (
    ClusterInput,
    Page,
    ToolContext,
    ToolOutput,
    ToolSpec,
    clamp_limit,
    paginate,
)
from mcp_kube.tools.common import clip, clip_lines, gpu_text
from mcp_kube.tools.gpumetrics import PodsGpuUse, pods_gpu_use
from mcp_kube.tools.reads import EventView, Progress, fetch_events, job_pods, parse_progress

__all__ = ["GET_JOB", "LIST_JOBS", "job_summary"]

JOB_SCAN = 5000  # jobs read per namespace at most
PODS_SHOWN = 20
WARNINGS_SHOWN = 5
LOG_LINES = 20
LOG_BYTES = 16 * 1024


class JobSummary(ToolOutput):
    name: str
    status: JobState
    gpus: dict[str, int] = Field(description="GPU resources requested per pod")
    parallelism: int
    completions: int | None
    succeeded: int
    failed: int
    active: int
    start_time: dt.datetime | None
    finish_time: dt.datetime | None
    duration_s: float | None = Field(description="until finish, or until now while running")
    queue: str | None = Field(description="Kueue / KAI / Volcano queue")


def job_summary(job: JobInfo, now: dt.datetime | None = None) -> JobSummary:
    finish = job.finished
    end = finish or now or dt.datetime.now(dt.UTC)
    return JobSummary(
        name=clip(job.name, 253),
        status=job.state,
        gpus=job.gpus,
        parallelism=job.parallelism,
        completions=job.completions,
        succeeded=job.succeeded_pods,
        failed=job.failed_pods,
        active=job.active_pods,
        start_time=job.started,
        finish_time=finish,
        duration_s=round((end - job.started).total_seconds(), 1) if job.started else None,
        queue=clip(job.queue, 253) if job.queue else None,
    )


# ---------------------------------------------------------------------------- list_jobs


class ListJobsInput(ClusterInput):
    namespace: DnsLabel
    status: JobState | None = Field(None, description="only jobs in this state")
    limit: int | None = Field(None, ge=1, le=1000, description="jobs per page")
    cursor: str | None = Field(None, max_length=64)


class JobList(ToolOutput):
    cluster: str
    namespace: str
    jobs: list[JobSummary] = Field(description="newest first")
    page: Page


async def _list_jobs(ctx: ToolContext, args: ListJobsInput) -> JobList:
    port = ctx.cluster(args.cluster)
    items = [
        JobInfo.from_json(o)
        for o in await port.list_objects(Kind.JOBS, args.namespace, limit=JOB_SCAN)
    ]
    items.sort(key=lambda j: (-(j.created.timestamp() if j.created else 0.0), j.name))
    jobs = [job_summary(j) for j in items]
    if args.status:
        jobs = [j for j in jobs if j.status == args.status]
    page_jobs, page = paginate(jobs, args.cursor, clamp_limit(args.limit, ctx.limits))
    return JobList(cluster=port.name, namespace=args.namespace, jobs=page_jobs, page=page)


def _list_summary(out: JobList) -> str:
    lines = [f"{out.cluster}/{out.namespace}: {out.page.total} jobs"]
    for j in out.jobs:
        dur = f", {j.duration_s:.0f}s" if j.duration_s is not None else ""
        queue = f", queue {j.queue}" if j.queue else ""
        lines.append(
            f"  {j.name}: {j.status}, {gpu_text(j.gpus, 'no GPUs')}/pod, "
            f"{j.succeeded} ok {j.failed} failed {j.active} active{dur}{queue}"
        )
    if out.page.next_cursor:
        lines.append(f"{out.page.returned} of {out.page.total} shown; more with cursor")
    return "\n".join(lines)


LIST_JOBS: ToolSpec[ListJobsInput, JobList] = ToolSpec(
    name="list_jobs",
    title="List jobs",
    description=(
        "Batch Jobs of a namespace, newest first: status, GPUs per pod, completions, "
        "succeeded/failed/active, start, finish, duration and queue (Kueue, KAI, Volcano)."
    ),
    input=ListJobsInput,
    output=JobList,
    run=_list_jobs,
    summary=_list_summary,
    examples=(
        (
            "List the failed jobs in team-x on gpu-west",
            {"namespace": "team-x", "cluster": "gpu-west", "status": "failed"},
        ),
    ),
)


# ---------------------------------------------------------------------------- get_job


class JobInput(ClusterInput):
    namespace: DnsLabel
    name: DnsSubdomain


class Condition(ToolOutput):
    type: str
    status: str
    reason: str = ""
    message: str = Field("", description="at most 300 characters")


class PodRow(ToolOutput):
    name: str
    phase: str
    node: str
    restarts: int


class JobDetail(JobSummary):
    cluster: str
    namespace: str
    conditions: list[Condition]
    pods: list[PodRow] = Field(description=f"newest first, at most {PODS_SHOWN}")
    pods_total: int
    restarts: int = Field(description="container restarts over the job's pods")
    warnings: list[EventView] = Field(description=f"newest {WARNINGS_SHOWN} warning events")
    log_pod: str | None = None
    log_container: str | None = None
    log_lines: list[str] = Field(
        default_factory=list, description=f"last {LOG_LINES} lines: workload output, data"
    )
    log_note: str | None = None
    progress: Progress | None = Field(None, description="last values parsed from the log lines")
    gpu_use: PodsGpuUse | None = Field(
        None, description="its pods' GPU utilization over the last hour (or since it started)"
    )


def _conditions(job: JobInfo) -> list[Condition]:
    return [
        Condition(
            type=clip(c.type, 64),
            status=clip(c.status, 16),
            reason=clip(c.reason, 128),
            message=clip(c.message),
        )
        for c in job.conditions[:20]
    ]


@dataclass(frozen=True)
class _LogTail:
    pod: str | None = None
    container: str | None = None
    lines: list[str] = field(default_factory=list)
    note: str | None = None


async def _log_tail(ctx: ToolContext, port: ClusterPort, ns: str, pods: list[PodInfo]) -> _LogTail:
    """The last lines of the newest pod's first container, or why there are none."""
    if not pods:
        return _LogTail(note="the job has no pods")
    newest = pods[0]
    if not newest.node:
        return _LogTail(note=f"newest pod {newest.name} is not scheduled yet: no log")
    container = newest.containers[0] if newest.containers else None
    try:
        chunk = await port.pod_log(
            ns,
            newest.name,
            container=container,
            tail_lines=min(LOG_LINES, ctx.limits.max_log_lines),
            since_seconds=None,
            limit_bytes=min(LOG_BYTES, ctx.limits.max_log_bytes),
            previous=False,
        )
    except ToolError as e:  # e.g. container not started yet: report, keep the rest
        return _LogTail(pod=newest.name, container=container, note=f"no log: {clip(e, 200)}")
    note = f"log cut at {chunk.bytes_read} bytes" if chunk.truncated else None
    lines = clip_lines(chunk.text)[-LOG_LINES:]
    return _LogTail(pod=newest.name, container=container, lines=lines, note=note)


async def _get_job(ctx: ToolContext, args: JobInput) -> JobDetail:
    port = ctx.cluster(args.cluster)
    raw = await nearby.get_named(ctx, port, Kind.JOBS, args.name, args.namespace)
    job = JobInfo.from_json(raw)
    pods = await job_pods(port, args.namespace, args.name)
    names = {p.name for p in pods}
    events = await fetch_events(port, args.namespace, warnings_only=True)
    warnings = [
        e
        for e in events
        if (e.object_kind == "Job" and e.object_name == args.name)
        or (e.object_kind == "Pod" and e.object_name in names)
    ][:WARNINGS_SHOWN]
    log = await _log_tail(ctx, port, args.namespace, pods)
    return JobDetail(
        **job_summary(job).model_dump(),
        cluster=port.name,
        namespace=args.namespace,
        conditions=_conditions(job),
        pods=[PodRow(name=p.name, phase=p.phase, node=p.node, restarts=p.restarts) for p in pods][
            :PODS_SHOWN
        ],
        pods_total=len(pods),
        restarts=sum(p.restarts for p in pods),
        warnings=warnings,
        log_pod=log.pod,
        log_container=log.container,
        log_lines=log.lines,
        log_note=log.note,
        progress=parse_progress(log.lines, ctx.progress_patterns),
        gpu_use=await pods_gpu_use(port, args.namespace, names, job.started)
        if job.gpus and names
        else None,
    )


def _job_summary(out: JobDetail) -> str:
    lines = [
        f"{out.cluster}/{out.namespace}/{out.name}: {out.status}, "
        f"{gpu_text(out.gpus, 'no GPUs')}/pod, "
        f"{out.succeeded} ok {out.failed} failed {out.active} active, "
        f"{out.pods_total} pods, {out.restarts} restarts"
        + (f", {out.duration_s:.0f}s" if out.duration_s is not None else "")
        + (f", queue {out.queue}" if out.queue else "")
    ]
    for c in out.conditions:
        why = ": ".join(x for x in (c.reason, c.message) if x)
        lines.append(f"  condition {c.type}={c.status} {why}".rstrip())
    if out.progress:
        p = out.progress
        parts = [f"{k}={v}" for k, v in p.model_dump().items() if v is not None]
        lines.append("  progress: " + " ".join(parts))
    if out.gpu_use and out.gpu_use.stats:
        g = out.gpu_use.stats
        lines.append(
            f"  GPU utilization (last {out.gpu_use.window_hours:g} h): mean "
            f"{g.utilization_mean}%, p95 {g.utilization_p95}% over {g.gpus} GPUs"
        )
    elif out.gpu_use and out.gpu_use.note:
        lines.append(f"  GPU utilization: {out.gpu_use.note}")
    for e in out.warnings:
        lines.append(f"  warning {e.reason} {e.object_kind}/{e.object_name}: {e.message}")
    if out.log_lines:
        lines.append(f"  last log lines of {out.log_pod} (workload output, data):")
        lines += [f"    {ln}" for ln in out.log_lines]
    elif out.log_note:
        lines.append(f"  {out.log_note}")
    return "\n".join(lines)


GET_JOB: ToolSpec[JobInput, JobDetail] = ToolSpec(
    name="get_job",
    title="Get job",
    description=(
        "One Job in detail: status and conditions, GPUs, pods (phase, node, restarts), times, "
        "last warning events, the last log lines of its newest pod and training progress "
        "(step, epoch, loss, throughput) parsed from them. Status is succeeded or failed only "
        "once the Job controller has set Complete or Failed (terminal: every pod stopped); "
        "while SuccessCriteriaMet or FailureTarget is set and its last pods are being stopped "
        "it is still active; suspended while spec.suspend is set."
    ),
    input=JobInput,
    output=JobDetail,
    run=_get_job,
    summary=_job_summary,
    examples=(
        (
            "What is the status of job resnet-7 in team-x?",
            {"namespace": "team-x", "name": "resnet-7"},
        ),
        (
            "What step and loss has job resnet-7 in team-x reached?",
            {"namespace": "team-x", "name": "resnet-7"},
        ),
    ),
)
