"""Start-up faults name what failed and its log; nothing is left running afterwards."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
from support.testbed import stale_state
from support.waiting import wait_for

from mcp_kube.cli import main
from mcp_kube.errors import ComponentFailed
from mcp_kube.testbed import cluster, fleet
from mcp_kube.testbed import paths as tb_paths
from mcp_kube.testbed.processes import is_running


def processes_using(folder: Path) -> list[int]:
    """PIDs whose command line names a path in ``folder``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmd and int(proc.name) != os.getpid():
            pids.append(int(proc.name))
    return pids


def quiet(_msg: str) -> None:
    pass


def test_port_in_use_is_named_before_anything_starts(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = tmp_path / "run"
        with pytest.raises(ComponentFailed, match=f"port {port} on 127.0.0.1 is already in use"):
            cluster.up(profile="west", run_dir=run, apiserver_port=port, report=quiet)
    assert processes_using(run) == []


def test_component_crash_at_start_names_it_and_its_log(tmp_path, monkeypatch) -> None:
    broken = tmp_path / "kube-scheduler"
    broken.write_text("#!/bin/sh\necho 'E0101 scheduler: invalid configuration: boom'\nexit 1\n")
    broken.chmod(0o755)
    real = cluster.binary_path
    monkeypatch.setattr(
        cluster,
        "binary_path",
        lambda c: broken if c.name == "kube-scheduler" else real(c),
    )
    run = tmp_path / "run"
    with pytest.raises(ComponentFailed) as err:
        cluster.up(profile="west", run_dir=run, report=quiet)
    msg = str(err.value)
    assert "kube-scheduler exited with code 1" in msg
    assert "invalid configuration: boom" in msg
    log = run / "gpu-west" / "logs" / "kube-scheduler.log"
    assert f"its log: {log}" in msg
    assert log.is_file()  # logs are kept for the post-mortem
    assert processes_using(run) == []  # etcd and the API server were stopped again


def test_crashed_component_shows_in_status_and_down_still_cleans_up(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    state = cluster.up(profile="west", run_dir=run, report=quiet)
    try:
        sched = next(c for c in state.clusters[0].components if c.name == "kube-scheduler")
        os.kill(sched.pid, signal.SIGKILL)
        # The signal is delivered asynchronously: on a busy host the process lingers a moment.
        wait_for(
            lambda: not is_running(sched), "the killed scheduler to exit", timeout=10, every=0.05
        )
        info = cluster.status(run)
        assert info["running"] is False
        comps = {c["name"]: c["running"] for c in info["clusters"][0]["components"]}
        assert comps == {
            "etcd": True,
            "kube-apiserver": True,
            "kube-controller-manager": True,
            "kube-scheduler": False,
            "kwok": True,
            "dcgm-exporter": True,  # the west fleet has GPU telemetry
            "prometheus": True,
        }
        assert main(["testbed", "status", "--dir", str(run)]) == 1
        assert "NOT RUNNING" in capsys.readouterr().out
        # A second `up` on a live run folder is refused rather than clobbering it.
        with pytest.raises(Exception, match="already running"):
            cluster.up(profile="west", run_dir=run, report=quiet)
        assert main(["testbed", "down", "--dir", str(run)]) == 0
        assert processes_using(run) == []
        assert not run.exists()
    finally:  # a failed assertion must not leave the cluster running
        if run.exists():
            cluster.down(run, report=quiet)


def test_stale_state_is_replaced_by_a_fresh_up(tmp_path) -> None:
    run = tmp_path / "run"
    etcd = str(tb_paths.binary_path(tb_paths.COMPONENTS[0]))
    stale_state(run, "old", "west", {"etcd": (2**22 + 11, etcd)})
    seen: list[str] = []
    try:
        state = cluster.up(profile="west", run_dir=run, report=seen.append)
        assert any("stale testbed state" in s for s in seen)
        assert [c.name for c in state.clusters] == ["gpu-west"]
    finally:
        cluster.down(run, report=quiet)
    assert processes_using(run) == []


def test_kueue_crash_at_start_names_it_and_its_log(tmp_path, monkeypatch) -> None:
    """Kueue starts after the fleet is loaded, where the fleet has queues (here: west's fleet
    with the default fleet's queues); its failure is named with its log like any other."""
    broken = tmp_path / "kueue"
    broken.write_text(
        "#!/bin/sh\necho 'ERROR setup Unable to load the configuration: boom'\nexit 1\n"
    )
    broken.chmod(0o755)
    real_binary, real_fleet = cluster.binary_path, fleet.load_fleet
    queues = real_fleet("default").kueue
    monkeypatch.setattr(
        cluster, "binary_path", lambda c: broken if c.name == "kueue" else real_binary(c)
    )
    monkeypatch.setattr(
        fleet, "load_fleet", lambda p: real_fleet(p).model_copy(update={"kueue": queues})
    )
    run = tmp_path / "run"
    with pytest.raises(ComponentFailed) as err:
        cluster.up(profile="west", run_dir=run, report=quiet)
    msg = str(err.value)
    assert "kueue exited with code 1" in msg
    assert "Unable to load the configuration: boom" in msg
    log = run / "gpu-west" / "logs" / "kueue.log"
    assert f"its log: {log}" in msg
    assert log.is_file()
    assert processes_using(run) == []
