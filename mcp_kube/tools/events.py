"""list_events: recent events of a namespace, newest first, warnings by default.

Filtering happens on the API server (field selectors on type and involvedObject), so a busy
namespace costs one narrow request. Messages come from controllers and workloads: they are
clipped, and only the fields a person reads are kept (``reads.fetch_events``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mcp_kube.domain import DnsLabel, DnsSubdomain
from mcp_kube.tools.base import ClusterInput, ToolContext, ToolOutput, ToolSpec, clamp_limit
from mcp_kube.tools.reads import EventView, fetch_events

__all__ = ["LIST_EVENTS"]

ObjectKind = Literal["Pod", "Job", "Node", "PersistentVolumeClaim"]


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
