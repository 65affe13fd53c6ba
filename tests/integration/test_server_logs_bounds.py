"""A 50 MB container log comes back within the byte cap, marked truncated, in bounded memory."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import anyio
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from mcp import Client

from mcp_kube.testbed import cluster
from mcp_kube.testbed.podlogs import cri_line, write_log_files

from .mcp_helpers import http_server, rss_mib

FIFTY_MB = 50 * 1024 * 1024


def _big_log(path: Path) -> int:
    now = dt.datetime.now(dt.UTC)
    line = cri_line(now, "stdout", "x" * 180 + " step=1 loss=0.5")
    reps = FIFTY_MB // len(line) + 1
    with path.open("w") as f:
        for _ in range(reps // 1000 + 1):
            f.write(line * 1000)
    return path.stat().st_size


def test_fifty_megabyte_log_is_capped_and_memory_stays_bounded(
    testbed: cluster.TestbedState,
) -> None:
    east = testbed.clusters[0]
    log_file = Path(east.pod_logs["chatty"])
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    core = k8s.CoreV1Api(api)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "chatty-0"},
        "spec": {
            "nodeName": "cpu-1",
            "containers": [{"name": "chatty", "image": "registry.internal/tools/chatty:1"}],
        },
    }
    core.create_namespaced_pod("team-a", pod)
    try:
        deadline = time.monotonic() + 60
        while core.read_namespaced_pod("chatty-0", "team-a").status.phase != "Running":
            assert time.monotonic() < deadline, "pod never ran"
            time.sleep(1)
        size = _big_log(log_file)
        assert size >= FIFTY_MB
        cap = 256 * 1024
        with http_server(testbed.kubeconfig, ["gpu-east"]) as (url, proc):

            async def go():
                async with Client(url) as c:
                    warm = await c.call_tool("whoami", {})
                    assert not warm.is_error
                    before = rss_mib(proc.pid)[0]
                    t0 = time.perf_counter()
                    r = await c.call_tool(
                        "pod_logs",
                        {
                            "namespace": "team-a",
                            "pod": "chatty-0",
                            "tail_lines": 5000,
                            "max_bytes": cap,
                        },
                    )
                    took = time.perf_counter() - t0
                    return r, before, rss_mib(proc.pid), took

            result, before, (after, peak), took = anyio.run(go)
        assert not result.is_error, result.content
        data = result.structured_content
        assert data["truncated"] is True
        assert data["bytes"] <= cap
        assert len(data["text"]) <= cap  # the newline of the last line read is not kept
        assert peak - before < 64, f"server memory grew {peak - before:.0f} MiB for one log call"
        ms = took * 1000
        print(f"50 MB log: {ms:.0f} ms, RSS {before:.0f} -> {after:.0f} MiB (peak {peak:.0f})")
    finally:
        core.delete_namespaced_pod("chatty-0", "team-a", grace_period_seconds=0)
        write_log_files(log_file.parent)  # back to the small default logs
