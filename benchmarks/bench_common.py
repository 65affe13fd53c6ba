"""What the benchmarks of compare.py share: the testbed, the servers' command lines and
environments, process helpers (ports, CPU and memory counters from /proc) and statistics."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp import StdioServerParameters

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
# kubernetes-mcp-server's client-go limiter (default 5 requests/s, burst 10), raised for the load
KMS_TUNED = {"KUBE_CLIENT_QPS": "500", "KUBE_CLIENT_BURST": "1000"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


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
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")  # type: ignore[index]
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def background(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
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


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads, not its children), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def rss_mib(pid: int, peak: bool = False) -> float:
    """VmRSS, or with peak VmHWM (the process's own high-water mark), in MiB."""
    key = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0.0


class Setup:
    """The testbed and the contenders' command lines and environments."""

    def __init__(self, run_dir: Path, runs: int, contenders: set[str]) -> None:
        state = cluster.load_state(run_dir)
        if state is None:
            raise SystemExit(f"no testbed in {run_dir}")
        self.state = state
        self.profile = state.clusters[0].profile
        self.kubeconfig = state.kubeconfig
        self.context = state.clusters[0].context
        self.runs = runs
        self.peers = [p for p in ("kms", "msk") if p in contenders]  # the MCP peers in this run
        self.work = Path(tempfile.mkdtemp(prefix="mcpk-bench-"))
        self.kubectl, self.jq = str(peers.kubectl()), str(peers.jq())
        self.kms = str(peers.kms()) if "kms" in contenders else "kubernetes-mcp-server"
        self.msk = str(peers.msk()) if "msk" in contenders else "mcp-server-kubernetes"

        base = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_KUBE_", "OTEL_"))}
        base = {k: v for k, v in base.items() if not k.startswith("KUBE_CLIENT_")}
        self.env = base | QUIET | {"KUBECONFIG": self.kubeconfig}
        self.ours_env = self.env | {
            "MCP_KUBE_HTTP__CALLS_PER_SECOND": "1000000",  # B2 measures overhead, not the limiter
            "MCP_KUBE_HTTP__BURST": "1000000",
            "MCP_KUBE_LIMITS__MAX_LOG_LINES": "10000",
            "MCP_KUBE_LIMITS__MAX_LOG_BYTES": str(8 * 1024 * 1024),
            "MCP_KUBE_LIMITS__MAX_RESPONSE_BYTES": str(16 * 1024 * 1024),
        }
        self.kms_env = self.env | KMS_TUNED
        self.msk_env = self.env | {
            "PATH": f"{Path(self.kubectl).parent}{os.pathsep}{self.env.get('PATH', '')}",
            "SPAWN_MAX_BUFFER": str(1024 * 1024 * 1024),
            "ALLOWED_TOOLS": "kubectl_get,kubectl_generic,kubectl_logs,ping",
        }

    def kubectl_args(self) -> list[str]:
        return [self.kubectl, "--kubeconfig", self.kubeconfig, "--context", self.context]

    def ours_args(self, http_port: int | None = None) -> list[str]:
        args = ["serve", "--kubeconfig", self.kubeconfig, "--context", self.context]
        args += ["--audit-log", str(self.work / "audit.jsonl")]
        if http_port:
            args += ["--transport", "http", "--port", str(http_port), "--allow-unauthenticated"]
        return args

    def kms_args(self, http_port: int | None = None) -> list[str]:
        """B1 (stdio) lists full objects (`--list-output yaml`, also sent as structured content);
        B2 (HTTP) keeps the default table output, its cheapest."""
        args = ["--kubeconfig", self.kubeconfig, "--read-only", "--disable-multi-cluster"]
        if http_port:
            return [*args, "--port", str(http_port), "--bind-address", "127.0.0.1"]
        return [*args, "--list-output", "yaml"]

    def stdio(self, who: str) -> StdioServerParameters:
        if who == "bare":  # the SDK alone (benchmarks/bare_server.py), same interpreter
            return StdioServerParameters(
                command=sys.executable, args=[str(HERE / "bare_server.py")], env=self.env
            )
        if who == "ours":
            return StdioServerParameters(command=MCP_KUBE, args=self.ours_args(), env=self.ours_env)
        if who == "kms":
            return StdioServerParameters(command=self.kms, args=self.kms_args(), env=self.kms_env)
        return StdioServerParameters(command="node", args=[self.msk], env=self.msk_env)
