"""``mcp-kube call``: one tool call through a real MCP client, no LLM, JSON out."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp_kube.cli import follow
from mcp_kube.cli.common import SubParsers, json_arg
from mcp_kube.errors import InvalidArgument, McpKubeError

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    c = sub.add_parser(
        "call",
        help="call one tool, no LLM, JSON out",
        description="Call one mcp-kube tool through a real MCP client and print the result as "
        "JSON. Exit 0 on success, 1 on a tool error, 2 on a usage or connection error.",
    )
    c.set_defaults(handler=run)
    c.add_argument("tool")
    c.add_argument("--args", default="{}", help="the tool's arguments as a JSON object")
    c.add_argument(
        "--server",
        default="mcp-kube serve",
        help="a command that speaks MCP on stdio, or an http(s) URL of a streamable HTTP "
        "endpoint (default: %(default)s, with this environment)",
    )
    c.add_argument(
        "--follow",
        action="store_true",
        help="submit_job or wait_job: then follow the job with wait_job until it ends, "
        "progress on stderr; exit 0 if it succeeded, 1 if it failed, 3 if still running",
    )
    c.add_argument(
        "--follow-timeout",
        type=float,
        default=3600.0,
        help="seconds to follow at most (default: %(default)s)",
    )


def _target(server: str) -> Any:
    """An http(s) URL as is; a command as stdio parameters (``mcp-kube`` is this program)."""
    import shlex

    from mcp import StdioServerParameters

    if server.startswith(("http://", "https://")):
        return server
    argv = shlex.split(server)
    if argv and argv[0] == "mcp-kube":
        argv[0] = str(Path(sys.argv[0]).resolve()) if sys.argv[0] else "mcp-kube"
    return StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))


def run(args: argparse.Namespace) -> int:
    import anyio
    from mcp import Client
    from mcp.types import TextContent

    call_args = json_arg(args.args)
    if not isinstance(call_args, dict):
        raise InvalidArgument("--args must be a JSON object")
    if args.follow and args.tool not in follow.FOLLOWABLE:
        raise InvalidArgument(f"--follow needs one of {', '.join(follow.FOLLOWABLE)}")
    target = _target(args.server)

    async def go() -> dict[str, Any]:
        async with Client(target) as client:
            result = await client.call_tool(args.tool, call_args)
            text = "\n".join(c.text if isinstance(c, TextContent) else "" for c in result.content)
            out: dict[str, Any] = {
                "tool": args.tool,
                "is_error": bool(result.is_error),
                "structured": result.structured_content,
                "text": text,
            }
            job = follow.target_of(args.tool, result.structured_content)
            if args.follow and job and not result.is_error:
                out["followed"] = await follow.follow_job(
                    client.call_tool, job, args.follow_timeout
                )
        return out

    try:
        out = anyio.run(go)
    except Exception as e:  # the server could not be reached or spoke no MCP
        raise McpKubeError(f"could not call {args.tool} on {args.server}: {e}") from None
    print(json.dumps(out, indent=2))
    if out["is_error"]:
        return 1
    return follow.exit_code(out["followed"]) if "followed" in out else 0
