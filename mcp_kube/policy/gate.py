"""The gate: the one dispatcher every tool call passes before it may touch a cluster.

Order of one call: validate the arguments (strict model: unknown fields, bad names and
out-of-range numbers are refused here, before any API request), resolve the cluster names
(unknown ones are refused with the valid list), ask the policy (anything but an explicit allow
is a refusal), then run the tool under a time limit with a context that hands out cluster
ports, and shape the result (size-capped structured content plus a short text summary).
Failures become tool errors with a stable code; nothing internal reaches the client.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from mcp_types import CallToolResult, TextContent
from pydantic import ValidationError

from mcp_kube.domain import ACTING_FOR, KUBE_REQUESTS, ManifestReview, Principal
from mcp_kube.errors import (
    ApprovalRefused,
    InvalidArgument,
    McpKubeError,
    PolicyDenied,
    RateLimited,
)
from mcp_kube.hygiene import clean, clean_tree
from mcp_kube.kube.objects import JobInfo
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.policy.decision import Decision, Policy
from mcp_kube.policy.engine import manifest_gpus
from mcp_kube.settings import Settings
from mcp_kube.tools.base import StrictInput, ToolOutput, ToolSpec

__all__ = ["CallRecord", "ClusterSource", "Gate", "InputNeeded", "PolicyDenied", "approval_binding"]

log = logging.getLogger("mcp_kube.gate")


class AuditSink(Protocol):
    """Where call records go (``mcp_kube.audit.AuditLog``); raises when it cannot write."""

    def append(self, event: dict[str, Any]) -> dict[str, Any]: ...


class ClusterSource(Protocol):
    """What the gate needs from the cluster registry (small, for in-memory twins in tests)."""

    @property
    def names(self) -> list[str]: ...

    def resolve(self, name: str | None) -> str: ...

    def get(self, name: str | None) -> ClusterPort: ...


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


# Asks the human behind the client (MCP elicitation); True only on an explicit yes. The second
# argument binds the answer to this very request (a digest of caller, tool and manifest).
Elicit = Callable[[str, str], Awaitable[bool]]


REQUEST_ID_META = "mcp-kube.io/request-id"
SANITIZED_META = "mcp-kube.io/sanitized"  # characters removed from workload text


class AuditRefused(McpKubeError):
    code = "audit_unavailable"


class InputNeeded(BaseException):
    """The transport must ask the client for input and have the call retried (2026-07-28).

    A BaseException so that no ``except Exception`` on the way turns it into a failure.
    """

    def __init__(self, payload: Any) -> None:
        super().__init__("input required")
        self.payload = payload


def approval_binding(principal: Principal, tool: str, manifest: dict[str, Any]) -> str:
    body = json.dumps([principal.subject, tool, manifest], sort_keys=True, separators=(",", ":"))
    return "approval:" + hashlib.sha256(body.encode()).hexdigest()


class _Context:
    def __init__(
        self,
        gate: Gate,
        principal: Principal,
        tool: str,
        elicit: Elicit | None,
        args: dict[str, Any],
    ) -> None:
        self._gate = gate
        self._tool = tool
        self._args = args
        self.approval = ""  # how a write was approved, for the audit record
        self._elicit = elicit
        self.principal = principal
        self.limits = gate.settings.limits

    def review_manifest(
        self, cluster: str, namespace: str, manifest: dict[str, Any]
    ) -> ManifestReview:
        return self._gate.policy.review(
            self.principal, self._tool, cluster, namespace, manifest, self._args
        )

    async def _check_concurrent_gpus(self, review: ManifestReview) -> None:
        """The policy's maxConcurrentGpusPerPrincipal, counted from the caller's active Jobs."""
        limit_of = getattr(self._gate.policy, "max_concurrent_gpus_per_principal", None)
        limit = limit_of() if callable(limit_of) else None
        if limit is None or self._tool != "submit_job":
            return
        from mcp_kube.tools.jobspec import SUBMITTED_BY_LABEL, principal_label

        port = self._gate.clusters.get(self._args.get("cluster"))
        token = ACTING_FOR.set(None)  # counted as the server: the caller may not list everywhere
        try:
            jobs = await port.list_objects(
                Kind.JOBS,
                None,
                label_selector=f"{SUBMITTED_BY_LABEL}={principal_label(self.principal.subject)}",
            )
        finally:
            ACTING_FOR.reset(token)
        running = sum(manifest_gpus(job) for job in jobs if not JobInfo.from_json(job).terminal)
        wanted = manifest_gpus(review.manifest)
        if running + wanted > limit:
            raise PolicyDenied(
                f"denied by policy limit maxConcurrentGpusPerPrincipal: {running} GPUs already in "
                f"active jobs of {self.principal.subject} + {wanted} > {limit}",
                "maxConcurrentGpusPerPrincipal",
            )

    async def require_approval(self, review: ManifestReview, preview: dict[str, Any]) -> str:
        self._gate.approvals_waiting += 1
        try:
            how = await self._approve(review, preview)
        finally:
            self._gate.approvals_waiting -= 1
        self.approval = how
        return how

    async def _approve(self, review: ManifestReview, preview: dict[str, Any]) -> str:
        await self._check_concurrent_gpus(review)  # before anyone is asked to approve
        if review.approval == "none":
            return "none"
        if review.approval == "elicitation":
            if self._elicit is None:
                raise ApprovalRefused(
                    "this write needs a human's approval and the client cannot ask one "
                    "(no elicitation support): refused"
                )
            text = _approval_text(self._tool, self.principal, review, preview)
            try:
                approved = await self._elicit(
                    text, approval_binding(self.principal, self._tool, review.manifest)
                )
            except ApprovalRefused:
                raise
            except Exception as e:  # a client that fails to answer has not said yes
                raise ApprovalRefused(
                    f"approval could not be obtained ({type(e).__name__}): refused"
                ) from e
            if not approved:
                raise ApprovalRefused("the human declined this write")
            return "elicitation"
        if review.approval == "out_of_band":
            # Waits server-side in a ConfigMap; only `mcp-kube approve ID` approves it.
            from mcp_kube.policy.approvals import ApprovalStore, terms_of

            where = self._gate.settings.approvals
            store = ApprovalStore(self._gate.clusters.get(where.cluster), where.namespace)
            cluster = self._gate.clusters.resolve(self._args.get("cluster"))
            meta = review.manifest.get("metadata") or {}
            namespace = str(self._args.get("namespace") or meta.get("namespace") or "")
            terms = terms_of(
                self._gate.policy, self.principal, self._tool, cluster, namespace, review.manifest
            )
            return await store.require(
                self.principal, self._tool, cluster, namespace, review.manifest, preview, terms
            )
        raise ApprovalRefused(f"approval mode {review.approval!r} is not available here: refused")

    def cluster(self, name: str | None) -> ClusterPort:
        return self._gate.clusters.get(name)

    def clusters(self, name: str | None) -> list[ClusterPort]:
        if name is not None:
            return [self._gate.clusters.get(name)]
        self._gate.clusters.resolve(None)  # no cluster at all is an error, never an empty fleet
        return [self._gate.clusters.get(n) for n in self._gate.clusters.names]

    def cluster_names(self) -> list[str]:
        return self._gate.clusters.names

    def permissions(self) -> list[tuple[str, bool, str]]:
        out = []
        for spec in self._gate.specs:
            d = self._gate.policy.decide(self.principal, spec.name, spec.read_only, {})
            out.append((spec.name, d.allowed, d.rule))
        return out

    @property
    def progress_patterns(self) -> Sequence[str]:
        return self._gate.settings.progress_log_patterns


def _approval_text(
    tool: str, principal: Principal, review: ManifestReview, preview: dict[str, Any]
) -> str:
    lines = [f"{principal.subject} asks to run {tool}:", json.dumps(preview, indent=2)[:4000]]
    if review.changes:
        lines.append("Policy defaults applied: " + "; ".join(review.changes))
    if review.warnings:
        lines.append("Warnings: " + "; ".join(review.warnings))
    lines.append("Approve this write?")
    return "\n".join(lines)


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
        elif err["type"] == "string_pattern_mismatch" and loc in (
            "namespace",
            "name",
            "pod",
            "job",
            "container",
        ):
            msg = "must be a lowercase RFC 1123 name (a-z, 0-9, '-')"
        parts.append(f"{loc}: {msg}")
    return "invalid arguments: " + "; ".join(parts)


class Gate:
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
        self.records: list[CallRecord] = []  # recent calls, bounded (see _remember)
        self._calls: dict[tuple[str, str], deque[float]] = {}
        # called with every finished call's record (metrics); must not raise or block
        self.observers: list[Callable[[CallRecord], None]] = []
        self.approvals_waiting = 0  # write calls waiting for a human's answer now

    def _rate_limited(self, principal: Principal, tool: str) -> str | None:
        """A refusal message when the principal exceeds the policy's calls per minute."""
        limit_of = getattr(self.policy, "calls_per_minute", None)
        limit = limit_of(tool) if callable(limit_of) else None
        if not limit:
            return None
        now = time.monotonic()
        window = self._calls.setdefault((principal.subject, tool), deque())
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= limit:
            return f"rate limit: at most {limit} {tool} calls per minute for {principal.subject}"
        window.append(now)
        return None

    def _remember(self, record: CallRecord) -> None:
        for observe in self.observers:
            with contextlib.suppress(Exception):
                observe(record)
        self.records.append(record)
        if len(self.records) > 1000:
            del self.records[:500]

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
        elif getattr(args, "cluster", None) is not None:
            self.clusters.resolve(args.cluster)  # type: ignore[attr-defined]
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
    ) -> CallToolResult:
        """Validate, decide, (for writes) log the intent, run, shape, and log the outcome."""
        record = CallRecord(
            tool=spec.name,
            principal=principal,
            arguments=raw if isinstance(raw, dict) else {},
            transport=transport,
            client=dict(client or {}),
        )
        started = time.perf_counter()
        requests_token = KUBE_REQUESTS.set(record.kube_requests)
        try:
            result = await self._run(spec, raw, record, elicit)
        except InputNeeded:
            record.outcome = "input_required"  # the client asks its human and calls again
            self._log_quietly(record)
            raise
        except anyio.get_cancelled_exc_class():
            # The client cancelled or went away: the call stops here, and its record says so
            # (a write past its intent record may or may not have reached the cluster).
            record.outcome, record.error_code = "cancelled", "cancelled"
            record.latency_ms = (time.perf_counter() - started) * 1000
            self._log_quietly(record)
            raise
        finally:
            KUBE_REQUESTS.reset(requests_token)
            record.latency_ms = (time.perf_counter() - started) * 1000
            self._remember(record)
        record.result_bytes = sum(len(getattr(c, "text", "")) for c in result.content)
        result = self._log(spec, record, result)
        # The request id joins what a client saw with the audit record of the call.
        result.meta = {**(result.meta or {}), REQUEST_ID_META: record.request_id}
        return result

    async def _run(
        self,
        spec: ToolSpec[Any, Any],
        raw: dict[str, Any],
        record: CallRecord,
        elicit: Elicit | None,
    ) -> CallToolResult:
        principal = record.principal
        try:
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
            limited = self._rate_limited(principal, spec.name)
            if limited:
                raise RateLimited(limited)
            if not spec.read_only:
                self._log_intent(record)  # no audit, no write
            ctx = _Context(self, principal, spec.name, elicit, plain_args)
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
            return self._shape(spec, output)
        except TimeoutError:
            record.outcome, record.error_code = "error", "timeout"
            limit = self.settings.limits.call_timeout_s
            return self._error("timeout", f"{spec.name} did not finish within {limit:g}s")
        except McpKubeError as e:
            record.outcome = "denied" if isinstance(e, PolicyDenied) else "error"
            record.error_code = e.code
            if isinstance(e, PolicyDenied) and e.rule:  # refused on review: the final verdict
                record.decision = Decision("deny", e.rule, str(e)[:300])
            return self._error(e.code, str(e))
        except Exception:
            log.exception("tool %s failed unexpectedly", spec.name)
            record.outcome, record.error_code = "error", "internal"
            return self._error("internal", f"{spec.name} failed with an internal error")

    def _event(self, record: CallRecord, kind: str) -> dict[str, Any]:
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
        }

    def _log_quietly(self, record: CallRecord) -> None:
        """The record of a call that ends without a result (no result to turn into an error)."""
        if self.audit is not None:
            with contextlib.suppress(McpKubeError):
                self.audit.append(self._event(record, "tool_call"))

    def _log_intent(self, record: CallRecord) -> None:
        """Before a write: a record that it is about to happen, or no write at all."""
        if self.audit is None:
            return
        try:
            self.audit.append(self._event(record, "tool_call.intent"))
        except McpKubeError as e:
            raise AuditRefused(f"writes are refused while the audit log is unavailable: {e}") from e

    def _log(
        self, spec: ToolSpec[Any, Any], record: CallRecord, result: CallToolResult
    ) -> CallToolResult:
        if self.audit is None:
            return result
        try:
            self.audit.append(self._event(record, "tool_call"))
        except McpKubeError as e:
            log.error("audit record of %s %s not written: %s", spec.name, record.request_id, e)
            if self.settings.audit.fail_closed_reads and spec.read_only:
                return self._error("audit_unavailable", "the audit log is unavailable: refused")
        return result

    def _shape(self, spec: ToolSpec[Any, Any], output: ToolOutput) -> CallToolResult:
        data, removed = clean_tree(output.model_dump(mode="json"))
        size = len(json.dumps(data, separators=(",", ":")))
        if size > self.settings.limits.max_response_bytes:
            return self._error(
                "response_too_large",
                f"the result ({size} bytes) exceeds the {self.settings.limits.max_response_bytes}"
                "-byte cap; narrow the query (namespace, cluster, filters) or lower `limit`",
            )
        summary, _ = clean(spec.summary(output))
        if not removed:
            return CallToolResult(
                content=[TextContent(type="text", text=summary)], structured_content=data
            )
        note = f"[{removed} control, escape or invisible characters removed from workload text]"
        return CallToolResult(
            content=[TextContent(type="text", text=f"{summary}\n{note}")],
            structured_content=data,
            _meta={SANITIZED_META: removed},
        )

    @staticmethod
    def _error(code: str, message: str) -> CallToolResult:
        return CallToolResult(
            content=[TextContent(type="text", text=f"error [{code}]: {message}")],
            is_error=True,
        )
