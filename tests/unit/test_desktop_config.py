"""``mcp-kube config --client NAME``: the JSON that registers this installation in a desktop
MCP client, with absolute paths whatever the working directory and the inputs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_kube.cli import main
from mcp_kube.cli.config import CLIENTS
from mcp_kube.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MCP_SERVERS_CLIENTS = [c for c in CLIENTS if c != "vscode"]


def snippet(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["config", *argv]) == 0
    out = capsys.readouterr().out
    parsed: dict[str, Any] = json.loads(out)  # stdout is JSON only: it can be redirected
    return parsed


def option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with relative inputs in it, and no MCP_KUBE_* settings."""
    for key in list(os.environ):
        if key.startswith("MCP_KUBE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kc.yaml").write_text("apiVersion: v1\nkind: Config\n")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.yaml").write_text("# a policy\n")
    return tmp_path


@pytest.mark.parametrize("client", MCP_SERVERS_CLIENTS)
def test_mcp_servers_clients_get_absolute_paths(
    client: str, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got = snippet(capsys, "--client", client, "--kubeconfig", "kc.yaml", "--audit-log", "a.jsonl")
    assert list(got) == ["mcpServers"]
    entry = got["mcpServers"]["mcp-kube"]
    assert set(entry) == {"command", "args", "env"}
    assert entry["command"] == str(Path(sys.executable).parent / "mcp-kube")
    assert Path(entry["command"]).is_absolute()
    args = entry["args"]
    assert args[0] == "serve"
    kubeconfig = str(elsewhere / "kc.yaml")
    assert option(args, "--kubeconfig") == [kubeconfig]
    assert option(args, "--policy") == [str(elsewhere / "policies" / "default.yaml")]
    assert option(args, "--audit-log") == [str(elsewhere / "a.jsonl")]
    assert option(args, "--context") == []
    assert entry["env"] == {"KUBECONFIG": kubeconfig}


def test_vscode_gets_its_servers_form(elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """VS Code reads ``servers`` with a ``type``; the MCP Inspector's ``--config`` reads only
    ``mcpServers``, so the integration test feeds it this entry under that key instead."""
    got = snippet(capsys, "--client", "vscode", "--kubeconfig", "kc.yaml", "--context", "a")
    assert list(got) == ["servers"]
    entry = got["servers"]["mcp-kube"]
    assert list(entry) == ["type", "command", "args", "env"]
    assert entry["type"] == "stdio"
    assert Path(entry["command"]).is_absolute()
    assert option(entry["args"], "--context") == ["a"]
    assert entry["env"] == {"KUBECONFIG": str(elsewhere / "kc.yaml")}
    generic = snippet(capsys, "--client", "generic", "--kubeconfig", "kc.yaml", "--context", "a")
    assert {k: v for k, v in entry.items() if k != "type"} == generic["mcpServers"]["mcp-kube"]


def test_defaults_come_from_the_environment(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(["kc.yaml", "other.yaml"]))
    monkeypatch.setenv("MCP_KUBE_POLICY", os.pathsep.join(["p1.yaml", "p2"]))
    monkeypatch.setenv("MCP_KUBE_AUDIT__PATH", "logs/audit.jsonl")
    entry = snippet(capsys, "--client", "cursor")["mcpServers"]["mcp-kube"]
    both = os.pathsep.join([str(elsewhere / "kc.yaml"), str(elsewhere / "other.yaml")])
    assert option(entry["args"], "--kubeconfig") == [both]
    assert entry["env"] == {"KUBECONFIG": both}
    assert option(entry["args"], "--policy") == [str(elsewhere / "p1.yaml"), str(elsewhere / "p2")]
    assert option(entry["args"], "--audit-log") == [str(elsewhere / "logs" / "audit.jsonl")]


def test_without_anything_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """~/.kube/config, no policy (the server is then read-only) and the settings' audit log."""
    for key in [*os.environ]:
        if key.startswith("MCP_KUBE_") or key in ("KUBECONFIG", "XDG_STATE_HOME"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    entry = snippet(capsys, "--client", "windsurf")["mcpServers"]["mcp-kube"]
    home_config = str(tmp_path / ".kube" / "config")
    assert option(entry["args"], "--kubeconfig") == [home_config]
    assert option(entry["args"], "--policy") == []
    audit = option(entry["args"], "--audit-log")
    assert audit == [str(Settings().audit.path)]
    assert Path(audit[0]).is_absolute()
    assert entry["env"] == {"KUBECONFIG": home_config}


def test_an_unknown_client_is_a_usage_error_listing_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["config", "--client", "emacs"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'emacs'" in err
    for client in CLIENTS:
        assert client in err


def test_help_says_where_each_client_keeps_its_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["config", "--help"])
    out = capsys.readouterr().out
    assert "~/.config/Claude/claude_desktop_config.json" in out
    assert ".vscode/mcp.json" in out
    assert "~/.cursor/mcp.json" in out
