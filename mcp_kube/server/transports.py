"""Run the server over stdio or streamable HTTP (``/mcp``; loopback by default)."""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import anyio
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.transport_security import TransportSecuritySettings
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_kube.errors import McpKubeError
from mcp_kube.policy.loader import ReloadablePolicy
from mcp_kube.server.app import build_server
from mcp_kube.server.headers import RoutingHeaders
from mcp_kube.settings import HttpSettings, Settings

__all__ = ["serve"]

log = logging.getLogger("mcp_kube.server")


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The McpKubeError inside a task group's failure (e.g. an unknown context), else the group."""
    for exc in group.exceptions:
        inner = _first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(inner, McpKubeError):
            return inner
    return group


class JsonLines(logging.Formatter):
    """One JSON object per log line: UTC time, level, logger, message, exception."""

    def converter(self, secs: float | None) -> time.struct_time:
        return time.gmtime(secs)

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage()[:4000],
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["exc"] = self.formatException(record.exc_info)[-8000:]
        return json.dumps(line, ensure_ascii=False)


def transport_security(http: HttpSettings) -> TransportSecuritySettings:
    """Host and Origin checks on every bind: loopback names, the public URL's host and origin,
    and whatever the operator adds. A foreign Host gets 421, a foreign Origin 403."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *http.allowed_hosts]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *http.allowed_origins]
    if http.public_url:
        url = urlsplit(http.public_url)
        if url.hostname:
            hosts += [url.netloc, f"{url.hostname}:*", url.hostname]
            origins.append(f"{url.scheme}://{url.netloc}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class RateLimit:
    """A token bucket per principal (per client address before authentication): 429 with
    Retry-After when empty. Buckets are bounded; the idlest are dropped first."""

    def __init__(self, app: ASGIApp, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self.app, self.rate, self.burst, self.max_keys = app, rate, burst, max_keys
        self.buckets: dict[str, tuple[float, float]] = {}

    def _key(self, scope: Scope) -> str:
        user = scope.get("user")
        if isinstance(user, AuthenticatedUser) and user.access_token.subject:
            return f"user:{user.access_token.subject}"
        client = scope.get("client") or ("?", 0)
        return f"addr:{client[0]}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = self._key(scope)
        now = time.monotonic()
        tokens, last = self.buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if len(self.buckets) >= self.max_keys:
            self.buckets.pop(next(iter(self.buckets)))
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            wait = max(1, int((1 - tokens) / self.rate + 0.999))
            response = JSONResponse(
                {"error": "rate_limited", "retry_after_s": wait},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
            await response(scope, receive, send)
            return
        self.buckets[key] = (tokens - 1, now)
        await self.app(scope, receive, send)


def _log_to_stderr(settings: Settings) -> None:
    """Logs go to stderr (on stdio, stdout carries the protocol), as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLines()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    logging.basicConfig(handlers=[handler], level=logging.WARNING, force=True)
    log.setLevel(logging.INFO)  # the server's own start line; libraries stay at WARNING


def serve(
    settings: Settings, transport: Literal["stdio", "http"], policy_paths: list[Path] | None = None
) -> None:
    """Serve until stopped. An invalid policy stops the start (PolicyError names file and rule)."""
    _log_to_stderr(settings)
    policy = ReloadablePolicy(policy_paths) if policy_paths else None
    if policy is not None:

        def reload(_signum: int, _frame: object) -> None:
            error = policy.reload()
            if error:
                log.error("policy reload failed, keeping the running policy: %s", error)
            else:
                log.warning("policy reloaded from %s", ", ".join(map(str, policy.paths)))

        signal.signal(signal.SIGHUP, reload)
    metrics = None
    if transport == "http":
        from mcp_kube.server.metrics import Metrics  # prometheus-client: not on the stdio path

        metrics = Metrics()
    server = build_server(settings, policy=policy, transport=transport, metrics=metrics)
    # What start-up made lives as long as the server: out of every later collection's scan.
    gc.freeze()
    gc.enable()
    if transport == "stdio":
        try:
            anyio.run(server.run_stdio_async)
        except BaseExceptionGroup as group:  # a start-up error comes wrapped by the task group
            raise _first_error(group) from None
        return
    http = settings.http
    app = server.streamable_http_app(
        streamable_http_path=http.path,
        host=http.host,
        transport_security=transport_security(http),
        max_request_body_size=http.max_body_bytes,
    )
    # per principal, after authentication (the stack is built at the first request)
    app.user_middleware.append(Middleware(RateLimit, rate=http.calls_per_second, burst=http.burst))
    # routing headers that disagree with the body: 400 (2026-07-28 requests: the SDK's check)
    app.user_middleware.append(Middleware(RoutingHeaders, max_body=http.max_body_bytes))
    config = uvicorn.Config(  # its loop and HTTP parser: uvloop and httptools (dependencies)
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_level="warning",
        log_config=None,  # uvicorn's records go through the handler above (text or JSON)
        server_header=False,
    )
    log.info(
        "mcp-kube serving streamable HTTP on http://%s:%d%s",
        settings.http.host,
        settings.http.port,
        settings.http.path,
    )
    uvicorn.Server(config).run()
