"""The server as clients see it: real MCP clients over stdio and streamable HTTP."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
import yaml
from mcp import Client

from mcp_kube.testbed import cluster, fleet
from mcp_kube.tools import catalog

from .mcp_helpers import (
    INSPECTOR,
    MCP_KUBE,
    free_port,
    http_server,
    inspector,
    server_agents,
    stdio_client,
)

CONTEXTS = ["gpu-east", "gpu-west"]

# One representative call per tool; the test below fails if a tool has none.
CALLS: dict[str, dict[str, Any]] = {
    "list_clusters": {},
    "gpu_inventory": {"detail": True},
    "whoami": {},
    "gpu_workloads": {},
    "gpu_quota": {"cluster": "gpu-east"},
    "gpu_usage_report": {"since_hours": 24},
    "gpu_utilization": {},
    "idle_gpus": {},
    "recommend_placement": {"gpus": 2, "product": "H100", "namespace": "team-a"},
    "list_jobs": {"namespace": "team-a"},
    "get_job": {"namespace": "team-a", "name": "mcp-demo"},
    "wait_job": {"namespace": "team-a", "name": "mcp-demo", "timeout_s": 5},
    "pod_logs": {"namespace": "team-a", "pod": "llama-pretrain-0", "tail_lines": 5},
    "list_events": {"namespace": "team-a", "warnings_only": False},
    "explain_pending": {"namespace": "team-a", "pod": "llama-pretrain-0"},
}
# Writes, refused by the default (read-only) policy the server starts with here.
WRITE_CALLS: dict[str, dict[str, Any]] = {
    "submit_job": {
        "name": "not-allowed",
        "namespace": "team-a",
        "image": "registry.internal/ml/trainer:1.4.2",
        "gpus": 1,
    },
    "cancel_job": {"namespace": "team-a", "name": "mcp-demo"},
    "suspend_job": {"namespace": "team-a", "name": "mcp-demo"},
    "resume_job": {"namespace": "team-a", "name": "mcp-demo"},
}


@pytest.fixture(scope="module", autouse=True)
def demo_job(testbed: cluster.TestbedState):
    """A finished 1-GPU Job for the job tools to read."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    batch = k8s.BatchV1Api(api)
    gpu = {"nvidia.com/gpu": "1"}
    batch.create_namespaced_job(
        "team-a",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "mcp-demo"},
            "spec": {
                "template": {
                    "metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "1s"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "trainer",
                                "image": "registry.internal/ml/trainer:1.4.2",
                                "resources": {"requests": gpu, "limits": gpu},
                            }
                        ],
                    },
                }
            },
        },
    )
    deadline = time.monotonic() + 60
    while not (batch.read_namespaced_job_status("mcp-demo", "team-a").status.succeeded or 0):
        assert time.monotonic() < deadline, "the demo job never completed"
        time.sleep(0.5)
    yield "mcp-demo"
    batch.delete_namespaced_job("mcp-demo", "team-a", propagation_policy="Background")


@pytest.fixture(scope="module")
def http_url(testbed: cluster.TestbedState):
    with http_server(testbed.kubeconfig, CONTEXTS) as (url, _proc):
        yield url


def _client(testbed: cluster.TestbedState, transport: str, http_url: str) -> Client:
    if transport == "stdio":
        return stdio_client(testbed.kubeconfig, CONTEXTS)
    return Client(http_url)


