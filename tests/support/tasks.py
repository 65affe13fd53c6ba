"""The client side of MCP's Tasks extension (``io.modelcontextprotocol/tasks``), for tests.

``TasksClient`` is a ``ClientExtension``: it declares the extension on every request and claims
``resultType: "task"``; ``Client.call_tool`` then polls ``tasks/get`` (honouring
``pollIntervalMs``) until the task ends and returns its final ``CallToolResult``. Every state
seen is kept in ``seen``. ``get_task``/``update_task``/``cancel_task`` send the methods by
hand.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp_types import CallToolResult, Request, RequestParams, Result

TASKS = "io.modelcontextprotocol/tasks"
TERMINAL = {"completed", "failed", "cancelled"}


class CreatedTask(Result):
    """A ``CreateTaskResult``: the seed state of a task."""

    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None


class DetailedTask(Result):
    """A ``tasks/get`` answer."""

    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    input_requests: dict[str, Any] | None = None


class TaskIdParams(RequestParams):
    task_id: str


class UpdateTaskParams(TaskIdParams):
    input_responses: dict[str, Any]


class GetTask(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param: ClassVar[str | None] = "taskId"  # Mcp-Name, as the extension asks


class CancelTask(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams
    name_param: ClassVar[str | None] = "taskId"


class UpdateTask(Request[UpdateTaskParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    params: UpdateTaskParams
    name_param: ClassVar[str | None] = "taskId"


async def get_task(session: ClientSession, task_id: str) -> DetailedTask:
    return await session.send_request(GetTask(params=TaskIdParams(task_id=task_id)), DetailedTask)


async def cancel_task(session: ClientSession, task_id: str) -> Result:
    return await session.send_request(CancelTask(params=TaskIdParams(task_id=task_id)), Result)


async def update_task(session: ClientSession, task_id: str, answers: dict[str, Any]) -> Result:
    params = UpdateTaskParams(task_id=task_id, input_responses=answers)
    return await session.send_request(UpdateTask(params=params), Result)


class TasksClient(ClientExtension):
    identifier = TASKS

    def __init__(self, max_polls: int = 200) -> None:
        self.max_polls = max_polls
        self.created: list[CreatedTask] = []
        self.seen: list[DetailedTask] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self._resolve)]

    async def _resolve(self, task: CreatedTask, ctx: ClaimContext) -> CallToolResult:
        self.created.append(task)
        interval = task.poll_interval_ms or 1000
        for _ in range(self.max_polls):
            await anyio.sleep(interval / 1000)
            state = await get_task(ctx.session, task.task_id)
            self.seen.append(state)
            interval = state.poll_interval_ms or interval
            if state.status in TERMINAL:
                if state.result is None:
                    raise RuntimeError(f"task {state.status} without a result: {state}")
                return CallToolResult.model_validate(state.result, by_name=False)
        raise TimeoutError(f"task {task.task_id} did not end after {self.max_polls} polls")
