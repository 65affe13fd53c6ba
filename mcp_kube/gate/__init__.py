"""The gate: every tool call passes it before it may touch a cluster.

It validates the arguments, asks the policy, applies its rate limit, writes the audit record
(before a write runs, and when any call ends), obtains the approval a write needs, and only
then runs the tool with a context that hands out cluster ports. It answers with a plain
``Outcome``; the transport (``mcp_kube.server``) turns that into the MCP SDK's types, so
nothing here imports the SDK.

    dispatch          Gate: the order of one call, errors to tool errors
    context           CallContext: one call's ToolContext
    approval          routing a write's approval (elicitation, out of band); the GPU count
    approval_store    out-of-band approvals: the server's and the approver's side
    approval_records  approval records as ConfigMaps, changed only at the version read
    ratelimit         calls per minute per principal and tool
    record            CallRecord, the audit event schema, the audit sink
    outcome           Outcome and its shaping; InputNeeded
"""

from __future__ import annotations

from mcp_kube.gate.approval import Elicit, approval_binding
from mcp_kube.gate.dispatch import Gate
from mcp_kube.gate.outcome import (
    REQUEST_ID_META,
    SANITIZED_META,
    SPAN_ID_META,
    TRACE_ID_META,
    InputNeeded,
    Outcome,
)
from mcp_kube.gate.record import AuditRefused, AuditSink, CallRecord
from mcp_kube.kube.port import ClusterSource

__all__ = [
    "REQUEST_ID_META",
    "SANITIZED_META",
    "SPAN_ID_META",
    "TRACE_ID_META",
    "AuditRefused",
    "AuditSink",
    "CallRecord",
    "ClusterSource",
    "Elicit",
    "Gate",
    "InputNeeded",
    "Outcome",
    "approval_binding",
]
