"""`/metrics`, `/healthz` and `/readyz` of the HTTP server after a few real calls, and its log
as JSON lines."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import anyio
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from .mcp_helpers import http_server


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def test_metrics_count_the_calls_and_expose_caches_approvals_and_the_audit_chain(
    testbed, tmp_path: Path
) -> None:
    audit, log = tmp_path / "audit.jsonl", tmp_path / "server.log"
    extra = ["--audit-log", str(audit), "--log-format", "json"]
    with http_server(testbed.kubeconfig, ["gpu-east", "gpu-west"], extra, log=log) as (url, _):
        base = url.removesuffix("/mcp")
        assert get(f"{base}/healthz")[0] == 200

        async def calls() -> None:
            async with Client(url) as c:
                for _ in range(3):
                    assert not (await c.call_tool("whoami", {})).is_error
                assert not (await c.call_tool("gpu_inventory", {"include_nodes": False})).is_error
                bad = await c.call_tool("list_jobs", {"namespace": "Not_A_Namespace"})
                assert bad.is_error
                job = {"name": "m-1", "namespace": "team-a", "image": "registry.internal/x:1"}
                assert (await c.call_tool("submit_job", job)).is_error  # read-only policy

        anyio.run(calls)
        status, ctype, ready = get(f"{base}/readyz")
        assert status == 200
        assert json.loads(ready) == {"status": "ok", "checks": {"gate": "ok", "audit": "ok"}}
        status, ctype, text = get(f"{base}/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    calls = "mcp_kube_tool_calls_total"
    assert value(calls, tool="whoami", decision="allow", outcome="ok") == 3
    assert value(calls, tool="gpu_inventory", decision="allow", outcome="ok") == 1
    assert value(calls, tool="list_jobs", decision="none", outcome="error") == 1  # bad input
    assert value(calls, tool="submit_job", decision="deny", outcome="denied") == 1
    assert value("mcp_kube_tool_call_seconds_count", tool="whoami") == 3
    assert value("mcp_kube_tool_call_seconds_bucket", tool="whoami", le="+Inf") == 3
    nodes = value("mcp_kube_cache_objects", cluster="gpu-east", kind="nodes")
    assert nodes >= 10  # the fleet file's nodes, listed and watched
    assert value("mcp_kube_approvals_waiting") == 0
    assert value("mcp_kube_audit_chain_length") == 6  # one record per call so far
    sixth = json.loads(audit.read_text().splitlines()[5])
    assert (sixth["seq"], sixth["tool"]) == (6, "submit_job")
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any("serving streamable HTTP" in line["msg"] for line in lines)
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
