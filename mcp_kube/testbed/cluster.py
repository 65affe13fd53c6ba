"""Start, load, inspect, restart and stop testbed control planes.

Each cluster is etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok (and
the Kueue controller where its fleet has queues, started once they exist), every listener on
127.0.0.1 at a port found free at start. Processes run in their own sessions and
are recorded (PID, binary, ports, log) in ``<run>/state.json`` as each one starts, so ``down``
can stop exactly them, even after a crashed ``up``, and never a stranger that reused a PID.

This module orchestrates; the parts live beside it: :mod:`.components` (the component table:
ports, flags, readiness probe), :mod:`.processes` (start, wait, stop, ``/proc``),
:mod:`.kubeconfig`, :mod:`.state` (the state file) and :mod:`.populate` (loading a fleet).
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Any

from mcp_kube.errors import ComponentFailed, TestbedError
from mcp_kube.testbed import build, components, fleet, identities, kubeconfig, kueue, podlogs
from mcp_kube.testbed.build import Report, to_stderr
from mcp_kube.testbed.paths import COMPONENTS, binary_path, default_run_dir
from mcp_kube.testbed.pki import Pki, make_pki
from mcp_kube.testbed.populate import load_fleet
from mcp_kube.testbed.processes import (
    Proc,
    Watch,
    cmdline,
    free_port,
    is_running,
    kill,
    listeners,
    port_in_use,
    rss_kib,
    start,
    stop,
)
from mcp_kube.testbed.rest import Rest
from mcp_kube.testbed.state import (
    ClusterState,
    ComponentState,
    TestbedState,
    load_state,
    save_state,
    state_path,
)
from mcp_kube.testbed.telemetry import PROBES, start_telemetry, wait_telemetry

__all__ = [
    "ClusterState",
    "ComponentState",
    "TestbedState",
    "down",
    "listeners",
    "load_state",
    "restart",
    "status",
    "up",
]

SECOND_CLUSTER_PROFILES = {"default": "west"}


# --------------------------------------------------------------------------- up


def up(
    profile: str = "default",
    clusters: int = 1,
    run_dir: Path | None = None,
    apiserver_port: int = 0,
    report: Report = to_stderr,
) -> TestbedState:
    """Build what is missing, start the control plane(s), load the fleet(s), write kubeconfig."""
    run = run_dir or default_run_dir()
    profiles = _profiles(profile, clusters)
    _clear_run_dir(run, report)
    build.build_all(report=report)
    started = time.monotonic()
    state = TestbedState(
        run_dir=str(run),
        kubeconfig=str(run / "kubeconfig"),
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    save_state(state)
    try:
        loaded: list[tuple[ClusterState, Rest, fleet.Fleet]] = []
        for i, p in enumerate(profiles):
            loaded.append(_start_cluster(state, p, apiserver_port if i == 0 else 0, report))
        kubeconfig.write_merged(
            Path(state.kubeconfig),
            [(cs.name, cs.server, Pki.load(Path(cs.folder) / "pki")) for cs, _, _ in loaded],
        )
        queued: list[tuple[ClusterState, Proc, ComponentState]] = []
        for cs, rest, fl in loaded:
            procs: list[tuple[Proc, ComponentState]] = [(Watch(c), c) for c in cs.components]

            def start_kueue(cs: ClusterState = cs) -> None:
                queued.append((cs, *_start_kueue(state, cs)))

            load_fleet(rest, fl, procs, report, queues_ready=start_kueue)
        for cs, proc, comp in queued:
            ca = Path(cs.folder) / "pki" / "ca.crt"
            components.wait_ready([(components.KUEUE, comp.ports)], ca, [(proc, comp)])
            report(
                f"[{cs.name}] kueue ready ({components.probe_url(components.KUEUE, comp.ports)})"
            )
        for cs, _rest, fl in loaded:
            start_telemetry(state, cs, fl, report)
    except BaseException:
        report("start failed; stopping what was started")
        down(run, report=lambda _m: None, keep_logs=True)
        raise
    report(f"testbed up in {time.monotonic() - started:.1f}s")
    return state


def _profiles(profile: str, clusters: int) -> list[str]:
    """The fleet profile of each cluster; a bad one fails before anything starts."""
    profiles = [profile]
    if clusters > 1:
        second = SECOND_CLUSTER_PROFILES.get(profile)
        if clusters > 2 or second is None:
            raise TestbedError(
                f"--clusters {clusters} is not available for profile {profile!r}; "
                "profile 'default' supports up to 2 clusters"
            )
        profiles.append(second)
    for p in profiles:
        fleet.load_fleet(p)
    return profiles


def _clear_run_dir(run: Path, report: Report) -> None:
    """Make ``run`` empty (0700); refuse while a testbed recorded there still runs."""
    old = load_state(run)
    if old is not None:
        alive = [c for cl in old.clusters for c in cl.components if is_running(c)]
        if alive:
            pids = ", ".join(f"{c.name}={c.pid}" for c in alive)
            raise TestbedError(
                f"a testbed is already running in {run} ({pids}); "
                "stop it with 'mcp-kube testbed down' or use another --dir"
            )
        report(f"removing stale testbed state in {run} (no recorded process is running)")
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    run.chmod(0o700)


def _start_cluster(
    state: TestbedState, profile: str, apiserver_port: int, report: Report
) -> tuple[ClusterState, Rest, fleet.Fleet]:
    """Start one cluster's components from the component table, stage by stage."""
    fl = fleet.load_fleet(profile)
    folder = Path(state.run_dir) / fl.cluster
    folder.mkdir(parents=True)
    pki = make_pki(folder / "pki", [*identities.USER_IDENTITIES, *identities.COMPONENT_IDENTITIES])
    if apiserver_port and port_in_use(apiserver_port):
        raise ComponentFailed(
            f"cannot start kube-apiserver: port {apiserver_port} on 127.0.0.1 is already in use"
        )
    api_port = apiserver_port or free_port()
    site = components.Site(
        cluster=fl.cluster,
        folder=folder,
        pki=pki,
        server=f"https://127.0.0.1:{api_port}",
        audit_log=folder / "audit" / "audit.log",
        pod_logs=podlogs.write_log_files(folder / "pod-logs"),
        ports={"kube-apiserver": {"secure": api_port}},
    )
    cs = ClusterState(
        name=fl.cluster,
        profile=profile,
        context=fl.cluster,
        server=site.server,
        folder=str(folder),
        audit_log=str(site.audit_log),
        pod_logs={k: str(v) for k, v in site.pod_logs.items()},
    )
    state.clusters.append(cs)
    bins = {c.name: str(binary_path(c)) for c in COMPONENTS}
    started: list[tuple[Proc, ComponentState]] = []
    for stage in components.stages():
        for spec in stage:
            if spec.name not in site.ports:
                site.ports[spec.name] = {p: free_port() for p in spec.ports}
            ports = site.ports[spec.name]
            args = [bins[spec.name], *spec.flags(site, ports)]
            proc, comp = start(spec.name, args, folder / "logs" / f"{spec.name}.log", ports)
            started.append((proc, comp))
            cs.components.append(comp)
            save_state(state)
        components.wait_ready([(s, site.ports[s.name]) for s in stage], pki.ca_cert, started)
        for spec in stage:
            url = components.probe_url(spec, site.ports[spec.name])
            report(f"[{fl.cluster}] {spec.name} ready ({url})")
    admin_cert, admin_key = pki.clients["admin"]
    return cs, Rest(site.server, pki.ca_cert, admin_cert, admin_key), fl


