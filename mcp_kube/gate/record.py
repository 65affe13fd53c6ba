"""The call record: what happened in one call, and the audit event written from it.

A write is recorded twice: ``tool_call.intent`` before it runs (no record, no write) and
``tool_call`` when it ends. A read is recorded when it ends; if that record cannot be written,
the read still answers unless ``audit.fail_closed_reads`` is set. The event's fields are the
audit log's schema, read by whoever reviews the log: change them with care.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio

from mcp_kube.domain import Principal
from mcp_kube.errors import McpKubeError
from mcp_kube.policy.decision import Decision
from mcp_kube.tracing import TraceContext, new_trace

__all__ = ["AuditRefused", "AuditSink", "AuditTrail", "CallRecord", "GroupCommit", "audit_event"]

log = logging.getLogger("mcp_kube.gate")


class AuditSink(Protocol):
    """Where call records go (``mcp_kube.audit.AuditLog``); ``append`` raises when it cannot
    write. The rest has defaults, for sinks that keep no chain and hold no file."""

    def append(self, event: dict[str, Any]) -> dict[str, Any]: ...

    @property
    def available(self) -> bool:
        """Whether records can be written now (``/readyz``); default: yes."""
        return True

    @property
    def head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the last record written (metrics); None: no chain kept."""
        return None

    def close(self) -> None:
        """Seal and release the log when the server stops (default: nothing held)."""
        return


@runtime_checkable
class GroupCommit(Protocol):
    """A sink whose records can be written now and flushed later, many with one flush
    (``AuditLog``): the event loop writes, a worker thread waits for the disk."""

    def append(self, event: dict[str, Any], *, flush: bool = True) -> dict[str, Any]: ...

    @property
    def synced_through(self) -> int: ...

    def sync(self, seq: int) -> None: ...


class AuditRefused(McpKubeError):
    """A write is refused: its audit record could not be written."""

    code = "audit_unavailable"


@dataclass
class CallRecord:
    """What happened in one call: the audit record is made from it."""

    tool: str
    principal: Principal
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    transport: str = ""
    client: dict[str, str] = field(default_factory=dict)
    decision: Decision | None = None
    outcome: str = "pending"
    error_code: str = ""
    clusters: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    result_bytes: int = 0
    arguments: dict[str, Any] = field(default_factory=dict)
    kube_requests: list[dict[str, object]] = field(default_factory=list)
    approval: str = ""
    # the call's W3C trace context: the caller's trace (from the request's _meta) or a new one
    trace: TraceContext = field(default_factory=new_trace)
    started_unix_ns: int = field(default_factory=time.time_ns)  # wall clock, for trace spans


def audit_event(record: CallRecord, kind: str) -> dict[str, Any]:
    """The audit event of ``record`` (kind ``tool_call`` or ``tool_call.intent``)."""
    d = record.decision
    return {
        "kind": kind,
        "request_id": record.request_id,
        "principal": {
            "subject": record.principal.subject,
            "groups": list(record.principal.groups),
            "authenticated_by": record.principal.authenticated_by,
        },
        "client": record.client,
        "transport": record.transport,
        "cluster": record.clusters[0] if record.clusters else "",
        "tool": record.tool,
        "arguments": record.arguments,
        "decision": {"action": d.action, "rule": d.rule, "message": d.message} if d else None,
        "approval": record.approval,
        "kube_requests": record.kube_requests,
        "outcome": record.outcome,
        "error_code": record.error_code,
        "latency_ms": round(record.latency_ms, 3),
        "result_bytes": record.result_bytes,
        "trace": record.trace.record(),
    }


class AuditTrail:
    """Writes call records to the sink; without one (tests, ``audit=None``) records nothing."""

    def __init__(self, sink: AuditSink | None) -> None:
        self.sink = sink

    def intent(self, record: CallRecord) -> None:
        """Before a write: a record that it is about to happen, or no write at all."""
        if self.sink is None:
            return
        try:
            self.sink.append(audit_event(record, "tool_call.intent"))
        except McpKubeError as e:
            raise AuditRefused(f"writes are refused while the audit log is unavailable: {e}") from e

    async def done(self, record: CallRecord, *, shared: bool = False) -> bool:
        """The record of a finished call, on disk before this returns; False when it could
        not be written. ``shared``: other calls are in progress; then a group-commit sink
        flushes in a worker thread, sharing the flush with the calls that end meanwhile, and
        the event loop serves them while the disk works. A call alone flushes at once (a
        worker thread would only add its hand-over to the same one flush)."""
        sink = self.sink
        if sink is None:
            return True
        try:
            if not shared or not isinstance(sink, GroupCommit):
                sink.append(audit_event(record, "tool_call"))
                return True
            seq = sink.append(audit_event(record, "tool_call"), flush=False)["seq"]
            if sink.synced_through < seq:
                await anyio.to_thread.run_sync(sink.sync, seq)
        except McpKubeError as e:
            log.error("audit record of %s %s not written: %s", record.tool, record.request_id, e)
            return False
        return True

    def quietly(self, record: CallRecord) -> None:
        """The record of a call that ends without a result (no result to turn into an error)."""
        if self.sink is not None:
            with contextlib.suppress(McpKubeError):
                self.sink.append(audit_event(record, "tool_call"))
