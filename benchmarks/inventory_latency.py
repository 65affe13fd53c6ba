"""gpu_inventory latency over MCP (stdio), cold (first call) and warm (cached), with peak RSS.

Usage: python benchmarks/inventory_latency.py KUBECONFIG CONTEXT [CONTEXT...] [--runs N]
Prints one JSON object. Start a testbed first (`mcp-kube testbed up [--profile scale]`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

MCP_KUBE = str(Path(sys.executable).parent / "mcp-kube")


async def measure(kubeconfig: str, contexts: list[str], runs: int) -> dict[str, object]:
    args = ["serve", "--kubeconfig", kubeconfig]
    for c in contexts:
        args += ["--context", c]
    async with Client(StdioServerParameters(command=MCP_KUBE, args=args)) as client:
        call = {"include_nodes": False}
        t0 = time.perf_counter()
        first = await client.call_tool("gpu_inventory", call)
        cold = (time.perf_counter() - t0) * 1000
        assert not first.is_error, first.content
        warm = []
        for _ in range(runs):
            t0 = time.perf_counter()
            r = await client.call_tool("gpu_inventory", call)
            warm.append((time.perf_counter() - t0) * 1000)
            assert not r.is_error
        totals = first.structured_content["fleet"]
    return {
        "contexts": contexts,
        "cold_ms": round(cold, 1),
        "warm_ms_median": round(statistics.median(warm), 1),
        "warm_ms_min": round(min(warm), 1),
        "warm_ms_max": round(max(warm), 1),
        "runs": runs,
        "fleet": {r["resource"]: r["allocatable"] for r in totals},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("kubeconfig")
    p.add_argument("contexts", nargs="+")
    p.add_argument("--runs", type=int, default=10)
    a = p.parse_args()
    print(json.dumps(anyio.run(measure, a.kubeconfig, a.contexts, a.runs), indent=2))


if __name__ == "__main__":
    main()
