"""B2: MCP tool calls over streamable HTTP at 1, 10 and 50 concurrent clients, in two classes
of work, each against kubernetes-mcp-server:

- cached: mcp-kube `gpu_inventory` totals (served from its watch caches) against the peer's
  cheapest read, `namespaces_list`;
- list: mcp-kube `list_jobs` (one API list per call, no cache) against the peer's
  `pods_list_in_namespace`, in the same namespace.

kubernetes-mcp-server runs twice: at client-go's default limiter (5 requests/s, burst 10) and
tuned (KUBE_CLIENT_QPS / KUBE_CLIENT_BURST raised); ratios use the tuned one. Every client
warms up (session, first calls) before a common start; throughput is the timed calls over the
timed wall only, and the server's CPU time per call comes from its /proc counters over the
timed calls. A bare `mcp` SDK server (benchmarks/bare_server.py) takes the same load with a
one-line tool: the CPU per call of the SDK's own machinery, which no tool on it goes under.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import anyio
from bench_common import (
    HERE,
    KMS_TUNED,
    MCP_KUBE,
    Setup,
    background,
    cpu_seconds,
    free_port,
    wait_port,
)
from mcp import Client

CLIENTS = (1, 10, 50)
LIST_NAMESPACE = "default"  # exists on every cluster, few objects: one small API list
WARMUP = 2  # calls per client before the timed start
OURS = {
    "cached": ("gpu_inventory", {"include_nodes": False}),
    "list": ("list_jobs", {"namespace": LIST_NAMESPACE}),
}
BARE = {"floor": ("echo", {"text": "x"})}
KMS = {
    "cached": ("namespaces_list", {}),
    "list": ("pods_list_in_namespace", {"namespace": LIST_NAMESPACE}),
}


class _Race:
    """Clients that start their timed calls together, and the server's counters around them."""

    def __init__(self, pid: int, clients: int) -> None:
        self.pid, self.clients = pid, clients
        self.ready = self.done = 0
        self.start = anyio.Event()
        self.t0 = self.t1 = self.cpu0 = self.cpu1 = 0.0
        self.lat: list[float] = []

    async def warmed(self) -> None:
        self.ready += 1
        if self.ready == self.clients:
            self.cpu0, self.t0 = cpu_seconds(self.pid), time.perf_counter()
            self.start.set()
        await self.start.wait()

    def finished(self) -> None:
        self.done += 1
        if self.done == self.clients:
            self.t1, self.cpu1 = time.perf_counter(), cpu_seconds(self.pid)

    def result(self) -> dict[str, Any]:
        lat, seconds = sorted(self.lat), self.t1 - self.t0
        return {
            "p50_ms": round(statistics.median(lat), 2),
            "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 2),
            "calls_per_s": round(len(lat) / seconds, 1),
            "calls": len(lat),
            "timed_wall_s": round(seconds, 3),
            "server_cpu_ms_per_call": round((self.cpu1 - self.cpu0) * 1000 / len(lat), 3),
        }


async def load(
    url: str, pid: int, tool: str, args: dict[str, Any], clients: int, total: int
) -> dict[str, Any]:
    race = _Race(pid, clients)
    per_client = max(2, total // clients)

    async def one() -> None:
        async with Client(url) as c:
            for _ in range(WARMUP):
                r = await c.call_tool(tool, args)
                assert not r.is_error, str(r.content)[:200]
            await race.warmed()
            for _ in range(per_client):
                t0 = time.perf_counter()
                r = await c.call_tool(tool, args)
                race.lat.append((time.perf_counter() - t0) * 1000)
                assert not r.is_error, str(r.content)[:200]
            race.finished()

    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(one)
    return race.result()


def _series(
    url: str, pid: int, calls: dict[str, tuple[str, dict[str, Any]]], total: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, (tool, args) in calls.items():
        out[kind] = {"tool": tool}
        for n in CLIENTS:
            out[kind][str(n)] = anyio.run(load, url, pid, tool, args, n, total)
    return out


def _kms(s: Setup, env: dict[str, str], total: int) -> dict[str, Any]:
    port = free_port()
    with background([s.kms, *s.kms_args(port)], env) as proc:
        wait_port(port, proc)
        return _series(f"http://127.0.0.1:{port}/mcp", proc.pid, KMS, total)


def _bare(s: Setup, total: int) -> dict[str, Any]:
    """The same load on a bare SDK server (benchmarks/bare_server.py): the SDK's own cost."""
    port = free_port()
    args = [sys.executable, str(HERE / "bare_server.py"), "--port", str(port)]
    with background(args, s.env) as proc:
        wait_port(port, proc)
        return _series(f"http://127.0.0.1:{port}/mcp", proc.pid, BARE, total)


def b2(s: Setup, total: int = 200) -> dict[str, Any]:
    out: dict[str, Any] = {"format": 2, "list_namespace": LIST_NAMESPACE}
    port = free_port()
    with background([MCP_KUBE, *s.ours_args(port)], s.ours_env) as proc:
        wait_port(port, proc)
        out["ours"] = _series(f"http://127.0.0.1:{port}/mcp", proc.pid, OURS, total)
    out["bare_sdk"] = _bare(s, total)
    if "kms" in s.peers:
        out["kms"] = _kms(s, s.kms_env, total) | {"env": KMS_TUNED}
        # the default limiter allows 5 calls/s: 40 timed calls per level suffice
        out["kms_default"] = _kms(s, s.env, 40) | {"env": {}}
    return out
