"""B8: GPU telemetry at the testbed's profile: `idle_gpus` and `gpu_utilization` warm latency
over MCP (the server reading the testbed's Prometheus), and the memory the testbed's telemetry
and Kueue add (RSS of each Prometheus, simulated dcgm-exporter and Kueue controller).

A fresh mcp-kube server (streamable HTTP) answers each tool once (cold: caches fill), then
--runs x 4 timed calls of each; p50 and p95 of those.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
from bench_common import MCP_KUBE, Setup, background, free_port, rss_mib, wait_port
from mcp import Client

from mcp_kube.testbed.telemetry import server_env

EXTRA = ("prometheus", "dcgm-exporter", "kueue")  # testbed components beyond the control plane
CALLS = {"idle_gpus": {}, "gpu_utilization": {"window_hours": 1}}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _latency(s: Setup) -> dict[str, Any]:
    env = s.ours_env | server_env(s.state)
    if len(env) == len(s.ours_env):
        raise RuntimeError("the testbed runs no Prometheus: no telemetry to measure")
    port = free_port()
    out: dict[str, Any] = {}
    with background([MCP_KUBE, *s.ours_args(port)], env) as proc:
        wait_port(port, proc)

        async def calls() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp") as c:
                for tool, args in CALLS.items():
                    t0 = time.perf_counter()
                    first = await c.call_tool(tool, args)
                    cold = time.perf_counter() - t0
                    assert not first.is_error, str(first.content)[:300]
                    times = []
                    for _ in range(s.runs * 4):
                        t0 = time.perf_counter()
                        r = await c.call_tool(tool, args)
                        times.append(time.perf_counter() - t0)
                        assert not r.is_error, str(r.content)[:300]
                    out[tool] = {
                        "cold_ms": round(cold * 1000, 1),
                        "p50_ms": round(statistics.median(times) * 1000, 1),
                        "p95_ms": round(_pct(times, 0.95) * 1000, 1),
                        "calls": len(times),
                    }

        anyio.run(calls)
    return out


def telemetry(s: Setup) -> dict[str, Any]:
    memory: dict[str, float] = {}
    for cs in s.state.clusters:
        for comp in cs.components:
            if comp.name in EXTRA:
                memory[comp.name] = memory.get(comp.name, 0.0) + rss_mib(comp.pid)
    return {
        **_latency(s),
        "testbed_extra_rss_mib": {k: round(v, 1) for k, v in sorted(memory.items())},
        "testbed_extra_rss_total_mib": round(sum(memory.values()), 1),
    }
