"""Testbed states written by hand: what a testbed that died, or whose PIDs were reused, leaves
behind in its run folder, for ``up``, ``status`` and ``down`` to find."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mcp_kube.testbed.state import ClusterState, ComponentState, TestbedState, save_state


def stale_state(
    run: Path, name: str, profile: str, components: Mapping[str, tuple[int, str]]
) -> TestbedState:
    """Save, in ``run`` (made if missing), the state of a one-cluster testbed whose
    ``components`` ran as {component: (PID, binary)} and are gone (or not what they were)."""
    run.mkdir(parents=True, exist_ok=True)
    state = TestbedState(run_dir=str(run), kubeconfig="", started_at="")
    state.clusters.append(
        ClusterState(
            name=name,
            profile=profile,
            context=name,
            server="",
            folder=str(run / name),
            audit_log="",
            pod_logs={},
            components=[
                ComponentState(name=c, pid=pid, binary=binary, ports={}, log="")
                for c, (pid, binary) in components.items()
            ],
        )
    )
    save_state(state)
    return state
