"""What the web page's HTTP layer (``mcp_kube.llm.web``) drives: logins, approvals waiting for a
click, and questions answered as a stream of events, over one loaded model.

A login keeps the user's own token server-side and opens every MCP session with it, so the
server's policy and audit see the human, not the agent. A write's approval is the server's
question to the logged-in human: only ``decide`` from that login's session answers it, and an
unanswered one is declined when it expires. A submitted job is followed as an MCP task while the
question runs: its states go to the page as ``task`` events, and ``cancel_task`` from the same
login cancels it. Nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from mcp_kube.llm import prompt as P
from mcp_kube.llm.agent import Agent, Events, ToolCall, ToolOutcome
from mcp_kube.llm.backend import Backend
from mcp_kube.llm.session import Approver, McpSession, connect, leaf_error
from mcp_kube.llm.tasks import DEFAULT_FOLLOW_S, TaskView

__all__ = ["Emit", "Login", "Pending", "WebAgent", "WebEvents"]

Emit = Callable[[dict[str, Any]], None]  # one event for the page


@dataclass
class Login:
    token: str
    principal: str
    groups: list[str]
    expires: float
    history: list[P.Message] = field(default_factory=list)
    busy: bool = False


@dataclass
class Pending:
    login: str  # the session that may answer
    text: str
    answer: asyncio.Future[bool]


class WebEvents(Events):
    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.n = 0

    def tool_call(self, call: ToolCall) -> None:
        self.n += 1
        self.emit(
            {"type": "tool_call", "id": self.n, "name": call.name, "arguments": call.arguments}
        )

    def tool_result(self, call: ToolCall, outcome: ToolOutcome) -> None:
        self.emit(
            {
                "type": "tool_result",
                "id": self.n,
                "name": call.name,
                "is_error": outcome.is_error,
                "text": outcome.text[:20_000],
                "structured": outcome.structured,
                "seconds": round(outcome.seconds, 3),
            }
        )

    def task(self, view: TaskView) -> None:
        """A followed task's new state, for the card of the call that submitted it."""
        self.emit({"type": "task", "id": self.n, **view.event()})

    def answer_start(self) -> None:
        self.emit({"type": "answer_start"})

    def text(self, delta: str) -> None:
        self.emit({"type": "token", "text": delta})


class WebAgent:
    """Logins, approvals waiting for a click, and the question loop over one loaded model."""

    def __init__(
        self,
        backend: Backend,
        server: str,
        make_agent: Callable[[Backend, McpSession], Agent],
        *,
        session_hours: float = 8.0,
        approval_timeout_s: float = 600.0,
        max_logins: int = 1000,
        follow_s: float = DEFAULT_FOLLOW_S,
    ) -> None:
        self.backend = backend
        self.server = server
        self.make_agent = make_agent
        self.session_s = session_hours * 3600
        self.approval_timeout_s = approval_timeout_s
        self.max_logins = max_logins
        self.follow_s = follow_s
        self.logins: dict[str, Login] = {}
        self.pending: dict[str, Pending] = {}
        self.live: dict[str, McpSession] = {}  # a login's session while it answers a question

    # ---------------------------------------------------------------- logins
    def session(self, sid: str) -> Login | None:
        """The login behind a session id, while it lasts."""
        login = self.logins.get(sid)
        if login is None:
            return None
        if login.expires < time.time():
            self.logins.pop(sid, None)
            return None
        return login

    async def login(self, token: str) -> tuple[str, Login]:
        """Check the token by opening a session with it and asking the server who it is."""
        async with connect(self.server, token=token) as session:
            outcome = await session.call("whoami", {})
        me = outcome.structured or {}
        if outcome.is_error or not me.get("subject"):
            raise PermissionError("the server did not accept this token")
        now = time.time()
        for sid in [s for s, v in self.logins.items() if v.expires < now]:
            self.logins.pop(sid, None)
        if len(self.logins) >= self.max_logins:
            self.logins.pop(min(self.logins, key=lambda s: self.logins[s].expires))
        sid = secrets.token_urlsafe(32)
        login = Login(
            token,
            str(me["subject"]),
            [str(g) for g in me.get("groups") or []],
            now + self.session_s,
        )
        self.logins[sid] = login
        return sid, login

    def logout(self, sid: str) -> None:
        self.logins.pop(sid, None)

    # ---------------------------------------------------------------- one question
    async def stream(
        self, sid: str, login: Login, question: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The events of answering ``question``, as they come; ``end`` is not yielded. The
        answer runs as a task, cancelled when the reader goes away."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def emit(event: dict[str, Any]) -> None:  # from the loop or the model's thread
            loop.call_soon_threadsafe(queue.put_nowait, event)

        task = asyncio.ensure_future(self._run(sid, login, question, emit))
        try:
            while True:
                event = await queue.get()
                if event is None or event.get("type") == "end":
                    return
                yield event
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _run(self, sid: str, login: Login, question: str, emit: Emit) -> None:
        """One question at a time per login; a failure becomes an ``error`` event, then ``end``."""
        login.busy = True
        try:
            await self.ask(sid, login, question, emit)
        except Exception as e:
            emit({"type": "error", "message": _reason(e)})
        finally:
            login.busy = False
            emit({"type": "end"})

    async def ask(self, sid: str, login: Login, question: str, emit: Emit) -> None:
        approver = self._approver(sid, emit)
        events = WebEvents(emit)
        async with connect(
            self.server, token=login.token, approver=approver, on_task=events.task,
            follow_s=self.follow_s,
        ) as session:  # fmt: skip
            self.live[sid] = session
            try:
                agent = await anyio.to_thread.run_sync(self.make_agent, self.backend, session)
                agent.history = list(login.history)
                result = await agent.ask(question, session, events)
                login.history = agent.history
            finally:
                if self.live.get(sid) is session:
                    self.live.pop(sid, None)
        emit({"type": "done", "answer": result.answer, "stats": result.stats()})

    def _approver(self, sid: str, emit: Emit) -> Approver:
        """The server's approval questions, put to the page and answered by ``decide``."""

        async def approve(preview: str) -> bool:
            pid = secrets.token_urlsafe(12)
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self.pending[pid] = Pending(sid, preview, future)
            emit({"type": "approval", "id": pid, "text": preview})
            try:
                with anyio.fail_after(self.approval_timeout_s):
                    yes = await future
            except TimeoutError:
                yes = False
            finally:
                self.pending.pop(pid, None)
            emit({"type": "approval_done", "id": pid, "approved": yes})
            return yes

        return approve

    def decide(self, sid: str, pid: str, approve: bool) -> bool:
        pending = self.pending.get(pid)
        if pending is None or pending.login != sid or pending.answer.done():
            return False
        pending.answer.set_result(approve)
        return True

    async def cancel_task(self, sid: str, task_id: str) -> bool:
        """Cancel a task that this login's question is following now; False when it is not
        one. The server's refusal is raised."""
        session = self.live.get(sid)
        return session is not None and await session.cancel_task(task_id)


def _reason(e: BaseException) -> str:
    """One line for the page: the error's own words, never a traceback."""
    e = leaf_error(e)
    return f"{type(e).__name__}: {str(e)[:300]}"
