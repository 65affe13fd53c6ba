"""mcp-kube side by side with what users could run instead, on the same cluster in the same run.

B1 free GPUs per product, time until the client holds them, checked against the fleet file:
   `gpu_inventory` over MCP (cold: first call of a fresh server; repeat: the same call again)
   vs `kubectl get nodes/pods -o json` + jq, vs kubernetes-mcp-server and mcp-server-kubernetes
   listing nodes and pods through their tools, their output decoded and reduced in the client.
B2 MCP calls over streamable HTTP at 1, 10 and 50 concurrent clients: a cached read against
   the peer's cheapest read, and a real API list on both sides; kubernetes-mcp-server at its
   default and at a raised client-go limiter; server CPU time per call.
B3 policy decisions (benchmarks/policy_decisions.py), run --runs times.
B4 the last 10,000 lines of a 1 GB pod log vs `kubectl logs --tail=10000`: wall, peak memory.
B5 agent decode speed vs raw llama-cpp-python (benchmarks/agent_speed.py).
B6 cold start: spawning the stdio server until its tools/list answer.
B7 server memory: RSS idle, with every node and pod cached, and its peak; growth per 10,000 pods
   (benchmarks/bench_memory.py).
B8 telemetry: idle_gpus and gpu_utilization warm p50/p95 over MCP against the testbed's
   Prometheus, and the memory its Prometheus, dcgm-exporter and Kueue add
   (benchmarks/bench_telemetry.py).

Each figure is the median of --runs (min and max shown). `make bench` runs it on the scale
profile (`mcp-kube testbed up --profile scale --dir DIR`); any profile works. The peers come
from benchmarks/peers.py (`--skip kms,msk` leaves them out). The table is
benchmarks/report.py's rendering of the JSON written to --out.

Usage: python benchmarks/compare.py RUN_DIR [--runs N] [--skip B4,B5,kms] [--out FILE]
       [--llama benchmarks/results/llama_builds.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers
import report
from bench_b1 import b1
from bench_b2 import b2
from bench_b4 import b4, b6
from bench_common import HERE, Setup
from bench_memory import memory
from bench_telemetry import telemetry


def _script(name: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / name), *args], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def _b3(runs: int) -> dict[str, Any]:
    """B3 is over in seconds, so it runs --runs times like the others; each figure is the
    median of the runs' figures, the runs' p50s shown as min and max."""
    got = [
        _script("policy_decisions.py", "--only", "common-expression-language") for _ in range(runs)
    ]
    out: dict[str, Any] = {}
    for key, kinds in got[0].items():
        out[key] = {}
        for kind in kinds:
            each = [g[key][kind] for g in got]
            p50s = [e["p50_us"] for e in each]
            out[key][kind] = {
                "p50_us": statistics.median(p50s),
                "p99_us": statistics.median(e["p99_us"] for e in each),
                "per_s": round(statistics.median(e["per_s"] for e in each)),
                "p50_min_us": min(p50s),
                "p50_max_us": max(p50s),
                "runs": runs,
            }
    return out


class Runner:
    """Runs the benchmarks one by one; one failing does not lose the others."""

    def __init__(self, skip: set[str]) -> None:
        self.skip = skip
        self.results: dict[str, Any] = {}
        self.failed: dict[str, str] = {}

    def step(self, key: str, fn: Callable[[], Any]) -> None:
        if key.upper() in self.skip:
            return
        print(f"[bench] {key} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            self.results[key] = fn()
        except Exception as e:
            while isinstance(e, BaseExceptionGroup) and e.exceptions:
                e = e.exceptions[0]
            self.failed[key] = f"{type(e).__name__}: {str(e)[:500]}"
            print(f"[bench] {key} FAILED: {self.failed[key]}", file=sys.stderr, flush=True)
            return
        print(f"[bench] {key} done in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor()


def _header(bench: Setup, runs: int) -> dict[str, Any]:
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_model": _cpu_model(),
        },
        "peers": {
            "kubernetes-mcp-server": peers.KMS_VERSION,
            "mcp-server-kubernetes": peers.MSK_VERSION,
        },
        "contenders": ["mcp-kube", "kubectl+jq", *bench.peers],
        "profile": bench.profile,
        "runs": runs,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma separated, e.g. B4,B5 or kms,msk (peers)")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/bench-<time>.json")
    ap.add_argument("--llama", type=Path, help="llama_builds.py's JSON, kept in this run's JSON")
    args = ap.parse_args()
    skip = {s.strip().upper() for s in args.skip.split(",") if s.strip()}
    bench = Setup(args.run_dir, args.runs, {p for p in ("kms", "msk") if p.upper() not in skip})
    run = Runner(skip)
    run.results.update(_header(bench, args.runs))
    run.step("b1", lambda: b1(bench))
    run.step("b2", lambda: b2(bench))
    run.step("b3", lambda: _b3(args.runs))
    run.step("b6", lambda: b6(bench))  # after B1-B3: a new scale cluster has settled by then
    run.step("b7", lambda: memory(bench))
    run.step("b8", lambda: telemetry(bench))
    run.step("b4", lambda: b4(bench))
    run.step("b5", lambda: _script("agent_speed.py", bench.kubeconfig, bench.context))
    if args.llama and args.llama.is_file():
        run.results["llama_builds"] = json.loads(args.llama.read_text())
    if run.failed:
        run.results["failed"] = run.failed
    out = args.out or HERE / "results" / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(run.results, indent=2) + "\n")
    print(report.render(run.results))
    print(f"\nresults: {out}")
    for key, why in run.failed.items():
        print(f"{key.upper()} FAILED: {why}")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
