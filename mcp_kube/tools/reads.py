"""Reads several tools share: a namespace's events, a Job's pods, training progress in logs.

Not a tool module (see ``common``). Events are filtered on the API server (field selectors on
type, involvedObject and reason), so a busy namespace costs one narrow request; messages come
from controllers and workloads and are clipped, and only the fields a person reads are kept.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from pydantic import Field

from mcp_kube.domain import Json
from mcp_kube.kube.objects import PodInfo
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.kube.scalars import parse_time
from mcp_kube.tools.base import ToolOutput
from mcp_kube.tools.common import MESSAGE_CHARS, clip

__all__ = ["EventView", "Progress", "event_view", "fetch_events", "job_pods", "parse_progress"]

EVENT_SCAN = 5000  # events read per request at most; events expire within hours anyway
POD_SCAN = 1000  # pods of one job read at most


# ---------------------------------------------------------------------------- events


class EventView(ToolOutput):
    type: str
    reason: str
    message: str = Field(description=f"at most {MESSAGE_CHARS} characters")
    object_kind: str
    object_name: str
    count: int
    last_time: dt.datetime | None = None


def event_view(obj: Json) -> EventView:
    involved = obj.get("involvedObject") or {}
    series = obj.get("series") or {}
    last = (
        series.get("lastObservedTime")
        or obj.get("lastTimestamp")
        or obj.get("eventTime")
        or (obj.get("metadata") or {}).get("creationTimestamp")
    )
    try:
        when = parse_time(last)
    except ValueError:
        when = None
    return EventView(
        type=clip(obj.get("type") or "Normal", 32),
        reason=clip(obj.get("reason"), 128),
        message=clip((obj.get("message") or "").strip()),
        object_kind=clip(involved.get("kind"), 64),
        object_name=clip(involved.get("name"), 253),
        count=int(series.get("count") or obj.get("count") or 1),
        last_time=when,
    )


def _newest_first(e: EventView) -> tuple[float, str]:
    return (-(e.last_time.timestamp() if e.last_time else 0.0), e.object_name)


async def fetch_events(
    port: ClusterPort,
    namespace: str,
    *,
    kind: str | None = None,
    name: str | None = None,
    warnings_only: bool = True,
    reason: str | None = None,
) -> list[EventView]:
    """Matching events, newest first (selectors are applied by the API server)."""
    selectors = []
    if warnings_only:
        selectors.append("type=Warning")
    if kind:
        selectors.append(f"involvedObject.kind={kind}")
    if name:
        selectors.append(f"involvedObject.name={name}")
    if reason:
        selectors.append(f"reason={reason}")
    items = await port.list_objects(
        Kind.EVENTS, namespace, field_selector=",".join(selectors) or None, limit=EVENT_SCAN
    )
    return sorted((event_view(o) for o in items), key=_newest_first)


# ---------------------------------------------------------------------------- a job's pods


async def job_pods(port: ClusterPort, namespace: str, job: str) -> list[PodInfo]:
    """The job's pods (label ``job-name``), newest first."""
    items = await port.list_objects(
        Kind.PODS, namespace, label_selector=f"job-name={job}", limit=POD_SCAN
    )
    pods = [PodInfo.from_json(o) for o in items]
    return sorted(
        pods, key=lambda p: (p.created.timestamp() if p.created else 0.0, p.name), reverse=True
    )


# ---------------------------------------------------------------------------- progress


class Progress(ToolOutput):
    step: int | None = None
    epoch: int | None = None
    loss: float | None = None
    throughput: float | None = None


_FIELDS = ("step", "epoch", "loss", "throughput")


def _compile(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """The patterns that compile and name at least one progress field."""
    compiled = []
    for p in patterns:
        try:
            rx = re.compile(p)
        except re.error:
            continue
        if set(rx.groupindex) & set(_FIELDS):
            compiled.append(rx)
    return compiled


def parse_progress(lines: Sequence[str], patterns: Sequence[str]) -> Progress | None:
    """Last value seen of each named group (step/epoch/loss/throughput) over the lines.

    Patterns come from settings; one that does not compile is skipped, not fatal.
    """
    compiled = _compile(patterns)
    seen: dict[str, float] = {}
    for line in lines:
        for rx in compiled:
            m = rx.search(line)
            if not m:
                continue
            for key, value in m.groupdict().items():
                if key not in _FIELDS or value is None:
                    continue
                try:
                    seen[key] = float(value)
                except ValueError:
                    continue
    if not seen:
        return None
    return Progress(
        step=int(seen["step"]) if "step" in seen else None,
        epoch=int(seen["epoch"]) if "epoch" in seen else None,
        loss=seen.get("loss"),
        throughput=seen.get("throughput"),
    )
