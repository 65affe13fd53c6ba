"""A submit_job that waits for an out-of-band approval, as an MCP task: ``input_required`` while
the approver has not decided, the Job's task once approved, a completed error once rejected;
on an in-memory cluster over in-process MCP clients (each call its own server)."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult
from support.objects import IMAGE, NS, condition
from support.tasks import CreatedTask, TasksClient, cancel_task, get_task, update_task

from mcp_kube.domain import Json, Principal
from mcp_kube.errors import InvalidArgument
from mcp_kube.gate.approval_store import ApprovalStore
from mcp_kube.kube.memory import MemoryCluster, MemoryClusters
from mcp_kube.kube.port import Kind
from mcp_kube.policy.approvals import DECISION_KEYS, ApprovalRecord
from mcp_kube.policy.loader import ReloadablePolicy
from mcp_kube.server.app import build_server
from mcp_kube.server.task_approval import APPROVAL_INPUT
from mcp_kube.settings import Settings
from mcp_kube.tools.tasksubmit import decode_submit_task, encode_submit_task

REPO = Path(__file__).resolve().parents[2]
POLICY = ReloadablePolicy([REPO / "tests" / "data" / "submit-out-of-band.yaml"])
APPROVALS = "mcp-kube-system"
BOB = Principal("bob", ("team-b",))
Session = Any


def _admission(old: Json | None, new: Json) -> None:
    """The admission policy's rule the server relies on to count an approval: a decision,
    once made, does not change (a dry run of such a change is refused)."""
    od = (old or {}).get("data") or {}
    nd = new.get("data") or {}
    if od.get("decision") and any(od.get(k, "") != nd.get(k, "") for k in DECISION_KEYS):
        raise InvalidArgument(
            "ValidatingAdmissionPolicy 'mcp-kube-approvals' with binding 'mcp-kube-approvals' "
            "denied request: an approval request is decided only once"
        )


def _cluster() -> MemoryCluster:
    return MemoryCluster(admit=_admission)


def _as(
    port: MemoryCluster,
    who: str,
    go: Callable[[Session], Awaitable[Any]],
    tasks: bool = True,
    policy: ReloadablePolicy = POLICY,
) -> Any:
    async def run() -> Any:
        server = build_server(
            Settings(),
            clusters=lambda: MemoryClusters(port),
            policy=policy,
            principal_of=lambda _ctx: Principal(who, ("team-a",)),
            audit=lambda: None,
        )
        extensions = [TasksClient()] if tasks else None
        async with Client(server, extensions=extensions) as client:
            return await go(client.session)

    return anyio.run(run)


def _submit(gpus: int = 2) -> dict[str, Any]:
    return {"name": "train", "namespace": NS, "image": IMAGE, "gpus": gpus}


async def _create(session: Session) -> Any:
    return await session.call_tool("submit_job", _submit(), allow_claimed=True)


def _get(port: MemoryCluster, task_id: str, who: str = "alice") -> Any:
    async def go(session: Session) -> Any:
        return await get_task(session, task_id)

    return _as(port, who, go)


def _refused(port: MemoryCluster, who: str, call: Any, task_id: str) -> MCPError:
    async def go(session: Session) -> MCPError:
        with pytest.raises(MCPError) as refused:
            await call(session, task_id)
        return refused.value

    error: MCPError = _as(port, who, go)
    return error


def _request(port: MemoryCluster) -> ApprovalRecord:
    [cm] = port.all(Kind.CONFIG_MAPS)
    return ApprovalRecord.from_configmap(cm)


def _decide(port: MemoryCluster, approve: bool = True) -> None:
    store = ApprovalStore(port, APPROVALS)
    rid = _request(port).id
    anyio.run(store.approve if approve else store.reject, rid, BOB)


def test_a_submit_waiting_for_an_approver_is_an_input_required_task() -> None:
    port = _cluster()
    created = _as(port, "alice", _create)
    assert isinstance(created, CreatedTask), created
    assert created.status == "input_required"
    assert created.task_id.startswith("submit1.")
    assert port.all(Kind.JOBS) == []
    rid = _request(port).id
    assert created.status_message
    assert rid in created.status_message

    again = _get(port, created.task_id)  # another server, nothing kept: still waiting
    assert again.status == "input_required"
    assert again.task_id == created.task_id
    assert "still waiting" in again.status_message
    assert again.input_requests is not None
    [(key, ask)] = again.input_requests.items()
    assert key == APPROVAL_INPUT
    assert ask["method"] == "elicitation/create"
    assert ask["params"]["requestedSchema"] == {"type": "object", "properties": {}}
    message = ask["params"]["message"]
    for words in (rid, "groups: team-b", f"`mcp-kube approve {rid}`", "next poll"):
        assert words in message, message
    task = decode_submit_task(created.task_id)
    assert task is not None
    assert (task.cluster, task.owner, task.raw) == (port.name, "alice", _submit())

    async def answer(session: Session) -> Any:
        return await update_task(
            session, created.task_id, {APPROVAL_INPUT: {"action": "accept", "content": {}}}
        )

    _as(port, "alice", answer)  # acknowledged; it changes nothing
    assert _get(port, created.task_id).status == "input_required"
    assert port.all(Kind.JOBS) == []
    assert len(port.all(Kind.CONFIG_MAPS)) == 1  # the same request, every time


def test_others_cannot_poll_or_cancel_it_and_its_owner_cannot_cancel_a_wait() -> None:
    port = _cluster()
    created = _as(port, "alice", _create)
    for call in (get_task, cancel_task):
        refused = _refused(port, "mallory", call, created.task_id)
        assert refused.code == INVALID_PARAMS
        assert "not found" in str(refused)
    assert len(port.all(Kind.CONFIG_MAPS)) == 1  # nothing filed for mallory
    refused = _refused(port, "alice", cancel_task, created.task_id)
    assert refused.code == INVALID_PARAMS
    assert "nothing to cancel" in str(refused)
    assert "--reject" in str(refused)
    assert _request(port).state == "pending"


def test_once_approved_the_next_poll_runs_it_once_and_the_task_follows_the_job() -> None:
    port = _cluster()
    created = _as(port, "alice", _create)
    _decide(port)
    working = _get(port, created.task_id)
    assert working.status == "working", working
    assert working.task_id == created.task_id
    [job] = port.all(Kind.JOBS)
    assert _request(port).state == "used"
    assert _get(port, created.task_id).status == "working"  # found by name and key
    assert len(port.all(Kind.JOBS)) == 1
    assert mallory_not_found(port, created.task_id)

    job["status"] = {"conditions": [condition("Complete")], "succeeded": 1}
    port.add(Kind.JOBS, job)
    done = _get(port, created.task_id)
    assert done.status == "completed"
    final = CallToolResult.model_validate(done.result, by_name=False)
    assert final.is_error is False
    out = final.structured_content or {}
    assert (out["task_id"], out["job_status"]) == (created.task_id, "succeeded")


def mallory_not_found(port: MemoryCluster, task_id: str) -> bool:
    return "not found" in str(_refused(port, "mallory", get_task, task_id))


def test_an_approved_task_is_cancelled_with_its_job_and_not_run_again() -> None:
    port = _cluster()
    created = _as(port, "alice", _create)
    _decide(port)
    assert _get(port, created.task_id).status == "working"

    async def go(session: Session) -> None:
        await cancel_task(session, created.task_id)

    _as(port, "alice", go)
    assert port.all(Kind.JOBS) == []
    gone = _refused(port, "alice", get_task, created.task_id)  # the approval ran once
    assert "not found" in str(gone)
    assert port.all(Kind.JOBS) == []


def test_a_rejected_request_completes_the_task_with_the_tool_error() -> None:
    port = _cluster()
    created = _as(port, "alice", _create)
    _decide(port, approve=False)
    done = _get(port, created.task_id)
    assert done.status == "completed"
    assert done.result["isError"] is True
    assert "rejected by bob" in done.result["content"][0]["text"]
    assert port.all(Kind.JOBS) == []


def test_a_poll_runs_nothing_that_no_approver_approved() -> None:
    """The policy changed meanwhile and lets the write through with no approval: the poll
    does not create the Job (the caller calls submit_job again for that)."""
    port = _cluster()
    created = _as(port, "alice", _create)
    allow = ReloadablePolicy([REPO / "tests" / "data" / "allow-writes.yaml"])

    async def go(session: Session) -> Any:
        return await get_task(session, created.task_id)

    done = _as(port, "alice", go, policy=allow)
    assert done.status == "completed"
    assert done.result["isError"] is True
    assert "asks for 'none' instead" in done.result["content"][0]["text"]
    assert port.all(Kind.JOBS) == []
    assert _request(port).state == "pending"


def test_without_the_extension_the_caller_gets_the_pending_error() -> None:
    async def go(session: Session) -> CallToolResult:
        result: CallToolResult = await session.call_tool("submit_job", _submit())
        return result

    result = _as(_cluster(), "alice", go, tasks=False)
    assert result.is_error
    assert "approval_pending" in str(result.content[0])


def test_a_submit_task_id_carries_the_call_and_is_bounded() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    task_id = encode_submit_task("gpu-east", "alice", _submit(), at)
    assert task_id is not None
    task = decode_submit_task(task_id)
    assert task is not None
    assert task.call == _submit() | {"cluster": "gpu-east"}
    assert task.job.idempotency_key
    assert task.created_at == at
    big = _submit() | {"env": {f"V{i}": "x" * 4000 for i in range(8)}}
    assert encode_submit_task("gpu-east", "alice", big, at) is None  # too long: no task
    raw = json.dumps(["gpu-east", "alice", _submit() | {"namespace": "Bad_NS"}, at.isoformat()])
    forged = "submit1." + base64.urlsafe_b64encode(raw.encode()).decode()
    for bad in ("", "submit1.", "submit1.!!!", "submit2." + task_id[8:], forged, "job1.x"):
        assert decode_submit_task(bad) is None, bad
