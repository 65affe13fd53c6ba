"""W3C trace context: parsed, validated or started; recorded; sent to the API server; exported."""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import anyio
import pytest
from kubernetes import client as k8s
from support.gates import make_gate

from mcp_kube.domain import KUBE_REQUESTS, TRACE_HEADERS, Principal
from mcp_kube.gate import SPAN_ID_META, TRACE_ID_META, Gate, Outcome
from mcp_kube.kube.memory import MemoryCluster
from mcp_kube.kube.transport import Transport
from mcp_kube.server.tracing import OtlpExporter, traces_url
from mcp_kube.settings import TracingSettings
from mcp_kube.tools.catalog import by_name
from mcp_kube.tracing import (
    TraceContext,
    child_of,
    new_trace,
    parse_traceparent,
    valid_tracestate,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
CALLER = f"00-{TRACE}-{PARENT}-01"
ALICE = Principal("alice")
W3C = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$")


def call(
    gate: Gate,
    tool: str,
    args: dict[str, Any],
    principal: Principal,
    trace: TraceContext | None = None,
) -> Outcome:
    run = functools.partial(gate.call, by_name()[tool], args, principal, trace=trace)
    return anyio.run(run)


@pytest.mark.parametrize(
    "value",
    [
        CALLER,
        f"00-{TRACE}-{PARENT}-00",
        f"01-{TRACE}-{PARENT}-01-future-field",  # a later version: its first four fields
    ],
)
def test_well_formed_traceparents_parse(value: str) -> None:
    parsed = parse_traceparent(value)
    assert parsed is not None
    assert parsed[:2] == (TRACE, PARENT)


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "garbage",
        f"00-{TRACE}-{PARENT}",  # no flags
        f"00-{TRACE.upper()}-{PARENT}-01",  # uppercase hex
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"ff-{TRACE}-{PARENT}-01",  # forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE}x-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-01\n<script>",
        "00-" + "a" * 600,
    ],
)
def test_malformed_traceparents_are_refused(value: object) -> None:
    assert parse_traceparent(value) is None


def test_a_new_trace_is_a_valid_sampled_traceparent() -> None:
    ids = set()
    for _ in range(50):
        t = new_trace()
        assert W3C.match(t.traceparent)
        assert t.traceparent.endswith("-01")
        assert parse_traceparent(t.traceparent) == (t.trace_id, t.span_id, 1)
        assert t.parent_span_id == ""
        assert t.origin == "new"
        ids.add(t.trace_id)
    assert len(ids) == 50


def test_a_callers_traceparent_gets_a_child_span() -> None:
    t = child_of(CALLER, "vendor=abc,other@sys=x1")
    assert (t.trace_id, t.parent_span_id, t.origin, t.sampled) == (TRACE, PARENT, "caller", True)
    assert t.span_id != PARENT
    assert W3C.match(t.traceparent)
    assert t.traceparent == f"00-{TRACE}-{t.span_id}-01"
    assert dict(t.headers()) == {"traceparent": t.traceparent, "tracestate": t.tracestate}
    assert t.tracestate == "vendor=abc,other@sys=x1"
    assert not child_of(f"00-{TRACE}-{PARENT}-00").sampled


def test_a_malformed_traceparent_is_replaced_never_echoed() -> None:
    bad = "00-deadbeef-evil\r\ninjected: header-01"
    t = child_of(bad, "k=v")
    assert t.origin == "replaced"
    assert t.parent_span_id == ""
    assert t.tracestate == ""
    assert W3C.match(t.traceparent)
    assert "deadbeef" not in json.dumps(t.record())
    assert child_of(None).origin == "new"


@pytest.mark.parametrize(
    "value", ["k=v\r\nx", "=v", "K=v", "k=" + "v" * 300, ",".join(["k=v"] * 33)]
)
def test_a_malformed_tracestate_is_dropped(value: str) -> None:
    assert valid_tracestate(value) == ""


# --- recorded and returned by the gate ---------------------------------------------------


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return event


