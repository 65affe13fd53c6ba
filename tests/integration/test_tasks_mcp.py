"""submit_job as an MCP task (``io.modelcontextprotocol/tasks``) over real MCP clients.

Each client spawns its own ``mcp-kube serve`` (stdio), so every poll below that comes from a
second client is also a poll from another server process: the task resolves from the Job
alone. The gpu-teams policy lets alice and mallory (both team-a) submit, read and cancel in
team-a; the testbed's KWOK pods end on their own after a few seconds.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult
from support.tasks import TASKS, CreatedTask, TasksClient, cancel_task, get_task

from mcp_kube.audit import verify
from mcp_kube.testbed import cluster

from .mcp_helpers import MCP_KUBE, http_server, serve_args

REPO = Path(__file__).resolve().parents[2]
TEAMS = ["--policy", str(REPO / "policies" / "default.yaml")]
TEAMS += ["--policy", str(REPO / "policies" / "examples" / "gpu-teams.yaml")]
IMAGE = "registry.internal/ml/trainer@sha256:" + "ab" * 32
NS = "team-a"


def client(
    testbed: cluster.TestbedState, audit: Path, who: str = "alice", tasks: TasksClient | None = None
) -> Client:
    """A client spawning its own server as ``who`` (team-a); with ``tasks``: declares tasks."""
    extra = [*TEAMS, "--principal", who, "--groups", NS, "--audit-log", str(audit)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_KUBE_")}
    params = StdioServerParameters(
        command=MCP_KUBE, args=serve_args(testbed.kubeconfig, ["gpu-east"], extra), env=env
    )
    return Client(params, extensions=[tasks] if tasks else None)


@pytest.fixture
def batch(testbed: cluster.TestbedState) -> Iterator[k8s.BatchV1Api]:
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    try:
        yield k8s.BatchV1Api(api)
    finally:
        api.close()


@pytest.fixture
def names(batch: k8s.BatchV1Api) -> Iterator[list[str]]:
    """Job names for a test; whatever is left of them is deleted afterwards."""
    made = [f"task-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    yield made
    for name in made:
        try:
            batch.delete_namespaced_job(name, NS, propagation_policy="Background")
        except k8s.ApiException as e:
            if e.status != 404:
                raise


def submit(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": NS, "image": IMAGE, "gpus": 1}


def audit_events(path: Path) -> list[dict[str, Any]]:
    """Every tool-call event of the audit log, wherever the line nests it."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("kind") == "tool_call" and "tool" in node:
                found.append(node)
                return
            for value in node.values():
                walk(value)

    for line in path.read_text().splitlines():
        walk(json.loads(line))
    return found


def test_a_submitted_job_is_a_task_followed_until_it_completes(testbed, tmp_path, names) -> None:
    tasks = TasksClient()
    audit = tmp_path / "audit.jsonl"

    async def go() -> CallToolResult:
        async with client(testbed, audit, tasks=tasks) as c:
            return await c.call_tool("submit_job", submit(names[0]), read_timeout_seconds=240)

    final = anyio.run(go)
    [created] = tasks.created
    assert created.status == "working"
    assert created.task_id.startswith("job1.")
    assert created.poll_interval_ms
    assert created.poll_interval_ms > 0
    assert created.status_message
    assert "job submitted" in created.status_message
    assert created.meta
    assert created.meta["mcp-kube.io/submit_job"]["created"] is True
    statuses = [s.status for s in tasks.seen]
    assert statuses[-1] == "completed"
    assert set(statuses[:-1]) <= {"working"}, statuses
    assert all(s.task_id == created.task_id for s in tasks.seen)
    messages = [s.status_message or "" for s in tasks.seen]
    assert any("running" in m or "pending" in m for m in messages[:-1]), messages
    assert "succeeded" in messages[-1]
    assert not final.is_error, final.content
    out = final.structured_content or {}
    assert out["status"] == "completed"
    assert out["job_status"] == "succeeded"
    assert out["name"] == names[0]
    assert out["task_id"] == created.task_id
    assert out["job"]["succeeded"] == 1
    assert out["job"]["log_lines"], "the final result carries the log tail"
    reads = [e for e in audit_events(audit) if e["tool"] == "get_job"]
    assert len(reads) >= len(tasks.seen)  # every poll went through the gate, as get_job
    assert {e["principal"]["subject"] for e in reads} == {"alice"}


