"""A submitted Job as a long-running task: its id, its state, and cancelling it.

MCP's Tasks extension answers a ``submit_job`` with a task that the client then polls. The
task keeps no state of its own: the Job is the task. Its id encodes where the Job is and which
Job it is (cluster, namespace, name and uid), so any replica resolves it, before or after a
restart, from the Job alone; the uid keeps a later Job of the same name from answering for it.
Who may see or cancel a task is also read from the Job: ``submit_job`` labels it with the
submitting principal, and a Job submitted by someone else, not submitted through mcp-kube, of
another uid, or gone, is one answer: no such task (nothing is said of other people's jobs).

The two specs here run through the gate under the names of the tools they stand for, so that
policy and audit treat them as those: ``TASK_STATUS`` is a ``get_job`` (plus the why-pending
verdict while the Job waits), ``TASK_CANCEL`` a ``cancel_job`` by the same principal.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any, Literal

from pydantic import Field, ValidationError

from mcp_kube.domain import Json
from mcp_kube.errors import NotFound
from mcp_kube.kube.objects import JobInfo
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.tools.base import ToolContext, ToolSpec
from mcp_kube.tools.common import clip
from mcp_kube.tools.jobs import GET_JOB, JobDetail, JobInput
from mcp_kube.tools.jobspec import (
    IDEMPOTENCY_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SUBMITTED_BY_LABEL,
    IdempotencyKey,
    preview_manifest,
)
from mcp_kube.tools.jobspec import principal_label as owner_label
from mcp_kube.tools.pending import EXPLAIN_PENDING, ExplainInput
from mcp_kube.tools.writes import CANCEL_JOB, JobActionInput, JobActionOutput, SubmitJobOutput

__all__ = [
    "MAX_TASK_ID",
    "NO_SUCH_TASK",
    "TASK_CANCEL",
    "TASK_ID_PREFIX",
    "TASK_STATUS",
    "TaskRef",
    "TaskRefInput",
    "TaskState",
    "decode_task_id",
    "encode_task_id",
]

TASK_ID_PREFIX = "job1."  # the id's version: a later encoding gets another prefix
# Every task id, of either kind (``job1.`` here, ``submit1.`` in ``tools.tasksubmit``), fits
# in this many characters: it travels in the Mcp-Name header of each tasks/* request.
MAX_TASK_ID = 8192
NO_SUCH_TASK = "no such task (the job is gone, or it is not yours)"
UID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$"  # a Kubernetes uid (a UUID)
TaskStatus = Literal["working", "completed", "cancelled"]


class TaskRefInput(JobInput):
    """Which Job a task is; ``uid`` is None for the reads that look for the Job by name: right
    after ``submit_job``, and for a task that waited for an approval (its Job must then carry
    the submit's ``idempotency_key``)."""

    uid: str | None = Field(None, pattern=UID_PATTERN)
    idempotency_key: IdempotencyKey | None = None


class TaskRef(JobInput):
    """Which Job a task is, as its id says."""

    uid: str = Field(pattern=UID_PATTERN)


def encode_task_id(cluster: str, namespace: str, name: str, uid: str) -> str:
    """A stable id for the Job: the same Job always gives the same id."""
    raw = json.dumps([cluster, namespace, name, uid], separators=(",", ":")).encode()
    return TASK_ID_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_task_id(task_id: str) -> TaskRef | None:
    """The Job an id names, or None for anything that is not an id this server issued."""
    if len(task_id) > MAX_TASK_ID or not task_id.startswith(TASK_ID_PREFIX):
        return None
    body = task_id[len(TASK_ID_PREFIX) :]
    try:
        parts = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(parts, list) or len(parts) != 4 or not all(isinstance(p, str) for p in parts):
        return None
    cluster, namespace, name, uid = parts
    try:
        return TaskRef(cluster=cluster, namespace=namespace, name=name, uid=uid)
    except ValidationError:
        return None


class TaskState(SubmitJobOutput):
    """The task: a ``submit_job`` result (so that its final result fits the tool's output
    schema) read back from the Job, with where the Job stands."""

    task_id: str
    status: TaskStatus = Field(description="the task's status: follows the Job")
    message: str = Field(description="where the Job stands, in one line")
    job_status: str = Field(description="the Job's state: active, suspended, succeeded, failed")
    created_at: dt.datetime | None
    updated_at: dt.datetime | None = Field(description="the Job's latest change that is known")
    pending: str | None = Field(None, description="why the Job is not running (explain_pending)")
    job: JobDetail | None = Field(None, description="the Job as get_job shows it")


async def _owned_job(ctx: ToolContext, port: ClusterPort, ref: TaskRef | TaskRefInput) -> Json:
    """The Job the task names, if the caller submitted it; else no such task."""
    try:
        job = await port.get(Kind.JOBS, ref.name, ref.namespace)
    except NotFound:
        raise NotFound(NO_SUCH_TASK) from None
    meta = job.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    labels = meta.get("labels")
    labels = labels if isinstance(labels, dict) else {}
    if (
        labels.get(MANAGED_BY_LABEL) != MANAGED_BY
        or labels.get(SUBMITTED_BY_LABEL) != owner_label(ctx.principal.subject)
        or (ref.uid is not None and meta.get("uid") != ref.uid)
        or (isinstance(ref, TaskRefInput) and not _same_key(ref, labels))
    ):
        raise NotFound(NO_SUCH_TASK)
    return job


def _same_key(ref: TaskRefInput, labels: dict[str, Any]) -> bool:
    return ref.idempotency_key is None or labels.get(IDEMPOTENCY_LABEL) == ref.idempotency_key


def _updated(job: JobInfo) -> dt.datetime | None:
    times = [job.created, job.started, job.completion_time]
    times += [c.last_transition for c in job.conditions]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _waiting(job: JobInfo, detail: JobDetail) -> bool:
    """Held by Kueue or the scheduler: suspended, no pods yet, or pods pending, none running."""
    phases = {p.phase for p in detail.pods}
    return job.suspend or not phases or ("Pending" in phases and "Running" not in phases)


def _running_text(detail: JobDetail) -> str:
    phases: dict[str, int] = {}
    for p in detail.pods:
        phases[p.phase] = phases.get(p.phase, 0) + 1
    pods = ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items())) or "no pods"
    # pods that have all ended while the Job is not marked Complete or Failed yet: finishing
    state = "running" if "Running" in phases or not phases else "finishing"
    parts = [f"{detail.name}: {state}", f"pods: {pods}", f"{detail.restarts} restarts"]
    if detail.progress is not None:
        found = detail.progress.model_dump()
        parts.append(" ".join(f"{k} {v}" for k, v in found.items() if v is not None))
    if detail.gpu_use is not None and detail.gpu_use.stats is not None:
        parts.append(f"GPU utilization {detail.gpu_use.stats.utilization_mean}%")
    return "; ".join(parts)


