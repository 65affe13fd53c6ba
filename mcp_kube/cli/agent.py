"""``mcp-kube agent``: the chat agent's web page, for a browser inside the network."""

from __future__ import annotations

import argparse

from mcp_kube.cli.common import SubParsers

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    ag = sub.add_parser(
        "agent",
        help="the chat agent's web page (for a browser inside the network)",
        description="Serve a chat page: users log in with a token the MCP server accepts; the "
        "local model calls the server's tools as that user; writes wait for the user's click "
        "on Approve. All assets are served by this process (no CDN, no network).",
    )
    asub = ag.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = asub.add_parser("serve", help="serve the chat page")
    s.set_defaults(handler=serve)
    s.add_argument("--server", help="the MCP server's URL (default: setting llm.server)")
    s.add_argument("--model", help="model manifest name (see `mcp-kube models list`)")
    s.add_argument("--endpoint", help="an OpenAI-compatible /v1 URL instead of a local model")
    s.add_argument("--host", default="127.0.0.1", help="bind address (%(default)s)")
    s.add_argument("--port", type=int, default=8081, help="port (%(default)s)")
    s.add_argument("--allowed-host", action="append", help="accept this Host header (repeatable)")
    s.add_argument(
        "--secure-cookie", action="store_true", help="mark the session cookie Secure (HTTPS)"
    )


def serve(args: argparse.Namespace) -> int:
    from mcp_kube.llm.console import Options
    from mcp_kube.llm.web import serve as serve_page
    from mcp_kube.settings import Settings

    settings = Settings()
    opts = Options(
        server=args.server or settings.llm.server, model=args.model, endpoint=args.endpoint
    )
    return serve_page(
        opts,
        host=args.host,
        port=args.port,
        allowed_hosts=args.allowed_host,
        secure_cookie=args.secure_cookie,
        settings=settings,
    )
