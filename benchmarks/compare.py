"""mcp-kube side by side with what users could run instead, on the same cluster in the same run.

B1 GPU inventory: `gpu_inventory` over MCP (cold: first call of a fresh server; warm) vs
   `kubectl get nodes/pods -o json` + jq computing the same free-GPU numbers, vs
   kubernetes-mcp-server and mcp-server-kubernetes listing the nodes and pods through their tools.
B2 MCP call overhead over streamable HTTP at 1, 10 and 50 concurrent clients (a cheap cached
   read tool; for kubernetes-mcp-server its cheapest list, `namespaces_list`).
B3 policy decisions (benchmarks/policy_decisions.py).
B4 the last 10,000 lines of a 1 GB pod log vs `kubectl logs --tail=10000`: wall and memory.
B5 agent decode speed vs raw llama-cpp-python (benchmarks/agent_speed.py).
B6 cold start: spawning the stdio server until its tools/list answer.

Each figure is the median of --runs (min and max shown). Needs a testbed with the scale profile
(`mcp-kube testbed up --profile scale --dir DIR`) and the peers (benchmarks/peers.py).

Usage: python benchmarks/compare.py RUN_DIR [--runs N] [--skip B4,B5] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers

from mcp_kube.testbed import cluster

HERE = Path(__file__).resolve().parent
MCP_KUBE = str(Path(sys.executable).parent / "mcp-kube")
QUIET = {
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_TRACES_EXPORTER": "none",
    "ENABLE_TELEMETRY": "false",
}
# free GPUs per product, from the raw objects: what gpu_inventory's fleet_products reports
JQ = r"""
($n[0].items | map(select(.spec.unschedulable != true) | {
    name: .metadata.name,
    product: (.metadata.labels["nvidia.com/gpu.product"]
              // .metadata.labels["amd.com/gpu.product"] // ""),
    gpus: ((.status.allocatable["nvidia.com/gpu"] // "0") | tonumber)})
  | map(select(.product != ""))) as $nodes
| ($p[0].items | map(select(.status.phase != "Succeeded" and .status.phase != "Failed")
    | {node: (.spec.nodeName // ""),
       gpus: ([.spec.containers[].resources.requests["nvidia.com/gpu"] // "0" | tonumber] | add)})
  | group_by(.node) | map({key: .[0].node, value: (map(.gpus) | add)}) | from_entries) as $used
| $nodes | group_by(.product)
| map({product: .[0].product, allocatable: (map(.gpus) | add),
       allocated: (map($used[.name] // 0) | add)} | .free = .allocatable - .allocated)
"""


def stats(samples_ms: list[float]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(samples_ms), 1),
        "min_ms": round(min(samples_ms), 1),
        "max_ms": round(max(samples_ms), 1),
        "runs": len(samples_ms),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def background(args: list[str], env: dict[str, str]) -> Any:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Bench:
    def __init__(self, run_dir: Path, runs: int) -> None:
        state = cluster.load_state(run_dir)
        if state is None:
            raise SystemExit(f"no testbed in {run_dir}")
        self.state = state
        self.kubeconfig = state.kubeconfig
        self.context = state.clusters[0].context
        self.runs = runs
        self.work = Path(tempfile.mkdtemp(prefix="mcpk-bench-"))
        self.kubectl, self.jq = str(peers.kubectl()), str(peers.jq())
        self.kms, self.msk = str(peers.kms()), str(peers.msk())
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_KUBE_", "OTEL_"))}
        self.env = base | QUIET | {"KUBECONFIG": self.kubeconfig}
        self.ours_env = self.env | {
            "MCP_KUBE_HTTP__CALLS_PER_SECOND": "1000000",  # B2 measures overhead, not the limiter
            "MCP_KUBE_HTTP__BURST": "1000000",
            "MCP_KUBE_LIMITS__MAX_LOG_LINES": "10000",
            "MCP_KUBE_LIMITS__MAX_LOG_BYTES": str(8 * 1024 * 1024),
            "MCP_KUBE_LIMITS__MAX_RESPONSE_BYTES": str(16 * 1024 * 1024),
        }
        self.msk_env = self.env | {
            "PATH": f"{Path(self.kubectl).parent}{os.pathsep}{self.env.get('PATH', '')}",
            "SPAWN_MAX_BUFFER": str(1024 * 1024 * 1024),
            "ALLOWED_TOOLS": "kubectl_get,kubectl_generic,kubectl_logs,ping",
        }

    # ------------------------------------------------------------------ servers
    def ours_args(self, http_port: int | None = None) -> list[str]:
        args = ["serve", "--kubeconfig", self.kubeconfig, "--context", self.context]
        args += ["--audit-log", str(self.work / "audit.jsonl")]
        if http_port:
            args += ["--transport", "http", "--port", str(http_port), "--allow-unauthenticated"]
        return args

    def stdio(self, who: str) -> StdioServerParameters:
        if who == "ours":
            return StdioServerParameters(command=MCP_KUBE, args=self.ours_args(), env=self.ours_env)
        if who == "kms":
            args = [
                "--kubeconfig",
                self.kubeconfig,
                "--read-only",
                "--disable-multi-cluster",
                "--list-output",
                "yaml",
            ]
            return StdioServerParameters(command=self.kms, args=args, env=self.env)
        return StdioServerParameters(command="node", args=[self.msk], env=self.msk_env)

    # ------------------------------------------------------------------ B1
    async def b1_ours(self) -> dict[str, Any]:
        cold, warm = [], []
        call = {"include_nodes": False}
        free = None
        for i in range(self.runs):
            async with Client(self.stdio("ours")) as c:
                t0 = time.perf_counter()
                r = await c.call_tool("gpu_inventory", call)
                cold.append((time.perf_counter() - t0) * 1000)
                assert not r.is_error, r.content
                free = {p["product"]: p["free"] for p in r.structured_content["fleet_products"]}
                if i == self.runs - 1:
                    for _ in range(self.runs * 4):
                        t0 = time.perf_counter()
                        r = await c.call_tool("gpu_inventory", call)
                        warm.append((time.perf_counter() - t0) * 1000)
        return {"cold": stats(cold), "warm": stats(warm), "free_by_product": free}

    def b1_kubectl_jq(self) -> dict[str, Any]:
        samples, result = [], None
        nodes, pods = self.work / "nodes.json", self.work / "pods.json"
        k = [self.kubectl, "--kubeconfig", self.kubeconfig, "--context", self.context]
        for _ in range(self.runs):
            t0 = time.perf_counter()
            with nodes.open("wb") as f:
                subprocess.run([*k, "get", "nodes", "-o", "json"], stdout=f, check=True)
            with pods.open("wb") as f:
                subprocess.run([*k, "get", "pods", "-A", "-o", "json"], stdout=f, check=True)
            out = subprocess.run(
                [self.jq, "-n", "--slurpfile", "n", str(nodes), "--slurpfile", "p", str(pods), JQ],
                capture_output=True,
                check=True,
            )
            samples.append((time.perf_counter() - t0) * 1000)
            result = {r["product"]: r["free"] for r in json.loads(out.stdout)}
        return stats(samples) | {"free_by_product": result}

    async def b1_peer(self, who: str) -> dict[str, Any]:
        if who == "kms":
            calls = [
                ("resources_list", {"apiVersion": "v1", "kind": "Node"}),
                ("resources_list", {"apiVersion": "v1", "kind": "Pod"}),
            ]
        else:
            calls = [
                (
                    "kubectl_generic",
                    {"command": "get", "resourceType": "nodes", "outputFormat": "json"},
                ),
                (
                    "kubectl_generic",
                    {
                        "command": "get",
                        "resourceType": "pods",
                        "allNamespaces": True,
                        "outputFormat": "json",
                    },
                ),
            ]
        samples, cold, sizes = [], 0.0, 0
        async with Client(self.stdio(who)) as c:
            for i in range(self.runs + 1):
                t0 = time.perf_counter()
                size = 0
                for name, args in calls:
                    r = await c.call_tool(name, args)
                    assert not r.is_error, (who, name, str(r.content)[:300])
                    size += sum(len(getattr(x, "text", "")) for x in r.content)
                ms = (time.perf_counter() - t0) * 1000
                if i == 0:
                    cold, sizes = ms, size
                else:
                    samples.append(ms)
        return {"cold_ms": round(cold, 1), "warm": stats(samples), "result_bytes": sizes}

    # ------------------------------------------------------------------ B2
    async def _load(
        self, url: str, tool: str, args: dict[str, Any], clients: int, total: int = 200
    ) -> dict[str, Any]:
        per_client = max(2, total // clients)
        lat: list[float] = []

        async def one() -> None:
            async with Client(url) as c:
                for _ in range(3):
                    await c.call_tool(tool, args)
                for _ in range(per_client):
                    t0 = time.perf_counter()
                    r = await c.call_tool(tool, args)
                    lat.append((time.perf_counter() - t0) * 1000)
                    assert not r.is_error, str(r.content)[:200]

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(one)
        seconds = time.perf_counter() - t0
        lat.sort()
        return {
            "p50_ms": round(statistics.median(lat), 2),
            "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 2),
            "calls_per_s": round(len(lat) / seconds, 1),
            "calls": len(lat),
        }

    def b2(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        port = free_port()
        with background([MCP_KUBE, *self.ours_args(port)], self.ours_env) as proc:
            wait_port(port, proc)
            url = f"http://127.0.0.1:{port}/mcp"
            anyio.run(self._load, url, "gpu_inventory", {"include_nodes": False}, 1)  # cache
            out["ours"] = {
                "tool": "gpu_inventory (cached totals)",
                **{
                    str(n): anyio.run(self._load, url, "gpu_inventory", {"include_nodes": False}, n)
                    for n in (1, 10, 50)
                },
            }
            out["ours_whoami"] = {
                "tool": "whoami (no cluster call)",
                **{str(n): anyio.run(self._load, url, "whoami", {}, n) for n in (1, 10, 50)},
            }
        port = free_port()
        args = [
            self.kms,
            "--kubeconfig",
            self.kubeconfig,
            "--read-only",
            "--disable-multi-cluster",
            "--port",
            str(port),
            "--bind-address",
            "127.0.0.1",
        ]
        with background(args, self.env) as proc:
            wait_port(port, proc)
            url = f"http://127.0.0.1:{port}/mcp"
            out["kms"] = {
                "tool": "namespaces_list (one small API list)",
                **{
                    # client-go's default limiter (5 requests/s) bounds it: 40 calls suffice
                    str(n): anyio.run(self._load, url, "namespaces_list", {}, n, 40)
                    for n in (1, 10, 50)
                },
            }
        return out

    # ------------------------------------------------------------------ B4
    def _log_pod(self) -> tuple[str, str]:
        """A 1 GB log behind a pod (KWOK serves the file of container name 'chatty')."""
        cl = self.state.clusters[0]
        path = Path(cl.pod_logs["chatty"])
        # CRI log lines, as a kubelet (here KWOK) reads them
        line = b"2026-11-30T12:00:00.000000000Z stdout F step=%08d loss=0.%06d throughput=1234.5\n"
        with path.open("rb") as f:
            ready = f.read(60).startswith(line[:30]) and path.stat().st_size >= 1_000_000_000
        if not ready:
            chunk = b"".join(line % (i, i % 999_999) for i in range(100_000))
            with path.open("wb") as f:
                written = 0
                while written < 1_000_000_000:
                    f.write(chunk)
                    written += len(chunk)
        name, ns = "log-bench", "team-a"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "nodeName": "h100-0",
                "containers": [{"name": "chatty", "image": "registry.internal/x:1"}],
                "tolerations": [{"operator": "Exists"}],
            },
        }
        k = [self.kubectl, "--kubeconfig", self.kubeconfig, "--context", self.context]
        subprocess.run(
            [*k, "apply", "-f", "-"],
            input=json.dumps(pod).encode(),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*k, "-n", ns, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s"],
            check=True,
            capture_output=True,
        )
        return ns, name

    def b4(self) -> dict[str, Any]:
        ns, pod = self._log_pod()
        k = [self.kubectl, "--kubeconfig", self.kubeconfig, "--context", self.context]
        walls, rss = [], []
        for _ in range(self.runs):
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [*k, "-n", ns, "logs", pod, "-c", "chatty", "--tail=10000"],
                stdout=subprocess.DEVNULL,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            walls.append((time.perf_counter() - t0) * 1000)
            rss.append(usage.ru_maxrss / 1024)
        kubectl = stats(walls) | {"peak_rss_mib": round(max(rss), 1)}
        port = free_port()
        walls, growth = [], []
        with background([MCP_KUBE, *self.ours_args(port)], self.ours_env) as proc:
            wait_port(port, proc)

            async def calls() -> None:
                async with Client(f"http://127.0.0.1:{port}/mcp") as c:
                    await c.call_tool("whoami", {})
                    base = _rss(proc.pid)
                    for _ in range(self.runs):
                        args = {
                            "namespace": ns,
                            "pod": pod,
                            "container": "chatty",
                            "tail_lines": 10000,
                            "max_bytes": 8 * 1024 * 1024,
                        }
                        t0 = time.perf_counter()
                        r = await c.call_tool("pod_logs", args)
                        walls.append((time.perf_counter() - t0) * 1000)
                        assert not r.is_error, str(r.content)[:300]
                        lines = r.structured_content["lines"]
                        assert len(lines) == 10000, len(lines)
                        growth.append(_rss(proc.pid, peak=True) - base)

            anyio.run(calls)
        ours = stats(walls) | {"rss_growth_mib": round(max(growth), 1)}
        return {"kubectl": kubectl, "ours": ours, "log_bytes": 1_000_000_000}

    # ------------------------------------------------------------------ B6
    async def _first_list(self, who: str) -> float:
        t0 = time.perf_counter()
        async with Client(self.stdio(who)) as c:
            await c.list_tools()
            return (time.perf_counter() - t0) * 1000

    def b6(self) -> dict[str, Any]:
        out = {}
        for who in ("ours", "kms", "msk"):
            anyio.run(self._first_list, who)  # page cache warm for every contender
            out[who] = stats([anyio.run(self._first_list, who) for _ in range(self.runs)])
        return out


def _rss(pid: int, peak: bool = False) -> float:
    key = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0.0


def _script(name: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / name), *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def table(r: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []

    def ms(s: dict[str, Any]) -> str:
        return f"{s['median_ms']} ms ({s['min_ms']}-{s['max_ms']})"

    def ratio(a: float, b: float, goal: float) -> str:
        x = a / b if b else float("inf")
        return f"{x:.3f}x (goal <= {goal}x) {'ok' if x <= goal else 'MISSED'}"

    if "b1" in r:
        b = r["b1"]
        ours = b["ours"]["warm"]["median_ms"]
        rows.append(("B1 gpu_inventory cold", ms(b["ours"]["cold"]), "", ""))
        rows.append(
            (
                "B1 gpu_inventory warm",
                ms(b["ours"]["warm"]),
                "kubectl+jq " + ms(b["kubectl_jq"]),
                ratio(ours, b["kubectl_jq"]["median_ms"], 0.25),
            )
        )
        rows.append(
            (
                "",
                "",
                "kubernetes-mcp-server " + ms(b["kms"]["warm"]),
                ratio(ours, b["kms"]["warm"]["median_ms"], 0.5),
            )
        )
        rows.append(
            (
                "",
                "",
                "mcp-server-kubernetes " + ms(b["msk"]["warm"]),
                ratio(ours, b["msk"]["warm"]["median_ms"], 0.5),
            )
        )
    if "b2" in r:
        for n in ("1", "10", "50"):
            o, k = r["b2"]["ours"][n], r["b2"]["kms"][n]
            rows.append(
                (
                    f"B2 {n} client(s)",
                    f"p50 {o['p50_ms']} p99 {o['p99_ms']} ms, {o['calls_per_s']}/s",
                    f"kms p50 {k['p50_ms']} p99 {k['p99_ms']} ms, {k['calls_per_s']}/s",
                    ("p50 " + ("ok" if o["p50_ms"] <= 5 else "MISSED") + " (goal <= 5 ms); ")
                    + (
                        "throughput ok"
                        if o["calls_per_s"] >= k["calls_per_s"]
                        else "throughput MISSED"
                    ),
                )
            )
    if "b3" in r:
        for name, sets in r["b3"].items():
            for kind, s in sets.items():
                rows.append(
                    (
                        f"B3 {name} {kind}",
                        f"p50 {s['p50_us']} us, p99 {s['p99_us']} us",
                        f"{s['per_s']}/s",
                        "ok" if s["p50_us"] <= 100 else "MISSED (goal <= 100 us)",
                    )
                )
    if "b4" in r:
        o, k = r["b4"]["ours"], r["b4"]["kubectl"]
        rows.append(
            (
                "B4 10,000 lines of 1 GB",
                ms(o) + f", RSS +{o['rss_growth_mib']} MiB",
                "kubectl " + ms(k) + f", peak RSS {k['peak_rss_mib']} MiB",
                ratio(o["median_ms"], k["median_ms"], 1.0)
                + (" rss ok" if o["rss_growth_mib"] <= 64 else " rss MISSED"),
            )
        )
    if "b5" in r:
        b = r["b5"]
        rows.append(
            (
                "B5 agent decode",
                f"{b['agent_decode_tok_s']} tok/s",
                f"raw {b['raw_llama_cpp_decode_tok_s']} tok/s",
                f"{b['ratio']}x (goal >= 0.95x) {'ok' if (b['ratio'] or 0) >= 0.95 else 'MISSED'}; "
                f"first tool call {b['first_tool_call_s_median']} s",
            )
        )
    if "b6" in r:
        b = r["b6"]
        rows.append(
            (
                "B6 cold start to tools/list",
                ms(b["ours"]),
                f"kms {ms(b['kms'])}; msk {ms(b['msk'])}",
                "ok" if b["ours"]["median_ms"] <= 1500 else "MISSED (goal <= 1.5 s)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma separated, e.g. B4,B5")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/bench-<time>.json")
    args = ap.parse_args()
    skip = {s.strip().upper() for s in args.skip.split(",") if s.strip()}
    bench = Bench(args.run_dir, args.runs)
    r: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "peers": {
            "kubernetes-mcp-server": peers.KMS_VERSION,
            "mcp-server-kubernetes": peers.MSK_VERSION,
        },
        "runs": args.runs,
    }

    failed: dict[str, str] = {}

    def step(key: str, fn: Callable[[], Any]) -> None:
        if key.upper() in skip:
            return
        print(f"[bench] {key} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            r[key] = fn()
        except Exception as e:  # one benchmark failing does not lose the others
            while isinstance(e, BaseExceptionGroup) and e.exceptions:
                e = e.exceptions[0]
            failed[key] = f"{type(e).__name__}: {str(e)[:500]}"
            print(f"[bench] {key} FAILED: {failed[key]}", file=sys.stderr, flush=True)
            return
        print(f"[bench] {key} done in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)

    step(
        "b1",
        lambda: {
            "ours": anyio.run(bench.b1_ours),
            "kubectl_jq": bench.b1_kubectl_jq(),
            "kms": anyio.run(bench.b1_peer, "kms"),
            "msk": anyio.run(bench.b1_peer, "msk"),
        },
    )
    step("b2", bench.b2)
    step(
        "b3",
        lambda: {
            k: v
            for k, v in _script("policy_decisions.py").items()
            if k.startswith("common-expression-language")
        },
    )
    step("b6", bench.b6)  # after B1-B3: the new scale cluster has settled by then
    step("b4", bench.b4)
    step("b5", lambda: _script("agent_speed.py", bench.kubeconfig, bench.context))
    if failed:
        r["failed"] = failed
    out = args.out or HERE / "results" / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2) + "\n")
    print(table(r))
    print(f"\nresults: {out}")
    for key, why in failed.items():
        print(f"{key.upper()} FAILED: {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
