"""A followed task's state as the front ends show it, and the task's wire shapes.

``read_view`` turns a state of a ``submit_job`` task (MCP's Tasks extension) into a
``TaskView``: the task's status, the job's state in one word, and the numbers the server's
status line (or, once the task has completed, its result) carries: step, loss, GPU utilization,
restarts. The number of steps a job runs is read from its submit (``total_steps``), when named.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mcp_types import Result

__all__ = ["CreatedTask", "DetailedTask", "TaskView", "read_view", "total_steps"]

TOTAL_ENV = ("TOTAL_STEPS", "MAX_STEPS", "NUM_STEPS", "TRAIN_STEPS")
_TOTAL_ARG = re.compile(r"^--(?:total|max|num|train)[-_]steps(?:=(\d+))?$")
_STEP = re.compile(r"\bstep (\d+)(?:\s*/\s*(\d+))?")
_LOSS = re.compile(r"\bloss ([0-9.]+(?:e-?\d+)?)")
_GPU = re.compile(r"\bGPU utilization ([0-9.]+)%")
_RESTARTS = re.compile(r"\b(\d+) restarts\b")


class _Task(Result):
    """The fields every task answer has."""

    task_id: str
    status: str
    status_message: str | None = None
    created_at: str = ""
    last_updated_at: str = ""
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None


class CreatedTask(_Task):
    """The server's answer to a tool call that became a task (``resultType: "task"``)."""

    result_type: Literal["task"] = "task"


class DetailedTask(_Task):
    """A task as ``tasks/get`` returns it; ``result`` once it has completed."""

    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskView:
    """One state of a followed task, as a front end shows it."""

    task_id: str
    status: str  # the task's: working, completed, cancelled (failed: a protocol error)
    state: str  # the job's, in one word: pending, running, succeeded, failed, cancelled
    message: str
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    gpu_util: float | None = None
    restarts: int | None = None
    elapsed_s: float = 0.0
    following: bool = True  # False on the last view: the follow has ended or stopped
    note: str = ""  # why the follow stopped before the task ended, and how to go on

    @property
    def fraction(self) -> float | None:
        """How far the job is, 0 to 1, when the steps tell (or it has succeeded)."""
        if self.state == "succeeded":
            return 1.0
        if self.step is None or not self.total:
            return None
        return max(0.0, min(1.0, self.step / self.total))

    def event(self) -> dict[str, Any]:
        """The view as a JSON object."""
        return asdict(self) | {"fraction": self.fraction, "elapsed_s": round(self.elapsed_s, 1)}

    def line(self) -> str:
        """The view as one line of text."""
        parts = [f"task {self.state}"]
        if self.step is not None:
            parts.append(f"step {self.step}" + (f"/{self.total}" if self.total else ""))
        if self.loss is not None:
            parts.append(f"loss {self.loss:g}")
        if self.gpu_util is not None:
            parts.append(f"GPU {self.gpu_util:g}%")
        parts.append(self.note or self.message)
        return f"[{self.elapsed_s:5.0f}s] " + " · ".join(p for p in parts if p)


def total_steps(arguments: dict[str, Any]) -> int | None:
    """The number of training steps a submit names, when it does: an env variable such as
    ``TOTAL_STEPS``/``MAX_STEPS``, or an argument such as ``--max-steps=N``."""
    env = arguments.get("env")
    if isinstance(env, dict):
        for key in TOTAL_ENV:
            value = str(env.get(key, "")).strip()
            if value.isdigit() and int(value) > 0:
                return int(value)
    words = [str(a) for a in [*(arguments.get("command") or []), *(arguments.get("args") or [])]]
    for i, word in enumerate(words):
        found = _TOTAL_ARG.match(word)
        if not found:
            continue
        value = found.group(1) or (words[i + 1] if i + 1 < len(words) else "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _number(pattern: re.Pattern[str], text: str) -> float | None:
    found = pattern.search(text)
    return float(found.group(1)) if found else None


def _dict(value: object, key: str) -> dict[str, Any]:
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, dict) else {}


def _from_result(task: DetailedTask) -> dict[str, Any]:
    """Step, loss, GPU utilization, restarts and the job's status from a final result."""
    out = _dict(task.result, "structuredContent")
    job = _dict(out, "job")
    progress = _dict(job, "progress")
    stats = _dict(_dict(job, "gpu_use"), "stats")
    return {
        "job_status": out.get("job_status") or job.get("status"),
        "step": progress.get("step"),
        "loss": progress.get("loss"),
        "gpu_util": stats.get("utilization_mean"),
        "restarts": job.get("restarts"),
    }


def _state(task: DetailedTask, job_status: object) -> str:
    message = task.status_message or ""
    if task.status == "completed":
        return str(job_status or ("failed" if (task.result or {}).get("isError") else "ended"))
    if task.status == "input_required":  # a submit whose approval is still awaited
        return "waiting for approval"
    if task.status != "working":
        return task.status
    if ": pending" in message:
        return "pending"
    return "finishing" if ": finishing" in message else "running"


def read_view(task: DetailedTask, total: int | None, elapsed_s: float) -> TaskView:
    """What a task state says: its status, the job's state, and the numbers its message (or,
    once completed, its result) carries."""
    message = task.status_message or ""
    found = _from_result(task) if task.result else {}
    step_match = _STEP.search(message)
    step = found.get("step")
    if step is None and step_match:
        step = int(step_match.group(1))
    if step_match and step_match.group(2):
        total = int(step_match.group(2))
    loss = found.get("loss")
    gpu = found.get("gpu_util")
    restarts = found.get("restarts")
    return TaskView(
        task_id=task.task_id,
        status=task.status,
        state=_state(task, found.get("job_status")),
        message=message,
        step=step,
        total=total,
        loss=float(loss) if loss is not None else _number(_LOSS, message),
        gpu_util=float(gpu) if gpu is not None else _number(_GPU, message),
        restarts=int(restarts) if restarts is not None else _maybe_int(_RESTARTS, message),
        elapsed_s=elapsed_s,
    )


def _maybe_int(pattern: re.Pattern[str], text: str) -> int | None:
    value = _number(pattern, text)
    return int(value) if value is not None else None
