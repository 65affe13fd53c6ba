"""Settings from ``MCP_KUBE_*`` variables: nesting by ``__``, JSON for lists and groups, the
arguments over the environment, and a clear error naming a misspelt or malformed variable."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_kube.errors import McpKubeError
from mcp_kube.settings import Settings, SettingsError, from_environment


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("MCP_KUBE_"):
            monkeypatch.delenv(name)


def test_nested_values_plain_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_KUBE_LIMITS__MAX_LOG_BYTES", "131072")
    monkeypatch.setenv("MCP_KUBE_CLUSTERS__CONTEXTS", '["gpu-east", "gpu-west"]')
    monkeypatch.setenv("MCP_KUBE_CLUSTERS__METRICS__gpu-east__URL", "http://prom:9090")
    monkeypatch.setenv("mcp_kube_principal", "alice")  # names are case-insensitive
    s = Settings()
    assert s.limits.max_log_bytes == 131072
    assert s.clusters.contexts == ["gpu-east", "gpu-west"]
    assert s.clusters.metrics["gpu-east"].url == "http://prom:9090"
    assert s.principal == "alice"
    assert s.limits.max_page == 500  # the rest keeps its default


def test_group_given_whole_then_a_deeper_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_KUBE_LIMITS", '{"max_page": 7, "default_page": 5}')
    monkeypatch.setenv("MCP_KUBE_LIMITS__MAX_PAGE", "9")
    s = Settings()
    assert (s.limits.max_page, s.limits.default_page) == (9, 5)


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_KUBE_LOG_FORMAT", "json")
    monkeypatch.setenv("MCP_KUBE_HTTP__PORT", "9000")
    s = Settings(log_format="text", http={"host": "0.0.0.0"})
    assert s.log_format == "text"
    assert (s.http.host, s.http.port) == ("0.0.0.0", 9000)


def test_other_prefixed_variables_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = Settings()
    monkeypatch.setenv("MCP_KUBE_POLICY", "policies/default.yaml")  # read by the command line
    monkeypatch.setenv("MCP_KUBE_TESTBED_DIR", "/somewhere")
    assert Settings() == plain


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("MCP_KUBE_LIMITS__MAX_LOG_BYTE", "1", "limits__max_log_byte names no setting"),
        ("MCP_KUBE_CLUSTERS__CONTEXTS", "gpu-east,gpu-west", "not valid JSON"),
        ("MCP_KUBE_LIMITS__MAX_PAGE__X", "1", "limits__max_page__x names no setting"),
        ("MCP_KUBE_LIMITS____MAX_PAGE", "1", "names no setting"),
    ],
)
def test_a_bad_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, said: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as e:
        Settings()
    assert name in str(e.value)
    assert said in str(e.value)
    assert isinstance(e.value, McpKubeError)


def test_an_invalid_value_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_KUBE_LIMITS__MAX_LOG_BYTES", "lots")
    with pytest.raises(SettingsError) as e:
        Settings()
    assert "limits.max_log_bytes" in str(e.value)
    assert "\n" not in str(e.value)


def test_from_environment_reads_only_the_given_mapping() -> None:
    env = {"MCP_KUBE_AUDIT__FSYNC": "false", "HOME": "/root", "MCP_KUBE_X": "1"}
    assert from_environment(Settings, env) == {"audit": {"fsync": "false"}}


def test_the_command_line_prints_the_error_without_a_traceback(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MCP_KUBE_LIMITS__NOPE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "mcp_kube.cli", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "MCP_KUBE_LIMITS__NOPE: limits__nope names no setting" in out.stderr
    assert "Traceback" not in out.stderr


def test_building_the_server_leaves_logging_as_it_was() -> None:
    """The SDK's logging set-up (rich's handler on the root logger) is skipped, and restored
    for anyone else who makes an MCPServer."""
    from mcp.server.mcpserver import server as sdk_server

    from mcp_kube.server.app import build_server

    before = list(logging.getLogger().handlers)
    setup = sdk_server.configure_logging  # type: ignore[attr-defined]
    build_server(Settings())
    assert logging.getLogger().handlers == before
    assert sdk_server.configure_logging is setup  # type: ignore[attr-defined]
