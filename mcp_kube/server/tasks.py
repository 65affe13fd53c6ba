"""MCP's Tasks extension (``io.modelcontextprotocol/tasks``, 2026-07-28) for ``submit_job``.

A client that declares the extension on its request gets a task for ``submit_job`` once the
Job is created (an approval asked of the human behind the client is settled first, in the call
itself): ``resultType: "task"`` with the task's id, status and poll interval. It then polls
``tasks/get`` and may stop the Job with ``tasks/cancel``. A submit that waits for an
out-of-band approval gets a task too, ``input_required`` until an approver decides
(``server.task_approval``). Any other client, and any other tool, keeps the synchronous
answer; so does a submit that fails, or one whose task cannot be read back (then there is
nothing to poll).

Nothing is kept in this process: the task id names the Job (``tools.taskstate``), or, for a
submit still waiting for its approval, carries the call (``tools.tasksubmit``); every
``tasks/*`` request reads the Job again, on whichever replica it lands, through the gate under
the caller's own identity, as a ``get_job`` (``tasks/get``, ``tasks/update``; while an
approval is awaited, then the caller's ``submit_job`` again) or a ``cancel_job``
(``tasks/cancel``): the policy decides and the audit log records each, as for
the tools. A task that does not resolve for the caller (malformed id, gone, another
principal's) is one JSON-RPC error, ``-32602`` task not found.

Status: ``working`` while the Job waits (the why-pending verdict) or runs (pods, restarts, step
and loss); ``completed`` once it has ended, with the Job's final state and log tail as the tool
result (``isError`` when the Job failed: the extension keeps ``failed`` for protocol errors);
``cancelled`` while a cancelled Job is being deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.server import require_client_extension
from mcp.server.mcpserver.tools.base import Tool
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolRequestParams, CallToolResult, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from mcp_kube.server.task_approval import SubmitTasks
from mcp_kube.server.task_wire import (
    POLL_INTERVAL_MS,
    error_code,
    not_found,
    refusal,
    text_of,
    wire_task,
)
from mcp_kube.tools.base import ToolSpec
from mcp_kube.tools.taskstate import (
    MAX_TASK_ID,
    TASK_CANCEL,
    TASK_STATUS,
    decode_task_id,
)
from mcp_kube.tools.tasksubmit import decode_submit_task

__all__ = ["POLL_INTERVAL_MS", "TASKS_EXTENSION", "TasksExtension", "wire_task"]

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TASK_TOOLS = frozenset({"submit_job"})
SUBMIT_META = "mcp-kube.io/submit_job"  # the submit's own result, on the CreateTaskResult


class TaskParams(RequestParams):
    """``tasks/get`` and ``tasks/cancel``: which task."""

    task_id: str = Field(max_length=MAX_TASK_ID)


class UpdateTaskParams(TaskParams):
    """``tasks/update``: answers to a task's input requests (none of them changes anything)."""

    input_responses: dict[str, Any] = Field(default_factory=dict)


