"""``mcp-kube ask`` and ``mcp-kube chat``: the offline model as a client of the MCP server."""

from __future__ import annotations

import argparse

from mcp_kube.cli.common import SubParsers
from mcp_kube.errors import InvalidArgument

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    a = sub.add_parser(
        "ask",
        help="ask one question through the offline model",
        description="Answer one question with the local model calling mcp-kube's tools. Tool "
        "calls are shown on stderr and the answer is streamed to stdout. A change (submit, "
        "cancel, ...) runs only if you type y when the server asks for approval. Exit 0 when "
        "answered, 1 when the model made no usable call, 2 on a setup error (e.g. no model).",
    )
    a.set_defaults(handler=ask)
    a.add_argument("question")
    _client_args(a)
    a.add_argument(
        "--json", action="store_true", help="print the answer, calls and figures as JSON"
    )
    a.add_argument(
        "--plan",
        action="store_true",
        help="print the tool call the model would make, as JSON, without calling it",
    )
    c = sub.add_parser(
        "chat",
        help="interactive chat with the offline model",
        description="A terminal conversation with the local model over mcp-kube's tools: "
        "streamed answers, each tool call and result shown, approvals asked inline.",
    )
    c.set_defaults(handler=chat)
    _client_args(c)


def _client_args(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--server",
        help="the MCP server: a command speaking stdio or an http(s) URL "
        "(default: setting llm.server, `mcp-kube serve` with this environment)",
    )
    c.add_argument("--model", help="model manifest name (see `mcp-kube models list`)")
    c.add_argument(
        "--endpoint", help="an OpenAI-compatible /v1 URL to use instead of a local model"
    )


def ask(args: argparse.Namespace) -> int:
    from mcp_kube.llm.console import Options, run_ask
    from mcp_kube.settings import Settings

    settings = Settings()
    opts = Options(
        server=args.server or settings.llm.server,
        model=args.model,
        endpoint=args.endpoint,
        plan=args.plan,
        as_json=args.json,
    )
    if not args.question.strip():
        raise InvalidArgument("the question is empty")
    return run_ask(args.question, opts, settings)


def chat(args: argparse.Namespace) -> int:
    from mcp_kube.llm.console import Options, run_chat
    from mcp_kube.settings import Settings

    settings = Settings()
    opts = Options(
        server=args.server or settings.llm.server, model=args.model, endpoint=args.endpoint
    )
    return run_chat(opts, settings)
