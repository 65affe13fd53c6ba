"""MCP's Tasks extension (``io.modelcontextprotocol/tasks``, 2026-07-28) for ``submit_job``.

A client that declares the extension on its request gets a task for ``submit_job`` once the
Job is created (any approval is settled first, in the call itself): ``resultType: "task"``
with the task's id, status and poll interval. It then polls ``tasks/get`` and may stop the Job
with ``tasks/cancel``. Any other client, and any other tool, keeps the synchronous answer; so
does a submit that fails, or one whose task cannot be read back (then there is nothing to poll).

Nothing is kept in this process: the task id names the Job (``tools.taskstate``), and every
``tasks/*`` request reads the Job again, on whichever replica it lands, through the gate under
the caller's own identity, as a ``get_job`` (``tasks/get``, ``tasks/update``) or a
``cancel_job`` (``tasks/cancel``): the policy decides and the audit log records each, as for
the tools. A task that does not resolve for the caller (malformed id, gone, another
principal's) is one JSON-RPC error, ``-32602`` task not found.

Status: ``working`` while the Job waits (the why-pending verdict) or runs (pods, restarts, step
and loss); ``completed`` once it has ended, with the Job's final state and log tail as the tool
result (``isError`` when the Job failed: the extension keeps ``failed`` for protocol errors);
``cancelled`` while a cancelled Job is being deleted.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.server import require_client_extension
from mcp.server.mcpserver.tools.base import Tool
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    RequestParams,
    TextContent,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from mcp_kube.tools.base import ToolSpec
from mcp_kube.tools.taskstate import (
    MAX_TASK_ID,
    TASK_CANCEL,
    TASK_STATUS,
    decode_task_id,
)

__all__ = ["POLL_INTERVAL_MS", "TASKS_EXTENSION", "TasksExtension"]

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
POLL_INTERVAL_MS = 3000  # a Job's state changes in seconds; each poll costs a few API reads
TASK_TOOLS = frozenset({"submit_job"})
SUBMIT_META = "mcp-kube.io/submit_job"  # the submit's own result, on the CreateTaskResult
_ERROR = re.compile(r"^error \[([a-z_.]+)\]")
_CALLER_ERRORS = {"not_found", "invalid_argument", "unknown_cluster", "policy_denied"}
_CALLER_ERRORS |= {"rate_limited", "forbidden", "approval_refused", "approval_pending"}


class TaskParams(RequestParams):
    """``tasks/get`` and ``tasks/cancel``: which task."""

    task_id: str = Field(max_length=MAX_TASK_ID)


class UpdateTaskParams(TaskParams):
    """``tasks/update``: answers to a task's input requests (these tasks never ask any)."""

    input_responses: dict[str, Any] = Field(default_factory=dict)


def _not_found() -> MCPError:
    return MCPError(code=INVALID_PARAMS, message="Failed to retrieve task: task not found")


def _text(result: CallToolResult) -> str:
    first = result.content[0] if result.content else None
    return first.text if isinstance(first, TextContent) else ""


def _error_code(result: CallToolResult) -> str:
    found = _ERROR.match(_text(result))
    return found.group(1) if found else "internal"


def _time(value: object) -> str:
    return value if isinstance(value, str) and value else dt.datetime.now(dt.UTC).isoformat()


def wire_task(state: dict[str, Any], result: CallToolResult) -> dict[str, Any]:
    """The extension's ``DetailedTask`` for a task state (``tools.taskstate.TaskState``)."""
    task: dict[str, Any] = {
        "taskId": state["task_id"],
        "status": state["status"],
        "statusMessage": state["message"],
        "createdAt": _time(state.get("created_at")),
        "lastUpdatedAt": _time(state.get("updated_at")),
        "ttlMs": None,  # the task lives as long as its Job
        "pollIntervalMs": POLL_INTERVAL_MS,
    }
    if state["status"] == "completed":
        final = CallToolResult(
            content=result.content,
            structured_content=state,
            is_error=state.get("job_status") == "failed",
            _meta=result.meta,
        )
        task["result"] = final.model_dump(by_alias=True, mode="json", exclude_none=True)
    return task


class TasksExtension(Extension):
    """Tasks for ``submit_job``; ``tasks/get``, ``tasks/update`` and ``tasks/cancel``.

    Built from the server's tools: it runs the task reads and cancels as the ``submit_job``
    tool runs (``GatedTool``: the caller's principal, the gate, the transport), with the
    specs of ``tools.taskstate`` in place of the tool's own.
    """

    identifier = TASKS_EXTENSION

    def __init__(self, tools: Sequence[Tool]) -> None:
        self._tool = next(t for t in tools if t.name in TASK_TOOLS)

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return (
            MethodBinding("tasks/get", TaskParams, self._get, modern),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, modern),
            MethodBinding("tasks/cancel", TaskParams, self._cancel, modern),
        )

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
        require_client_extension(ctx, TASKS_EXTENSION)
        ref = decode_task_id(task_id)
        if ref is None:
            raise _not_found()
        result = await self._gated(TASK_STATUS, ref.model_dump(), ctx)
        if result.is_error or not isinstance(result.structured_content, dict):
            raise _refusal(_error_code(result), result)
        return result.structured_content, result

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        state, result = await self._state(params.task_id, ctx)
        return wire_task(state, result)

    async def _update(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams
    ) -> HandlerResult:
        await self._state(params.task_id, ctx)  # known and the caller's; it asks no input
        return {}

    async def _cancel(
        self, ctx: ServerRequestContext[Any, Any], params: TaskParams
    ) -> HandlerResult:
        require_client_extension(ctx, TASKS_EXTENSION)
        ref = decode_task_id(params.task_id)
        if ref is None:
            raise _not_found()
        result = await self._gated(TASK_CANCEL, ref.model_dump(), ctx)
        if result.is_error:
            raise _refusal(_error_code(result), result)
        return {}

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        """``submit_job`` for a client that declared tasks: its task, once the Job exists."""
        result = await call_next(ctx)
        if (
            params.name not in TASK_TOOLS
            or not _declared(ctx)
            or not isinstance(result, CallToolResult)
        ):
            return result
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
        head = _text(result).splitlines()[:1]  # "job submitted (...)", then where it stands
        task["statusMessage"] = "; ".join([*head, task["statusMessage"]])
        return {"resultType": "task", **task, "_meta": {SUBMIT_META: out}}


def _declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The request declared the extension, on a protocol version that has it."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    caps = ctx.session.client_capabilities
    return bool(caps and caps.extensions and TASKS_EXTENSION in caps.extensions)


def _refusal(code: str, result: CallToolResult) -> MCPError:
    """A task request the gate refused or failed, as the JSON-RPC error the extension names."""
    if code == "not_found":
        return _not_found()
    kind = INVALID_PARAMS if code in _CALLER_ERRORS else INTERNAL_ERROR
    return MCPError(code=kind, message=(_text(result) or code)[:500])
