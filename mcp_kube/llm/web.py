"""The chat agent's web page (``mcp-kube agent serve``): a browser front end of the offline
client for engineers inside the network. Everything it serves is in the package (no CDN, no
fonts, no analytics); the page talks only to this process.

A user logs in with a token the MCP server accepts (a ServiceAccount token, a static token):
the agent keeps it server-side, behind an HttpOnly, SameSite=Strict session cookie, and opens
the MCP session *with that token*, so the server's policy and audit see the human, not the
agent. A question streams back as NDJSON events: tool calls, their structured results, the
answer's tokens, and approval requests. A write's approval is the server's question to the
logged-in human; only their click on Approve answers yes (the model cannot, and an unanswered
request is declined when it expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mcp_kube.llm import prompt as P
from mcp_kube.llm.agent import Agent, Events, ToolCall, ToolOutcome
from mcp_kube.llm.backend import Backend
from mcp_kube.llm.console import ClientError, Options, make_agent, open_backend
from mcp_kube.llm.session import McpSession, connect
from mcp_kube.settings import Settings

__all__ = ["WebAgent", "build_app", "serve"]

COOKIE = "mcpk_session"
ASSETS = {  # file -> content type; nothing else is served
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_BODY = 16 * 1024
MAX_QUESTION = 2000


@dataclass
class _Login:
    token: str
    principal: str
    groups: list[str]
    expires: float
    history: list[P.Message] = field(default_factory=list)
    busy: bool = False


@dataclass
class _Pending:
    login: str  # the session that may answer
    text: str
    answer: asyncio.Future[bool]


class WebEvents(Events):
    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
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
    ) -> None:
        self.backend = backend
        self.server = server
        self.make_agent = make_agent
        self.session_s = session_hours * 3600
        self.approval_timeout_s = approval_timeout_s
        self.max_logins = max_logins
        self.logins: dict[str, _Login] = {}
        self.pending: dict[str, _Pending] = {}

    # ---------------------------------------------------------------- logins
    def session_of(self, request: Request) -> tuple[str, _Login] | None:
        sid = request.cookies.get(COOKIE, "")
        login = self.logins.get(sid)
        if login is None:
            return None
        if login.expires < time.time():
            self.logins.pop(sid, None)
            return None
        return sid, login

    async def login(self, token: str) -> tuple[str, _Login]:
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
        login = _Login(
            token,
            str(me["subject"]),
            [str(g) for g in me.get("groups") or []],
            now + self.session_s,
        )
        self.logins[sid] = login
        return sid, login

    # ---------------------------------------------------------------- one question
    async def ask(
        self, sid: str, login: _Login, question: str, emit: Callable[[dict[str, Any]], None]
    ) -> None:
        async def approver(preview: str) -> bool:
            pid = secrets.token_urlsafe(12)
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self.pending[pid] = _Pending(sid, preview, future)
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

        async with connect(self.server, token=login.token, approver=approver) as session:
            agent = await anyio.to_thread.run_sync(self.make_agent, self.backend, session)
            agent.history = list(login.history)
            result = await agent.ask(question, session, WebEvents(emit))
            login.history = agent.history
        emit({"type": "done", "answer": result.answer, "stats": result.stats()})

    def decide(self, sid: str, pid: str, approve: bool) -> bool:
        pending = self.pending.get(pid)
        if pending is None or pending.login != sid or pending.answer.done():
            return False
        pending.answer.set_result(approve)
        return True


# -------------------------------------------------------------------- HTTP
def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_headers())


async def _json_body(request: Request) -> dict[str, Any] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def build_app(
    web: WebAgent, *, allowed_hosts: list[str] | None = None, secure_cookie: bool = False
) -> Starlette:
    hosts = {"127.0.0.1", "localhost", "[::1]", *(allowed_hosts or [])}

    def host_ok(request: Request) -> bool:
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in hosts or host in hosts

    def same_origin(request: Request) -> bool:
        """A state-changing call comes from this page: our header (a cross-site form cannot
        set it) and, when the browser sends one, an Origin naming this host."""
        if request.headers.get("x-mcp-kube") != "1":
            return False
        origin = request.headers.get("origin")
        return origin is None or origin.split("://", 1)[-1] == request.headers.get("host", "")

    def guard(request: Request, *, write: bool) -> JSONResponse | None:
        if not host_ok(request):
            return _error(421, "unknown host")
        if write and not same_origin(request):
            return _error(403, "cross-site request refused")
        return None

    async def asset(request: Request) -> Response:
        if (refused := guard(request, write=False)) is not None:
            return refused
        name = request.path_params.get("name", "index.html")
        if name not in ASSETS:
            return _error(404, "not found")
        body = resources.files("mcp_kube.llm").joinpath("webui", name).read_bytes()
        return Response(body, media_type=ASSETS[name], headers=_headers())

    async def login(request: Request) -> Response:
        if (refused := guard(request, write=True)) is not None:
            return refused
        data = await _json_body(request)
        token = str((data or {}).get("token") or "").strip()
        if not token or len(token) > 8192:
            return _error(400, "a token is required")
        try:
            sid, who = await web.login(token)
        except Exception:  # rejected, or the server is unreachable: the same answer
            return _error(401, "login failed: the MCP server did not accept this token")
        response = JSONResponse(
            {"principal": who.principal, "groups": who.groups}, headers=_headers()
        )
        response.set_cookie(
            COOKIE, sid, max_age=int(web.session_s), httponly=True, samesite="strict",
            secure=secure_cookie, path="/",
        )  # fmt: skip
        return response

    async def logout(request: Request) -> Response:
        if (refused := guard(request, write=True)) is not None:
            return refused
        web.logins.pop(request.cookies.get(COOKIE, ""), None)
        response = JSONResponse({"ok": True}, headers=_headers())
        response.delete_cookie(COOKIE, path="/")
        return response

    async def me(request: Request) -> Response:
        if (refused := guard(request, write=False)) is not None:
            return refused
        found = web.session_of(request)
        if found is None:
            return _error(401, "not logged in")
        return JSONResponse(
            {"principal": found[1].principal, "groups": found[1].groups}, headers=_headers()
        )

    async def ask(request: Request) -> Response:
        if (refused := guard(request, write=True)) is not None:
            return refused
        found = web.session_of(request)
        if found is None:
            return _error(401, "not logged in")
        sid, who = found
        data = await _json_body(request)
        question = str((data or {}).get("question") or "").strip()
        if not question or len(question) > MAX_QUESTION:
            return _error(400, f"a question of 1 to {MAX_QUESTION} characters is required")
        if who.busy:
            return _error(409, "a question of yours is still being answered")
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def emit(event: dict[str, Any]) -> None:  # from the loop or the model's thread
            loop.call_soon_threadsafe(queue.put_nowait, event)

        async def run() -> None:
            who.busy = True
            try:
                await web.ask(sid, who, question, emit)
            except Exception as e:
                emit({"type": "error", "message": _reason(e)})
            finally:
                who.busy = False
                emit({"type": "end"})

        async def stream() -> AsyncIterator[bytes]:
            task = asyncio.ensure_future(run())
            try:
                while True:
                    event = await queue.get()
                    if event is None or event.get("type") == "end":
                        return
                    yield (json.dumps(event, default=str) + "\n").encode()
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task

        headers = _headers() | {"X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="application/x-ndjson", headers=headers)

    async def approval(request: Request) -> Response:
        if (refused := guard(request, write=True)) is not None:
            return refused
        found = web.session_of(request)
        if found is None:
            return _error(401, "not logged in")
        data = await _json_body(request)
        approve = (data or {}).get("approve")
        if not isinstance(approve, bool):
            return _error(400, 'send {"approve": true} or {"approve": false}')
        if not web.decide(found[0], request.path_params["pid"], approve):
            return _error(404, "no such approval waiting for you")
        return JSONResponse({"approved": approve}, headers=_headers())

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/", asset, methods=["GET"]),
            Route("/static/{name}", asset, methods=["GET"]),
            Route("/api/login", login, methods=["POST"]),
            Route("/api/logout", logout, methods=["POST"]),
            Route("/api/me", me, methods=["GET"]),
            Route("/api/ask", ask, methods=["POST"]),
            Route("/api/approvals/{pid}", approval, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def _reason(e: BaseException) -> str:
    """One line for the page: the error's own words, never a traceback."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {str(e)[:300]}"


def serve(
    opts: Options,
    *,
    host: str = "127.0.0.1",
    port: int = 8081,
    allowed_hosts: list[str] | None = None,
    secure_cookie: bool = False,
    settings: Settings | None = None,
) -> int:
    """Load the model, then serve the page until stopped."""
    import uvicorn

    if not opts.server.startswith(("http://", "https://")):
        raise ClientError(
            "the web agent needs the MCP server's URL (--server http://...): each user's own "
            "token is sent to it, so that the server's policy and audit see that user"
        )
    settings = settings or Settings()
    cfg = settings.llm
    backend = open_backend(cfg, opts)
    web = WebAgent(backend, opts.server, lambda b, s: make_agent(b, s, cfg))
    app = build_app(web, allowed_hosts=allowed_hosts, secure_cookie=secure_cookie)
    print(f"mcp-kube agent on http://{host}:{port}/ ({backend.label})", flush=True)
    try:
        uvicorn.run(
            app, host=host, port=port, log_level="warning", server_header=False, log_config=None
        )
    finally:
        backend.close()
    return 0