def test_a_task_is_cancelled_polled_elsewhere_and_hidden_from_others(
    testbed, tmp_path, names, batch
) -> None:
    audit = tmp_path / "audit.jsonl"
    name = names[1]

    async def go() -> None:
        async with client(testbed, audit, tasks=TasksClient()) as c:
            created = await c.session.call_tool("submit_job", submit(name), allow_claimed=True)
        assert isinstance(created, CreatedTask), created
        task_id = created.task_id
        # another server process, another principal: no such task, for a poll or a cancel
        async with client(testbed, tmp_path / "m.jsonl", "mallory", TasksClient()) as m:
            for call in (get_task, cancel_task):
                with pytest.raises(MCPError) as refused:
                    await call(m.session, task_id)
                assert refused.value.code == INVALID_PARAMS
                assert "not found" in str(refused.value)
        assert batch.read_namespaced_job(name, NS).metadata.uid in _uid_of(task_id)
        # alice again, on a third server process: the task resolves from the Job
        async with client(testbed, audit, tasks=TasksClient()) as c:
            state = await get_task(c.session, task_id)
            assert state.status in ("working", "completed"), state
            assert state.task_id == task_id
            await cancel_task(c.session, task_id)
            with pytest.raises(MCPError) as gone:
                await get_task(c.session, task_id)
            assert gone.value.code == INVALID_PARAMS
            with pytest.raises(MCPError) as forged:
                await get_task(c.session, "job1.bm90IGFuIGlk")
            assert forged.value.code == INVALID_PARAMS

    anyio.run(go)
    assert name not in {j.metadata.name for j in batch.list_namespaced_job(NS).items}
    cancels = [e for e in audit_events(audit) if e["tool"] == "cancel_job"]
    assert [(e["principal"]["subject"], e["outcome"]) for e in cancels] == [("alice", "ok")]
    assert cancels[0]["arguments"]["name"] == name
    refused = audit_events(tmp_path / "m.jsonl")
    assert {(e["tool"], e["error_code"]) for e in refused} == {
        ("get_job", "not_found"),
        ("cancel_job", "not_found"),
    }


def _uid_of(task_id: str) -> str:
    from mcp_kube.tools.taskstate import decode_task_id

    ref = decode_task_id(task_id)
    assert ref is not None
    return ref.uid


def test_a_client_without_the_extension_keeps_the_synchronous_answer(
    testbed, tmp_path, names
) -> None:
    async def go() -> CallToolResult:
        async with client(testbed, tmp_path / "audit.jsonl") as c:
            return await c.call_tool("submit_job", submit(names[2]))

    result = anyio.run(go)
    assert isinstance(result, CallToolResult)
    assert not result.is_error, result.content
    assert result.structured_content
    assert result.structured_content["created"] is True
    assert "task_id" not in result.structured_content


def test_two_http_replicas_serve_one_task_with_requests_alternating(
    testbed, tmp_path, names, batch
) -> None:
    """Two ``serve --transport http`` processes: a job submitted on one is followed to its end
    by polls that alternate between them; a second one, submitted on the other, is cancelled
    there; every request lands on a process that never saw the task before the last one."""
    audits = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    flags = [*TEAMS, "--principal", "alice", "--groups", NS]
    with (
        http_server(testbed.kubeconfig, ["gpu-east"], [*flags, "--audit-log", str(audits[0])]) as a,
        http_server(testbed.kubeconfig, ["gpu-east"], [*flags, "--audit-log", str(audits[1])]) as b,
    ):
        anyio.run(_alternate, [a[0], b[0]], names)
    assert names[1] not in {j.metadata.name for j in batch.list_namespaced_job(NS).items}
    for path in audits:
        report = verify([path])
        assert report.ok, report.to_dict()
    events = audit_events(audits[0]) + audit_events(audits[1])
    assert {e["tool"] for e in events} == {"submit_job", "get_job", "cancel_job"}
    [cancel] = [e for e in events if e["tool"] == "cancel_job"]
    assert (cancel["principal"]["subject"], cancel["outcome"]) == ("alice", "ok")


async def _alternate(urls: list[str], names: list[str]) -> None:
    async with (
        Client(urls[0], extensions=[TasksClient()]) as a,
        Client(urls[1], extensions=[TasksClient()]) as b,
    ):
        replicas = [a.session, b.session]
        found = await b.session.discover()  # server/discover: from either replica, stateless
        assert TASKS in (found.capabilities.extensions or {}), found.capabilities
        for c in (a, b):  # the tools' schemas: which arguments go in Mcp-Param-* headers
            await c.list_tools()
        first = await a.session.call_tool("submit_job", submit(names[0]), allow_claimed=True)
        assert isinstance(first, CreatedTask), first
        interval = (first.poll_interval_ms or 1000) / 1000
        seen = []
        for i in range(60):
            await anyio.sleep(interval)
            state = await get_task(replicas[(i + 1) % 2], first.task_id)  # b, a, b, ...
            seen.append(state.status)
            if state.status == "completed":
                break
        assert seen[-1] == "completed", seen
        assert len(seen) >= 2  # answered by both replicas
        assert state.result is not None
        assert state.result["structuredContent"]["job_status"] == "succeeded"
        second = await b.session.call_tool("submit_job", submit(names[1]), allow_claimed=True)
        assert isinstance(second, CreatedTask), second
        assert (await get_task(a.session, second.task_id)).status == "working"
        await cancel_task(b.session, second.task_id)
        with pytest.raises(MCPError) as gone:
            await get_task(a.session, second.task_id)
        assert gone.value.code == INVALID_PARAMS
