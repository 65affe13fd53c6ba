"""The gate: the one dispatcher every tool call passes before it may touch a cluster.

Order of one call: validate the arguments (strict model: unknown fields, bad names and
out-of-range numbers are refused here, before any API request), resolve the cluster names
(unknown ones are refused with the valid list), ask the policy (anything but an explicit allow
is a refusal), apply its rate limit, record a write's intent, then run the tool under a time
limit with a context that hands out cluster ports, and shape the result (size-capped
structured content plus a short text summary). Failures become tool errors with a stable
code; nothing internal reaches the client. The result is a plain ``Outcome``: the transport
(``mcp_kube.server``) turns it into its protocol's types.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from pydantic import ValidationError

from mcp_kube.domain import ACTING_FOR, KUBE_REQUESTS, TRACE_HEADERS, Principal
from mcp_kube.errors import InvalidArgument, McpKubeError, PolicyDenied, RateLimited
from mcp_kube.gate.approval import ApprovalRouter, Elicit, WriteCall
from mcp_kube.gate.context import CallContext
from mcp_kube.gate.outcome import (
    REQUEST_ID_META,
    SPAN_ID_META,
    TRACE_ID_META,
    InputNeeded,
    Outcome,
    shape,
)
from mcp_kube.gate.ratelimit import RateLimiter
from mcp_kube.gate.record import AuditSink, AuditTrail, CallRecord
from mcp_kube.kube.port import ClusterSource
from mcp_kube.policy.decision import Decision, Policy
from mcp_kube.settings import Settings
from mcp_kube.tools.base import ClusterInput, StrictInput, ToolOutput, ToolSpec
from mcp_kube.tracing import TraceContext, new_trace

__all__ = ["Gate"]

log = logging.getLogger("mcp_kube.gate")

RECENT_CALLS = 1000  # records kept in ``Gate.records``; the older half goes when full
NAME_FIELDS = ("namespace", "name", "pod", "job", "container")


def _collapse(group: BaseExceptionGroup[Any]) -> BaseException:
    """The error to report for a task group's failures: the first deliberate one."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for leaf in leaves:
        if isinstance(leaf, McpKubeError | TimeoutError):
            return leaf
    return leaves[0] if leaves else group


