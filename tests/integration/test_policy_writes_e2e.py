"""Guarded writes end to end: a real MCP client, the shipped gpu-teams policy, the testbed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from mcp_kube.testbed import cluster

from .mcp_helpers import stdio_client

REPO = Path(__file__).resolve().parents[2]
TEAMS = ["--policy", str(REPO / "policies" / "default.yaml")]
TEAMS += ["--policy", str(REPO / "policies" / "examples" / "gpu-teams.yaml")]
DIGEST = "registry.internal/ml/trainer@sha256:" + "ab" * 32


def batch(testbed: cluster.TestbedState) -> k8s.BatchV1Api:
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    return k8s.BatchV1Api(api)


def alice(testbed, elicit: Any = None):
    return stdio_client(
        testbed.kubeconfig,
        ["gpu-east"],
        [*TEAMS, "--principal", "alice", "--groups", "team-a"],
        elicitation_callback=elicit,
    )


def job_names(testbed, namespace: str) -> set[str]:
    return {j.metadata.name for j in batch(testbed).list_namespaced_job(namespace).items}


def submit(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "team-a", "image": DIGEST, "gpus": 2} | extra


def test_alice_submits_a_gpu_job_that_runs_to_completion(testbed) -> None:
    async def go():
        async with alice(testbed) as c:
            t0 = time.monotonic()
            r = await c.call_tool("submit_job", submit("e2e-train"))
            return r, t0

    result, t0 = anyio.run(go)
    try:
        assert not result.is_error, result.content
        out = result.structured_content
        assert out["created"] is True
        assert out["approval"] == "none"
        assert "set spec.activeDeadlineSeconds=86400" in out["policy_changes"]
        assert "teams-write" in out["rules"]
        api = batch(testbed)
        deadline = time.monotonic() + 90
        while True:
            job = api.read_namespaced_job_status("e2e-train", "team-a")
            if job.status.succeeded:
                break
            assert time.monotonic() < deadline, "the job never completed"
            time.sleep(0.5)
        took = time.monotonic() - t0
        spec = job.spec.template.spec
        assert spec.containers[0].security_context.allow_privilege_escalation is False
        assert spec.containers[0].resources.requests["cpu"] == "16"  # policy default per GPU
        assert job.metadata.labels["mcp-kube.io/policy"] == "gpu-teams"
        print(f"submit-to-Complete: {took:.1f}s")
    finally:
        batch(testbed).delete_namespaced_job("e2e-train", "team-a", propagation_policy="Background")


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (submit("e2e-b", namespace="team-b"), "policy_denied", "teams-write: jobs may only"),
        (submit("e2e-big", gpus=16), "policy_denied", "maxGpusPerJob"),
        (submit("e2e-hub", image="docker.io/evil/miner"), "policy_denied", "registry.internal/"),
        (submit("e2e-ubuntu", image="ubuntu"), "policy_denied", "registry.internal/"),
        (submit("e2e-sys", namespace="kube-system"), "policy_denied", "no-kube-system"),
        (submit("e2e-priv", privileged=True), "invalid_argument", "privileged: unknown argument"),
        (
            submit("e2e-host", volumes=[{"hostPath": {"path": "/"}}]),
            "invalid_argument",
            "volumes: unknown argument",
        ),
        (
            submit("e2e-secret", env={"TOKEN": {"secretKeyRef": {"name": "s", "key": "k"}}}),
            "invalid_argument",
            "env.TOKEN",
        ),
        (submit("e2e-kind", kind="Pod"), "invalid_argument", "kind: unknown argument"),
    ],
)
def test_refused_writes_name_the_rule_and_create_nothing(testbed, args, code, text) -> None:
    async def go():
        async with alice(testbed) as c:
            return await c.call_tool("submit_job", args)

    result = anyio.run(go)
    assert result.is_error
    message = result.content[0].text
    assert message.startswith(f"error [{code}]"), message
    assert text in message
    ns = args["namespace"] if args["namespace"] in ("team-a", "team-b") else "team-a"
    assert args["name"] not in job_names(testbed, ns)


def test_approval_is_refused_without_elicitation_and_given_by_a_human(testbed) -> None:
    asked: list[str] = []

    async def yes(_ctx, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    async def no(_ctx, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"approve": False})

    async def go(elicit: Any, name: str):
        async with alice(testbed, elicit) as c:
            return await c.call_tool("submit_job", submit(name, gpus=3, queue="team-a-queue"))

    try:
        refused = anyio.run(go, None, "e2e-approve")  # this client cannot elicit
        assert refused.is_error
        assert refused.content[0].text.startswith("error [approval_refused]")
        declined = anyio.run(go, no, "e2e-approve")
        assert declined.is_error
        assert "declined" in declined.content[0].text
        assert "e2e-approve" not in job_names(testbed, "team-a")
        approved = anyio.run(go, yes, "e2e-approve")
        assert not approved.is_error, approved.content
        assert approved.structured_content["approval"] == "elicitation"
        assert "e2e-approve" in job_names(testbed, "team-a")
        assert len(asked) == 1
        assert "alice asks to run submit_job" in asked[0]
    finally:
        if "e2e-approve" in job_names(testbed, "team-a"):
            batch(testbed).delete_namespaced_job(
                "e2e-approve", "team-a", propagation_policy="Background"
            )


def test_with_impersonation_rbac_refuses_what_the_policy_allows(testbed) -> None:
    """bob (team-b) may submit to team-a by policy, but the cluster's RBAC says no."""

    async def go():
        c = stdio_client(
            testbed.kubeconfig,
            ["mcp-kube-server@gpu-east"],
            [
                "--policy",
                str(REPO / "tests" / "data" / "allow-writes.yaml"),
                "--principal",
                "bob",
                "--groups",
                "team-b",
            ],
            env={"MCP_KUBE_CLUSTERS__IMPERSONATE": "true"},
        )
        async with c:
            own = await c.call_tool("list_jobs", {"namespace": "team-b"})
            other = await c.call_tool("submit_job", submit("e2e-rbac", gpus=0))
            return own, other

    own, other = anyio.run(go)
    assert not own.is_error, own.content  # bob may read his own namespace
    assert other.is_error
    assert other.content[0].text.startswith("error [forbidden]"), other.content[0].text
    assert "bob" in other.content[0].text
    assert "e2e-rbac" not in job_names(testbed, "team-a")