async def _call_everything(client: Client) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with client:
        tools = (await client.list_tools()).tools
        out["tools"] = tools
        for tool in tools:
            if tool.name in WRITE_CALLS:
                result = await client.call_tool(tool.name, WRITE_CALLS[tool.name])
                assert result.is_error, tool.name
                assert result.content[0].text.startswith("error [policy_denied]"), tool.name
                continue
            result = await client.call_tool(tool.name, CALLS[tool.name])
            assert not result.is_error, (tool.name, result.content)
            jsonschema.validate(result.structured_content, tool.output_schema)
            assert result.content[0].text.strip(), f"{tool.name} gave no summary"
            out[tool.name] = result.structured_content
    return out


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_every_tool_over_both_transports(testbed, http_url, transport, settled_fleet) -> None:
    got = anyio.run(_call_everything, _client(testbed, transport, http_url))
    tools = got["tools"]
    assert [t.name for t in tools] == [t.name for t in catalog.TOOLS]
    assert set(CALLS) | set(WRITE_CALLS) == {t.name for t in tools}, "every tool needs a call"
    for tool in tools:
        assert tool.annotations.read_only_hint is (tool.name not in WRITE_CALLS)
        assert tool.annotations.open_world_hint is False
        assert tool.input_schema["additionalProperties"] is False
        assert tool.output_schema["type"] == "object"
    # The inventory equals the fleet files exactly, per cluster and fleet-wide.
    inv = got["gpu_inventory"]
    by_cluster = {c["cluster"]: c for c in inv["clusters"]}
    fleet_totals: dict[str, dict[str, int]] = {}
    for name, profile in (("gpu-east", "default"), ("gpu-west", "west")):
        expected = fleet.load_fleet(profile).expected
        got_res = {r["resource"]: r for r in by_cluster[name]["resources"]}
        for res, totals in expected.resources.items():
            row = got_res[res]
            assert (row["allocatable"], row["allocated"], row["free"]) == (
                totals.allocatable,
                totals.allocated,
                totals.free,
            ), (name, res)
            acc = fleet_totals.setdefault(res, {"allocatable": 0, "allocated": 0, "free": 0})
            for key in acc:
                acc[key] += getattr(totals, key)
        got_products = {p["product"]: p for p in by_cluster[name]["products"]}
        for product, totals in expected.products.items():
            p = got_products[product]
            assert (p["nodes"], p["allocatable"], p["allocated"], p["free"]) == (
                totals.nodes,
                totals.allocatable,
                totals.allocated,
                totals.free,
            ), (name, product)
        assert by_cluster[name]["gpu_nodes"] == expected.gpu_nodes
    fleet_rows = {r["resource"]: r for r in inv["fleet"]}
    for res, acc in fleet_totals.items():
        assert {k: fleet_rows[res][k] for k in acc} == acc, res


def test_inventory_accounts_for_node_states(testbed, settled_fleet) -> None:
    async def go() -> dict[str, Any]:
        async with stdio_client(testbed.kubeconfig, ["gpu-east"]) as c:
            r = await c.call_tool("gpu_inventory", {"detail": True, "limit": 100})
            return r.structured_content

    nodes = {n["name"]: n for n in anyio.run(go)["nodes"]}
    cordoned, notready, tainted = (
        nodes["h100-cordoned-0"],
        nodes["h100-notready-0"],
        nodes["h100-tainted-0"],
    )
    assert cordoned["cordoned"]
    assert not cordoned["schedulable"]
    assert cordoned["resources"][0]["allocated"] == 4
    assert cordoned["resources"][0]["free"] == 0
    assert cordoned["resources"][0]["unavailable"] == 4
    assert not notready["ready"]
    assert notready["resources"][0]["free"] == 0
    assert tainted["taints"] == ["dedicated:NoSchedule"]
    assert tainted["resources"][0]["free"] == 0
    mig = nodes["a100-mig-0"]
    assert mig["mig_profiles"] == {"1g.10gb": 14, "3g.40gb": 4}
    assert nodes["l4-shared-0"]["sharing"] == "time-slicing x4"
    assert nodes["mi300x-0"]["vendor"] == "amd"
    assert "cpu-0" not in nodes


async def _errors(client: Client) -> dict[str, str]:
    bad = {
        "unknown_cluster": ("gpu_inventory", {"cluster": "gpu-north"}),
        "bad_name": ("list_jobs", {"namespace": "Team_A"}),
        "traversal": ("list_jobs", {"namespace": "../../kube-system"}),
        "flag": ("list_jobs", {"namespace": "default --kubeconfig=/tmp/evil"}),
        "range": ("gpu_inventory", {"limit": 0}),
        "unknown_field": ("gpu_inventory", {"kubeconfig": "/etc/passwd"}),
        "too_long": ("list_jobs", {"namespace": "a" * 64}),
        "wrong_type": ("gpu_inventory", {"detail": "yes please"}),
    }
    out = {}
    async with client:
        for key, (tool, args) in bad.items():
            r = await client.call_tool(tool, args)
            assert r.is_error, key
            out[key] = r.content[0].text
    return out


