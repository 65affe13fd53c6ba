"""Tasks for a ``submit_job`` that waits for an out-of-band approval.

A client that declared the Tasks extension and whose ``submit_job`` the gate answers with
``approval_pending`` gets a task in place of that error: status ``input_required``, with one
form elicitation that tells the human who must approve (the request id, the approver groups,
``mcp-kube approve ID``) and asks for nothing (an empty schema: answering it only acknowledges
it, and a ``tasks/update`` that does changes nothing: the state is read again).

The task id (``tools.tasksubmit``) carries the cluster, the caller and the submit's arguments;
nothing is kept in the server. Each ``tasks/get`` looks for the submit's Job first, as the
caller's ``get_job`` (by the name in the arguments, the submitter label and the submit's
idempotency key); once it exists, the task follows it as a Job's task does (``working``, then
``completed`` or ``cancelled``). Before that, the caller's ``submit_job`` is run again through
the gate: still pending, the task stays ``input_required``; approved, that call spends the
approval and creates the Job, exactly once, and the task is ``working``; rejected or expired
(or refused in any other way the caller must act on), the task is ``completed`` with the tool
error as its result (``isError``). Every read and replay is a gated, audited call.

A poll by anyone but the submitter is refused as for any task (task not found) after the
``get_job`` that finds no Job of theirs: nothing is replayed for them. ``tasks/cancel`` of a
task whose Job exists cancels it as the caller's ``cancel_job``; while the approval is still
awaited there is nothing to cancel, and the request is refused, saying how to withdraw the
approval request instead (the requester may reject their own request).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult

from mcp_kube.server.task_wire import error_code, not_found, now, refusal, text_of, wire_task
from mcp_kube.tools.base import ToolSpec
from mcp_kube.tools.taskstate import TASK_CANCEL, TASK_STATUS, decode_task_id
from mcp_kube.tools.tasksubmit import (
    TASK_SUBMIT,
    SubmitTask,
    decode_submit_task,
    encode_submit_task,
)

__all__ = ["APPROVAL_INPUT", "APPROVAL_POLL_INTERVAL_MS", "Gated", "SubmitTasks"]

Ctx = ServerRequestContext[Any, Any]
# Runs a spec through the gate as the caller of the request, as a tool call runs.
Gated = Callable[[ToolSpec[Any, Any], dict[str, Any], Ctx], Awaitable[CallToolResult]]

APPROVAL_INPUT = "mcp-kube.io/out-of-band-approval"  # the key of the one input request
APPROVAL_POLL_INTERVAL_MS = 10_000  # a human decides in minutes; each poll replays the submit
# Tool errors that settle a waiting submit: the caller has to change something and call again.
_FINAL = {"approval_refused", "policy_denied", "invalid_argument", "unknown_cluster"}
_FINAL |= {"forbidden", "conflict", "not_found", "tool_error"}
_AGAIN = "then call this tool again with the same arguments"


def _waiting_text(result: CallToolResult) -> str:
    """The gate's approval_pending text, as it reads for a task that tries again by itself."""
    text = text_of(result).split(": ", 1)[-1]
    return text.replace(_AGAIN, "this task then runs the job at its next poll")


def _wire(task: SubmitTask, status: str, message: str, **extra: Any) -> dict[str, Any]:
    """A submit task on the wire; it lives as long as its approval request may wait."""
    return {
        "taskId": task.task_id,
        "status": status,
        "statusMessage": message[:1000],
        "createdAt": task.created_at.isoformat(),
        "lastUpdatedAt": now(),
        "ttlMs": None,
        "pollIntervalMs": APPROVAL_POLL_INTERVAL_MS,
        **extra,
    }


def pending_task(task: SubmitTask, why: str) -> dict[str, Any]:
    """The extension's ``input_required`` task: waiting for an approver."""
    args = task.arguments
    message = (
        f"submit_job of {task.cluster}/{args.namespace}/{args.name} waits for an out-of-band "
        f"approval: {why}. There is nothing to answer here: an approver decides outside this "
        "client; answering only acknowledges this message."
    )
    ask = {
        "mode": "form",
        "message": message,
        "requestedSchema": {"type": "object", "properties": {}},
    }
    inputs = {APPROVAL_INPUT: {"method": "elicitation/create", "params": ask}}
    return _wire(task, "input_required", why, inputRequests=inputs)


