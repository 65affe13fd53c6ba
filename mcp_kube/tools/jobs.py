"""Batch Jobs: list_jobs, get_job and explain_pending.

A Job is reduced to what a person asks about it: state, GPUs, counts, times, queue, recent
warnings, the tail of its newest pod's log and the training progress read from it. Env
values, annotations and the raw object are never returned. explain_pending reads the
scheduler's verdict (PodScheduled condition, FailedScheduling events), the namespace's GPU
quota and Kueue's Workload, and turns them into structured reasons plus one verdict line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any, Literal

import anyio
from pydantic import Field, model_validator

from mcp_kube.domain import DnsLabel, DnsSubdomain, is_gpu_resource
from mcp_kube.errors import ToolError
from mcp_kube.kube.objects import PodInfo, parse_quantity, parse_time
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
from mcp_kube.tools.events import EventView, clip, fetch_events
from mcp_kube.tools.logs import Progress, clip_lines, job_pods, parse_progress

__all__ = [
    "EXPLAIN_PENDING",
    "GET_JOB",
    "LIST_JOBS",
    "SchedulerFindings",
    "job_status",
    "parse_scheduler_message",
]

Json = dict[str, Any]
JobStatus = Literal["active", "succeeded", "failed", "suspended"]
JOB_SCAN = 5000  # jobs read per namespace at most
KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
KAI_QUEUE = "kai.scheduler/queue"
VOLCANO_QUEUE = "scheduling.volcano.sh/queue-name"
PODS_SHOWN = 20
WARNINGS_SHOWN = 5
LOG_LINES = 20
LOG_BYTES = 16 * 1024


# ---------------------------------------------------------------------------- job reading


def _true(obj: Json, cond: str) -> Json | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == cond and c.get("status") == "True":
            return dict(c)
    return None


def job_status(job: Json) -> JobStatus:
    if _true(job, "Complete") or _true(job, "SuccessCriteriaMet"):
        return "succeeded"
    if _true(job, "Failed") or _true(job, "FailureTarget"):
        return "failed"
    if (job.get("spec") or {}).get("suspend"):
        return "suspended"
    return "active"


def _template(job: Json) -> Json:
    return dict(((job.get("spec") or {}).get("template")) or {})


def job_gpus(job: Json) -> dict[str, int]:
    """GPUs one pod of the job requests (from the pod template)."""
    return PodInfo.from_json({"spec": _template(job).get("spec") or {}}).gpus


def job_queue(job: Json) -> str | None:
    """The queue of Kueue, KAI or Volcano, from the job or its pod template."""
    for meta in (job.get("metadata") or {}, _template(job).get("metadata") or {}):
        labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
        for value in (labels.get(KUEUE_QUEUE), labels.get(KAI_QUEUE), notes.get(VOLCANO_QUEUE)):
            if value:
                return clip(value, 253)
    return None


def _times(job: Json) -> tuple[dt.datetime | None, dt.datetime | None, float | None]:
    status = job.get("status") or {}
    start = parse_time(status.get("startTime"))
    finish = parse_time(status.get("completionTime"))
    if finish is None and (failed := _true(job, "Failed")):
        finish = parse_time(failed.get("lastTransitionTime"))
    end = finish or dt.datetime.now(dt.UTC)
    duration = round((end - start).total_seconds(), 1) if start else None
    return start, finish, duration


class JobSummary(ToolOutput):
    name: str
    status: JobStatus
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


def job_summary(job: Json) -> JobSummary:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    start, finish, duration = _times(job)
    return JobSummary(
        name=clip((job.get("metadata") or {}).get("name"), 253),
        status=job_status(job),
        gpus=job_gpus(job),
        parallelism=int(spec.get("parallelism", 1) or 0),
        completions=spec.get("completions"),
        succeeded=int(status.get("succeeded") or 0),
        failed=int(status.get("failed") or 0),
        active=int(status.get("active") or 0),
        start_time=start,
        finish_time=finish,
        duration_s=duration,
        queue=job_queue(job),
    )


def job_queue_label(job: Json) -> str | None:
    """The Kueue queue: Kueue manages the job only when the job itself carries the label."""
    value = ((job.get("metadata") or {}).get("labels") or {}).get(KUEUE_QUEUE)
    return str(value) if value else None


def _created(obj: Json) -> float:
    t = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return t.timestamp() if t else 0.0


# ---------------------------------------------------------------------------- list_jobs


class ListJobsInput(ClusterInput):
    namespace: DnsLabel
    status: JobStatus | None = Field(None, description="only jobs in this state")
    limit: int | None = Field(None, ge=1, le=1000, description="jobs per page")
    cursor: str | None = Field(None, max_length=64)


class JobList(ToolOutput):
    cluster: str
    namespace: str
    jobs: list[JobSummary] = Field(description="newest first")
    page: Page


async def _list_jobs(ctx: ToolContext, args: ListJobsInput) -> JobList:
    port = ctx.cluster(args.cluster)
    items = await port.list_objects(Kind.JOBS, args.namespace, limit=JOB_SCAN)
    items.sort(key=lambda o: (-_created(o), (o.get("metadata") or {}).get("name", "")))
    jobs = [job_summary(o) for o in items]
    if args.status:
        jobs = [j for j in jobs if j.status == args.status]
    page_jobs, page = paginate(jobs, args.cursor, clamp_limit(args.limit, ctx.limits))
    return JobList(cluster=port.name, namespace=args.namespace, jobs=page_jobs, page=page)


def _fmt_gpus(gpus: dict[str, int]) -> str:
    return ", ".join(f"{n} {r}" for r, n in gpus.items()) or "no GPUs"


def _list_summary(out: JobList) -> str:
    lines = [f"{out.cluster}/{out.namespace}: {out.page.total} jobs"]
    for j in out.jobs:
        dur = f", {j.duration_s:.0f}s" if j.duration_s is not None else ""
        queue = f", queue {j.queue}" if j.queue else ""
        lines.append(
            f"  {j.name}: {j.status}, {_fmt_gpus(j.gpus)}/pod, "
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


def _conditions(obj: Json) -> list[Condition]:
    return [
        Condition(
            type=clip(c.get("type"), 64),
            status=clip(c.get("status"), 16),
            reason=clip(c.get("reason"), 128),
            message=clip(c.get("message")),
        )
        for c in ((obj.get("status") or {}).get("conditions") or [])[:20]
    ]


async def _get_job(ctx: ToolContext, args: JobInput) -> JobDetail:
    port = ctx.cluster(args.cluster)
    job = await port.get(Kind.JOBS, args.name, args.namespace)
    pods = await job_pods(port, args.namespace, args.name)
    names = {p.name for p in pods}
    events = await fetch_events(port, args.namespace, warnings_only=True)
    warnings = [
        e
        for e in events
        if (e.object_kind == "Job" and e.object_name == args.name)
        or (e.object_kind == "Pod" and e.object_name in names)
    ][:WARNINGS_SHOWN]
    log_pod = log_container = log_note = None
    lines: list[str] = []
    if pods and not pods[0].node:
        log_note = f"newest pod {pods[0].name} is not scheduled yet: no log"
    elif pods:
        log_pod = pods[0].name
        log_container = pods[0].containers[0] if pods[0].containers else None
        try:
            chunk = await port.pod_log(
                args.namespace,
                log_pod,
                container=log_container,
                tail_lines=min(LOG_LINES, ctx.limits.max_log_lines),
                since_seconds=None,
                limit_bytes=min(LOG_BYTES, ctx.limits.max_log_bytes),
                previous=False,
            )
            lines = clip_lines(chunk.text)[-LOG_LINES:]
            if chunk.truncated:
                log_note = f"log cut at {chunk.bytes_read} bytes"
        except ToolError as e:  # e.g. container not started yet: report, keep the rest
            log_note = f"no log: {clip(e, 200)}"
    else:
        log_note = "the job has no pods"
    base = job_summary(job)
    return JobDetail(
        **base.model_dump(),
        cluster=port.name,
        namespace=args.namespace,
        conditions=_conditions(job),
        pods=[PodRow(name=p.name, phase=p.phase, node=p.node, restarts=p.restarts) for p in pods][
            :PODS_SHOWN
        ],
        pods_total=len(pods),
        restarts=sum(p.restarts for p in pods),
        warnings=warnings,
        log_pod=log_pod,
        log_container=log_container,
        log_lines=lines,
        log_note=log_note,
        progress=parse_progress(lines, ctx.progress_patterns),
    )


def _job_summary(out: JobDetail) -> str:
    lines = [
        f"{out.cluster}/{out.namespace}/{out.name}: {out.status}, {_fmt_gpus(out.gpus)}/pod, "
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
        "(step, epoch, loss, throughput) parsed from them."
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


# ---------------------------------------------------------------------------- scheduler text


class SchedulerFindings(ToolOutput):
    available: int
    total: int
    insufficient: dict[str, int] = Field(default_factory=dict, description="resource -> nodes")
    untolerated_taints: dict[str, int] = Field(default_factory=dict, description="taint -> nodes")
    selector_mismatch: int = Field(0, description="nodes failing nodeSelector / affinity")
    unschedulable: int = Field(0, description="cordoned nodes")
    other: dict[str, int] = Field(default_factory=dict, description="other reason -> nodes")


_AVAILABLE = re.compile(r"(\d+)/(\d+) nodes are available:?\s*(.*)", re.S)
_ITEM = re.compile(r"(\d+)\s+(.+)", re.S)
_SPLIT = re.compile(r",\s*(?![^{]*\})")  # commas outside {taint} braces


def parse_scheduler_message(message: str) -> SchedulerFindings | None:
    """Structure a kube-scheduler FailedScheduling message ("0/12 nodes are available: ...")."""
    m = _AVAILABLE.search(message)
    if not m:
        return None
    body = re.split(r"\.?\s*preemption:", m.group(3))[0].strip().rstrip(".")
    insufficient: dict[str, int] = defaultdict(int)
    taints: dict[str, int] = defaultdict(int)
    other: dict[str, int] = defaultdict(int)
    selector = unschedulable = 0
    for raw in _SPLIT.split(body):
        im = _ITEM.match(raw.strip())
        if not im:
            continue
        n, text = int(im.group(1)), im.group(2).strip()
        if text.startswith("Insufficient "):
            insufficient[clip(text.removeprefix("Insufficient ").strip(), 128)] += n
        elif "untolerated taint" in text:
            t = re.search(r"\{(.*)\}", text)
            taints[clip(t.group(1).strip() if t else text, 200)] += n
        elif "affinity/selector" in text or "node selector" in text:
            selector += n
        elif "unschedulable" in text:
            unschedulable += n
        elif len(other) < 20:
            other[clip(text, 200)] += n
    return SchedulerFindings(
        available=int(m.group(1)),
        total=int(m.group(2)),
        insufficient=dict(insufficient),
        untolerated_taints=dict(taints),
        selector_mismatch=selector,
        unschedulable=unschedulable,
        other=dict(other),
    )


Source = Literal["scheduler", "quota", "kueue", "job"]


class Reason(ToolOutput):
    source: Source
    reason: str
    detail: str
    nodes: int | None = Field(None, description="nodes this applies to (scheduler reasons)")


def scheduler_reasons(f: SchedulerFindings) -> list[Reason]:
    out = [
        Reason(
            source="scheduler",
            reason="insufficient_resource",
            detail=f"Insufficient {res} on {n} of {f.total} nodes",
            nodes=n,
        )
        for res, n in f.insufficient.items()
    ]
    out += [
        Reason(
            source="scheduler",
            reason="untolerated_taint",
            detail=f"{n} node(s) have taint {{{t}}} that the pod does not tolerate",
            nodes=n,
        )
        for t, n in f.untolerated_taints.items()
    ]
    if f.selector_mismatch:
        out.append(
            Reason(
                source="scheduler",
                reason="node_selector_mismatch",
                detail=f"{f.selector_mismatch} node(s) do not match the nodeSelector/affinity",
                nodes=f.selector_mismatch,
            )
        )
    if f.unschedulable:
        out.append(
            Reason(
                source="scheduler",
                reason="unschedulable_nodes",
                detail=f"{f.unschedulable} node(s) are cordoned (unschedulable)",
                nodes=f.unschedulable,
            )
        )
    out += [
        Reason(source="scheduler", reason="other", detail=f"{n} node(s): {t}", nodes=n)
        for t, n in f.other.items()
    ]
    return out


# ---------------------------------------------------------------------------- quota, kueue


class QuotaView(ToolOutput):
    name: str
    resource: str
    hard: int
    used: int


def gpu_quotas(items: list[Json]) -> list[QuotaView]:
    out = []
    for q in items:
        hard = (q.get("status") or {}).get("hard") or (q.get("spec") or {}).get("hard") or {}
        used = (q.get("status") or {}).get("used") or {}
        for key, value in hard.items():
            if is_gpu_resource(key.removeprefix("requests.").removeprefix("limits.")):
                out.append(
                    QuotaView(
                        name=clip((q.get("metadata") or {}).get("name"), 253),
                        resource=key,
                        hard=int(parse_quantity(value)),
                        used=int(parse_quantity(used.get(key, "0"))),
                    )
                )
    return out


def quota_reasons(quotas: list[QuotaView], request: dict[str, int]) -> list[Reason]:
    """Quotas a not-yet-created pod requesting ``request`` would exceed."""
    out = []
    for q in quotas:
        need = request.get(q.resource.removeprefix("requests.").removeprefix("limits."), 0)
        if need and q.used + need > q.hard:
            out.append(
                Reason(
                    source="quota",
                    reason="quota_exceeded",
                    detail=f"ResourceQuota {q.name}: {q.resource} used {q.used} + requested "
                    f"{need} > hard {q.hard}",
                )
            )
    return out


def kueue_reasons(workload: Json | None, queue: str) -> list[Reason]:
    if workload is None:
        return [
            Reason(
                source="kueue",
                reason="no_workload",
                detail=f"queue {queue} is set but Kueue has no Workload for it "
                "(Kueue not running, or not yet reconciled)",
            )
        ]
    out = []
    for c in (workload.get("status") or {}).get("conditions") or []:
        ctype, status = c.get("type"), c.get("status")
        bad = (ctype in ("QuotaReserved", "Admitted") and status == "False") or (
            ctype in ("Evicted", "Preempted", "Requeued") and status == "True"
        )
        if bad:
            out.append(
                Reason(
                    source="kueue",
                    reason=clip(f"{ctype}={status} {c.get('reason') or ''}".strip(), 128),
                    detail=clip(c.get("message")),
                )
            )
    if not out and not _true(workload, "Admitted"):
        out.append(Reason(source="kueue", reason="not_admitted", detail=f"queued in {queue}"))
    return out


async def _workload(port: ClusterPort, namespace: str, owner_uid: str) -> Json | None:
    items = await port.list_objects(
        Kind.KUEUE_WORKLOADS,
        namespace,
        label_selector=f"kueue.x-k8s.io/job-uid={owner_uid}",
        limit=10,
    )
    return items[0] if items else None


# ---------------------------------------------------------------------------- explain_pending


class ExplainInput(ClusterInput):
    namespace: DnsLabel
    job: DnsSubdomain | None = None
    pod: DnsSubdomain | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ExplainInput:
        if (self.pod is None) == (self.job is None):
            raise ValueError("give exactly one of `job` or `pod`")
        return self


class PendingExplanation(ToolOutput):
    cluster: str
    namespace: str
    target: str = Field(description="job/NAME or pod/NAME")
    verdict: str
    reasons: list[Reason]
    pending_pods: list[str] = Field(description="examined pending pods (at most 3)")
    scheduler: SchedulerFindings | None = None
    quotas: list[QuotaView] = Field(default_factory=list, description="GPU quotas in namespace")


async def _pod_reasons(
    port: ClusterPort, pod: PodInfo
) -> tuple[list[Reason], SchedulerFindings | None]:
    events = await fetch_events(
        port, pod.namespace, kind="Pod", name=pod.name, reason="FailedScheduling"
    )
    messages = [pod.pending_message] + [e.message for e in events]
    out: list[Reason] = []
    for msg in messages:
        findings = parse_scheduler_message(msg) if msg else None
        if findings:
            return scheduler_reasons(findings), findings
    if pod.pending_message or events:
        out.append(
            Reason(
                source="scheduler",
                reason=clip(pod.pending_reason or "FailedScheduling", 128),
                detail=clip(pod.pending_message or events[0].message),
            )
        )
    elif pod.node:
        out.append(
            Reason(
                source="scheduler",
                reason="scheduled",
                detail=f"bound to node {pod.node}; containers have not started yet",
            )
        )
    elif pod.scheduler != "default-scheduler":
        out.append(
            Reason(
                source="scheduler",
                reason="custom_scheduler",
                detail=clip(f"scheduler {pod.scheduler} has not placed the pod yet"),
            )
        )
    return out, None


def _dedupe(reasons: list[Reason]) -> list[Reason]:
    seen, out = set(), []
    for r in reasons:
        if (r.source, r.reason, r.detail) not in seen:
            seen.add((r.source, r.reason, r.detail))
            out.append(r)
    return out[:30]


def _verdict(reasons: list[Reason], findings: SchedulerFindings | None) -> str:
    """The most decisive reason, in one line: quota, suspension, scheduler, then the rest."""
    first = {r.reason: r for r in reversed(reasons)}
    if r := first.get("quota_exceeded"):
        return "pods cannot be created: the GPU request exceeds the quota: " + r.detail
    if r := first.get("suspended"):
        return "the job is suspended: " + r.detail
    if findings:
        top = "; ".join(r.detail for r in reasons if r.source == "scheduler")
        return f"unschedulable: {findings.available}/{findings.total} nodes fit: {clip(top, 400)}"
    for source in ("kueue", "scheduler", "job"):
        if r := next((r for r in reasons if r.source == source and r.reason != "no_pods"), None):
            return clip(f"{r.reason}: {r.detail}", 500)
    if "no_pods" in first:
        return "the job has no pods yet and no reason was reported (controller lag?)"
    return "pending, but no reason was reported yet (just created?)"


async def _explain(ctx: ToolContext, args: ExplainInput) -> PendingExplanation:
    port = ctx.cluster(args.cluster)
    ns = args.namespace
    reasons: list[Reason] = []
    findings: SchedulerFindings | None = None
    quotas = gpu_quotas(await port.list_objects(Kind.RESOURCE_QUOTAS, ns, limit=100))

    if args.job is not None:
        target = f"job/{args.job}"
        job = await port.get(Kind.JOBS, args.job, ns)
        status = job_status(job)
        queue = job_queue_label(job)
        owner_uid = (job.get("metadata") or {}).get("uid", "")
        if status in ("succeeded", "failed"):
            return PendingExplanation(
                cluster=port.name,
                namespace=ns,
                target=target,
                verdict=f"not pending: the job has {status}",
                reasons=[],
                pending_pods=[],
                quotas=quotas,
            )
        pods = await job_pods(port, ns, args.job)
        if not pods:
            reasons.append(Reason(source="job", reason="no_pods", detail="no pods exist yet"))
            if status == "suspended":
                why = (
                    "Kueue admits it by unsuspending once quota is available"
                    if queue
                    else "nothing runs until spec.suspend is set to false"
                )
                reasons.append(Reason(source="job", reason="suspended", detail=why))
            reasons += quota_reasons(quotas, job_gpus(job))
            for e in (await fetch_events(port, ns, kind="Job", name=args.job))[:3]:
                reasons.append(Reason(source="job", reason=e.reason, detail=e.message))
    else:
        target = f"pod/{args.pod}"
        assert args.pod is not None
        pod = PodInfo.from_json(await port.get(Kind.PODS, args.pod, ns))
        pods = [pod]
        queue = pod.labels.get(KUEUE_QUEUE)
        owner_uid = pod.uid
        if pod.owner_kind == "Job":
            try:
                owner = await port.get(Kind.JOBS, pod.owner_name, ns)
                owner_uid = (owner.get("metadata") or {}).get("uid", owner_uid)
                queue = queue or job_queue_label(owner)
            except ToolError:
                pass

    pending = [p for p in pods if p.phase == "Pending"][:3]
    if pods and not pending:
        phases = ", ".join(sorted({p.phase for p in pods}))
        return PendingExplanation(
            cluster=port.name,
            namespace=ns,
            target=target,
            verdict=f"not pending: its pods are {phases}",
            reasons=[],
            pending_pods=[],
            quotas=quotas,
        )
    results: dict[str, tuple[list[Reason], SchedulerFindings | None]] = {}

    async def one(p: PodInfo) -> None:
        results[p.name] = await _pod_reasons(port, p)

    async with anyio.create_task_group() as tg:
        for p in pending:
            tg.start_soon(one, p)
    for p in pending:
        found, parsed = results[p.name]
        reasons += found
        findings = findings or parsed
    if queue:
        reasons += kueue_reasons(await _workload(port, ns, owner_uid), clip(queue, 253))
    reasons = _dedupe(reasons)
    return PendingExplanation(
        cluster=port.name,
        namespace=ns,
        target=target,
        verdict=_verdict(reasons, findings),
        reasons=reasons,
        pending_pods=[p.name for p in pending],
        scheduler=findings,
        quotas=quotas,
    )


def _explain_summary(out: PendingExplanation) -> str:
    lines = [f"{out.cluster}/{out.namespace}/{out.target}: {out.verdict}"]
    lines += [f"  [{r.source}] {r.reason}: {r.detail}" for r in out.reasons]
    lines += [f"  quota {q.name} {q.resource}: {q.used}/{q.hard} used" for q in out.quotas]
    return "\n".join(lines)


EXPLAIN_PENDING: ToolSpec[ExplainInput, PendingExplanation] = ToolSpec(
    name="explain_pending",
    title="Explain pending",
    description=(
        "Why a Job or pod is not running: the scheduler's reasons (insufficient GPUs by node "
        "count, untolerated taints, selector/affinity mismatch, cordoned nodes), the "
        "namespace's GPU ResourceQuota, Kueue admission and suspension, with a one-line verdict."
    ),
    input=ExplainInput,
    output=PendingExplanation,
    run=_explain,
    summary=_explain_summary,
    examples=(
        (
            "Why is job resnet-7 in team-x still pending?",
            {"namespace": "team-x", "job": "resnet-7"},
        ),
        ("Why is pod web-1 in team-x not running?", {"namespace": "team-x", "pod": "web-1"}),
    ),
)
