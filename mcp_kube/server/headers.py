"""Routing headers over streamable HTTP: what a request says in its headers must be what its
body says (MCP 2026-07-28, SEP-2243), so a gateway or proxy that routes or authorizes on
``Mcp-Method``, ``Mcp-Name`` or ``Mcp-Param-Namespace`` never sees one request while mcp-kube
runs another.

- Tool schemas mark ``namespace`` (where it is a plain string) with ``x-mcp-header``: clients
  of 2026-07-28 mirror it as ``Mcp-Param-Namespace``, the Kubernetes tenancy unit a gateway
  may want to route or authorize on without reading bodies.
- 2026-07-28 requests are checked by the SDK: ``Mcp-Method``, ``Mcp-Name`` and every declared
  ``Mcp-Param-*`` must be present and agree with the body, else HTTP 400 (``HEADER_MISMATCH``).
- Earlier protocol versions define none of these headers and their clients send none, so an
  absent header is accepted; one that is present must agree all the same (``RoutingHeaders``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PARAM_HEADER_PREFIX,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    decode_header_value,
)
from mcp_types import HEADER_MISMATCH
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PARAM_HEADERS", "RoutingHeaders", "header_mismatch", "with_param_headers"]

# tool argument -> the token of its `Mcp-Param-<token>` header
PARAM_HEADERS: dict[str, str] = {"namespace": "Namespace"}
_PARAM_ARGUMENT = {token.lower(): arg for arg, token in PARAM_HEADERS.items()}
_PARAM_PREFIX = MCP_PARAM_HEADER_PREFIX.lower()


def with_param_headers(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``x-mcp-header`` on the arguments of ``PARAM_HEADERS``, where they are
    plain strings (the annotation is only valid on a single primitive ``type``; an optional
    ``namespace`` is ``string | null`` and stays unmarked)."""
    for arg, token in PARAM_HEADERS.items():
        prop = schema.get("properties", {}).get(arg)
        if isinstance(prop, dict) and prop.get("type") == "string":
            prop["x-mcp-header"] = token
    return schema


def header_mismatch(body: Mapping[str, Any], headers: Mapping[str, list[str]]) -> str | None:
    """Why the routing headers present (lowercase name -> values) disagree with the JSON-RPC
    ``body``, or None. Absent headers agree with anything."""
    for name, values in headers.items():
        if len(values) > 1:
            return f"{name} header appears more than once"
    method = body.get("method")
    sent = _one(headers, MCP_METHOD_HEADER)
    if sent is not None and sent != method:
        return f"{MCP_METHOD_HEADER} header does not match the request body's method"
    params = body.get("params")
    params = params if isinstance(params, Mapping) else {}
    key = NAME_BEARING_METHODS.get(method) if isinstance(method, str) else None
    sent = _one(headers, MCP_NAME_HEADER)
    if sent is not None and key is not None and decode_header_value(sent) != params.get(key):
        return f"{MCP_NAME_HEADER} header does not match the request body's {key!r} parameter"
    arguments = params.get("arguments") if method == "tools/call" else None
    arguments = arguments if isinstance(arguments, Mapping) else {}
    for name in headers:
        if not name.startswith(_PARAM_PREFIX) or name[len(_PARAM_PREFIX) :] not in _PARAM_ARGUMENT:
            continue
        arg = _PARAM_ARGUMENT[name[len(_PARAM_PREFIX) :]]
        value = arguments.get(arg)
        if not isinstance(value, str) or decode_header_value(_one(headers, name)) != value:
            return f"{name} header does not match the request body's {arg!r} argument"
    return None


def _one(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0].strip(" \t") if values else None


def _routing(scope: Scope) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw, value in scope["headers"]:
        name = raw.decode("latin-1").lower()
        if name in (MCP_METHOD_HEADER, MCP_NAME_HEADER) or name.startswith(_PARAM_PREFIX):
            found.setdefault(name, []).append(value.decode("latin-1"))
    return found


def _handled_by_the_sdk(scope: Scope) -> bool:
    """A 2026-07-28 request (the SDK's own per-request path validates its headers), or one
    the route will refuse as unauthenticated before anything else."""
    for raw, value in scope["headers"]:
        version = raw.lower() == MCP_PROTOCOL_VERSION_HEADER.encode()
        if version and value.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS:
            return True
    return "user" in scope and not isinstance(scope["user"], AuthenticatedUser)


class RoutingHeaders:
    """Refuse (HTTP 400, ``HEADER_MISMATCH``) a POST of a handshake-era protocol version whose
    routing headers disagree with its body. Only a request that carries one is read here; the
    body is read up to ``max_body`` bytes (the transport's own cap answers anything larger)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _handled_by_the_sdk(scope):
            await self.app(scope, receive, send)
            return
        headers = _routing(scope)
        if not headers:
            await self.app(scope, receive, send)
            return
        body, replay = await _read(receive, self.max_body)
        try:
            message = json.loads(body) if body is not None else None
        except (ValueError, RecursionError):
            message = None  # the transport answers a malformed body
        if not isinstance(message, dict) or (problem := header_mismatch(message, headers)) is None:
            await self.app(scope, replay, send)
            return
        error = {"code": HEADER_MISMATCH, "message": problem}
        response = JSONResponse({"jsonrpc": "2.0", "id": message.get("id"), "error": error}, 400)
        await response(scope, replay, send)


async def _read(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The whole body (None past ``limit``) and a ``receive`` that replays what was read."""
    read: list[Message] = []
    size = 0
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit or not message.get("more_body", False):
            break
    complete = size <= limit and read[-1]["type"] == "http.request"

    async def replay() -> Message:
        return read.pop(0) if read else await receive()

    body = b"".join(m.get("body", b"") for m in read if m["type"] == "http.request")
    return (body if complete else None), replay
