"""Following a submitted job as an MCP task (``io.modelcontextprotocol/tasks``).

``TaskFollower`` is declared on the client's MCP connection. The server then answers a
``submit_job`` with a task once the Job exists; the follower polls ``tasks/get`` at the task's
``pollIntervalMs`` until the task ends or the follow time runs out, and reports every change of
state (status, step, loss, GPU utilization, the server's status line) to a callback. The tool
call's result is the task's final result: the Job's end state and log tail. A follow that runs
out, or loses the task, returns the submit's own result with the task id and how to follow the
job later; the job itself goes on. A task being followed can be cancelled (``tasks/cancel``:
the server deletes its Job, as a ``cancel_job`` by the same person).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Protocol

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp_types import CallToolResult, Request, RequestParams, Result, TextContent

from mcp_kube.llm.taskview import CreatedTask, DetailedTask, TaskView, read_view, total_steps

__all__ = [
    "DEFAULT_FOLLOW_S",
    "TASKS_EXTENSION",
    "CreatedTask",
    "DetailedTask",
    "Followed",
    "TaskChannel",
    "TaskFollower",
    "TaskView",
    "follow",
    "read_view",
    "total_steps",
]

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
SUBMIT_META = "mcp-kube.io/submit_job"  # the submit's own result, on the created task
TASK_TOOLS = frozenset({"submit_job"})
TERMINAL = frozenset({"completed", "failed", "cancelled"})
DEFAULT_FOLLOW_S = 600.0
DEFAULT_POLL_MS = 3000  # when the server names no interval
MIN_POLL_MS, MAX_POLL_MS = 250, 60_000  # an interval outside these is brought inside

Report = Callable[[TaskView], None]
Sleep = Callable[[float], Awaitable[None]]


class TaskIdParams(RequestParams):
    task_id: str


class GetTask(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param: ClassVar[str | None] = "taskId"


class CancelTask(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams
    name_param: ClassVar[str | None] = "taskId"


class TaskChannel(Protocol):
    """Where a task is read and cancelled: the MCP session it was created on."""

    async def get(self, task_id: str) -> DetailedTask: ...

    async def cancel(self, task_id: str) -> None: ...


class SessionChannel:
    """``tasks/get`` and ``tasks/cancel`` sent on an MCP client session."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def get(self, task_id: str) -> DetailedTask:
        request = GetTask(params=TaskIdParams(task_id=task_id))
        return await self.session.send_request(request, DetailedTask)

    async def cancel(self, task_id: str) -> None:
        await self.session.send_request(CancelTask(params=TaskIdParams(task_id=task_id)), Result)


@dataclass
class Followed:
    """How a follow ended: ``ended`` (the task ended), ``limit`` (the follow time ran out)
    or ``lost`` (the task could not be read), with the last state seen."""

    last: DetailedTask
    reason: Literal["ended", "limit", "lost"]
    views: list[TaskView]
    error: str = ""


def _interval_s(task: DetailedTask, previous_ms: int) -> float:
    ms = task.poll_interval_ms or previous_ms
    return max(MIN_POLL_MS, min(MAX_POLL_MS, ms)) / 1000


async def follow(
    channel: TaskChannel,
    first: DetailedTask,
    report: Report | None = None,
    *,
    limit_s: float = DEFAULT_FOLLOW_S,
    total: int | None = None,
    sleep: Sleep = anyio.sleep,
    clock: Callable[[], float] = time.monotonic,
    cancel_sent: Callable[[], bool] = lambda: False,
) -> Followed:
    """Poll ``tasks/get`` at the task's interval until the task ends, ``limit_s`` would pass
    before the next poll, or a poll fails. ``report`` gets each state that differs from the
    one before. After a cancel (``cancel_sent``), a task no longer found counts as cancelled."""
    started = clock()
    state, views = first, list[TaskView]()
    interval = _interval_s(first, DEFAULT_POLL_MS)
    while True:
        view = read_view(state, total, clock() - started)
        if not views or (view.status, view.message) != (views[-1].status, views[-1].message):
            views.append(view)
            if report is not None:
                report(view)
        if state.status in TERMINAL:
            return Followed(state, "ended", views)
        if clock() - started + interval > limit_s:
            return Followed(state, "limit", views)
        await sleep(interval)
        try:
            state = await channel.get(first.task_id)
        except Exception as e:  # gone after a cancel, refused, or the connection dropped
            if not cancel_sent():
                return Followed(state, "lost", views, f"{type(e).__name__}: {e}")
            message = "the job was cancelled and is gone"
            state = state.model_copy(update={"status": "cancelled", "status_message": message})
        interval = _interval_s(state, int(interval * 1000))


