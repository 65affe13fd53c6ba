"""Optional export of one span per tool call to an OTLP collector inside the site.

Off unless ``tracing.otlp_endpoint`` is set. Each finished call (a gate observer) becomes one
SERVER span: named after the tool, a child of the caller's span (the ``traceparent`` of the
request's ``_meta``), with the principal, cluster, namespace, outcome, error code and deciding
policy rule as attributes. Spans are sent as OTLP/HTTP JSON (``POST {endpoint}/v1/traces``,
an ``ExportTraceServiceRequest``) with the standard library, from a background thread fed by a
bounded queue: a call never waits for the collector, a full queue drops spans, and a failed
export is logged, never raised. No proxy from the environment is used: the collector is local.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from typing import Any

from mcp_kube import __version__
from mcp_kube.gate import CallRecord
from mcp_kube.settings import TracingSettings

__all__ = ["OtlpExporter", "export_request", "span_of"]

log = logging.getLogger("mcp_kube.server.tracing")

SPAN_KIND_SERVER = 2
STATUS_OK, STATUS_ERROR = 1, 2
FAILURE_LOG_EVERY_S = 60.0  # a collector that is down is said once a minute, not per batch


def _attr(key: str, value: str | int) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def span_of(record: CallRecord) -> dict[str, Any]:
    """The OTLP JSON span of a finished call."""
    t = record.trace
    namespace = record.arguments.get("namespace")
    decision = record.decision
    attributes = [
        _attr("mcp.method.name", "tools/call"),
        _attr("gen_ai.tool.name", record.tool),
        _attr("mcp_kube.request_id", record.request_id),
        _attr("mcp_kube.principal", record.principal.subject),
        _attr("mcp_kube.transport", record.transport),
        _attr("mcp_kube.cluster", record.clusters[0] if record.clusters else ""),
        _attr("mcp_kube.namespace", namespace if isinstance(namespace, str) else ""),
        _attr("mcp_kube.outcome", record.outcome),
        _attr("mcp_kube.error_code", record.error_code),
        _attr("mcp_kube.decision_rule", decision.rule if decision else ""),
        _attr("mcp_kube.kube_requests", len(record.kube_requests)),
    ]
    end = record.started_unix_ns + int(record.latency_ms * 1_000_000)
    span: dict[str, Any] = {
        "traceId": t.trace_id,
        "spanId": t.span_id,
        "name": record.tool,
        "kind": SPAN_KIND_SERVER,
        "startTimeUnixNano": str(record.started_unix_ns),
        "endTimeUnixNano": str(end),
        "attributes": attributes,
        "status": (
            {"code": STATUS_ERROR, "message": record.error_code}
            if record.error_code
            else {"code": STATUS_OK}
        ),
    }
    if t.parent_span_id:
        span["parentSpanId"] = t.parent_span_id
    if t.tracestate:
        span["traceState"] = t.tracestate
    return span


def export_request(spans: list[dict[str, Any]], service_name: str) -> dict[str, Any]:
    """An OTLP ``ExportTraceServiceRequest`` (JSON encoding) holding ``spans``."""
    resource = {
        "attributes": [_attr("service.name", service_name), _attr("service.version", __version__)]
    }
    scope = {"name": "mcp_kube", "version": __version__}
    return {
        "resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]}]
    }


def traces_url(endpoint: str) -> str:
    """``{endpoint}/v1/traces`` (an endpoint already ending so is kept); http(s) only."""
    url = endpoint.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"tracing.otlp_endpoint must be an http(s) URL, not {endpoint[:100]!r}")
    return url if url.endswith("/v1/traces") else url + "/v1/traces"


class OtlpExporter:
    """Exports finished calls' spans in the background (see the module docstring)."""

    def __init__(self, settings: TracingSettings) -> None:
        self.url = traces_url(settings.otlp_endpoint or "")
        self.settings = settings
        self.dropped = 0  # spans lost to a full queue
        self.failed = 0  # export requests that failed
        self.sent = 0  # spans the collector accepted
        # spans; None: stop
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(settings.queue_size)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._last_failure_log = 0.0
        self._thread = threading.Thread(target=self._loop, name="mcp-kube-otlp", daemon=True)
        self._thread.start()

    def observe(self, record: CallRecord) -> None:
        """A gate observer: queue the call's span, never block (a full queue drops it)."""
        if not record.trace.sampled:
            return
        try:
            self._queue.put_nowait(span_of(record))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within ``timeout_s``) and stop the thread."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.settings.batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._send(batch)

    def _send(self, spans: list[dict[str, Any]]) -> None:
        body = json.dumps(export_request(spans, self.settings.service_name)).encode()
        headers = {**self.settings.otlp_headers, "Content-Type": "application/json"}
        # http(s) only: the scheme was checked in traces_url
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.settings.timeout_s) as resp:
                resp.read(64 * 1024)
        except Exception as e:  # a collector's trouble never reaches a call
            self.failed += 1
            now = time.monotonic()
            if now - self._last_failure_log >= FAILURE_LOG_EVERY_S:
                self._last_failure_log = now
                log.warning("OTLP export of %d spans to %s failed: %s", len(spans), self.url, e)
            return
        self.sent += len(spans)
