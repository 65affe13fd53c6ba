"""``mcp-kube config``: the snippet that registers this installation in a desktop MCP client.

The snippet is the JSON a client reads to start ``mcp-kube serve`` over stdio: the absolute
path of this installation's ``mcp-kube``, the kubeconfig, the policy files and the audit log
(all absolute, because a desktop client starts servers from a working directory of its own),
and ``KUBECONFIG`` in the server's environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from mcp_kube.cli.common import SubParsers, policy_paths

__all__ = ["CLIENTS", "build_snippet", "register", "server_command"]

SERVER_NAME = "mcp-kube"

CLIENTS: dict[str, str] = {
    "claude-desktop": "Claude Desktop: ~/.config/Claude/claude_desktop_config.json (Linux), "
    "~/Library/Application Support/Claude/claude_desktop_config.json (macOS), "
    "%APPDATA%\\Claude\\claude_desktop_config.json (Windows)",
    "cursor": "Cursor: ~/.cursor/mcp.json, or .cursor/mcp.json in a project",
    "windsurf": "Windsurf: ~/.codeium/windsurf/mcp_config.json",
    "cline": "Cline: cline_mcp_settings.json in VS Code's globalStorage/saoudrizwan.claude-dev/"
    "settings (open it from Cline's MCP Servers view)",
    "vscode": 'VS Code: .vscode/mcp.json in a workspace, or "MCP: Open User Configuration" '
    '(its "servers" form, with "type": "stdio")',
    "generic": "Generic: any other client that reads an mcpServers JSON file",
}
"""Each client this command writes for, and where that client keeps its file."""


def register(sub: SubParsers) -> None:
    where = "\n".join(
        textwrap.fill(place, 78, initial_indent="  ", subsequent_indent="      ")
        for place in CLIENTS.values()
    )
    c = sub.add_parser(
        "config",
        help="print the JSON that registers this installation in a desktop MCP client",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print, as JSON on stdout, the entry that makes a desktop MCP client start\n"
        "this installation's `mcp-kube serve` over stdio, with absolute paths. Merge it\n"
        "into the client's file, or redirect it there when the file is new.",
        epilog=f"where each client keeps its file:\n{where}",
    )
    c.set_defaults(handler=run)
    c.add_argument("--client", required=True, choices=list(CLIENTS), help="the MCP client")
    c.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig (default: $KUBECONFIG, then ~/.kube/config)"
    )
    c.add_argument(
        "--context", action="append", dest="contexts", metavar="NAME", help="serve this context"
    )
    c.add_argument(
        "--policy",
        type=Path,
        action="append",
        metavar="PATH",
        help="policy file or folder (repeatable; default: $MCP_KUBE_POLICY or "
        "./policies/default.yaml when it exists)",
    )
    c.add_argument(
        "--audit-log", type=Path, metavar="PATH", help="audit log (default: setting audit.path)"
    )


def run(args: argparse.Namespace) -> int:
    from mcp_kube.settings import Settings

    kubeconfig = _kubeconfig(args.kubeconfig)
    missing = [p for p in kubeconfig.split(os.pathsep) if not Path(p).is_file()]
    if missing:
        print(f"mcp-kube: note: no kubeconfig at {', '.join(missing)}", file=sys.stderr)
    audit_log = args.audit_log or Settings().audit.path
    command, args_ = server_command(
        kubeconfig, policy_paths(args.policy), _absolute(audit_log), args.contexts or []
    )
    snippet = build_snippet(args.client, command, args_, {"KUBECONFIG": kubeconfig})
    print(json.dumps(snippet, indent=2))
    return 0


def _absolute(path: Path) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _kubeconfig(given: Path | None) -> str:
    """The kubeconfig as given, else ``$KUBECONFIG`` (each of its files), else
    ~/.kube/config; every file made absolute."""
    if given is not None:
        return _absolute(given)
    env = os.environ.get("KUBECONFIG", "")
    files = [_absolute(Path(p)) for p in env.split(os.pathsep) if p]
    return os.pathsep.join(files) if files else _absolute(Path("~/.kube/config"))


def server_command(
    kubeconfig: str, policies: list[Path], audit_log: str, contexts: list[str]
) -> tuple[str, list[str]]:
    """(command, args) that start this installation's server over stdio."""
    python = os.path.abspath(sys.executable)  # not resolved: a venv's python is a symlink
    exe = Path(python).parent / "mcp-kube"
    command, args = str(exe), []
    if not exe.is_file():  # run as ``python -m mcp_kube.cli``: no script beside the interpreter
        command, args = python, ["-m", "mcp_kube.cli"]
    args += ["serve", "--kubeconfig", kubeconfig]
    for policy in policies:
        args += ["--policy", _absolute(policy)]
    args += ["--audit-log", audit_log]
    for context in contexts:
        args += ["--context", context]
    return command, args


def build_snippet(
    client: str, command: str, args: list[str], env: dict[str, str]
) -> dict[str, Any]:
    """The client's JSON: ``mcpServers`` for most, VS Code's ``servers`` with a ``type``."""
    entry: dict[str, Any] = {"command": command, "args": args, "env": env}
    if client == "vscode":
        return {"servers": {SERVER_NAME: {"type": "stdio", **entry}}}
    return {"mcpServers": {SERVER_NAME: entry}}
