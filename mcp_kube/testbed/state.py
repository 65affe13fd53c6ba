"""The record of a running testbed: ``<run>/state.json``, written as each process starts.

Why a file and not memory: ``up``, ``status``, ``restart`` and ``down`` run in different
processes (and after a crashed ``up``), so what was started - PID, binary, ports, log, command
line - is saved before anything waits on it, and read back to stop exactly those processes.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from mcp_kube.errors import TestbedError
from mcp_kube.testbed.paths import default_run_dir

__all__ = [
    "STATE_FILE",
    "ClusterState",
    "ComponentState",
    "TestbedState",
    "load_state",
    "save_state",
    "state_path",
]

STATE_FILE = "state.json"


class ComponentState(BaseModel):
    name: str
    pid: int
    binary: str
    ports: dict[str, int]
    log: str
    args: list[str] = []  # the command line, for a restart


class ClusterState(BaseModel):
    name: str
    profile: str
    context: str
    server: str
    folder: str
    audit_log: str
    pod_logs: dict[str, str]
    components: list[ComponentState] = []


class TestbedState(BaseModel):
    __test__ = False
    run_dir: str
    kubeconfig: str
    started_at: str
    clusters: list[ClusterState] = []


def state_path(run_dir: Path) -> Path:
    return run_dir / STATE_FILE


def load_state(run_dir: Path | None = None) -> TestbedState | None:
    path = state_path(run_dir or default_run_dir())
    if not path.is_file():
        return None
    try:
        return TestbedState.model_validate_json(path.read_text())
    except ValueError as e:
        raise TestbedError(f"testbed state file {path} is unreadable ({e}); remove it") from e


def save_state(state: TestbedState) -> None:
    """Replace the state file in one rename, so a reader never sees half of it."""
    path = state_path(Path(state.run_dir))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(path)
