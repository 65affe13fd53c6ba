"""B4: the last 10,000 lines of a 1 GB pod log, `pod_logs` against `kubectl logs --tail`;
wall time and each one's own peak resident memory. B6: cold start to the tools/list answer,
against a bare `mcp` SDK server started the same way in the same run.

kubectl's peak: a child forked from this (large) benchmark process would report the parent's
memory in ru_maxrss (fork copies the high-water mark and exec keeps it), so a tiny parent
(python -I -S, a few MiB) spawns kubectl and reads wait4's ru_maxrss of that child, timing it
too. mcp-kube's peak: VmHWM of the server process after the calls.

B6 also splits the start: one more start of each (mcp-kube, bare SDK server) under
PYTHONPROFILEIMPORTTIME, and the imports' own times summed by package: what both import
(the SDK and its stack), and what mcp-kube imports on top of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
from bench_common import MCP_KUBE, Setup, background, free_port, rss_mib, stats, wait_port
from mcp import Client
from mcp.client.stdio import stdio_client

LOG_BYTES = 1_000_000_000
TAIL = 10_000
# B4 pairs at least: one is ~0.1 s, and with 3 the run-to-run spread of either (kubectl's went
# 105-174 ms in one run) is wider than the difference being measured
MIN_PAIRS = 9
# The tiny parent: runs argv[1:] with stdout to /dev/null, prints wall ms and the child's peak.
SPAWN = """
import os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
wall = (time.perf_counter() - t0) * 1000
print('{"wall_ms": %.3f, "maxrss_kib": %d, "status": %d}' % (wall, usage.ru_maxrss, status))
"""


def _log_pod(s: Setup) -> tuple[str, str]:
    """A 1 GB log behind a pod (KWOK serves the file of container name 'chatty')."""
    path = Path(s.state.clusters[0].pod_logs["chatty"])
    # CRI log lines, as a kubelet (here KWOK) reads them
    line = b"2026-11-30T12:00:00.000000000Z stdout F step=%08d loss=0.%06d throughput=1234.5\n"
    with path.open("rb") as f:
        ready = f.read(60).startswith(line[:30]) and path.stat().st_size >= LOG_BYTES
    if not ready:
        chunk = b"".join(line % (i, i % 999_999) for i in range(100_000))
        with path.open("wb") as f:
            written = 0
            while written < LOG_BYTES:
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
    k = s.kubectl_args()
    subprocess.run(
        [*k, "apply", "-f", "-"], input=json.dumps(pod).encode(), check=True, capture_output=True
    )
    subprocess.run(
        [*k, "-n", ns, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s"],
        check=True,
        capture_output=True,
    )
    return ns, name


def _kubectl_once(cmd: list[str]) -> tuple[float, float]:
    """One `kubectl logs` under the tiny parent: (wall ms, kubectl's own peak RSS MiB)."""
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", SPAWN, *cmd], capture_output=True, check=True
    )
    got = json.loads(out.stdout)
    assert got["status"] == 0, got
    return got["wall_ms"], got["maxrss_kib"] / 1024


def b4(s: Setup) -> dict[str, Any]:
    """kubectl's runs alternate with mcp-kube's calls (one warm-up each first), so that both
    see the same load on the host and on the API server."""
    ns, pod = _log_pod(s)
    cmd = [*s.kubectl_args(), "-n", ns, "logs", pod, "-c", "chatty", f"--tail={TAIL}"]
    args = {"namespace": ns, "pod": pod, "container": "chatty", "tail_lines": TAIL}
    args["max_bytes"] = 8 * 1024 * 1024
    k_walls: list[float] = []
    k_rss: list[float] = []
    walls: list[float] = []
    idle = 0.0
    port = free_port()
    with background([MCP_KUBE, *s.ours_args(port)], s.ours_env) as proc:
        wait_port(port, proc)

        async def calls() -> None:
            nonlocal idle
            async with Client(f"http://127.0.0.1:{port}/mcp") as c:
                await c.call_tool("whoami", {})
                idle = rss_mib(proc.pid)
                for i in range(max(s.runs, MIN_PAIRS) + 1):
                    wall, rss = _kubectl_once(cmd)
                    t0 = time.perf_counter()
                    r = await c.call_tool("pod_logs", args)
                    ours = (time.perf_counter() - t0) * 1000
                    assert not r.is_error, str(r.content)[:300]
                    assert r.structured_content is not None
                    assert r.structured_content["line_count"] == TAIL
                    k_rss.append(rss)
                    if i:  # the first of each is the warm-up
                        k_walls.append(wall)
                        walls.append(ours)

        anyio.run(calls)
        peak = rss_mib(proc.pid, peak=True)
    return {
        "kubectl": stats(k_walls) | {"peak_rss_mib": round(max(k_rss), 1)},
        "ours": stats(walls) | {"peak_rss_mib": round(peak, 1), "idle_rss_mib": round(idle, 1)},
        "log_bytes": LOG_BYTES,
    }


async def _first_list(s: Setup, who: str) -> float:
    t0 = time.perf_counter()
    async with Client(s.stdio(who)) as c:
        await c.list_tools()
        return (time.perf_counter() - t0) * 1000


def _import_times(s: Setup, who: str) -> dict[str, int]:
    """Each module's own import time (us) in one start of ``who`` until tools/list."""
    params = s.stdio(who)
    env = {**(params.env or {}), "PYTHONPROFILEIMPORTTIME": "1"}
    params = params.model_copy(update={"env": env})

    async def go(log: Any) -> None:
        async with Client(stdio_client(params, errlog=log)) as c:
            await c.list_tools()

    with tempfile.TemporaryFile("w+") as log:
        anyio.run(go, log)
        log.seek(0)
        out: dict[str, int] = {}
        for line in log:
            if line.startswith("import time:") and "self [us]" not in line:
                own, _cumulative, name = line[len("import time:") :].split("|")
                out[name.strip()] = out.get(name.strip(), 0) + int(own)
    return out


def start_split(s: Setup) -> dict[str, Any]:
    """Import time (own time of each module, summed; under -X importtime, one start each) of
    what the bare SDK server imports too, and of what mcp-kube adds, by top-level package."""
    bare, ours = _import_times(s, "bare"), _import_times(s, "ours")
    extra: Counter[str] = Counter()
    for name, us in ours.items():
        if name not in bare:
            extra[name.split(".")[0]] += us
    return {
        "bare_imports_ms": round(sum(bare.values()) / 1000, 1),
        "shared_imports_ms": round(sum(v for k, v in ours.items() if k in bare) / 1000, 1),
        "extra_imports_ms": round(sum(extra.values()) / 1000, 1),
        "extra_by_package_ms": {k: round(v / 1000, 1) for k, v in extra.most_common(8)},
        "kubernetes_imported": "kubernetes" in ours,
    }


def b6(s: Setup) -> dict[str, Any]:
    """Each contender's runs alternate with a bare SDK server's (benchmarks/bare_server.py), so
    that both see the same load; the ratio is of the medians."""
    out: dict[str, Any] = {}
    bare: list[float] = []
    for who in ("ours", *s.peers):
        anyio.run(_first_list, s, who)  # page cache warm for every contender
        anyio.run(_first_list, s, "bare")
        runs = []
        for _ in range(s.runs):
            runs.append(anyio.run(_first_list, s, who))
            if who == "ours":
                bare.append(anyio.run(_first_list, s, "bare"))
        out[who] = stats(runs)
    out["bare_sdk"] = stats(bare)
    out["start_split"] = start_split(s)
    return out
