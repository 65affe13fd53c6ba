"""Faults of the testbed tooling give clear messages, and cleanup never hits a stranger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.testbed import stale_state

from mcp_kube.cli import main
from mcp_kube.errors import BuildFailed, TestbedError, ToolchainMissing
from mcp_kube.testbed import build, cluster, pin
from mcp_kube.testbed.paths import pinned_version


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MCP_KUBE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_missing_go_toolchain_is_named(empty_cache, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolchainMissing, match=r"'go'\) is not on PATH.*Go >= 1\.26"):
        build.build_all(report=lambda _m: None)


def test_failed_build_names_its_log(empty_cache, tmp_path, monkeypatch) -> None:
    fake = tmp_path / "bin" / "go"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'compile: undefined: boom' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    with pytest.raises(BuildFailed) as err:
        build.build_all(report=lambda _m: None)
    msg = str(err.value)
    assert "failed (go exited 3)" in msg
    assert "undefined: boom" in msg
    log = Path(msg.split("full log: ")[1].split("\n")[0])
    assert log.is_file()
    assert log.parent == empty_cache / "testbed" / "logs"
    assert not list((empty_cache / "testbed" / "bin").glob("*/*"))  # no half-built binary


def test_cli_reports_errors_without_traceback(empty_cache, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["testbed", "build"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcp-kube: error: the Go toolchain")
    assert "Traceback" not in err


def test_down_with_stale_state_never_kills_a_reused_pid(tmp_path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = tmp_path / "run"
        # the recorded etcd PID now belongs to another program; kwok's is gone
        processes = {"etcd": (stranger.pid, "/cache/etcd"), "kwok": (2**22 + 7, "/cache/kwok")}
        stale_state(run, "c", "default", processes)
        seen: list[str] = []
        assert cluster.status(run)["running"] is False
        assert cluster.down(run, report=seen.append) is True
        assert stranger.poll() is None  # still alive
        assert any("etcd" in s and "not running" in s for s in seen)
        assert not run.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_down_without_state_is_a_clean_no_op(tmp_path) -> None:
    seen: list[str] = []
    assert cluster.down(tmp_path / "nothing", report=seen.append) is False
    assert "nothing to stop" in seen[0]


def test_corrupt_state_file_is_reported(tmp_path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(TestbedError, match="unreadable"):
        cluster.load_state(tmp_path)


def test_clusters_beyond_what_the_profile_offers_are_refused(tmp_path) -> None:
    with pytest.raises(TestbedError, match="profile 'scale'"):
        cluster.up(profile="scale", clusters=2, run_dir=tmp_path / "r", report=lambda _m: None)
    with pytest.raises(TestbedError, match="unknown fleet profile"):
        cluster.up(profile="nope", run_dir=tmp_path / "r", report=lambda _m: None)
    assert not (tmp_path / "r").exists()


def test_pin_cli_rejects_a_non_release(capsys) -> None:
    assert main(["testbed", "pin", "latest"]) == 2
    assert "not a release tag" in capsys.readouterr().err


def test_wrapper_replaces_derived_from_upstream_gomod() -> None:
    upstream = (
        "module k8s.io/kubernetes\n\ngo 1.26.0\n\ngodebug default=go1.26\n\nreplace (\n"
        "\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tk8s.io/streaming => ./staging/src/k8s.io/streaming\n"
        "\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n"
    )
    text = pin.render_wrapper("v1.36.3", upstream)
    assert "\tk8s.io/api => k8s.io/api v0.36.3\n" in text
    assert "\tk8s.io/streaming => k8s.io/streaming v0.36.3\n" in text
    assert "github.com/x/y" not in text
    assert "godebug default=go1.26" in text
    assert "require k8s.io/kubernetes v1.36.3" in text


def test_pins_are_read_from_the_wrapper_modules() -> None:
    assert pinned_version("kubernetes", "k8s.io/kubernetes").startswith("v1.36.")
    assert pinned_version("etcd", "go.etcd.io/etcd/server/v3").startswith("v3.6.")
    assert pinned_version("kwok", "sigs.k8s.io/kwok") == "v0.8.0"
    with pytest.raises(TestbedError, match="does not require"):
        pinned_version("kwok", "k8s.io/kubernetes")
