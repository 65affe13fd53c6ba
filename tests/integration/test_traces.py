"""Traces over MCP: a caller's ``_meta.traceparent`` reaches the audit record, the Kubernetes
requests of the call and an in-process OTLP collector; a malformed one is replaced."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from mcp_kube.testbed import cluster

from .mcp_helpers import stdio_client

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
CALLER = f"00-{TRACE}-{PARENT}-01"
BAD = "00-not-a-trace-id-01"


class Collector(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path == "/v1/traces" and self.headers.get("Content-Type") == "application/json":
            type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture
def collector() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    Collector.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Collector.bodies
    finally:
        server.shutdown()
        server.server_close()


def spans(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        span
        for body in bodies
        for rs in body["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]


def test_a_callers_traceparent_reaches_the_audit_record_kube_requests_and_collector(
    testbed: cluster.TestbedState, collector, tmp_path: Path
) -> None:
    endpoint, bodies = collector
    audit = tmp_path / "audit.jsonl"
    env = {"MCP_KUBE_TRACING__OTLP_ENDPOINT": endpoint}
    args = {"namespace": "team-a", "cluster": "gpu-east"}

    async def go() -> tuple[Any, Any]:
        client = stdio_client(
            testbed.kubeconfig, ["gpu-east"], ["--audit-log", str(audit)], env=env
        )
        async with client:
            traced = await client.call_tool("list_jobs", args, meta={"traceparent": CALLER})
            bad = await client.call_tool("list_jobs", args, meta={"traceparent": BAD})
            return traced, bad

    traced, bad = anyio.run(go)
    assert not traced.is_error, traced.content
    assert not bad.is_error, bad.content
    assert traced.meta["mcp-kube.io/trace-id"] == TRACE  # the client sees its trace id
    assert bad.meta["mcp-kube.io/trace-id"] != TRACE

    records = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    first, second = [r for r in records if r.get("kind") == "tool_call"]
    trace = first["trace"]
    assert (trace["trace_id"], trace["parent_span_id"], trace["origin"]) == (
        TRACE,
        PARENT,
        "caller",
    )
    assert trace["span_id"] == traced.meta["mcp-kube.io/span-id"]
    # Every Kubernetes request of the call carried the call's span as its parent.
    assert first["kube_requests"], "list_jobs made no API request"
    for request in first["kube_requests"]:
        assert request["traceparent"] == f"00-{TRACE}-{trace['span_id']}-01"
    # A malformed traceparent is replaced by a new trace and never written anywhere.
    assert second["trace"]["origin"] == "replaced"
    assert second["trace"]["trace_id"] != TRACE
    assert BAD not in audit.read_text()

    # The server exported a span per call when it stopped (or before): the caller's one first.
    deadline = time.monotonic() + 10
    while len(spans(bodies)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    exported = {s["spanId"]: s for s in spans(bodies)}
    span = exported[trace["span_id"]]
    assert (span["traceId"], span["parentSpanId"], span["name"]) == (TRACE, PARENT, "list_jobs")
    attrs = {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
    assert attrs["mcp_kube.namespace"] == "team-a"
    assert attrs["mcp_kube.cluster"] == "gpu-east"
    assert attrs["mcp_kube.outcome"] == "ok"
    assert second["trace"]["span_id"] in exported
    assert "parentSpanId" not in exported[second["trace"]["span_id"]]
