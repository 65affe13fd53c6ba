"""W3C trace context (``traceparent``/``tracestate``) of one tool call.

A caller may send its trace context in the request's ``_meta`` (MCP 2026-07-28). The server
takes it only when it is well-formed; a malformed value is dropped (never echoed) and a new
trace is started instead, as when none was sent. Either way the call gets its own span id, a
child of the caller's span: that span is the parent of every Kubernetes request the call
makes (the ``traceparent`` header) and of nothing else. Pure: no I/O, no SDK.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Literal

__all__ = ["TraceContext", "child_of", "new_trace", "parse_traceparent", "valid_tracestate"]

# version 00: exactly four fields; ids lowercase hex, never all zero. Later versions may append
# fields ("-..."); the first four are read as version 00, as the spec asks.
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)
# tracestate: up to 32 comma-separated key=value members, printable ASCII, at most 512 chars.
_TS_KEY = r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
_TS_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_TS_MEMBER = re.compile(rf"^{_TS_KEY}={_TS_VALUE}$")
MAX_TRACESTATE = 512

Origin = Literal["caller", "new", "replaced"]


@dataclass(frozen=True)
class TraceContext:
    """One call's place in a trace: its trace id, its own span id and its caller's span."""

    trace_id: str  # 32 lowercase hex digits
    span_id: str  # this call's span: 16 lowercase hex digits
    parent_span_id: str = ""  # the caller's span; empty when the trace started here
    sampled: bool = True
    tracestate: str = ""  # the caller's, passed on unchanged when valid
    origin: Origin = "new"  # from the caller, new (none sent), or replaced (malformed)

    @property
    def traceparent(self) -> str:
        """The header naming this call's span as the parent of what it calls."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def headers(self) -> tuple[tuple[str, str], ...]:
        """The W3C headers for requests made on behalf of this call."""
        out = (("traceparent", self.traceparent),)
        return out + ((("tracestate", self.tracestate),) if self.tracestate else ())

    def record(self) -> dict[str, str]:
        """The audit record's ``trace`` field."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "traceparent": self.traceparent,
            "origin": self.origin,
        }


def _random_hex(n_bytes: int) -> str:
    while True:  # an all-zero id is invalid; vanishingly rare, but never sent
        value = secrets.token_hex(n_bytes)
        if value.strip("0"):
            return value


def parse_traceparent(value: object) -> tuple[str, str, int] | None:
    """``(trace_id, span_id, flags)`` of a well-formed traceparent; None otherwise."""
    if not isinstance(value, str) or len(value) > 512:
        return None
    m = _TRACEPARENT.match(value.strip())
    if m is None:
        return None
    version, trace_id, span_id = m["version"], m["trace_id"], m["span_id"]
    if version == "ff" or (version == "00" and m["rest"] is not None):
        return None
    if not trace_id.strip("0") or not span_id.strip("0"):
        return None
    return trace_id, span_id, int(m["flags"], 16)


def valid_tracestate(value: object) -> str:
    """The tracestate when well-formed; empty otherwise (it is then dropped, not repaired)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TRACESTATE:
        return ""
    members = [m.strip() for m in value.split(",") if m.strip()]
    if len(members) > 32 or not all(_TS_MEMBER.match(m) for m in members):
        return ""
    return ",".join(members)


def new_trace(origin: Origin = "new") -> TraceContext:
    """A trace that starts here: random trace and span ids, sampled."""
    return TraceContext(_random_hex(16), _random_hex(8), origin=origin)


def child_of(traceparent: object, tracestate: object = None) -> TraceContext:
    """This call's context under the caller's ``traceparent``; a new trace when it is absent
    or malformed (its tracestate is then dropped too)."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return new_trace("new" if traceparent is None else "replaced")
    trace_id, parent, flags = parsed
    return TraceContext(
        trace_id,
        _random_hex(8),
        parent_span_id=parent,
        sampled=bool(flags & 1),
        tracestate=valid_tracestate(tracestate),
        origin="caller",
    )