def _ended_text(detail: JobDetail) -> str:
    why = next((c for c in detail.conditions if c.type in ("Complete", "Failed")), None)
    reason = f" ({clip(why.reason + ': ' + why.message, 300)})" if why and why.reason else ""
    took = f" after {detail.duration_s:.0f}s" if detail.duration_s is not None else ""
    return f"{detail.name}: {detail.status}{took}{reason}; {detail.succeeded} pods succeeded"


async def _task_status(ctx: ToolContext, args: TaskRefInput) -> TaskState:
    port = ctx.cluster(args.cluster)
    raw = await _owned_job(ctx, port, args)
    info = JobInfo.from_json(raw)
    deleting = bool((raw.get("metadata") or {}).get("deletionTimestamp"))
    detail: JobDetail | None = None
    pending: str | None = None
    status: TaskStatus = "working"
    if deleting:
        status, message = "cancelled", f"{args.name}: cancelled (the job is being deleted)"
    else:
        where = JobInput(cluster=args.cluster, namespace=args.namespace, name=args.name)
        detail = await GET_JOB.run(ctx, where)
        if info.terminal:
            status, message = "completed", _ended_text(detail)
        else:
            if _waiting(info, detail):
                ask = ExplainInput(cluster=args.cluster, namespace=args.namespace, job=args.name)
                verdict = (await EXPLAIN_PENDING.run(ctx, ask)).verdict
                pending = None if verdict.startswith("not pending") else verdict
            message = f"{args.name}: pending: {pending}" if pending else _running_text(detail)
    labels = (raw.get("metadata") or {}).get("labels") or {}
    return TaskState(
        created=True,
        cluster=port.name,
        namespace=args.namespace,
        name=args.name,
        idempotency_key=str(labels.get(IDEMPOTENCY_LABEL) or ""),
        approval="as recorded in the audit log of the submit_job call",
        policy_changes=[],
        warnings=[],
        rules=[],
        preview=preview_manifest(raw),
        task_id=encode_task_id(port.name, args.namespace, args.name, info.uid),
        status=status,
        message=clip(message, 1000),
        job_status=info.state,
        created_at=info.created,
        updated_at=_updated(info),
        pending=pending,
        job=detail,
    )


def _status_summary(out: TaskState) -> str:
    lines = [f"task {out.status}: {out.message}"]
    if out.job is not None:
        lines.append(GET_JOB.summary(out.job))
    return "\n".join(lines)


TASK_STATUS: ToolSpec[TaskRefInput, TaskState] = ToolSpec(
    name="get_job",  # policy and audit see what it is: a read of the caller's own Job
    title="Task status",
    description="The state of a submitted Job as a task (tasks/get); not listed as a tool.",
    input=TaskRefInput,
    output=TaskState,
    run=_task_status,
    summary=_status_summary,
)


async def _task_cancel(ctx: ToolContext, args: TaskRef) -> JobActionOutput:
    await _owned_job(ctx, ctx.cluster(args.cluster), args)
    target = JobActionInput(cluster=args.cluster, namespace=args.namespace, name=args.name)
    return await CANCEL_JOB.run(ctx, target)


TASK_CANCEL: ToolSpec[TaskRef, JobActionOutput] = ToolSpec(
    name="cancel_job",  # policy decides and audit records it as the caller's cancel_job
    title="Cancel task",
    description="Delete the Job of a task (tasks/cancel); not listed as a tool.",
    input=TaskRef,
    output=JobActionOutput,
    run=_task_cancel,
    summary=CANCEL_JOB.summary,
    read_only=False,
)
