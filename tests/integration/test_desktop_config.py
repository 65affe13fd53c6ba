"""The snippet ``mcp-kube config --client NAME`` prints, read by a real MCP client.

The MCP Inspector CLI reads a desktop client's ``mcpServers`` file (``--config`` and
``--server``), starts the server from it as Claude Desktop would, lists the tools and calls
``whoami``. Every input is given relative to another working directory, so the run proves the
paths in the snippet are absolute. The Inspector does not read VS Code's ``servers`` form, so
VS Code's entry (``"type": "stdio"`` with the same command) is fed to it under
``mcpServers``; tests/unit/test_desktop_config.py checks the ``servers`` form itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mcp_kube.testbed import cluster
from mcp_kube.tools import catalog

from .mcp_helpers import MCP_KUBE, inspector

REPO = Path(__file__).resolve().parents[2]


def printed_snippet(client: str, cwd: Path, kubeconfig: str) -> dict[str, Any]:
    """What ``mcp-kube config`` prints, run from ``cwd`` with relative inputs only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_KUBE_")}
    env["KUBECONFIG"] = os.path.relpath(kubeconfig, cwd)
    argv = ["config", "--client", client, "--policy", "policy.yaml"]
    done = subprocess.run(
        [MCP_KUBE, *argv, "--audit-log", "logs/audit.jsonl"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    snippet: dict[str, Any] = json.loads(done.stdout)
    return snippet


@pytest.mark.parametrize("client", ["claude-desktop", "vscode"])
def test_a_desktop_client_starts_the_server_from_the_snippet(
    client: str, testbed: cluster.TestbedState, tmp_path: Path
) -> None:
    where = tmp_path / "elsewhere"
    where.mkdir()
    shutil.copy(REPO / "policies" / "default.yaml", where / "policy.yaml")
    snippet = printed_snippet(client, where, str(testbed.kubeconfig))
    if client == "vscode":
        assert snippet["servers"]["mcp-kube"]["type"] == "stdio"
        snippet = {"mcpServers": snippet["servers"]}
    config = tmp_path / "client-config.json"
    config.write_text(json.dumps(snippet))

    base = ["--config", str(config), "--server", "mcp-kube"]
    listed = inspector(*base, "--method", "tools/list")
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    names = [t["name"] for t in json.loads(listed.stdout)["result"]["tools"]]
    assert names == [t.name for t in catalog.TOOLS]

    called = inspector(*base, "--method", "tools/call", "--tool-name", "whoami")
    assert called.returncode == 0, called.stdout[-2000:] + called.stderr[-2000:]
    result = json.loads(called.stdout)["result"]
    assert result["isError"] is False
    who = result["structuredContent"]
    allowed = {p["tool"]: p["allowed"] for p in who["permissions"]}
    assert allowed["whoami"] is True
    assert allowed["submit_job"] is False  # the policy file the snippet names: read-only
    assert who["authenticated_by"] == "stdio-local-user"

    # The server wrote where the snippet said, although the client ran it from elsewhere.
    records = (where / "logs" / "audit.jsonl").read_text().splitlines()
    assert any(json.loads(r).get("tool") == "whoami" for r in records)
