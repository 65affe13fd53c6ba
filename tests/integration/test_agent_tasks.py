"""The offline agent's MCP session follows a submitted job as an MCP task (no model needed: the
session is driven directly, as the agent drives it). The server asks for approval (the
gpu-teams policy: more than 2 GPUs), the approver says yes, and the session follows the task,
reporting each state, until the job completes; its result is the job's final state. A second
submit is cancelled from the session while it is followed. The testbed's KWOK pods end on their
own after a few seconds.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from mcp_kube.llm.agent import ToolOutcome
from mcp_kube.llm.session import connect
from mcp_kube.llm.tasks import TaskView
from mcp_kube.testbed import cluster

from .mcp_helpers import MCP_KUBE

REPO = Path(__file__).resolve().parents[2]
POLICIES = [REPO / "policies" / "default.yaml", REPO / "policies" / "examples" / "gpu-teams.yaml"]
IMAGE = "registry.internal/ml/trainer@sha256:" + "ab" * 32
NS = "team-a"


def server(testbed: cluster.TestbedState, audit: Path) -> str:
    parts = [MCP_KUBE, "serve", "--kubeconfig", testbed.kubeconfig, "--context", "gpu-east"]
    parts += ["--principal", "alice", "--groups", NS, "--audit-log", str(audit)]
    for policy in POLICIES:
        parts += ["--policy", str(policy)]
    return " ".join(parts)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The spawned server takes its settings from its arguments only."""
    for key in [k for k in os.environ if k.startswith("MCP_KUBE_")]:
        monkeypatch.delenv(key)


@pytest.fixture
def names(testbed: cluster.TestbedState) -> Iterator[list[str]]:
    """Job names for a test; whatever is left of them is deleted afterwards."""
    made = [f"agent-task-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    yield made
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    try:
        for name in made:
            try:
                k8s.BatchV1Api(api).delete_namespaced_job(name, NS, propagation_policy="Background")
            except k8s.ApiException as e:
                if e.status != 404:
                    raise
    finally:
        api.close()


def submit(name: str) -> dict[str, object]:
    return {"name": name, "namespace": NS, "image": IMAGE, "gpus": 4, "env": {"MAX_STEPS": "1000"}}


def test_the_session_follows_an_approved_submit_until_the_job_completes(
    testbed, tmp_path, names, clean_env
) -> None:
    views: list[TaskView] = []
    asked: list[str] = []

    async def approve(preview: str) -> bool:
        asked.append(preview)
        return True

    async def go() -> ToolOutcome:
        async with connect(
            server(testbed, tmp_path / "audit.jsonl"), approver=approve, on_task=views.append,
            follow_s=240,
        ) as session:  # fmt: skip
            assert session.tasks is not None
            return await session.call("submit_job", submit(names[0]))

    outcome = anyio.run(go)
    assert len(asked) == 1
    assert names[0] in asked[0]  # the human approved what the server showed
    assert not outcome.is_error, outcome.text
    assert views, "no task state was reported"
    assert {v.task_id for v in views} == {views[0].task_id}
    assert views[0].task_id.startswith("job1.")
    assert [v.status for v in views][-1] == "completed"
    working = [v for v in views if v.status == "working"]
    assert working, [v.status for v in views]
    assert all(v.state in ("pending", "running", "finishing") for v in working), views
    assert all(v.total == 1000 for v in views)  # the submit's MAX_STEPS
    last = views[-1]
    assert last.state == "succeeded"
    assert last.fraction == 1.0
    out = outcome.structured or {}
    assert out["status"] == "completed"
    assert out["job_status"] == "succeeded"
    assert out["task_id"] == last.task_id
    assert out["name"] == names[0]
    assert "task completed" in outcome.text


def test_a_followed_submit_is_cancelled_from_the_session(
    testbed, tmp_path, names, clean_env
) -> None:
    views: list[TaskView] = []
    first = anyio.Event()
    cancelled: list[bool] = []

    def seen(view: TaskView) -> None:
        views.append(view)
        first.set()

    async def yes(_preview: str) -> bool:
        return True

    async def go() -> ToolOutcome:
        async with connect(
            server(testbed, tmp_path / "audit.jsonl"), approver=yes, on_task=seen, follow_s=240
        ) as session:
            result: list[ToolOutcome] = []

            async def call() -> None:
                result.append(await session.call("submit_job", submit(names[1])))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                with anyio.fail_after(120):
                    await first.wait()
                assert await session.cancel_task("job1.not-this-one") is False
                cancelled.append(await session.cancel_task(views[0].task_id))
            return result[0]

    outcome = anyio.run(go)
    assert cancelled == [True]
    assert views[-1].status == "cancelled", [(v.status, v.message) for v in views]
    assert "cancelled" in outcome.text
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    try:
        job = k8s.BatchV1Api(api).list_namespaced_job(
            NS, field_selector=f"metadata.name={names[1]}"
        )
        assert all(j.metadata.deletion_timestamp for j in job.items)  # gone, or being deleted
    finally:
        api.close()