def test_bad_input_is_refused_before_any_api_call(testbed) -> None:
    errors = anyio.run(_errors, stdio_client(testbed.kubeconfig, CONTEXTS))
    assert errors["unknown_cluster"].startswith("error [unknown_cluster]")
    assert "valid clusters: gpu-east, gpu-west" in errors["unknown_cluster"]
    for key in ("bad_name", "traversal", "flag", "too_long"):
        assert errors[key].startswith("error [invalid_argument]"), errors[key]
        assert "namespace" in errors[key]
    assert "limit" in errors["range"]
    assert "kubeconfig: unknown argument" in errors["unknown_field"]
    assert "detail" in errors["wrong_type"]
    for text in errors.values():
        assert "Traceback" not in text
        assert "/site-packages/" not in text


def test_no_api_request_for_refused_calls(testbed) -> None:
    """Counted from the API server's audit log, by the server process's own user agent."""
    east = testbed.clusters[0]

    async def go() -> int:
        client = stdio_client(testbed.kubeconfig, CONTEXTS)
        async with client:
            for _ in range(3):
                r = await client.call_tool("list_jobs", {"namespace": "../../kube-system"})
                assert r.is_error
                r = await client.call_tool("gpu_inventory", {"cluster": "nope"})
                assert r.is_error
            # whoami touches no cluster either
            r = await client.call_tool("whoami", {})
            assert not r.is_error
        return 0

    agents_before = server_agents(east.audit_log)
    anyio.run(go)
    new_agents = server_agents(east.audit_log) - agents_before
    assert new_agents == set(), f"refused calls reached the API server: {new_agents}"


def _dead_cluster_kubeconfig(testbed, tmp_path: Path) -> Path:
    cfg = yaml.safe_load(Path(testbed.kubeconfig).read_text())
    east = next(c for c in cfg["clusters"] if c["name"] == "gpu-east")
    dead = {"name": "gpu-dead", "cluster": dict(east["cluster"])}
    dead["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    cfg["clusters"].append(dead)
    cfg["contexts"].append(
        {"name": "gpu-dead", "context": {"cluster": "gpu-dead", "user": "admin@gpu-east"}}
    )
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_cluster_that_is_down_is_reported_and_the_others_still_served(testbed, tmp_path) -> None:
    kubeconfig = _dead_cluster_kubeconfig(testbed, tmp_path)

    async def go() -> tuple[Any, Any, Any, Any]:
        async with stdio_client(str(kubeconfig), ["gpu-east", "gpu-dead"]) as c:
            fleet_view = await c.call_tool("gpu_inventory", {"include_nodes": False})
            direct = await c.call_tool("gpu_inventory", {"cluster": "gpu-dead"})
            listed = await c.call_tool("list_clusters", {})
            east = await c.call_tool("gpu_inventory", {"cluster": "gpu-east"})
            return fleet_view, direct, listed, east

    fleet_view, direct, listed, east = anyio.run(go)
    assert not fleet_view.is_error
    rows = {c["cluster"]: c for c in fleet_view.structured_content["clusters"]}
    assert rows["gpu-dead"]["reachable"] is False
    assert "cluster unavailable" in rows["gpu-dead"]["error"]
    assert rows["gpu-east"]["reachable"] is True
    assert direct.is_error
    assert direct.content[0].text.startswith("error [cluster_unavailable]")
    assert "Traceback" not in direct.content[0].text
    status = {c["name"]: c["reachable"] for c in listed.structured_content["clusters"]}
    assert status == {"gpu-east": True, "gpu-dead": False}
    assert not east.is_error


def test_mcp_inspector_cli_lists_and_calls(testbed) -> None:
    server = [MCP_KUBE, "serve", "--kubeconfig", testbed.kubeconfig, "--context", "gpu-east"]
    server += ["--audit-log", str(INSPECTOR / "audit.jsonl")]
    listed = inspector(*server, "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    names = [t["name"] for t in json.loads(listed.stdout)["result"]["tools"]]
    assert names == [t.name for t in catalog.TOOLS]
    called = inspector(
        *server,
        "--method",
        "tools/call",
        "--tool-name",
        "gpu_inventory",
        "--tool-arg",
        "include_nodes=false",
    )
    assert called.returncode == 0, called.stderr[-2000:]
    result = json.loads(called.stdout)["result"]
    assert result["isError"] is False
    gpus = {r["resource"]: r["free"] for r in result["structuredContent"]["fleet"]}
    assert (
        gpus["nvidia.com/gpu"]
        == fleet.load_fleet("default").expected.resources["nvidia.com/gpu"].free
    )
    assert re.search(r"nvidia.com/gpu \d+ free", result["content"][0]["text"])
