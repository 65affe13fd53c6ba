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

What bounds the throughput is measured beside it: the CPU per call of the clients (this
process), of the kube-apiserver, and how many of the host's cores were busy over the timed
wall (/proc/stat). When the host is saturated, no server can go faster than the cores over
the CPU that the clients and the API server spend per call. For the list class, the API server
alone takes the same load: the same LIST (consistent, as both servers make it) from as many
threads with no MCP in between, the most calls per second any server making it can answer;
and once with resourceVersion=0 (served from the API server's watch cache, possibly stale),
which shows how much of a consistent LIST's time is the API server's wait for a fresh read.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
from bench_common import (
    CLK_TCK,
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
# timed calls per client at least: with 50 clients, 200 calls in all would be 4 each, and the
# clients' start and finish would be most of the timed wall
PER_CLIENT = 20
OURS = {
    "cached": ("gpu_inventory", {"include_nodes": False}),
    "list": ("list_jobs", {"namespace": LIST_NAMESPACE}),
}
BARE = {"floor": ("echo", {"text": "x"})}
KMS = {
    "cached": ("namespaces_list", {}),
    "list": ("pods_list_in_namespace", {"namespace": LIST_NAMESPACE}),
}


def _own_cpu() -> float:
    """utime + stime of this process (the clients), all its threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _busy_cores() -> float:
    """Busy CPU seconds of the whole host so far (all but idle and iowait), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / CLK_TCK


class _Counters:
    """The CPU counters read at the start and at the end of the timed calls."""

    def __init__(self, pid: int, apiserver: int | None) -> None:
        self.server = cpu_seconds(pid)
        self.clients = _own_cpu()
        self.apiserver = cpu_seconds(apiserver) if apiserver else 0.0
        self.host = _busy_cores()
        self.wall = time.perf_counter()


class _Race:
    """Clients that start their timed calls together, and the counters around them."""

    def __init__(self, pid: int, clients: int, apiserver: int | None) -> None:
        self.pid, self.clients, self.apiserver = pid, clients, apiserver
        self.ready = self.done = 0
        self.start = anyio.Event()
        self.c0: _Counters | None = None
        self.c1: _Counters | None = None
        self.lat: list[float] = []

    async def warmed(self) -> None:
        self.ready += 1
        if self.ready == self.clients:
            self.c0 = _Counters(self.pid, self.apiserver)
            self.start.set()
        await self.start.wait()

    def finished(self) -> None:
        self.done += 1
        if self.done == self.clients:
            self.c1 = _Counters(self.pid, self.apiserver)

    def result(self) -> dict[str, Any]:
        assert self.c0 is not None
        assert self.c1 is not None
        c0, c1, n = self.c0, self.c1, len(self.lat)
        lat, seconds = sorted(self.lat), c1.wall - c0.wall

        def per_call(a: float, b: float) -> float:
            return round((b - a) * 1000 / n, 3)

        out = {
            "p50_ms": round(statistics.median(lat), 2),
            "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 2),
            "calls_per_s": round(n / seconds, 1),
            "calls": n,
            "timed_wall_s": round(seconds, 3),
            "server_cpu_ms_per_call": per_call(c0.server, c1.server),
            "client_cpu_ms_per_call": per_call(c0.clients, c1.clients),
            "host_busy_cores": round((c1.host - c0.host) / seconds, 2),
        }
        if self.apiserver:
            out["apiserver_cpu_ms_per_call"] = per_call(c0.apiserver, c1.apiserver)
        return out


async def load(
    url: str,
    pid: int,
    tool: str,
    args: dict[str, Any],
    clients: int,
    total: int,
    apiserver: int | None = None,
    per_client_min: int = PER_CLIENT,
) -> dict[str, Any]:
    race = _Race(pid, clients, apiserver)
    per_client = max(per_client_min, total // clients)

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
    s: Setup,
    url: str,
    pid: int,
    calls: dict[str, tuple[str, dict[str, Any]]],
    total: int,
    per_client_min: int = PER_CLIENT,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    api = _apiserver_pid(s)
    for kind, (tool, args) in calls.items():
        out[kind] = {"tool": tool}
        for n in CLIENTS:
            out[kind][str(n)] = anyio.run(load, url, pid, tool, args, n, total, api, per_client_min)
    return out


def _apiserver_pid(s: Setup) -> int | None:
    for comp in s.state.clusters[0].components:
        if comp.name == "kube-apiserver" and Path(f"/proc/{comp.pid}").exists():
            return comp.pid
    return None


def _raw_lists(s: Setup, clients: int, total: int, rv: str | None) -> dict[str, Any]:
    """``clients`` threads, each with its own API client, making list_jobs' LIST (jobs of
    LIST_NAMESPACE, limit 5000) after a common start; p50 and calls over the timed wall."""
    from kubernetes import client, config

    def api() -> Any:
        return client.BatchV1Api(config.new_client_from_config(s.kubeconfig, s.context))

    def call(batch: Any) -> None:
        kw = {"resource_version": rv} if rv is not None else {}
        r = batch.list_namespaced_job(LIST_NAMESPACE, limit=5000, _preload_content=False, **kw)
        assert r.status == 200, r.status
        assert r.data

    per = max(PER_CLIENT, total // clients)
    apis = [api() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    lat: list[float] = []

    def one(batch: Any) -> None:
        for _ in range(WARMUP):
            call(batch)
        start.wait()
        for _ in range(per):
            t0 = time.perf_counter()
            call(batch)
            lat.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=one, args=(a,)) for a in apis]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "p50_ms": round(statistics.median(lat), 2),
        "calls_per_s": round(len(lat) / wall, 1),
        "calls": len(lat),
    }


def _api_alone(s: Setup, total: int) -> dict[str, Any]:
    """The list class's LIST straight at the API server (no MCP): consistent at each client
    count, and at 1 client from the watch cache (resourceVersion=0)."""
    out: dict[str, Any] = {"path": f"/apis/batch/v1/namespaces/{LIST_NAMESPACE}/jobs"}
    for n in CLIENTS:
        out[str(n)] = _raw_lists(s, n, total, None)
    out["rv0_1"] = _raw_lists(s, 1, total, "0")
    return out


def _kms(
    s: Setup, env: dict[str, str], total: int, per_client_min: int = PER_CLIENT
) -> dict[str, Any]:
    port = free_port()
    with background([s.kms, *s.kms_args(port)], env) as proc:
        wait_port(port, proc)
        url = f"http://127.0.0.1:{port}/mcp"
        return _series(s, url, proc.pid, KMS, total, per_client_min)


def _bare(s: Setup, total: int) -> dict[str, Any]:
    """The same load on a bare SDK server (benchmarks/bare_server.py): the SDK's own cost."""
    port = free_port()
    args = [sys.executable, str(HERE / "bare_server.py"), "--port", str(port)]
    with background(args, s.env) as proc:
        wait_port(port, proc)
        return _series(s, f"http://127.0.0.1:{port}/mcp", proc.pid, BARE, total)


def b2(s: Setup, total: int = 200) -> dict[str, Any]:
    out: dict[str, Any] = {"format": 2, "list_namespace": LIST_NAMESPACE, "cpus": os.cpu_count()}
    port = free_port()
    with background([MCP_KUBE, *s.ours_args(port)], s.ours_env) as proc:
        wait_port(port, proc)
        out["ours"] = _series(s, f"http://127.0.0.1:{port}/mcp", proc.pid, OURS, total)
    out["bare_sdk"] = _bare(s, total)
    out["api_alone"] = _api_alone(s, total)
    if "kms" in s.peers:
        out["kms"] = _kms(s, s.kms_env, total) | {"env": KMS_TUNED}
        # the default limiter allows 5 calls/s: 40 timed calls per level (2 per client at 50)
        # suffice to show it, where 1,000 would take minutes
        out["kms_default"] = _kms(s, s.env, 40, per_client_min=2) | {"env": {}}
    return out
