"""B7: the server's resident memory with its watch caches warm, per 10,000 cached pods.

A fresh mcp-kube server (streamable HTTP) answers `whoami` (no cluster read: its idle RSS), then
`gpu_inventory` (the first call lists and watches every node and pod), and is left to settle;
then its RSS (warm), its own high-water mark VmHWM (peak, the initial LIST included) and the
number of objects it caches, from its `/metrics`. Each figure is the median of --runs fresh
servers; the growth (warm - idle) is scaled to 10,000 pods.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from typing import Any

import anyio
from bench_common import MCP_KUBE, Setup, background, free_port, rss_mib, wait_port
from mcp import Client

SETTLE_S = 2.0  # after the warm call: the watch threads have consumed the first events
PER_PODS = 10_000


def _cached(port: int) -> dict[str, int]:
    """mcp_kube_cache_objects{kind=...} from the server's /metrics (0 for a kind not shown)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {"nodes": 0, "pods": 0}
    for line in text.splitlines():
        if line.startswith("mcp_kube_cache_objects{"):
            for kind in out:
                if f'kind="{kind}"' in line:
                    out[kind] += int(float(line.rsplit(" ", 1)[1]))
    return out


def _one(s: Setup) -> dict[str, float]:
    port = free_port()
    got: dict[str, float] = {}
    with background([MCP_KUBE, *s.ours_args(port)], s.ours_env) as proc:
        wait_port(port, proc)

        async def calls() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp") as c:
                await c.call_tool("whoami", {})
                got["idle"] = rss_mib(proc.pid)
                r = await c.call_tool("gpu_inventory", {"include_nodes": False})
                assert not r.is_error, str(r.content)[:300]
                await anyio.sleep(SETTLE_S)
                await c.call_tool("gpu_inventory", {"include_nodes": False})
                got["warm"] = rss_mib(proc.pid)
                got["peak"] = rss_mib(proc.pid, peak=True)

        anyio.run(calls)
        cached = _cached(port)
    return got | {"pods": cached["pods"], "nodes": cached["nodes"]}


def memory(s: Setup) -> dict[str, Any]:
    runs = [_one(s) for _ in range(s.runs)]

    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 1)

    pods = int(statistics.median(r["pods"] for r in runs))
    growth = statistics.median(r["warm"] - r["idle"] for r in runs)
    return {
        "idle_rss_mib": med("idle"),
        "warm_rss_mib": med("warm"),
        "peak_rss_mib": med("peak"),
        "growth_mib": round(growth, 1),
        "per_10k_pods_mib": round(growth * PER_PODS / pods, 1) if pods else None,
        "cached_pods": pods,
        "cached_nodes": int(statistics.median(r["nodes"] for r in runs)),
        "runs": len(runs),
        "settle_s": SETTLE_S,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
