"""The client's MCP side: connect to mcp-kube (spawned over stdio, or a streamable HTTP URL with a
bearer token), list its tools, call them, and put the server's approval questions to a human.

The session declares MCP's Tasks extension (``mcp_kube.llm.tasks``): a ``submit_job`` is then
followed as a task until its job ends (or the follow time runs out), each change of state going
to the front end's ``on_task``; the call's result is the job's final state.

The approver is the only way a write gets a yes: it is a function the front end gives (a prompt
on the terminal, a button in a page). Without one, every approval question is declined.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp import types as mcp_types

from mcp_kube.llm.agent import ToolOutcome
from mcp_kube.llm.prompt import ToolDef
from mcp_kube.llm.tasks import DEFAULT_FOLLOW_S, TaskFollower, TaskView

__all__ = ["Approver", "McpSession", "OnTask", "connect", "leaf_error", "server_target"]

EXAMPLES_META = "mcp-kube.io/examples"
Approver = Callable[[str], Awaitable[bool]]  # the preview text -> did a human say yes
OnTask = Callable[[TaskView], None]  # a followed task's new state


def leaf_error(exc: BaseException) -> BaseException:
    """The error inside the task groups a session runs in: the first leaf of an exception
    group, or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def server_target(server: str, *, http: Any = None) -> Any:
    """``server`` is an http(s) URL or a command line that speaks MCP on stdio (``mcp-kube
    serve ...``: the ``mcp-kube`` of this installation is used). ``http``: the HTTP client to
    use for a URL (e.g. one that sends a bearer token)."""
    if server.startswith(("http://", "https://")):
        if http is None:
            return server
        from mcp.client.streamable_http import streamable_http_client

        return streamable_http_client(server, http_client=http)
    argv = shlex.split(server)
    if not argv:
        raise ValueError("empty server command")
    if argv[0] == "mcp-kube":
        here = Path(sys.executable).parent / "mcp-kube"
        argv[0] = str(here) if here.exists() else "mcp-kube"
    return StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))


def _approval_callback(approver: Approver | None) -> Any:
    async def on_elicit(_ctx: Any, params: mcp_types.ElicitRequestParams) -> mcp_types.ElicitResult:
        message = params.message or "approve this change?"
        yes = await approver(message) if approver else False
        return mcp_types.ElicitResult(action="accept", content={"approve": bool(yes)})

    return on_elicit


def _tool_def(tool: mcp_types.Tool) -> ToolDef:
    ann = tool.annotations
    meta = tool.meta or {}
    return ToolDef(
        name=tool.name,
        description=tool.description or "",
        input_schema=dict(tool.input_schema or {}),
        read_only=bool(ann and ann.read_only_hint),
        title=tool.title or "",
        examples=tuple(
            (str(e["request"]), dict(e["arguments"]))
            for e in meta.get(EXAMPLES_META, [])
            if isinstance(e, dict) and "request" in e and isinstance(e.get("arguments"), dict)
        ),
    )


MAX_NAMESPACES = 500


def _collect(value: Any, seen: set[str], depth: int = 0) -> None:
    if depth > 6 or len(seen) >= MAX_NAMESPACES:
        return
    if isinstance(value, dict):
        ns = value.get("namespace")
        if isinstance(ns, str) and ns:
            seen.add(ns)
        for v in value.values():
            _collect(v, seen, depth + 1)
    elif isinstance(value, list):
        for v in value[:MAX_NAMESPACES]:
            _collect(v, seen, depth + 1)


async def _namespaces(client: Client, tools: list[ToolDef]) -> list[str]:
    """The namespaces the server shows this user (GPU workloads, quotas and queues), so that a
    name the user types goes in the role it has; none when those reads are refused."""
    seen: set[str] = set()
    for name in ("gpu_workloads", "gpu_quota"):
        if any(t.name == name for t in tools):
            with contextlib.suppress(Exception):  # refused or failed: that read adds none
                res = await client.call_tool(name, {})
                _collect(None if res.is_error else res.structured_content, seen)
    return sorted(seen)


@dataclass
class McpSession:
    client: Client
    tools: list[ToolDef]
    instructions: str
    clusters: list[str]
    tasks: TaskFollower | None = None
    namespaces: list[str] = field(default_factory=list)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        t0 = time.perf_counter()
        if self.tasks is not None:
            self.tasks.expect(name, arguments)
        try:
            result = await self.client.call_tool(name, arguments)
        except Exception as e:  # a protocol error (unknown tool, dropped connection)
            return ToolOutcome(f"error: {e}", True, None, time.perf_counter() - t0)
        text = "\n".join(c.text for c in result.content if isinstance(c, mcp_types.TextContent))
        return ToolOutcome(
            text, bool(result.is_error), result.structured_content, time.perf_counter() - t0
        )

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a task this session is following (its job is deleted); False for any other
        id. The server's refusal is raised."""
        return self.tasks is not None and await self.tasks.cancel(task_id)


@contextlib.asynccontextmanager
async def connect(
    server: str,
    *,
    token: str | None = None,
    approver: Approver | None = None,
    on_task: OnTask | None = None,
    follow_s: float = DEFAULT_FOLLOW_S,
) -> AsyncIterator[McpSession]:
    """An initialized session with the tool list and the served cluster names. A submitted job
    is followed as a task for up to ``follow_s`` seconds (0: not followed), its states going
    to ``on_task``."""
    async with contextlib.AsyncExitStack() as stack:
        http = None
        if token and server.startswith(("http://", "https://")):
            import httpx2

            headers = {"Authorization": f"Bearer {token}"}
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=60))
        tasks = TaskFollower(on_task, limit_s=follow_s) if follow_s > 0 else None
        client = Client(
            server_target(server, http=http),
            elicitation_callback=_approval_callback(approver),
            client_info=mcp_types.Implementation(name="mcp-kube-agent", version="0.1.0"),
            extensions=[tasks] if tasks else None,
        )
        await stack.enter_async_context(client)
        listed = await client.list_tools()
        tools = [_tool_def(t) for t in listed.tools]
        clusters: list[str] = []
        if any(t.name == "list_clusters" for t in tools):
            res = await client.call_tool("list_clusters", {})
            data = res.structured_content or {}
            clusters = [str(c.get("name", "")) for c in data.get("clusters", []) if c.get("name")]
        namespaces = await _namespaces(client, tools)
        yield McpSession(client, tools, client.instructions or "", clusters, tasks, namespaces)