def _start_kueue(state: TestbedState, cs: ClusterState) -> tuple[Proc, ComponentState]:
    """Start the Kueue controller of a loaded cluster (its CRDs and queues exist by now)."""
    folder = Path(cs.folder)
    site = components.Site(
        cluster=cs.name,
        folder=folder,
        pki=Pki.load(folder / "pki"),
        server=cs.server,
        audit_log=Path(cs.audit_log),
        pod_logs={k: Path(v) for k, v in cs.pod_logs.items()},
    )
    ports = {p: free_port() for p in components.KUEUE.ports}
    flags = components.KUEUE.flags(site, ports)
    kueue.check_mount_namespace(kueue.lower_dir(folder))
    binary = str(binary_path(next(c for c in COMPONENTS if c.name == "kueue")))
    args = kueue.command(binary, kueue.lower_dir(folder), flags)
    proc, comp = start("kueue", args, folder / "logs" / "kueue.log", ports, binary=binary)
    cs.components.append(comp)
    save_state(state)
    return proc, comp


# --------------------------------------------------------------------------- restart / down


def restart(
    run_dir: Path | None,
    cluster_name: str,
    component: str,
    *,
    down_s: float = 0.0,
    report: Report = to_stderr,
) -> ComponentState:
    """Kill one component as a crash would (SIGKILL), leave it down ``down_s`` seconds, start
    it again with the same command line, and wait until it answers its readiness probe (the
    component table's: kube-apiserver /readyz, etcd /health, the others /healthz). For outage
    drills: clients must recover without being restarted."""
    run = run_dir or default_run_dir()
    state = load_state(run)
    if state is None:
        raise TestbedError(f"no testbed in {run}")
    cs, comp = _find(state, cluster_name, component)
    args = comp.args or cmdline(comp.pid)
    if not args:
        raise TestbedError(f"{component} of {cluster_name}: its command line is not recorded")
    if kill(comp):
        report(f"[{cluster_name}] {component} (pid {comp.pid}) killed")
    time.sleep(down_s)
    proc, fresh = start(component, args, Path(comp.log), dict(comp.ports), binary=comp.binary)
    cs.components[cs.components.index(comp)] = fresh
    save_state(state)
    ca = Path(cs.folder) / "pki" / "ca.crt"
    if component in PROBES:  # the simulated dcgm-exporter, Prometheus
        wait_telemetry(proc, fresh)
    else:
        components.wait_ready([(components.SPECS[component], fresh.ports)], ca, [(proc, fresh)])
    report(f"[{cluster_name}] {component} running again (pid {fresh.pid})")
    return fresh


