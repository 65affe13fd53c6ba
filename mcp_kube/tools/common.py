"""Helpers every kind of tool shares: bounded strings, GPU counts in words, the fleet fan-out.

Not a tool module: tool modules import from here (and from ``base``, ``reads``, ``gpuview``,
``schedmsg``), never from each other, so that each tool can change or go on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from pydantic import Field

from mcp_kube.domain import ClusterName, Json
from mcp_kube.errors import ToolError
from mcp_kube.kube.objects import JobInfo, JobState
from mcp_kube.kube.port import ClusterPort
from mcp_kube.tools.base import ClusterInput, ToolOutput

__all__ = [
    "LINE_CHARS",
    "MESSAGE_CHARS",
    "ClusterStatus",
    "FleetInput",
    "clip",
    "clip_lines",
    "fan_out",
    "gpu_text",
    "job_gpus",
    "job_status",
    "unavailable_lines",
]

T = TypeVar("T")
MESSAGE_CHARS = 300  # a message from the cluster (event, condition, error), at most
LINE_CHARS = 2000  # one line of a workload's log, at most


def clip(text: Any, limit: int = MESSAGE_CHARS) -> str:
    """A string from the cluster, bounded: cut ones end with an ellipsis."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def clip_lines(text: str, limit: int = LINE_CHARS) -> list[str]:
    """The lines of ``text``, each bounded like ``clip``."""
    return [clip(ln, limit) for ln in text.splitlines()]


def gpu_text(gpus: dict[str, int], empty: str = "none") -> str:
    """``2 nvidia.com/gpu, 1 nvidia.com/mig-1g.10gb``; ``empty`` when there are none."""
    return ", ".join(f"{n} {r}" for r, n in gpus.items()) or empty


def job_status(job: Json) -> JobState:
    """The state of a Job given as an API object (``JobInfo.state``)."""
    return JobInfo.from_json(job).state


def job_gpus(job: Json) -> dict[str, int]:
    """GPUs one pod of a Job (or a Job manifest) asks for, from its pod template."""
    return JobInfo.from_json(job).gpus


# ---------------------------------------------------------------------------- the fleet


class ClusterStatus(ToolOutput):
    cluster: str
    reachable: bool = True
    error: str | None = None


class FleetInput(ClusterInput):
    cluster: ClusterName | None = Field(None, description="one cluster; default: every cluster")


def unavailable_lines(clusters: list[ClusterStatus]) -> list[str]:
    return [f"{c.cluster}: unavailable ({c.error})" for c in clusters if not c.reachable]


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
            error=clip(str(failed[p.name]), 300) if p.name in failed else None,
        )
        for p in ports
    ]
    return got, status
