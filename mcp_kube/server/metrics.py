"""Operations endpoints of the HTTP server: Prometheus ``/metrics``, ``/healthz``, ``/readyz``.

The counters come from the gate (every call it finishes, allowed or denied, is observed once);
the gauges are read at scrape time: watch-cache sizes per cluster, calls waiting for a human's
approval, the length of the audit chain. Each server has its own registry (no globals), and
the endpoints carry no tool output: names, counts and timings only. They need no token, like
kubelet probes; keep them behind the NetworkPolicy (see deploy/).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_kube.gate import CallRecord, Gate

__all__ = ["Metrics", "ops_routes"]

# seconds; tool calls range from a cached read (~ms) to a write with a dry run and approval
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Gauges(Collector):
    def __init__(self, gate: Callable[[], Gate | None]) -> None:
        self._gate = gate

    def collect(self) -> Iterator[Metric]:
        gate = self._gate()
        if gate is None:
            return
        cache = GaugeMetricFamily(
            "mcp_kube_cache_objects", "objects in the list+watch caches", labels=["cluster", "kind"]
        )
        for name in gate.clusters.names:
            for kind, n in gate.clusters.get(name).cache_sizes().items():
                cache.add_metric([name, kind], n)
        yield cache
        yield GaugeMetricFamily(
            "mcp_kube_approvals_waiting",
            "write calls waiting for a human's approval now",
            value=gate.approvals_waiting,
        )
        head = gate.audit.head if gate.audit is not None else None
        if head is not None:
            yield GaugeMetricFamily(
                "mcp_kube_audit_chain_length", "records in the audit hash chain", value=head[0]
            )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter(
            "mcp_kube_tool_calls",
            "tool calls by tool, policy decision and outcome",
            ["tool", "decision", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mcp_kube_tool_call_seconds",
            "wall time of tool calls",
            ["tool"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._gate: Gate | None = None
        self.registry.register(_Gauges(lambda: self._gate))

    def bind(self, gate: Gate) -> None:
        self._gate = gate
        gate.observers.append(self.observe)

    def observe(self, record: CallRecord) -> None:
        decision = record.decision.action if record.decision else "none"
        self.calls.labels(record.tool, decision, record.outcome).inc()
        self.latency.labels(record.tool).observe(record.latency_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready once the gate is built (policy loaded, clusters configured) and, when an audit
        log is configured, it can be written: without it the server refuses writes."""
        gate = self._gate
        if gate is None:
            return False, {"gate": "starting"}
        available = gate.audit.available if gate.audit is not None else True
        checks = {"gate": "ok", "audit": "ok" if available else "unavailable"}
        return available, checks


def ops_routes(metrics: Metrics) -> list[tuple[str, Callable[[Request], Any]]]:
    async def metrics_page(_request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        ready, checks = metrics.readiness()
        return JSONResponse(
            {"status": "ok" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    return [("/metrics", metrics_page), ("/healthz", healthz), ("/readyz", readyz)]
