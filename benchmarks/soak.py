"""Soak: many concurrent HTTP sessions against one `mcp-kube serve`, then the same load while
the testbed's API server is killed and restarted.

Phase 1 (--seconds): --sessions MCP sessions over streamable HTTP, each with its own bearer
token (one principal each), call read tools back to back. Every call must succeed.
Phase 2 (--outage-seconds): the same load; after a third of it, gpu-east's kube-apiserver is
killed (SIGKILL), left down --down seconds and started again. Calls meanwhile must fail
cleanly (a tool error naming the cluster, never a transport error or a traceback); the same
server process must serve gpu-east again afterwards, without a restart.
Finally every call a client saw has its record in the audit log, and the chain verifies.

Usage: python benchmarks/soak.py RUN_DIR [--sessions N] [--seconds S] [--outage-seconds S]
RUN_DIR is a running testbed's folder (`mcp-kube testbed up --clusters 2 --dir RUN_DIR`).
Prints one JSON object; exits 1 when a property above does not hold.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_kube.audit import verify
from mcp_kube.testbed import cluster

MCP_KUBE = str(Path(sys.executable).parent / "mcp-kube")
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("gpu_inventory", {"include_nodes": False}),
    ("list_jobs", {"namespace": "team-a", "cluster": "gpu-east"}),
    ("whoami", {}),
    ("gpu_inventory", {"cluster": "gpu-east", "include_nodes": False}),
    ("list_jobs", {"namespace": "team-b", "cluster": "gpu-west"}),
]
CLEAN = ("error [cluster_unavailable]", "error [upstream_error]", "error [timeout]")


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    ok: int = 0
    tool_errors: Counter[str] = field(default_factory=Counter)  # first words of the error
    unclean: list[str] = field(default_factory=list)  # transport errors, tracebacks
    east_ok_after: float | None = None  # first gpu-east success after the restart ended
    late_errors: int = 0  # errors after the recovery grace period

    @property
    def calls(self) -> int:
        return self.ok + sum(self.tool_errors.values())


@contextlib.asynccontextmanager
async def session(url: str, token: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def worker(
    url: str, token: str, i: int, until: float, tally: Tally, marks: dict[str, float]
) -> None:
    try:
        async with session(url, token) as client:
            n = i
            while time.monotonic() < until:
                tool, args = CALLS[n % len(CALLS)]
                n += 1
                t0 = time.monotonic()
                try:
                    result = await client.call_tool(tool, args)
                except Exception as e:  # a transport failure: never acceptable
                    tally.unclean.append(f"{tool}: {type(e).__name__}: {str(e)[:120]}")
                    continue
                end = time.monotonic()
                tally.latencies_ms.append((end - t0) * 1000)
                text = result.content[0].text if result.content else ""
                if not result.is_error:
                    tally.ok += 1
                    back = marks.get("restarted")
                    east = args.get("cluster") == "gpu-east"
                    if back and east and t0 > back and tally.east_ok_after is None:
                        tally.east_ok_after = end - back
                    continue
                tally.tool_errors[text[:40]] += 1
                if (
                    not text.startswith(CLEAN)
                    or "Traceback" in text
                    or "/" + "site-packages" in text
                ):
                    tally.unclean.append(f"{tool}: {text[:160]}")
                if marks.get("grace") and t0 > marks["grace"]:
                    tally.late_errors += 1
    except Exception as e:
        tally.unclean.append(f"session {i}: {type(e).__name__}: {str(e)[:160]}")


async def load(url: str, tokens: list[str], seconds: float, tally: Tally, marks: dict) -> None:
    until = time.monotonic() + seconds
    async with anyio.create_task_group() as tg:
        for i, token in enumerate(tokens):
            tg.start_soon(worker, url, token, i, until, tally, marks)


async def outage(run_dir: Path, at: float, down: float, grace: float, marks: dict) -> None:
    await anyio.sleep(at)
    marks["killed"] = time.monotonic()
    await anyio.to_thread.run_sync(
        lambda: cluster.restart(run_dir, "gpu-east", "kube-apiserver", down_s=down, report=print)
    )
    marks["restarted"] = time.monotonic()
    marks["grace"] = marks["restarted"] + grace


def summary(t: Tally, seconds: float) -> dict[str, Any]:
    lat = sorted(t.latencies_ms) or [0.0]
    return {
        "calls": t.calls,
        "calls_per_s": round(t.calls / seconds, 1),
        "ok": t.ok,
        "tool_errors": dict(t.tool_errors),
        "unclean_errors": len(t.unclean),
        "unclean_examples": t.unclean[:5],
        "latency_ms_p50": round(statistics.median(lat), 1),
        "latency_ms_p95": round(lat[int(len(lat) * 0.95) - 1], 1),
        "latency_ms_p99": round(lat[int(len(lat) * 0.99) - 1], 1),
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--outage-seconds", type=float, default=45)
    ap.add_argument("--down", type=float, default=5, help="seconds the API server stays down")
    ap.add_argument("--grace", type=float, default=10, help="recovery time allowed after it")
    args = ap.parse_args()
    state = cluster.load_state(args.run_dir)
    if state is None:
        print(f"no testbed in {args.run_dir}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="mcpk-soak-"))
    tokens = {f"soak-{i:03d}": secrets.token_urlsafe(24) for i in range(args.sessions)}
    entries = [
        {"sha256": hashlib.sha256(t.encode()).hexdigest(), "principal": p, "groups": ["soak"]}
        for p, t in tokens.items()
    ]
    (work / "tokens.json").write_text(json.dumps({"tokens": entries}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    audit = work / "audit.jsonl"
    cmd = [MCP_KUBE, "serve", "--transport", "http", "--port", str(port)]
    cmd += ["--kubeconfig", state.kubeconfig, "--context", "gpu-east", "--context", "gpu-west"]
    cmd += ["--token-file", str(work / "tokens.json"), "--audit-log", str(audit)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_KUBE_")}
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(cmd, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}/mcp"
    out: dict[str, Any] = {"benchmark": "soak", "sessions": args.sessions}
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                print((work / "server.log").read_text(), file=sys.stderr)
                return 2
            time.sleep(0.2)

        steady = Tally()
        anyio.run(load, url, list(tokens.values()), args.seconds, steady, {})
        out["steady"] = summary(steady, args.seconds) | {"seconds": args.seconds}
        out["server_rss_mib_after_steady"] = round(rss_mib(server.pid), 1)

        rough, marks = Tally(), {}

        async def phase2() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(load, url, list(tokens.values()), args.outage_seconds, rough, marks)
                at = args.outage_seconds / 3
                tg.start_soon(outage, args.run_dir, at, args.down, args.grace, marks)

        anyio.run(phase2)
        out["outage"] = summary(rough, args.outage_seconds) | {
            "seconds": args.outage_seconds,
            "api_server_down_s": round(marks["restarted"] - marks["killed"], 1),
            "gpu_east_ok_again_after_s": (
                round(rough.east_ok_after, 2) if rough.east_ok_after is not None else None
            ),
            "errors_after_grace": rough.late_errors,
            "same_server_process": server.poll() is None,
        }
        time.sleep(1)
        records = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
        calls = [r for r in records if r.get("kind") == "tool_call"]
        report = verify([audit])
        seen = steady.calls + rough.calls
        out["audit"] = {
            "tool_call_records": len(calls),
            "calls_answered": seen,
            "chain_ok": report.ok,
            "outcomes": dict(Counter(r["outcome"] for r in calls)),
        }
        out["server_rss_mib_end"] = round(rss_mib(server.pid), 1)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    failures = []
    if steady.unclean or steady.tool_errors:
        failures.append("errors under steady load")
    if rough.unclean:
        failures.append("unclean errors during the outage")
    if rough.east_ok_after is None or rough.late_errors:
        failures.append("gpu-east not served again after the restart")
    if out["audit"]["tool_call_records"] < seen or not out["audit"]["chain_ok"]:
        failures.append("audit records missing or chain broken")
    out["failures"] = failures
    print(json.dumps(out, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
