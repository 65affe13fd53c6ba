"""Run the server over stdio or streamable HTTP (``/mcp``; loopback by default)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Literal

import anyio
import uvicorn

from mcp_kube.errors import McpKubeError
from mcp_kube.policy.loader import ReloadablePolicy
from mcp_kube.server.app import build_server
from mcp_kube.settings import Settings

__all__ = ["serve"]

log = logging.getLogger("mcp_kube.server")


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The McpKubeError inside a task group's failure (e.g. an unknown context), else the group."""
    for exc in group.exceptions:
        inner = _first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(inner, McpKubeError):
            return inner
    return group


def serve(
    settings: Settings, transport: Literal["stdio", "http"], policy_paths: list[Path] | None = None
) -> None:
    """Serve until stopped. An invalid policy stops the start (PolicyError names file and rule)."""
    # Logs go to stderr: on stdio, stdout carries the protocol.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    policy = ReloadablePolicy(policy_paths) if policy_paths else None
    if policy is not None:

        def reload(_signum: int, _frame: object) -> None:
            error = policy.reload()
            if error:
                log.error("policy reload failed, keeping the running policy: %s", error)
            else:
                log.warning("policy reloaded from %s", ", ".join(map(str, policy.paths)))

        signal.signal(signal.SIGHUP, reload)
    server = build_server(settings, policy=policy, transport=transport)
    if transport == "stdio":
        try:
            anyio.run(server.run_stdio_async)
        except BaseExceptionGroup as group:  # a start-up error comes wrapped by the task group
            raise _first_error(group) from None
        return
    app = server.streamable_http_app(
        streamable_http_path=settings.http.path, host=settings.http.host
    )
    config = uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_level="warning",
        server_header=False,
    )
    print(
        f"mcp-kube serving streamable HTTP on http://{settings.http.host}:{settings.http.port}"
        f"{settings.http.path}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(config).run()
