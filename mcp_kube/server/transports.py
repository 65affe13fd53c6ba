"""Run the server over stdio or streamable HTTP (``/mcp``; loopback by default)."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import anyio
import uvicorn

from mcp_kube.server.app import build_server
from mcp_kube.settings import Settings

__all__ = ["serve"]


def serve(settings: Settings, transport: Literal["stdio", "http"]) -> None:
    # Logs go to stderr: on stdio, stdout carries the protocol.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    server = build_server(settings)
    if transport == "stdio":
        anyio.run(server.run_stdio_async)
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