class TasksExtension(Extension):
    """Tasks for ``submit_job``; ``tasks/get``, ``tasks/update`` and ``tasks/cancel``.

    Built from the server's tools: it runs the task reads, cancels and approval replays as the
    ``submit_job`` tool runs (``GatedTool``: the caller's principal, the gate, the transport),
    with the specs of ``tools.taskstate`` and ``tools.tasksubmit`` in place of the tool's own.
    """

    identifier = TASKS_EXTENSION

    def __init__(self, tools: Sequence[Tool]) -> None:
        self._tool = next(t for t in tools if t.name in TASK_TOOLS)
        self._submits = SubmitTasks(self._gated, self._caller, self._resolve)

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return (
            MethodBinding("tasks/get", TaskParams, self._get, modern),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, modern),
            MethodBinding("tasks/cancel", TaskParams, self._cancel, modern),
        )

    def _caller(self, ctx: ServerRequestContext[Any, Any]) -> str:
        """The subject of the request's caller, as the tools see it."""
        principal_of = getattr(self._tool, "principal_of")  # noqa: B009 (GatedTool's field)
        return str(principal_of(Context(request_context=ctx)).subject)

    def _resolve(self, cluster: str | None) -> str:
        """The cluster a ``cluster`` argument names (None: the default), as the gate sees it."""
        gate = getattr(self._tool, "gate_ref")()  # noqa: B009 (GatedTool's field)
        return str(gate.clusters.resolve(cluster))

    async def _gated(
        self,
        spec: ToolSpec[Any, Any],
        arguments: dict[str, Any],
        ctx: ServerRequestContext[Any, Any],
    ) -> CallToolResult:
        """Run ``spec`` through the gate as the caller, the way a tool call runs."""
        runner = self._tool.model_copy(update={"spec": spec})
        result = await runner.run(arguments, Context(request_context=ctx))
        if not isinstance(result, CallToolResult):  # input asked: a task request cannot answer
            raise MCPError(code=INVALID_PARAMS, message="this needs an approval: use the tool")
        return result

    async def _state(
        self, task_id: str, ctx: ServerRequestContext[Any, Any]
    ) -> tuple[dict[str, Any], CallToolResult]:
        ref = decode_task_id(task_id)
        if ref is None:
            raise not_found()
        result = await self._gated(TASK_STATUS, ref.model_dump(), ctx)
        if result.is_error or not isinstance(result.structured_content, dict):
            raise refusal(error_code(result), result)
        return result.structured_content, result

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        require_client_extension(ctx, TASKS_EXTENSION)
        submit = decode_submit_task(params.task_id)
        if submit is not None:
            return await self._submits.state(submit, ctx)
        state, result = await self._state(params.task_id, ctx)
        return wire_task(state, result)

    async def _update(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams
    ) -> HandlerResult:
        await self._get(ctx, params)  # known and the caller's; its answers change nothing
        return {}

    async def _cancel(
        self, ctx: ServerRequestContext[Any, Any], params: TaskParams
    ) -> HandlerResult:
        require_client_extension(ctx, TASKS_EXTENSION)
        submit = decode_submit_task(params.task_id)
        if submit is not None:
            await self._submits.cancel(submit, ctx)
            return {}
        ref = decode_task_id(params.task_id)
        if ref is None:
            raise not_found()
        result = await self._gated(TASK_CANCEL, ref.model_dump(), ctx)
        if result.is_error:
            raise refusal(error_code(result), result)
        return {}

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        """``submit_job`` for a client that declared tasks: its task, once the Job exists, or
        while an out-of-band approval is awaited."""
        result = await call_next(ctx)
        if (
            params.name not in TASK_TOOLS
            or not _declared(ctx)
            or not isinstance(result, CallToolResult)
        ):
            return result
        if result.is_error and error_code(result) == "approval_pending":
            waiting = self._submits.created(dict(params.arguments or {}), result, ctx)
            return result if waiting is None else waiting
        out = result.structured_content
        if result.is_error or not isinstance(out, dict) or not out.get("name"):
            return result
        where = {k: out.get(k) for k in ("cluster", "namespace", "name")}
        state = await self._gated(TASK_STATUS, where, ctx)  # durable: it resolves from the Job
        if state.is_error or not isinstance(state.structured_content, dict):
            return result  # nothing this caller could poll: the synchronous answer
        task = wire_task(state.structured_content, state)
        task.pop("result", None)  # a task is created working; its result comes from tasks/get
        task["status"] = "working" if task["status"] == "completed" else task["status"]
        head = text_of(result).splitlines()[:1]  # "job submitted (...)", then where it stands
        task["statusMessage"] = "; ".join([*head, task["statusMessage"]])
        return {"resultType": "task", **task, "_meta": {SUBMIT_META: out}}


def _declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The request declared the extension, on a protocol version that has it."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    caps = ctx.session.client_capabilities
    return bool(caps and caps.extensions and TASKS_EXTENSION in caps.extensions)
