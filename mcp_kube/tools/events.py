"""list_events: recent events of a namespace, newest first, warnings by default.

Filtering happens on the API server (field selectors on type and involvedObject), so a busy
namespace costs one narrow request. Messages come from controllers and workloads: they are
clipped, and only the fields a person reads are kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from mcp_kube.domain import DnsLabel, DnsSubdomain
from mcp_kube.kube.objects import parse_time
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.tools.base import ClusterInput, ToolContext, ToolOutput, ToolSpec, clamp_limit

__all__ = ["LIST_EVENTS", "EventView", "clip", "fetch_events"]

MESSAGE_CHARS = 300
EVENT_SCAN = 5000  # events read per request at most; events expire within hours anyway

ObjectKind = Literal["Pod", "Job", "Node", "PersistentVolumeClaim"]


def clip(text: Any, limit: int = MESSAGE_CHARS) -> str:
    """A string from the cluster, bounded: cut ones end with an ellipsis."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


class EventView(ToolOutput):
    type: str
    reason: str
    message: str = Field(description=f"at most {MESSAGE_CHARS} characters")
    object_kind: str
    object_name: str
    count: int
    last_time: dt.datetime | None = None


def event_view(obj: dict[str, Any]) -> EventView:
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


class ListEventsInput(ClusterInput):
    namespace: DnsLabel
    kind: ObjectKind | None = Field(None, description="only events about this kind of object")
    name: DnsSubdomain | None = Field(None, description="only events about this object")
    warnings_only: bool = Field(True, description="false: Normal events too")
    limit: int | None = Field(None, ge=1, le=1000, description="newest events to return")


class EventList(ToolOutput):
    cluster: str
    namespace: str
    events: list[EventView] = Field(description="newest first")
    total: int = Field(description="matching events before the limit")


async def _list_events(ctx: ToolContext, args: ListEventsInput) -> EventList:
    port = ctx.cluster(args.cluster)
    events = await fetch_events(
        port, args.namespace, kind=args.kind, name=args.name, warnings_only=args.warnings_only
    )
    limit = clamp_limit(args.limit, ctx.limits)
    return EventList(
        cluster=port.name, namespace=args.namespace, events=events[:limit], total=len(events)
    )


def _summary(out: EventList) -> str:
    what = "events" if out.total else "no matching events"
    lines = [f"{out.cluster}/{out.namespace}: {what} ({len(out.events)} of {out.total} shown)"]
    for e in out.events:
        when = e.last_time.isoformat() if e.last_time else "?"
        lines.append(
            f"{when} {e.type} {e.reason} {e.object_kind}/{e.object_name} x{e.count}: {e.message}"
        )
    return "\n".join(lines)


LIST_EVENTS: ToolSpec[ListEventsInput, EventList] = ToolSpec(
    name="list_events",
    title="List events",
    description=(
        "Recent events in a namespace, newest first: type, reason, message, object, count, "
        "last time. Warnings only by default; filter by object kind and name."
    ),
    input=ListEventsInput,
    output=EventList,
    run=_list_events,
    summary=_summary,
    examples=(
        ("Any warning events in team-x?", {"namespace": "team-x"}),
        ("Show the events of job resnet-7 in team-x", {"namespace": "team-x", "name": "resnet-7"}),
    ),
)
