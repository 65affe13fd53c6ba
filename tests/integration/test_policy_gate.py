"""The policy decides every call at call time, before anything reaches a cluster."""

from __future__ import annotations

from pathlib import Path

import anyio

from mcp_kube.testbed import cluster
from mcp_kube.tools import catalog

from .mcp_helpers import server_agents, stdio_client
from .test_server_mcp import CALLS

REPO = Path(__file__).resolve().parents[2]
DENY_ALL = REPO / "tests" / "data" / "deny-all.yaml"
DEFAULT = REPO / "policies" / "default.yaml"
SUBMIT = {
    "name": "direct-call",
    "namespace": "team-a",
    "image": "registry.internal/ml/trainer:1.4.2",
    "gpus": 1,
}


def test_deny_all_refuses_every_tool_and_the_api_server_sees_nothing(
    testbed: cluster.TestbedState,
) -> None:
    before = {c.name: server_agents(c.audit_log) for c in testbed.clusters}
    calls = dict(CALLS)
    calls.update({"submit_job": SUBMIT, "cancel_job": {"namespace": "team-a", "name": "x"}})
    calls.update({"suspend_job": {"namespace": "team-a", "name": "x"}})
    calls.update({"resume_job": {"namespace": "team-a", "name": "x"}})

    async def go() -> dict[str, str]:
        out = {}
        client = stdio_client(
            testbed.kubeconfig, ["gpu-east", "gpu-west"], ["--policy", str(DENY_ALL)]
        )
        async with client:
            names = [t.name for t in (await client.list_tools()).tools]
            for name in names:
                r = await client.call_tool(name, calls[name])
                assert r.is_error, name
                out[name] = r.content[0].text
        return out

    refused = anyio.run(go)
    assert set(refused) == {t.name for t in catalog.TOOLS}
    for name, text in refused.items():
        assert text.startswith("error [policy_denied]: denied by policy rule default-deny"), name
    for c in testbed.clusters:
        assert server_agents(c.audit_log) - before[c.name] == set(), (
            "a refused call reached the cluster"
        )


def test_default_policy_refuses_a_direct_submit_job_at_call_time(testbed) -> None:
    async def go():
        client = stdio_client(testbed.kubeconfig, ["gpu-east"], ["--policy", str(DEFAULT)])
        async with client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert tools["submit_job"].annotations.read_only_hint is False
            submit = await client.call_tool("submit_job", SUBMIT)
            whoami = await client.call_tool("whoami", {})
            return submit, whoami

    submit, whoami = anyio.run(go)
    assert submit.is_error
    assert "denied by policy rule default-deny" in submit.content[0].text
    perms = {p["tool"]: p["allowed"] for p in whoami.structured_content["permissions"]}
    assert perms["gpu_inventory"] is True
    assert perms["submit_job"] is False
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    jobs = k8s.BatchV1Api(api).list_namespaced_job("team-a").items
    assert "direct-call" not in {j.metadata.name for j in jobs}


def test_sighup_reloads_the_policy_and_keeps_it_when_the_new_one_is_invalid(
    testbed, tmp_path
) -> None:
    import signal
    import time

    from mcp import Client

    from .mcp_helpers import http_server

    policy = tmp_path / "policy.yaml"
    policy.write_text(DENY_ALL.read_text())

    async def whoami(url: str) -> bool:
        async with Client(url) as c:
            return not (await c.call_tool("whoami", {})).is_error

    with http_server(testbed.kubeconfig, ["gpu-east"], ["--policy", str(policy)]) as (url, proc):
        assert anyio.run(whoami, url) is False
        policy.write_text(DEFAULT.read_text())
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not anyio.run(whoami, url):
            assert time.monotonic() < deadline, "SIGHUP did not reload the policy"
            time.sleep(0.2)
        policy.write_text("apiVersion: mcp-kube.io/v1alpha1\nkind: ToolPolicy\nnot: valid\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert proc.poll() is None  # still serving
        assert anyio.run(whoami, url) is True  # the last good policy stays in force
