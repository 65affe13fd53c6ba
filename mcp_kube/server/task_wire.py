"""What the Tasks extension's requests answer on the wire: task states, and the JSON-RPC errors
for task requests the gate refused or that name no task of the caller's."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, TextContent

__all__ = [
    "POLL_INTERVAL_MS",
    "error_code",
    "not_found",
    "now",
    "refusal",
    "text_of",
    "wire_task",
]

POLL_INTERVAL_MS = 3000  # a Job's state changes in seconds; each poll costs a few API reads
_ERROR = re.compile(r"^error \[([a-z_.]+)\]")
_CALLER_ERRORS = {"not_found", "invalid_argument", "unknown_cluster", "policy_denied"}
_CALLER_ERRORS |= {"rate_limited", "forbidden", "approval_refused", "approval_pending"}


def not_found() -> MCPError:
    """The one answer for a task that does not resolve for the caller."""
    return MCPError(code=INVALID_PARAMS, message="Failed to retrieve task: task not found")


def text_of(result: CallToolResult) -> str:
    """The text of a tool result's first block."""
    first = result.content[0] if result.content else None
    return first.text if isinstance(first, TextContent) else ""


def error_code(result: CallToolResult) -> str:
    """The code of a tool error (``error [code]: ...``); ``internal`` when it names none."""
    found = _ERROR.match(text_of(result))
    return found.group(1) if found else "internal"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _time(value: object) -> str:
    return value if isinstance(value, str) and value else now()


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


def refusal(code: str, result: CallToolResult) -> MCPError:
    """A task request the gate refused or failed, as the JSON-RPC error the extension names."""
    if code == "not_found":
        return not_found()
    kind = INVALID_PARAMS if code in _CALLER_ERRORS else INTERNAL_ERROR
    return MCPError(code=kind, message=(text_of(result) or code)[:500])
