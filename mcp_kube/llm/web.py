"""The chat agent's web page (``mcp-kube agent serve``): a browser front end of the offline
client for engineers inside the network. Everything it serves is in the package (no CDN, no
fonts, no analytics); the page talks only to this process.

A user logs in with a token the MCP server accepts (a ServiceAccount token, a static token):
the agent keeps it server-side, behind an HttpOnly, SameSite=Strict session cookie, and opens
the MCP session *with that token*, so the server's policy and audit see the human, not the
agent. A question streams back as NDJSON events: tool calls, their structured results, the
answer's tokens, and approval requests. A write's approval is the server's question to the
logged-in human; only their click on Approve answers yes (the model cannot, and an unanswered
request is declined when it expires). A submitted job is followed as an MCP task, its states
streamed as ``task`` events; the same login may cancel it from the page.

This module is the HTTP surface (routes, host and origin checks, headers, cookies, limits);
what it drives, the logins and the question loop, is :mod:`mcp_kube.llm.webagent`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mcp_kube.llm.console import ClientError, Options, make_agent, open_backend
from mcp_kube.llm.webagent import Login, WebAgent
from mcp_kube.settings import Settings

__all__ = ["COOKIE", "build_app", "serve"]

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
MAX_TOKEN = 8192
MAX_TASK_ID = 1024


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_headers())


def _ok(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(data, headers=_headers())


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; empty when the body is too large, not JSON, or no object."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return {}
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _same_origin(request: Request) -> bool:
    """A state-changing call comes from this page: our header (a cross-site form cannot set
    it) and, when the browser sends one, an Origin naming this host."""
    if request.headers.get("x-mcp-kube") != "1":
        return False
    origin = request.headers.get("origin")
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("host", "")


async def _ndjson(events: AsyncGenerator[dict[str, Any], None]) -> AsyncIterator[bytes]:
    """One JSON line an event; closing this stream closes ``events`` (and stops the answer)."""
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            yield (json.dumps(event, default=str) + "\n").encode()


class _Routes:
    """The page's HTTP handlers over one ``WebAgent``. Every request is checked for a known
    Host (against DNS rebinding); every state-changing one for this page's origin."""

    def __init__(self, web: WebAgent, allowed_hosts: list[str] | None, secure_cookie: bool) -> None:
        self.web = web
        self.hosts = {"127.0.0.1", "localhost", "[::1]", *(allowed_hosts or [])}
        self.secure_cookie = secure_cookie

    def table(self) -> list[Route]:
        return [
            Route("/", self.asset, methods=["GET"]),
            Route("/static/{name}", self.asset, methods=["GET"]),
            Route("/api/login", self.login, methods=["POST"]),
            Route("/api/logout", self.logout, methods=["POST"]),
            Route("/api/me", self.me, methods=["GET"]),
            Route("/api/ask", self.ask, methods=["POST"]),
            Route("/api/approvals/{pid}", self.approval, methods=["POST"]),
            Route("/api/tasks/{tid}/cancel", self.cancel_task, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
        ]

    # ---------------------------------------------------------------- guards
    def _host_ok(self, request: Request) -> bool:
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in self.hosts or host in self.hosts

    def _refused(self, request: Request, *, write: bool) -> Response | None:
        if not self._host_ok(request):
            return _error(421, "unknown host")
        if write and not _same_origin(request):
            return _error(403, "cross-site request refused")
        return None

    def _logged_in(self, request: Request, *, write: bool) -> tuple[str, Login] | Response:
        """The caller's session id and login, or the response that refuses the request."""
        if (refused := self._refused(request, write=write)) is not None:
            return refused
        sid = request.cookies.get(COOKIE, "")
        login = self.web.session(sid)
        if login is None:
            return _error(401, "not logged in")
        return sid, login

    # ---------------------------------------------------------------- handlers
    async def asset(self, request: Request) -> Response:
        if (refused := self._refused(request, write=False)) is not None:
            return refused
        name = request.path_params.get("name", "index.html")
        if name not in ASSETS:
            return _error(404, "not found")
        body = resources.files("mcp_kube.llm").joinpath("webui", name).read_bytes()
        return Response(body, media_type=ASSETS[name], headers=_headers())

    async def login(self, request: Request) -> Response:
        if (refused := self._refused(request, write=True)) is not None:
            return refused
        token = str((await _json_body(request)).get("token") or "").strip()
        if not token or len(token) > MAX_TOKEN:
            return _error(400, "a token is required")
        try:
            sid, who = await self.web.login(token)
        except Exception:  # rejected, or the server is unreachable: the same answer
            return _error(401, "login failed: the MCP server did not accept this token")
        response = _ok({"principal": who.principal, "groups": who.groups})
        response.set_cookie(
            COOKIE, sid, max_age=int(self.web.session_s), httponly=True, samesite="strict",
            secure=self.secure_cookie, path="/",
        )  # fmt: skip
        return response

    async def logout(self, request: Request) -> Response:
        if (refused := self._refused(request, write=True)) is not None:
            return refused
        self.web.logout(request.cookies.get(COOKIE, ""))
        response = _ok({"ok": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    async def me(self, request: Request) -> Response:
        found = self._logged_in(request, write=False)
        if isinstance(found, Response):
            return found
        return _ok({"principal": found[1].principal, "groups": found[1].groups})

    async def ask(self, request: Request) -> Response:
        found = self._logged_in(request, write=True)
        if isinstance(found, Response):
            return found
        sid, who = found
        question = str((await _json_body(request)).get("question") or "").strip()
        if not question or len(question) > MAX_QUESTION:
            return _error(400, f"a question of 1 to {MAX_QUESTION} characters is required")
        if who.busy:
            return _error(409, "a question of yours is still being answered")
        events = _ndjson(self.web.stream(sid, who, question))
        headers = _headers() | {"X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="application/x-ndjson", headers=headers)

    async def approval(self, request: Request) -> Response:
        found = self._logged_in(request, write=True)
        if isinstance(found, Response):
            return found
        approve = (await _json_body(request)).get("approve")
        if not isinstance(approve, bool):
            return _error(400, 'send {"approve": true} or {"approve": false}')
        if not self.web.decide(found[0], request.path_params["pid"], approve):
            return _error(404, "no such approval waiting for you")
        return _ok({"approved": approve})

    async def cancel_task(self, request: Request) -> Response:
        found = self._logged_in(request, write=True)
        if isinstance(found, Response):
            return found
        tid = request.path_params["tid"]
        try:
            cancelled = len(tid) <= MAX_TASK_ID and await self.web.cancel_task(found[0], tid)
        except Exception as e:  # the server refused it (policy, gone) or the session broke
            return _error(409, f"the server did not cancel the task: {str(e)[:300]}")
        if not cancelled:
            return _error(404, "no such task being followed for you")
        return _ok({"cancelled": True, "task_id": tid})

    async def healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})


def build_app(
    web: WebAgent, *, allowed_hosts: list[str] | None = None, secure_cookie: bool = False
) -> Starlette:
    return Starlette(routes=_Routes(web, allowed_hosts, secure_cookie).table())


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
    web = WebAgent(
        backend, opts.server, lambda b, s: make_agent(b, s, cfg), follow_s=cfg.task_follow_s
    )
    app = build_app(web, allowed_hosts=allowed_hosts, secure_cookie=secure_cookie)
    print(f"mcp-kube agent on http://{host}:{port}/ ({backend.label})", flush=True)
    try:
        uvicorn.run(
            app, host=host, port=port, log_level="warning", server_header=False, log_config=None
        )
    finally:
        backend.close()
    return 0
