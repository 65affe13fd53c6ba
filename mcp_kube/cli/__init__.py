"""The ``mcp-kube`` command line.

One module per command group; each ``register``s its parsers and sets, on each parser that
runs something, the ``handler`` that runs it. :func:`main` parses and calls that handler.

Each group imports its modules only when its handler runs, so ``mcp-kube --help`` stays fast
and the server never loads test infrastructure. Every error raised on purpose is an
:class:`~mcp_kube.errors.McpKubeError`: it is printed as one line and exits 2, with no
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mcp_kube.cli import (
    agent,
    approvals,
    audit,
    bundle,
    call,
    client,
    config,
    doctor,
    models,
    policy,
    serve,
    testbed,
)
from mcp_kube.cli.common import Handler, SubParsers
from mcp_kube.errors import McpKubeError

__all__ = ["build_parser", "main"]

GROUPS: tuple[Callable[[SubParsers], None], ...] = (
    serve.register,
    call.register,
    audit.register,
    policy.register,
    testbed.register,
    approvals.register,
    models.register,
    client.register,
    bundle.register,
    agent.register,
    doctor.register,
    config.register,
)
"""The command groups, in the order ``mcp-kube --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-kube",
        description="Air-gapped MCP server for Kubernetes GPU clusters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except McpKubeError as e:
        print(f"mcp-kube: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
