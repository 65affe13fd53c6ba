"""Issue 21, hole 3, on the testbed: no system-* PriorityClass for a team's job, listed ones work.

A real MCP client, ``mcp-kube serve`` with the shipped default + gpu-teams policies, alice in
team-a. Before the fix her ``priority_class: system-node-critical`` job was created and its pod
ran at priority 2000001000.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from mcp_kube.testbed import cluster

from .mcp_helpers import stdio_client

REPO = Path(__file__).resolve().parents[2]
POLICIES = ["--policy", str(REPO / "policies" / "default.yaml")]
POLICIES += ["--policy", str(REPO / "policies" / "examples" / "gpu-teams.yaml")]
DIGEST = "registry.internal/ml/trainer@sha256:" + "cd" * 32


def api(testbed: cluster.TestbedState) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")


def job_names(testbed: cluster.TestbedState) -> set[str]:
    return {
        j.metadata.name for j in k8s.BatchV1Api(api(testbed)).list_namespaced_job("team-a").items
    }


def submit(testbed: cluster.TestbedState, name: str, priority_class: str) -> Any:
    args = {"name": name, "namespace": "team-a", "image": DIGEST, "gpus": 1}
    args["priority_class"] = priority_class

    async def go() -> Any:
        c = stdio_client(
            testbed.kubeconfig,
            ["gpu-east"],
            [*POLICIES, "--principal", "alice", "--groups", "team-a"],
        )
        async with c:
            return await c.call_tool("submit_job", args)

    return anyio.run(go)


@pytest.mark.parametrize(
    ("priority_class", "text"),
    [
        ("system-node-critical", "system-* PriorityClasses belong to cluster components"),
        ("system-cluster-critical", "system-* PriorityClasses belong to cluster components"),
        ("high-priority", "allowed: team-batch, team-interactive"),
    ],
)
def test_alice_cannot_name_a_class_gpu_teams_does_not_list(
    testbed: cluster.TestbedState, priority_class: str, text: str
) -> None:
    name = f"e2e-prio-{priority_class}"[:52]
    result = submit(testbed, name, priority_class)
    assert result.is_error
    message = result.content[0].text
    assert "priority_class" in message
    assert text in message
    assert name not in job_names(testbed)


def test_a_listed_class_runs_at_its_own_priority(testbed: cluster.TestbedState) -> None:
    core, scheduling = k8s.CoreV1Api(api(testbed)), k8s.SchedulingV1Api(api(testbed))
    body = k8s.V1PriorityClass(
        metadata=k8s.V1ObjectMeta(name="team-batch"), value=1000, preemption_policy="Never"
    )
    try:
        scheduling.create_priority_class(body)  # as the site would; left for other tests
    except ApiException as e:
        if e.status != 409:
            raise
    name = "e2e-prio-team-batch"
    try:
        result = submit(testbed, name, "team-batch")
        assert not result.is_error, result.content
        assert result.structured_content["created"] is True
        deadline = time.monotonic() + 60
        while True:
            pods = core.list_namespaced_pod("team-a", label_selector=f"job-name={name}").items
            if pods:
                break
            assert time.monotonic() < deadline, "the job's pod was never created"
            time.sleep(0.5)
        assert pods[0].spec.priority_class_name == "team-batch"
        assert pods[0].spec.priority == 1000
    finally:
        if name in job_names(testbed):
            k8s.BatchV1Api(api(testbed)).delete_namespaced_job(
                name, "team-a", propagation_policy="Background"
            )
