"""wait_job: follow one Job until it ends, within one bounded call, reporting progress.

A client that wants to follow a training job calls ``wait_job`` instead of asking ``get_job``
again and again. The call polls the Job (every ``POLL_S``) until the Job controller marks it
Complete or Failed, or until its wait bound: the caller's ``timeout_s``, capped so that the
call always ends inside the server's per-call time limit (``limits.call_timeout_s``) with
room for the final read. While it waits it sends progress reports (``tools.progress``) when
the caller asked for them: state, pods, restarts and the step / loss parsed from the newest
pod's log. It answers with the Job as ``get_job`` shows it (status, conditions, pods, warnings,
log tail, progress) and whether it ended; a wait that runs out is not an error.
"""

from __future__ import annotations

import time

import anyio
from pydantic import Field

from mcp_kube.errors import ToolError
from mcp_kube.kube.objects import JobInfo, PodInfo
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.tools import nearby
from mcp_kube.tools.base import ToolContext, ToolOutput, ToolSpec
from mcp_kube.tools.common import clip, clip_lines
from mcp_kube.tools.jobs import GET_JOB, JobDetail, JobInput
from mcp_kube.tools.progress import report
from mcp_kube.tools.reads import job_pods, parse_progress

__all__ = ["WAIT_JOB", "JobWait", "WaitJobInput", "describe", "wait_budget"]

POLL_S = 2.0  # between two reads of the Job while waiting
FINAL_READ_S = 10.0  # kept from the call's time limit for the final read (get_job)
MIN_WAIT_S = 1.0
DEFAULT_WAIT_S = 60
MAX_WAIT_S = 300
PROGRESS_LOG_LINES = 20


class WaitJobInput(JobInput):
    timeout_s: int = Field(
        DEFAULT_WAIT_S,
        ge=1,
        le=MAX_WAIT_S,
        description=(
            "seconds to wait at most; the server may wait less (its per-call time limit). "
            "Call again to keep following a job that has not ended"
        ),
    )


class JobWait(ToolOutput):
    ended: bool = Field(description="the Job reached Complete or Failed (terminal)")
    waited_s: float = Field(description="seconds this call waited")
    wait_limit_s: float = Field(description="the bound applied: timeout_s, or less (see note)")
    note: str | None = Field(None, description="why the bound is lower than timeout_s")
    polls: int = Field(description="reads of the Job while waiting")
    job: JobDetail = Field(description="the Job as get_job shows it, read when the wait ended")


def wait_budget(requested: float, call_timeout_s: float) -> tuple[float, str | None]:
    """The seconds a wait may last inside a call limited to ``call_timeout_s``, and a note
    when that is less than requested: the final read keeps its share of the limit."""
    room = max(MIN_WAIT_S, call_timeout_s - min(FINAL_READ_S, call_timeout_s / 3))
    if requested <= room:
        return float(requested), None
    return room, (
        f"waited at most {room:g}s of the {requested:g}s asked: the server's per-call limit "
        f"is {call_timeout_s:g}s; call again to keep following the job"
    )


async def _progress_of(ctx: ToolContext, port: ClusterPort, pods: list[PodInfo]) -> str:
    """Step / epoch / loss / throughput from the newest running pod's log, as text."""
    running = next((p for p in pods if p.phase == "Running" and p.node), None)
    if running is None:
        return ""
    try:
        chunk = await port.pod_log(
            running.namespace,
            running.name,
            container=running.containers[0] if running.containers else None,
            tail_lines=PROGRESS_LOG_LINES,
            since_seconds=None,
            limit_bytes=min(16 * 1024, ctx.limits.max_log_bytes),
            previous=False,
        )
    except ToolError:  # no log yet: progress is shown without it
        return ""
    found = parse_progress(clip_lines(chunk.text), ctx.progress_patterns)
    if found is None:
        return ""
    return " ".join(f"{k} {v}" for k, v in found.model_dump().items() if v is not None)


def describe(job: JobInfo, pods: list[PodInfo], progress: str) -> str:
    """One line on where a Job stands: what a progress report says (with why a pod waits)."""
    phases: dict[str, int] = {}
    for p in pods:
        phases[p.phase or "Unknown"] = phases.get(p.phase or "Unknown", 0) + 1
    pod_text = ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items())) or "no pods"
    restarts = sum(p.restarts for p in pods)
    parts = [f"{job.name}: {job.state}", f"pods: {pod_text}", f"{restarts} restarts"]
    held = next((p for p in pods if p.phase == "Pending" and p.pending_reason), None)
    if held is not None:  # e.g. Unschedulable: 0/12 nodes are available ...
        why = ": ".join(x for x in (held.pending_reason, held.pending_message) if x)
        parts.append(f"pending: {clip(why, 160)}")
    if progress:
        parts.append(progress)
    return "; ".join(parts)


async def _wait_job(ctx: ToolContext, args: WaitJobInput) -> JobWait:
    port = ctx.cluster(args.cluster)
    limit, note = wait_budget(args.timeout_s, ctx.limits.call_timeout_s)
    started = time.monotonic()
    polls = 0
    raw = await nearby.get_named(ctx, port, Kind.JOBS, args.name, args.namespace)
    while True:
        job = JobInfo.from_json(raw)
        polls += 1
        waited = time.monotonic() - started
        if job.terminal or waited + POLL_S > limit:
            break
        pods = await job_pods(port, args.namespace, args.name)
        message = describe(job, pods, await _progress_of(ctx, port, pods))
        await report(round(waited, 3), limit, message)
        await anyio.sleep(max(0.0, min(POLL_S, limit - (time.monotonic() - started))))
        raw = await port.get(Kind.JOBS, args.name, args.namespace)
    detail = await GET_JOB.run(ctx, args)
    waited = round(time.monotonic() - started, 1)
    ended = detail.status in ("succeeded", "failed")
    if ended:  # the last report: full, and above every earlier one
        await report(max(waited, round(limit, 1)), limit, f"{job.name}: {detail.status} (ended)")
    return JobWait(
        ended=ended,
        waited_s=waited,
        wait_limit_s=round(limit, 1),
        note=note,
        polls=polls,
        job=detail,
    )


def _summary(out: JobWait) -> str:
    head = (
        f"{out.job.name} ended ({out.job.status}) after {out.waited_s:g}s of waiting"
        if out.ended
        else f"{out.job.name} has not ended after {out.waited_s:g}s ({out.job.status}); "
        "call wait_job again to keep following it"
    )
    lines = [head]
    if out.note:
        lines.append(f"  note: {out.note}")
    lines.append(GET_JOB.summary(out.job))
    return "\n".join(lines)


WAIT_JOB: ToolSpec[WaitJobInput, JobWait] = ToolSpec(
    name="wait_job",
    title="Wait for job",
    description=(
        "Follow one Job until it ends (Complete or Failed) or `timeout_s` runs out, whichever "
        "comes first; the server may cap the wait at its per-call limit. Sends progress "
        "notifications while waiting (state, pods, restarts, step and loss from the log) when "
        "the client asks for progress. Answers with the Job as get_job shows it and whether "
        "it ended; a job still running is not an error: call again to keep following it."
    ),
    input=WaitJobInput,
    output=JobWait,
    run=_wait_job,
    summary=_summary,
    examples=(
        (
            "Wait until job resnet-7 in team-x finishes",
            {"namespace": "team-x", "name": "resnet-7"},
        ),
        (
            "Follow job resnet-7 in team-x for two minutes",
            {"namespace": "team-x", "name": "resnet-7", "timeout_s": 120},
        ),
    ),
)
