"""Server CPU per tool call over streamable HTTP, and where it goes (cProfile of the server).

Starts `mcp-kube serve` (HTTP, the B2 environment) against a running testbed, or the bare SDK
server (benchmarks/bare_server.py) with --bare, warms one client up, then makes N sequential
calls per repeat and reads the server's utime+stime from /proc around them. With --profile
OUT, the server runs under cProfile, switched on (SIGUSR1) after the warm-up and written
(SIGUSR2) after the last repeat: only the timed calls are in it (the CPU figures are then
inflated by the profiler; take them from a run without --profile). The profile counts the
process's CPU time, not wall time: waits drop out, and what worker threads spend (the API
calls) is charged to whatever the event loop runs meanwhile, mostly its poll.

Usage: python benchmarks/cpu_profile.py --testbed DIR [--n 500] [--repeats 5]
         [--tool gpu_inventory|list_jobs|echo] [--bare] [--clients 1] [--profile OUT.prof]
(--testbed defaults to $MCP_KUBE_TEST_TESTBED_DIR.) $CPU_PROFILE_WRAPPER, when set, is a script
run instead of the server, with its arguments (e.g. one that puts another checkout first on
sys.path, to measure two versions the same way, or pins the server to a core).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_common import QUIET, background, cpu_seconds, free_port, wait_port  # noqa: E402

CALLS = {
    "gpu_inventory": {"include_nodes": False},
    "list_jobs": {"namespace": "default"},  # one API list per call (B2's list class)
    "echo": {"text": "x"},
}


def serve_profiled(out: str, argv: list[str]) -> None:
    """In the server process: run ``argv`` (a script or `mcp-kube`), profile between signals."""
    prof = cProfile.Profile(time.process_time)
    signal.signal(signal.SIGUSR1, lambda *_: prof.enable())

    def dump(*_: object) -> None:
        prof.disable()
        prof.dump_stats(out)

    signal.signal(signal.SIGUSR2, dump)
    if argv[0].endswith(".py"):
        sys.argv = argv
        import runpy

        runpy.run_path(argv[0], run_name="__main__")
        return
    from mcp_kube.cli import main

    sys.argv = argv
    main()


def server_command(
    a: argparse.Namespace, port: int, work: Path
) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_KUBE_", "OTEL_"))}
    env |= QUIET
    if a.bare:
        argv = [str(HERE / "bare_server.py"), "--port", str(port)]
    else:
        from mcp_kube.testbed import cluster

        state = cluster.load_state(Path(a.testbed or "."))
        if state is None:
            raise SystemExit(f"no testbed in {a.testbed}")
        env |= {
            "KUBECONFIG": state.kubeconfig,
            "MCP_KUBE_HTTP__CALLS_PER_SECOND": "1000000",
            "MCP_KUBE_HTTP__BURST": "1000000",
        }
        argv = ["mcp-kube", "serve", "--kubeconfig", state.kubeconfig]
        argv += ["--context", state.clusters[0].context, "--audit-log", str(work / "audit.jsonl")]
        argv += ["--transport", "http", "--port", str(port), "--allow-unauthenticated"]
    if a.profile:
        return [sys.executable, __file__, "--serve-profiled", a.profile, "--", *argv], env
    if os.environ.get("CPU_PROFILE_WRAPPER"):  # an experiment's wrapper of the server
        return [sys.executable, os.environ["CPU_PROFILE_WRAPPER"], *argv[1:]], env
    if a.bare:
        return [sys.executable, *argv], env
    return [str(Path(sys.executable).parent / "mcp-kube"), *argv[1:]], env


async def drive(
    url: str, pid: int, tool: str, n: int, repeats: int, prof: bool, clients: int = 1
) -> list[float]:
    """``repeats`` times ``n`` calls, spread over ``clients`` concurrent sessions; the server's
    CPU ms per call of each repeat."""
    from mcp import Client

    args = CALLS[tool]
    out = []
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(Client(url)) for _ in range(clients)]
        for c in sessions:
            for _ in range(20 // clients + 1):
                r = await c.call_tool(tool, args)
                assert not r.is_error, str(r.content)[:300]
        if prof:
            os.kill(pid, signal.SIGUSR1)

        async def calls(c: Any, k: int) -> None:
            for _ in range(k):
                await c.call_tool(tool, args)

        for _ in range(repeats):
            cpu0 = cpu_seconds(pid)
            async with anyio.create_task_group() as tg:
                for c in sessions:
                    tg.start_soon(calls, c, n // clients)
            out.append((cpu_seconds(pid) - cpu0) * 1000 / (n // clients * clients))
        if prof:
            os.kill(pid, signal.SIGUSR2)
            time.sleep(2)
    return out


def main() -> None:
    if "--serve-profiled" in sys.argv:
        i = sys.argv.index("--serve-profiled")
        serve_profiled(sys.argv[i + 1], sys.argv[sys.argv.index("--") + 1 :])
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--testbed", default=os.environ.get("MCP_KUBE_TEST_TESTBED_DIR"))
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tool", default="gpu_inventory")
    p.add_argument("--bare", action="store_true")
    p.add_argument("--clients", type=int, default=1, help="concurrent sessions sharing the calls")
    p.add_argument("--profile", help="write the server's cProfile stats here")
    a = p.parse_args()
    if a.bare:
        a.tool = "echo"
    port = free_port()
    cmd, env = server_command(a, port, Path(tempfile.mkdtemp(prefix="mcpk-cpu-")))
    with background(cmd, env) as proc:
        wait_port(port, proc)
        url = f"http://127.0.0.1:{port}/mcp"
        ms = anyio.run(drive, url, proc.pid, a.tool, a.n, a.repeats, bool(a.profile), a.clients)
    row: dict[str, Any] = {
        "server": "bare" if a.bare else "mcp-kube",
        "tool": a.tool,
        "calls_per_repeat": a.n // a.clients * a.clients,
        "clients": a.clients,
        "cpu_ms_per_call": [round(x, 3) for x in ms],
        "median": round(statistics.median(ms), 3),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