def _find(
    state: TestbedState, cluster_name: str, component: str
) -> tuple[ClusterState, ComponentState]:
    cs = next((c for c in state.clusters if c.name == cluster_name), None)
    if cs is None:
        names = ", ".join(c.name for c in state.clusters)
        raise TestbedError(f"no cluster {cluster_name!r} in the testbed (clusters: {names})")
    comp = next((c for c in cs.components if c.name == component), None)
    if comp is None:
        raise TestbedError(f"no component {component} in {cluster_name}")
    return cs, comp


def down(run_dir: Path | None = None, report: Report = to_stderr, keep_logs: bool = False) -> bool:
    """Stop every recorded process and remove the run folder. False if nothing was recorded."""
    run = run_dir or default_run_dir()
    try:
        state = load_state(run)
    except TestbedError as e:
        report(str(e))
        state = None
    if state is None:
        report(f"no testbed state in {run}; nothing to stop")
        if run.exists() and not keep_logs:
            shutil.rmtree(run, ignore_errors=True)
        return False
    for cl in reversed(state.clusters):
        for comp in reversed(cl.components):
            report(f"[{cl.name}] {comp.name} (pid {comp.pid}): {stop(comp)}")
    if keep_logs:
        state_path(run).unlink(missing_ok=True)
        for cl in state.clusters:
            for sub in ("etcd-data", "pki", "kubeconfigs"):
                shutil.rmtree(Path(cl.folder) / sub, ignore_errors=True)
        Path(state.kubeconfig).unlink(missing_ok=True)
    else:
        shutil.rmtree(run, ignore_errors=True)
    return True


# --------------------------------------------------------------------------- status


def status(run_dir: Path | None = None) -> dict[str, Any]:
    """What runs where: every component's PID, ports, log and memory, and the contexts."""
    run = run_dir or default_run_dir()
    state = load_state(run)
    if state is None:
        return {"running": False, "run_dir": str(run)}
    clusters = [_cluster_status(cl) for cl in state.clusters]
    everything = all(c["running"] for cl in clusters for c in cl["components"])
    return {
        "running": everything,
        "run_dir": state.run_dir,
        "kubeconfig": state.kubeconfig,
        "started_at": state.started_at,
        "contexts": [c for cl in clusters for c in [cl["context"], *cl["user_contexts"]]],
        "clusters": clusters,
    }


def _cluster_status(cl: ClusterState) -> dict[str, Any]:
    return {
        "name": cl.name,
        "profile": cl.profile,
        "context": cl.context,
        "user_contexts": [c for c in kubeconfig.user_contexts(cl.name) if c != cl.context],
        "server": cl.server,
        "audit_log": cl.audit_log,
        "pod_logs": cl.pod_logs,
        "components": [_component_status(c) for c in cl.components],
    }


def _component_status(c: ComponentState) -> dict[str, Any]:
    alive = is_running(c)
    mem = rss_kib(c.pid) if alive else {}
    return {
        "name": c.name,
        "pid": c.pid,
        "running": alive,
        "ports": c.ports,
        "log": c.log,
        "rss_mib": round(mem.get("VmRSS", 0) / 1024, 1),
        "peak_rss_mib": round(mem.get("VmHWM", 0) / 1024, 1),
    }
