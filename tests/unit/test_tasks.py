"""submit_job as an MCP task, on an in-memory cluster over in-process MCP clients: the task
id, its states as the Job moves, polls by another principal, cancel, and clients without the
extension."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, MISSING_REQUIRED_CLIENT_CAPABILITY, CallToolResult
from support.objects import IMAGE, NS, condition, pod
from support.tasks import CreatedTask, DetailedTask, TasksClient, cancel_task, get_task

from mcp_kube.domain import Principal
from mcp_kube.kube.memory import MemoryCluster, MemoryClusters
from mcp_kube.kube.port import Kind
from mcp_kube.policy.loader import ReloadablePolicy
from mcp_kube.server.app import build_server
from mcp_kube.server.tasks import TASKS_EXTENSION
from mcp_kube.settings import Settings
from mcp_kube.tools.taskstate import decode_task_id, encode_task_id

REPO = Path(__file__).resolve().parents[2]
ALLOW = ReloadablePolicy([REPO / "tests" / "data" / "allow-writes.yaml"])
Session = Any


def test_a_task_id_names_the_job_and_nothing_else_decodes() -> None:
    task_id = encode_task_id("gpu-east", "team-a", "train-1", "0b6c-44d2")
    assert task_id == encode_task_id("gpu-east", "team-a", "train-1", "0b6c-44d2")  # stable
    ref = decode_task_id(task_id)
    assert ref is not None
    assert (ref.cluster, ref.namespace, ref.name, ref.uid) == (
        "gpu-east",
        "team-a",
        "train-1",
        "0b6c-44d2",
    )
    assert encode_task_id("gpu-east", "team-a", "train-1", "ffff") != task_id
    for bad in (
        "",
        "job1.",
        "job1.!!!",
        "job2." + task_id[5:],
        encode_task_id("gpu-east", "Team_A", "x", "1"),  # not a namespace name
        encode_task_id("gpu-east", "team-a", "x", "1/../2"),
        "job1." + "A" * 2000,
    ):
        assert decode_task_id(bad) is None, bad


def _server(port: MemoryCluster, who: str) -> Any:
    return build_server(
        Settings(),
        clusters=lambda: MemoryClusters(port),
        policy=ALLOW,
        principal_of=lambda _ctx: Principal(who),
        audit=lambda: None,
    )


def _as(
    port: MemoryCluster, who: str, go: Callable[[Session], Awaitable[Any]], tasks: bool = True
) -> Any:
    async def run() -> Any:
        extensions = [TasksClient()] if tasks else None
        async with Client(_server(port, who), extensions=extensions) as client:
            return await go(client.session)

    return anyio.run(run)


def _submit(name: str = "train") -> dict[str, Any]:
    return {"name": name, "namespace": NS, "image": IMAGE, "gpus": 1}


async def _create(session: Session) -> Any:
    return await session.call_tool("submit_job", _submit(), allow_claimed=True)


def _end(port: MemoryCluster, how: str) -> None:
    job = port.all(Kind.JOBS)[0]
    job["status"] = {
        "conditions": [condition(how)],
        "succeeded" if how == "Complete" else "failed": 1,
    }
    port.add(Kind.JOBS, job)


def _get(port: MemoryCluster, who: str, task_id: str) -> DetailedTask:
    async def go(session: Session) -> DetailedTask:
        return await get_task(session, task_id)

    result: DetailedTask = _as(port, who, go)
    return result


def test_submit_answers_with_a_task_whose_state_follows_the_job() -> None:
    port = MemoryCluster()
    created = _as(port, "alice", _create)
    assert isinstance(created, CreatedTask)
    assert created.status == "working"
    assert created.poll_interval_ms == 3000
    assert created.status_message
    assert created.status_message.startswith(f"{port.name}/{NS}/train")
    [job] = port.all(Kind.JOBS)
    ref = decode_task_id(created.task_id)
    assert ref is not None
    assert ref.uid == job["metadata"]["uid"]

    waiting = _get(port, "alice", created.task_id)  # another server: nothing kept in process
    assert waiting.status == "working"
    assert waiting.status_message
    assert "pending" in waiting.status_message
    assert waiting.result is None

    port.add(Kind.PODS, pod("train-abc", job="train"))
    port.logs[f"{NS}/train-abc"] = "epoch=0 step=40 loss=1.25\n"
    running = _get(port, "alice", created.task_id)
    assert running.status_message == (
        "train: running; pods: 1 Running; 0 restarts; step 40 epoch 0 loss 1.25"
    )

    _end(port, "Complete")
    done = _get(port, "alice", created.task_id)
    assert done.status == "completed"
    assert done.result is not None
    final = CallToolResult.model_validate(done.result, by_name=False)
    assert final.is_error is False
    out = final.structured_content or {}
    assert out["created"] is True
    assert out["job_status"] == "succeeded"
    assert out["job"]["log_lines"] == ["epoch=0 step=40 loss=1.25"]


def test_a_failed_job_completes_its_task_with_an_error_result() -> None:
    port = MemoryCluster()
    created = _as(port, "alice", _create)
    _end(port, "Failed")
    done = _get(port, "alice", created.task_id)
    assert done.status == "completed"  # "failed" is kept for protocol errors
    assert done.result is not None
    assert done.result["isError"] is True
    assert done.status_message
    assert "failed" in done.status_message


def test_the_client_resolves_the_task_to_the_final_result() -> None:
    port = MemoryCluster()
    tasks = TasksClient()

    async def go() -> CallToolResult:
        async with Client(_server(port, "alice"), extensions=[tasks]) as client:
            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_finish_soon, port)
                    return await client.call_tool("submit_job", _submit())

    final = anyio.run(go)
    assert not final.is_error
    assert [s.status for s in tasks.seen][-1] == "completed"


async def _finish_soon(port: MemoryCluster) -> None:
    await anyio.sleep(1)
    _end(port, "Complete")


def test_another_principal_cannot_see_or_cancel_the_task() -> None:
    port = MemoryCluster()
    created = _as(port, "alice", _create)
    for call in (get_task, cancel_task):

        async def go(session: Session, call: Any = call) -> MCPError:
            with pytest.raises(MCPError) as refused:
                await call(session, created.task_id)
            return refused.value

        refused = _as(port, "mallory", go)
        assert refused.code == INVALID_PARAMS
        assert "not found" in str(refused)
    assert len(port.all(Kind.JOBS)) == 1


def test_cancel_deletes_the_job_and_the_task_is_then_gone() -> None:
    port = MemoryCluster()
    created = _as(port, "alice", _create)

    async def go(session: Session) -> None:
        await cancel_task(session, created.task_id)
        with pytest.raises(MCPError) as gone:
            await get_task(session, created.task_id)
        assert gone.value.code == INVALID_PARAMS

    _as(port, "alice", go)
    assert port.all(Kind.JOBS) == []


def test_a_recreated_job_of_the_same_name_is_another_task() -> None:
    port = MemoryCluster()
    created = _as(port, "alice", _create)
    job = port.all(Kind.JOBS)[0]
    job["metadata"]["uid"] = "another-uid"
    port.add(Kind.JOBS, job)

    async def go(session: Session) -> MCPError:
        with pytest.raises(MCPError) as other:
            await get_task(session, created.task_id)
        return other.value

    assert _as(port, "alice", go).code == INVALID_PARAMS


def test_clients_without_the_extension_get_the_synchronous_answer_and_no_tasks() -> None:
    port = MemoryCluster()

    async def go(session: Session) -> Any:
        result = await session.call_tool("submit_job", _submit())
        with pytest.raises(MCPError) as missing:
            await get_task(session, encode_task_id(port.name, NS, "train", "x"))
        return result, missing.value

    result, missing = _as(port, "alice", go, tasks=False)
    assert isinstance(result, CallToolResult)
    assert result.structured_content
    assert result.structured_content["created"] is True
    assert missing.code == MISSING_REQUIRED_CLIENT_CAPABILITY


def test_the_server_advertises_the_extension() -> None:
    async def go(session: Session) -> Any:
        return session.server_capabilities

    caps = _as(MemoryCluster(), "alice", go)
    assert caps is not None
    assert TASKS_EXTENSION in (caps.extensions or {})