def test_the_gate_records_and_returns_the_callers_trace() -> None:
    sink = ListSink()
    gate = make_gate(MemoryCluster("gpu-east"), audit=sink)
    trace = child_of(CALLER)
    out = call(gate, "whoami", {}, Principal("alice"), trace=trace)
    assert not out.is_error, out.text
    assert out.meta[TRACE_ID_META] == TRACE
    assert out.meta[SPAN_ID_META] == trace.span_id
    (event,) = sink.events
    assert event["trace"] == {
        "trace_id": TRACE,
        "span_id": trace.span_id,
        "parent_span_id": PARENT,
        "traceparent": trace.traceparent,
        "origin": "caller",
    }
    plain = call(gate, "whoami", {}, Principal("alice"))  # no trace sent: a new one
    assert plain.meta[TRACE_ID_META] != TRACE
    assert sink.events[-1]["trace"]["origin"] == "new"
    assert TRACE_HEADERS.get() == ()  # nothing left behind for requests outside a call


# --- sent to the API server -----------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []
    answer: bytes = b'{"kind":"PodList","items":[]}'

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers.items()))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Audit-Id", "a-1")
        self.end_headers()
        self.wfile.write(self.answer)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).seen.append({**self.headers, "_body": self.rfile.read(length).decode()})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, str]]]]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def test_kubernetes_requests_of_a_call_carry_its_traceparent(recorder) -> None:
    url, seen = recorder
    api = k8s.ApiClient(k8s.Configuration(host=url))
    transport = Transport("gpu-east", 5.0, impersonate=False)
    trace = child_of(CALLER, "vendor=abc")
    noted: list[dict[str, object]] = []
    token, notes = TRACE_HEADERS.set(trace.headers()), KUBE_REQUESTS.set(noted)
    try:
        transport.get_json(api, "/api/v1/namespaces/team-a/pods")
    finally:
        TRACE_HEADERS.reset(token)
        KUBE_REQUESTS.reset(notes)
    transport.get_json(api, "/api/v1/nodes")  # outside a call (the watch cache): no trace
    assert seen[0]["traceparent"] == f"00-{TRACE}-{trace.span_id}-01"
    assert seen[0]["tracestate"] == "vendor=abc"
    assert "traceparent" not in seen[1]
    assert "tracestate" not in seen[1]
    assert noted[0]["traceparent"] == trace.traceparent


# --- exported to a collector ----------------------------------------------------------------


def test_traces_url() -> None:
    assert traces_url("http://otel:4318") == "http://otel:4318/v1/traces"
    assert traces_url("http://otel:4318/v1/traces/") == "http://otel:4318/v1/traces"
    with pytest.raises(ValueError, match="http"):
        traces_url("file:///etc/passwd")


def test_one_span_per_call_reaches_an_in_process_collector(recorder) -> None:
    url, seen = recorder
    gate = make_gate(MemoryCluster("gpu-east"))
    exporter = OtlpExporter(TracingSettings(otlp_endpoint=url, otlp_headers={"X-Tenant": "t1"}))
    gate.observers.append(exporter.observe)
    trace = child_of(CALLER)
    call(gate, "list_jobs", {"namespace": "team-a", "cluster": "gpu-east"}, ALICE, trace=trace)
    call(gate, "whoami", {}, Principal("alice"), trace=child_of(f"00-{TRACE}-{PARENT}-00"))
    exporter.close()
    assert exporter.sent == 1
    assert exporter.failed == 0
    (request,) = seen
    assert request["Content-Type"] == "application/json"
    assert request["X-Tenant"] == "t1"
    body = json.loads(request["_body"])
    (resource,) = body["resourceSpans"]
    service = {a["key"]: a["value"] for a in resource["resource"]["attributes"]}
    assert service["service.name"] == {"stringValue": "mcp-kube"}
    (span,) = resource["scopeSpans"][0]["spans"]
    assert (span["traceId"], span["spanId"], span["parentSpanId"]) == (
        TRACE,
        trace.span_id,
        PARENT,
    )
    assert span["name"] == "list_jobs"
    assert span["kind"] == 2
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
    attrs = {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
    assert attrs["mcp_kube.principal"] == "alice"
    assert attrs["mcp_kube.namespace"] == "team-a"
    assert attrs["mcp_kube.cluster"] == "gpu-east"
    assert attrs["mcp_kube.outcome"] == "ok"
    assert attrs["mcp_kube.decision_rule"]


def test_a_dead_collector_never_fails_a_call() -> None:
    gate = make_gate(MemoryCluster("gpu-east"))
    exporter = OtlpExporter(TracingSettings(otlp_endpoint="http://127.0.0.1:9", timeout_s=1))
    gate.observers.append(exporter.observe)
    out = call(gate, "whoami", {}, Principal("alice"))
    exporter.close()
    assert not out.is_error
    assert exporter.failed == 1
    assert exporter.sent == 0