def _settled(task: SubmitTask, result: CallToolResult) -> dict[str, Any]:
    """A ``completed`` task whose result is the submit's tool error."""
    final = CallToolResult(content=result.content, is_error=True, _meta=result.meta)
    dumped = final.model_dump(by_alias=True, mode="json", exclude_none=True)
    return _wire(task, "completed", text_of(result), result=dumped)


def _following(task: SubmitTask, found: CallToolResult) -> dict[str, Any]:
    """The task of the submit's Job, under the submit's own task id."""
    state = dict(found.structured_content or {})
    state["task_id"] = task.task_id
    return wire_task(state, found)


class SubmitTasks:
    """Tasks for submits waiting for an out-of-band approval (see the module docstring).

    ``gated`` runs a spec through the gate as the request's caller; ``caller`` is that
    caller's subject; ``resolve`` names the cluster a ``cluster`` argument means.
    """

    def __init__(
        self,
        gated: Gated,
        caller: Callable[[Ctx], str],
        resolve: Callable[[str | None], str],
    ) -> None:
        self._gated = gated
        self._caller = caller
        self._resolve = resolve

    def created(
        self, arguments: dict[str, Any], result: CallToolResult, ctx: Ctx
    ) -> dict[str, Any] | None:
        """The ``CreateTaskResult`` for a submit the gate answered ``approval_pending``; None
        when no task can carry it (its arguments make too long an id)."""
        try:
            cluster = self._resolve(arguments.get("cluster"))
        except Exception:  # the gate resolved it a moment ago; without it, no task
            return None
        rest = {k: v for k, v in arguments.items() if k != "cluster"}
        at = dt.datetime.now(dt.UTC)
        task_id = encode_submit_task(cluster, self._caller(ctx), rest, at)
        task = decode_submit_task(task_id) if task_id else None
        if task is None:
            return None
        return {"resultType": "task", **pending_task(task, _waiting_text(result))}

    async def _job(self, task: SubmitTask, ctx: Ctx) -> CallToolResult | None:
        """The submit's Job, read as the caller's get_job; None when there is none yet.
        Refuses (task not found) a caller who is not the submitter."""
        found = await self._gated(TASK_STATUS, task.job.model_dump(), ctx)
        if not found.is_error:
            return found
        code = error_code(found)
        if code != "not_found":
            raise refusal(code, found)
        if self._caller(ctx) != task.owner:
            raise not_found()
        return None

    async def state(self, task: SubmitTask, ctx: Ctx) -> dict[str, Any]:
        """``tasks/get``: the Job's task once it exists; before, the submit tried again."""
        found = await self._job(task, ctx)
        if found is not None:
            return _following(task, found)
        result = await self._gated(TASK_SUBMIT, task.call, ctx)
        if not result.is_error:
            found = await self._gated(TASK_STATUS, task.job.model_dump(), ctx)
            if found.is_error:
                raise refusal(error_code(found), found)
            return _following(task, found)
        code, text = error_code(result), text_of(result)
        if code == "approval_pending":
            return pending_task(task, _waiting_text(result))
        if code == "rate_limited":
            return pending_task(task, f"not checked this time ({text}); poll less often")
        if code == "approval_refused" and "already used" in text:
            raise not_found()  # it ran once already, and its Job is gone since
        if code in _FINAL:
            return _settled(task, result)
        raise refusal(code, result)

    async def cancel(self, task: SubmitTask, ctx: Ctx) -> None:
        """``tasks/cancel``: cancels the Job once there is one; refused while none exists."""
        found = await self._job(task, ctx)
        if found is None:
            raise MCPError(
                code=INVALID_PARAMS,
                message="this task waits for an out-of-band approval and nothing runs yet: "
                "there is nothing to cancel. To withdraw the approval request, its requester "
                "(or an approver) runs `mcp-kube approve ID --reject` with the request id of "
                "the task's input request; the task then completes with that refusal.",
            )
        state = found.structured_content or {}
        ref = decode_task_id(str(state.get("task_id", "")))
        if ref is None:
            raise not_found()
        result = await self._gated(TASK_CANCEL, ref.model_dump(), ctx)
        if result.is_error:
            raise refusal(error_code(result), result)