def _later(submit: dict[str, Any] | None, task_id: str) -> str:
    """How to follow a job later, from the submit's result (none yet while the submit waits
    for an approval)."""
    where = {k: (submit or {}).get(k) for k in ("cluster", "namespace", "name")}
    where = {k: v for k, v in where.items() if v}
    how = f"task id {task_id} (tasks/get)"
    if "name" not in where:
        return f"the submit goes on waiting; follow it later with {how}"
    call = f"mcp-kube call wait_job --args '{json.dumps(where)}' --follow"
    return f"the job goes on; follow it later with {how}, or the wait_job tool: {call}"


def _submit_of(created: CreatedTask) -> dict[str, Any] | None:
    """The submit's own result, which the server sends along with the task it created."""
    submit = (created.meta or {}).get(SUBMIT_META)
    return submit if isinstance(submit, dict) else None


def final_result(created: CreatedTask, followed: Followed) -> CallToolResult:
    """The tool call's result: the completed task's own, else the submit's with what happened."""
    last = followed.last
    if last.status == "completed" and last.result is not None:
        return CallToolResult.model_validate(last.result, by_name=False)
    submit = _submit_of(created)
    seconds = followed.views[-1].elapsed_s if followed.views else 0.0
    if followed.reason == "ended":
        text = f"task {last.status}: {last.status_message or ''}"
    elif followed.reason == "limit":
        text = f"still {last.status} after following it for {seconds:.0f}s: "
        text += f"{last.status_message or ''}\n{_later(submit, created.task_id)}"
    else:
        text = f"following the job stopped ({followed.error}); last seen: "
        text += f"{last.status_message or ''}\n{_later(submit, created.task_id)}"
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=submit,
        is_error=last.status == "failed" or submit is None,
    )


class _Watch:
    """One task being followed: its channel, whether it was cancelled, and a wake-up."""

    def __init__(self, channel: TaskChannel) -> None:
        self.channel = channel
        self.cancel_sent = False
        self.wake = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when a cancel was sent meanwhile."""
        with anyio.move_on_after(seconds):
            await self.wake.wait()
        if self.wake.is_set():
            self.wake = anyio.Event()


class TaskFollower(ClientExtension):
    """The Tasks extension on the client: follows the tasks ``submit_job`` answers with,
    reporting each state to ``report``; ``cancel`` sends ``tasks/cancel`` for one of them."""

    identifier = TASKS_EXTENSION

    def __init__(self, report: Report | None = None, *, limit_s: float = DEFAULT_FOLLOW_S) -> None:
        self.report = report
        self.limit_s = limit_s
        self.watching: dict[str, _Watch] = {}
        self._total: int | None = None

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self._resolve)]

    def expect(self, tool: str, arguments: dict[str, Any]) -> None:
        """The tool call about to be sent: a submit's number of steps, when it names one."""
        self._total = total_steps(arguments) if tool in TASK_TOOLS else None

    async def _resolve(self, created: CreatedTask, ctx: ClaimContext) -> CallToolResult:
        first = DetailedTask.model_validate(created.model_dump(exclude={"result_type"}))
        watch = _Watch(SessionChannel(ctx.session))
        self.watching[created.task_id] = watch
        try:
            followed = await follow(
                watch.channel, first, self._report, limit_s=self.limit_s, total=self._total,
                sleep=watch.sleep, cancel_sent=lambda: watch.cancel_sent,
            )  # fmt: skip
        finally:
            self.watching.pop(created.task_id, None)
        if followed.reason != "ended" and followed.views:
            note = _later(_submit_of(created), created.task_id)
            why = "the follow time ran out" if followed.reason == "limit" else followed.error
            self._report(followed.views[-1], following=False, note=f"{why}; {note}")
        return final_result(created, followed)

    def _report(self, view: TaskView, *, following: bool = True, note: str = "") -> None:
        if self.report is not None:
            if not following:
                view = TaskView(**(asdict(view) | {"following": False, "note": note}))
            self.report(view)

    async def cancel(self, task_id: str) -> bool:
        """Send ``tasks/cancel`` for a task being followed here; False for any other id.
        A refusal from the server is raised (``MCPError``)."""
        watch = self.watching.get(task_id)
        if watch is None:
            return False
        watch.cancel_sent = True  # before the request: a poll may find the job gone first
        try:
            await watch.channel.cancel(task_id)
        except BaseException:
            watch.cancel_sent = False
            raise
        watch.wake.set()
        return True