def _validation_message(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown argument (not in the tool's input schema)"
        elif err["type"] == "string_pattern_mismatch" and loc in NAME_FIELDS:
            msg = "must be a lowercase RFC 1123 name (a-z, 0-9, '-')"
        parts.append(f"{loc}: {msg}")
    return "invalid arguments: " + "; ".join(parts)


class Gate:
    """Validates, decides, records and runs every tool call (see the module docstring)."""

    def __init__(
        self,
        clusters: ClusterSource,
        settings: Settings,
        policy: Policy,
        specs: Sequence[ToolSpec[Any, Any]] = (),
        audit: AuditSink | None = None,
    ) -> None:
        self.clusters = clusters
        self.specs = tuple(specs)
        self.audit = audit
        self.settings = settings
        self.policy = policy
        self.approvals = ApprovalRouter(clusters, policy, settings.approvals)
        self.records: list[CallRecord] = []  # recent calls, bounded (see _remember)
        # called with every finished call's record (metrics); must not raise or block
        self.observers: list[Callable[[CallRecord], None]] = []
        self._trail = AuditTrail(audit)
        self._active = 0  # calls in progress: more than one, and their audit flushes are shared
        self._limiter = RateLimiter()

    @property
    def approvals_waiting(self) -> int:
        """Write calls waiting for a human's answer now."""
        return self.approvals.waiting

    def _remember(self, record: CallRecord) -> None:
        for observe in self.observers:
            with contextlib.suppress(Exception):
                observe(record)
        self.records.append(record)
        if len(self.records) > RECENT_CALLS:
            del self.records[: RECENT_CALLS // 2]

    def validate(self, spec: ToolSpec[Any, Any], raw: dict[str, Any]) -> StrictInput:
        if not isinstance(raw, dict):
            raise InvalidArgument("arguments must be a JSON object")
        try:
            args: StrictInput = spec.input.model_validate(raw)
        except ValidationError as e:
            raise InvalidArgument(_validation_message(e)) from None
        if spec.clusters_of is not None:
            for name in spec.clusters_of(args):
                if name is not None:
                    self.clusters.resolve(name)
        elif isinstance(args, ClusterInput) and args.cluster is not None:
            self.clusters.resolve(args.cluster)
        return args

    async def call(
        self,
        spec: ToolSpec[Any, Any],
        raw: dict[str, Any],
        principal: Principal,
        elicit: Elicit | None = None,
        *,
        transport: str = "",
        client: dict[str, str] | None = None,
        trace: TraceContext | None = None,
    ) -> Outcome:
        """Validate, decide, (for writes) log the intent, run, shape, and log the outcome.

        ``trace``: the call's place in the caller's trace (default: a new trace); its
        traceparent goes on every Kubernetes request the call makes."""
        record = CallRecord(
            tool=spec.name,
            principal=principal,
            arguments=raw if isinstance(raw, dict) else {},
            transport=transport,
            client=dict(client or {}),
            trace=trace or new_trace(),
        )
        started = time.perf_counter()
        self._active += 1
        requests_token = KUBE_REQUESTS.set(record.kube_requests)
        trace_token = TRACE_HEADERS.set(record.trace.headers())
        try:
            outcome = await self._run(spec, raw, record, elicit)
        except InputNeeded:
            record.outcome = "input_required"  # the client asks its human and calls again
            self._trail.quietly(record)
            raise
        except anyio.get_cancelled_exc_class():
            # The client cancelled or went away: the call stops here, and its record says so
            # (a write past its intent record may or may not have reached the cluster).
            record.outcome, record.error_code = "cancelled", "cancelled"
            record.latency_ms = (time.perf_counter() - started) * 1000
            self._trail.quietly(record)
            raise
        finally:
            KUBE_REQUESTS.reset(requests_token)
            TRACE_HEADERS.reset(trace_token)
            record.latency_ms = (time.perf_counter() - started) * 1000
            self._remember(record)
            self._active -= 1
        record.result_bytes = len(outcome.text)
        written = await self._trail.done(record, shared=self._active > 0)
        if not written and spec.read_only and self.settings.audit.fail_closed_reads:
            outcome = Outcome.error("audit_unavailable", "the audit log is unavailable: refused")
        # The request id joins what a client saw with the audit record of the call; the trace
        # and span ids join it with the caller's trace.
        trace_ids = {TRACE_ID_META: record.trace.trace_id, SPAN_ID_META: record.trace.span_id}
        return outcome.with_metas({REQUEST_ID_META: record.request_id, **trace_ids})

    async def _run(
        self,
        spec: ToolSpec[Any, Any],
        raw: dict[str, Any],
        record: CallRecord,
        elicit: Elicit | None,
    ) -> Outcome:
        try:
            return await self._decide_and_run(spec, raw, record, elicit)
        except TimeoutError:
            record.outcome, record.error_code = "error", "timeout"
            limit = self.settings.limits.call_timeout_s
            return Outcome.error("timeout", f"{spec.name} did not finish within {limit:g}s")
        except McpKubeError as e:
            record.outcome = "denied" if isinstance(e, PolicyDenied) else "error"
            record.error_code = e.code
            if isinstance(e, PolicyDenied) and e.rule:  # refused on review: the final verdict
                record.decision = Decision("deny", e.rule, str(e)[:300])
            return Outcome.error(e.code, str(e))
        except Exception:
            log.exception("tool %s failed unexpectedly", spec.name)
            record.outcome, record.error_code = "error", "internal"
            return Outcome.error("internal", f"{spec.name} failed with an internal error")

    async def _decide_and_run(
        self,
        spec: ToolSpec[Any, Any],
        raw: dict[str, Any],
        record: CallRecord,
        elicit: Elicit | None,
    ) -> Outcome:
        principal = record.principal
        args = self.validate(spec, raw)
        plain_args = args.model_dump(mode="json")
        record.clusters = [str(plain_args.get("cluster") or "")]
        record.decision = decision = self.policy.decide(
            principal, spec.name, spec.read_only, plain_args
        )
        if not decision.allowed:
            raise PolicyDenied(
                f"denied by policy rule {decision.rule}: {decision.message or 'not allowed'}"
            )
        limited = self._limiter.refusal(
            principal.subject, spec.name, self.policy.calls_per_minute(spec.name)
        )
        if limited:
            raise RateLimited(limited)
        if not spec.read_only:
            self._trail.intent(record)  # no audit, no write
        ctx = CallContext(self, WriteCall(principal, spec.name, plain_args, elicit))
        acting = ACTING_FOR.set(principal)  # whom the access layer may impersonate
        try:
            with anyio.fail_after(self.settings.limits.call_timeout_s):
                output: ToolOutput = await spec.run(ctx, args)
        except BaseExceptionGroup as group:  # from a tool's task group
            raise _collapse(group) from group
        finally:
            ACTING_FOR.reset(acting)
            record.approval = ctx.approval
        record.outcome = "ok"
        return shape(spec, output, self.settings.limits.max_response_bytes)
