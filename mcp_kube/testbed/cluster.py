"""Start, load, inspect and stop testbed control planes.

Each cluster is etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok, every
listener on 127.0.0.1 at a port found free at start. Processes run in their own sessions and
are recorded (PID, binary, ports, log) in ``<run>/state.json`` as each one starts, so ``down``
can stop exactly them, even after a crashed ``up``, and never a stranger that reused a PID.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel

from mcp_kube.errors import ComponentFailed, TestbedError
from mcp_kube.testbed import build, flags, fleet, identities, podlogs
from mcp_kube.testbed.paths import COMPONENTS, binary_path, default_run_dir
from mcp_kube.testbed.pki import Pki, make_pki
from mcp_kube.testbed.rest import Rest

__all__ = ["ClusterState", "TestbedState", "down", "listeners", "load_state", "status", "up"]

Report = Callable[[str], None]
SECOND_CLUSTER_PROFILES = {"default": "west"}
STATE_FILE = "state.json"


class _Proc(Protocol):
    def poll(self) -> int | None: ...


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


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Something listens on the port (connections in TIME_WAIT do not count: the components
    bind with SO_REUSEADDR, as Go does, so a restarted one gets its port back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def is_running(comp: ComponentState) -> bool:
    """The recorded process is alive and is still the binary we started (not a reused PID)."""
    cmd = _cmdline(comp.pid)
    if not cmd or cmd[0] != comp.binary:
        return False
    try:
        stat = Path(f"/proc/{comp.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _log_tail(path: str, lines: int = 12) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line[:300] for line in text[-lines:])


# Components started by this process, kept so their exit can be reaped (no zombies, and no
# "still running" warnings when the objects would otherwise be collected while they serve).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _start(
    name: str, args: list[str], log: Path, ports: dict[str, int], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], ComponentState]:
    log.parent.mkdir(parents=True, exist_ok=True)
    busy = [p for p in ports.values() if port_in_use(p)]
    if busy:
        raise ComponentFailed(f"cannot start {name}: port(s) {busy} on 127.0.0.1 already in use")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _CHILDREN[proc.pid] = proc
    comp = ComponentState(
        name=name, pid=proc.pid, binary=args[0], ports=ports, log=str(log), args=list(args)
    )
    return proc, comp


def _wait(
    what: str,
    check: Callable[[], bool],
    procs: list[tuple[_Proc, ComponentState]],
    timeout: float,
    interval: float = 0.5,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for proc, comp in procs:
            code = proc.poll()
            if code is not None:
                raise ComponentFailed(
                    f"{comp.name} exited with code {code} while waiting for {what}; "
                    f"its log: {comp.log}\n{_log_tail(comp.log)}"
                )
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            logs = ", ".join(c.log for _, c in procs)
            raise ComponentFailed(
                f"timed out after {timeout:.0f}s waiting for {what}; logs: {logs}"
            )
        time.sleep(interval)


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:  # noqa: S310 (loopback)
        return bool(resp.status == 200)


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # components' self-signed serving certs, on loopback
    return ctx


# --------------------------------------------------------------------------- configuration


def _kubeconfig(
    cluster: str, server: str, pki: Pki, users: list[str], contexts: dict[str, str]
) -> dict[str, Any]:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": f"{u}@{cluster}",
                "user": {
                    "client-certificate-data": b64(pki.clients[u][0]),
                    "client-key-data": b64(pki.clients[u][1]),
                },
            }
            for u in users
        ],
        "contexts": [
            {"name": ctx, "context": {"cluster": cluster, "user": f"{u}@{cluster}"}}
            for ctx, u in contexts.items()
        ],
        "current-context": next(iter(contexts)),
    }


def _user_contexts(cluster: str) -> dict[str, str]:
    """Context name -> user: the admin context carries the cluster's name."""
    out = {cluster: "admin"}
    for ident in identities.USER_IDENTITIES:
        if ident.user != "admin":
            out[f"{ident.user}@{cluster}"] = ident.user
    return out


def merge_kubeconfigs(configs: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "preferences": {},
        "current-context": configs[0]["current-context"],
    }
    for cfg in configs:
        for key in ("clusters", "users", "contexts"):
            merged[key] += cfg[key]
    return merged


# --------------------------------------------------------------------------- state


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


def _save_state(state: TestbedState) -> None:
    path = state_path(Path(state.run_dir))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(path)


# --------------------------------------------------------------------------- up


def _start_cluster(
    state: TestbedState,
    profile: str,
    apiserver_port: int,
    report: Report,
) -> tuple[ClusterState, Rest, fleet.Fleet]:
    fl = fleet.load_fleet(profile)
    folder = Path(state.run_dir) / fl.cluster
    folder.mkdir(parents=True)
    idents = list(identities.USER_IDENTITIES) + list(identities.COMPONENT_IDENTITIES)
    pki = make_pki(folder / "pki", idents)
    bins = {c.name: str(binary_path(c)) for c in COMPONENTS}
    logs = folder / "logs"
    api_port = apiserver_port or free_port()
    if apiserver_port and port_in_use(apiserver_port):
        raise ComponentFailed(
            f"cannot start kube-apiserver: port {apiserver_port} on 127.0.0.1 is already in use"
        )
    server = f"https://127.0.0.1:{api_port}"
    pod_logs = podlogs.write_log_files(folder / "pod-logs")
    cs = ClusterState(
        name=fl.cluster,
        profile=profile,
        context=fl.cluster,
        server=server,
        folder=str(folder),
        audit_log=str(folder / "audit" / "audit.log"),
        pod_logs={k: str(v) for k, v in pod_logs.items()},
    )
    state.clusters.append(cs)
    started: list[tuple[_Proc, ComponentState]] = []

    def launch(name: str, args: list[str], ports: dict[str, int]) -> None:
        proc, comp = _start(name, [bins[name], *args], logs / f"{name}.log", ports)
        started.append((proc, comp))
        cs.components.append(comp)
        _save_state(state)

    client, peer = free_port(), free_port()
    launch("etcd", flags.etcd(folder / "etcd-data", client, peer), {"client": client, "peer": peer})
    _wait("etcd health", lambda: _http_ok(f"http://127.0.0.1:{client}/health"), started, 30)
    report(f"[{fl.cluster}] etcd ready on 127.0.0.1:{client}")

    (folder / "audit").mkdir()
    policy = folder / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(flags.AUDIT_POLICY))
    launch(
        "kube-apiserver",
        flags.kube_apiserver(pki, client, api_port, policy, Path(cs.audit_log)),
        {"secure": api_port},
    )
    ca_ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    _wait("kube-apiserver /readyz", lambda: _http_ok(f"{server}/readyz", ca_ctx), started, 120)
    report(f"[{fl.cluster}] kube-apiserver ready at {server}")

    kc_dir = folder / "kubeconfigs"
    kc_dir.mkdir()

    def component_kubeconfig(user: str) -> Path:
        cfg = _kubeconfig(fl.cluster, server, pki, [user], {fl.cluster: user})
        path = kc_dir / f"{user.replace(':', '-')}.kubeconfig"
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    kcm_port, sched_port = free_port(), free_port()
    kcm_kc = component_kubeconfig("system:kube-controller-manager")
    launch(
        "kube-controller-manager",
        flags.kube_controller_manager(pki, kcm_kc, kcm_port),
        {"secure": kcm_port},
    )
    sched_kc = component_kubeconfig("system:kube-scheduler")
    launch("kube-scheduler", flags.kube_scheduler(sched_kc, sched_port), {"secure": sched_port})
    insecure = _insecure()
    _wait(
        "kube-controller-manager and kube-scheduler /healthz",
        lambda: (
            _http_ok(f"https://127.0.0.1:{kcm_port}/healthz", insecure)
            and _http_ok(f"https://127.0.0.1:{sched_port}/healthz", insecure)
        ),
        started,
        60,
    )
    report(f"[{fl.cluster}] kube-controller-manager and kube-scheduler healthy")

    kwok_port = free_port()
    kwok_cfg = folder / "kwok.yaml"
    kwok_cfg.write_text(flags.kwok_config(build.kwok_stage_dir(), pod_logs))
    kwok_kc = component_kubeconfig("kwok-controller")
    launch("kwok", flags.kwok(pki, kwok_kc, kwok_cfg, kwok_port), {"kubelet": kwok_port})
    admin = pki.clients["admin"]
    rest = Rest(server, pki.ca_cert, admin[0], admin[1])
    _wait(
        "kwok to start",
        lambda: _http_ok(f"https://127.0.0.1:{kwok_port}/healthz", insecure),
        started,
        30,
    )
    report(f"[{fl.cluster}] kwok running (simulated kubelets on 127.0.0.1:{kwok_port})")
    return cs, rest, fl


def _ready_nodes(rest: Rest) -> int:
    nodes = rest.get("/api/v1/nodes").get("items") or []
    n = 0
    for node in nodes:
        for cond in node.get("status", {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                n += 1
    return n


def _load_fleet(
    cs: ClusterState,
    rest: Rest,
    fl: fleet.Fleet,
    procs: list[tuple[_Proc, ComponentState]],
    report: Report,
) -> None:
    started = time.monotonic()
    rest.create_many(fleet.namespace_manifests(fl))
    teams = [ns.name for ns in fl.namespaces]
    rest.create_many(identities.rbac_manifests(teams))
    if fl.kueue is not None:
        crd_dir = build.kueue_crd_dir()
        if crd_dir.is_dir():
            crds = [yaml.safe_load(p.read_text()) for p in sorted(crd_dir.glob("*.yaml"))]
            rest.create_many(crds)

            def established() -> bool:
                for crd in crds:
                    name = crd["metadata"]["name"]
                    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
                    conds = rest.get(path).get("status", {}).get("conditions") or []
                    if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                        return False
                return True

            _wait("Kueue CRDs to be established", established, procs, 60)
            rest.create_many(fleet.kueue_manifests(fl))
        else:
            report(f"[{fl.cluster}] Kueue CRDs not built; queues skipped")

    nodes = fleet.node_manifests(fl)
    rest.create_many(nodes)
    managed = sum(1 for n in nodes if fleet.KWOK_ANNOTATION in n["metadata"]["annotations"])
    report(f"[{fl.cluster}] created {len(nodes)} nodes; waiting for {managed} to be Ready")
    _wait(f"{managed} Ready nodes", lambda: _ready_nodes(rest) >= managed, procs, 600, 2)

    def service_accounts() -> bool:
        return all(
            rest.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default", ok=(200,))
            for ns in teams
        )

    _wait("default service accounts", service_accounts, procs, 60)
    pods = fleet.workload_manifests(fl)
    rest.create_many(pods)
    report(f"[{fl.cluster}] created {len(pods)} workload pods; waiting for them to run")

    last = [0.0]

    def running() -> bool:
        n = rest.count("/api/v1/pods", fieldSelector="status.phase=Running")
        if len(pods) > 500 and time.monotonic() - last[0] > 15:
            last[0] = time.monotonic()
            report(f"[{fl.cluster}] {n}/{len(pods)} pods running")
        return n >= len(pods)

    # Counting 10,000 pods is itself load on the API server: poll big fleets less often.
    _wait(f"{len(pods)} running pods", running, procs, 1800, 2 if len(pods) < 1000 else 10)
    report(f"[{fl.cluster}] fleet loaded in {time.monotonic() - started:.1f}s")


def up(
    profile: str = "default",
    clusters: int = 1,
    run_dir: Path | None = None,
    apiserver_port: int = 0,
    report: Report = _stderr,
) -> TestbedState:
    """Build what is missing, start the control plane(s), load the fleet(s), write kubeconfig."""
    run = run_dir or default_run_dir()
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
        fleet.load_fleet(p)  # fail on a bad profile before starting anything

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

    build.build_all(report=report)
    started = time.monotonic()
    state = TestbedState(
        run_dir=str(run),
        kubeconfig=str(run / "kubeconfig"),
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    _save_state(state)
    try:
        loaded: list[tuple[ClusterState, Rest, fleet.Fleet]] = []
        for i, p in enumerate(profiles):
            loaded.append(_start_cluster(state, p, apiserver_port if i == 0 else 0, report))
        configs = []
        for cs, _rest, fl in loaded:
            pki_dir = Path(cs.folder) / "pki"
            pki = Pki.load(pki_dir)
            users = [i.user for i in identities.USER_IDENTITIES]
            configs.append(
                _kubeconfig(fl.cluster, cs.server, pki, users, _user_contexts(fl.cluster))
            )
        kc = Path(state.kubeconfig)
        kc.write_text(yaml.safe_dump(merge_kubeconfigs(configs), sort_keys=False))
        kc.chmod(0o600)
        for cs, rest, fl in loaded:
            procs: list[tuple[_Proc, ComponentState]] = [(_Watch(c), c) for c in cs.components]
            _load_fleet(cs, rest, fl, procs, report)
    except BaseException:
        report("start failed; stopping what was started")
        down(run, report=lambda _m: None, keep_logs=True)
        raise
    report(f"testbed up in {time.monotonic() - started:.1f}s")
    return state


class _Watch:
    """A Popen look-alike for a process started earlier (only ``poll`` is needed)."""

    def __init__(self, comp: ComponentState) -> None:
        self.comp = comp

    def poll(self) -> int | None:
        return None if is_running(self.comp) else -1


# --------------------------------------------------------------------------- down / status


def _stop(comp: ComponentState, grace: float = 10.0) -> str:
    if not is_running(comp):
        _reap(comp.pid)
        return "not running"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(comp.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_running(comp):
            _reap(comp.pid)
            return "stopped"
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(comp.pid, signal.SIGKILL)
    time.sleep(0.2)
    _reap(comp.pid)
    return "killed"


def restart(
    run_dir: Path | None,
    cluster_name: str,
    component: str,
    *,
    down_s: float = 0.0,
    report: Report = _stderr,
) -> ComponentState:
    """Kill one component as a crash would (SIGKILL), leave it down ``down_s`` seconds, start
    it again with the same command line, and wait until it serves (kube-apiserver: /readyz,
    etcd: /health). For outage drills: clients must recover without being restarted."""
    run = run_dir or default_run_dir()
    state = load_state(run)
    if state is None:
        raise TestbedError(f"no testbed in {run}")
    cs = next((c for c in state.clusters if c.name == cluster_name), None)
    if cs is None:
        names = ", ".join(c.name for c in state.clusters)
        raise TestbedError(f"no cluster {cluster_name!r} in the testbed (clusters: {names})")
    comp = next((c for c in cs.components if c.name == component), None)
    if comp is None:
        raise TestbedError(f"no component {component} in {cluster_name}")
    args = comp.args or _cmdline(comp.pid)
    if not args:
        raise TestbedError(f"{component} of {cluster_name}: its command line is not recorded")
    if is_running(comp):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(comp.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while is_running(comp) and time.monotonic() < deadline:
            time.sleep(0.05)
        report(f"[{cluster_name}] {component} (pid {comp.pid}) killed")
    _reap(comp.pid)
    time.sleep(down_s)
    proc, fresh = _start(component, args, Path(comp.log), dict(comp.ports))
    cs.components[cs.components.index(comp)] = fresh
    _save_state(state)
    started: list[tuple[_Proc, ComponentState]] = [(proc, fresh)]
    if component == "kube-apiserver":
        ctx = ssl.create_default_context(cafile=str(Path(cs.folder) / "pki" / "ca.crt"))
        _wait("kube-apiserver /readyz", lambda: _http_ok(f"{cs.server}/readyz", ctx), started, 120)
    elif component == "etcd":
        url = f"http://127.0.0.1:{comp.ports['client']}/health"
        _wait("etcd health", lambda: _http_ok(url), started, 30)
    else:
        time.sleep(1)
        _wait(f"{component} to stay up", lambda: True, started, 1)
    report(f"[{cluster_name}] {component} running again (pid {fresh.pid})")
    return fresh


def _reap(pid: int) -> None:
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)


def down(run_dir: Path | None = None, report: Report = _stderr, keep_logs: bool = False) -> bool:
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
            report(f"[{cl.name}] {comp.name} (pid {comp.pid}): {_stop(comp)}")
    if keep_logs:
        state_path(run).unlink(missing_ok=True)
        for cl in state.clusters:
            for sub in ("etcd-data", "pki", "kubeconfigs"):
                shutil.rmtree(Path(cl.folder) / sub, ignore_errors=True)
        Path(state.kubeconfig).unlink(missing_ok=True)
    else:
        shutil.rmtree(run, ignore_errors=True)
    return True


def listeners(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket the process holds (from /proc)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    out: list[tuple[str, int]] = []
    for table, v6 in (("tcp", False), ("tcp6", True)):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A = LISTEN
                continue
            addr_hex, port_hex = cols[1].split(":")
            out.append((_addr(addr_hex, v6), int(port_hex, 16)))
    return out


def _addr(hexaddr: str, v6: bool) -> str:
    raw = bytes.fromhex(hexaddr)
    if not v6:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def _rss_kib(pid: int) -> dict[str, int]:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def status(run_dir: Path | None = None) -> dict[str, Any]:
    run = run_dir or default_run_dir()
    state = load_state(run)
    if state is None:
        return {"running": False, "run_dir": str(run)}
    clusters: list[dict[str, Any]] = []
    for cl in state.clusters:
        comps: list[dict[str, Any]] = []
        for c in cl.components:
            alive = is_running(c)
            mem = _rss_kib(c.pid) if alive else {}
            comps.append(
                {
                    "name": c.name,
                    "pid": c.pid,
                    "running": alive,
                    "ports": c.ports,
                    "log": c.log,
                    "rss_mib": round(mem.get("VmRSS", 0) / 1024, 1),
                    "peak_rss_mib": round(mem.get("VmHWM", 0) / 1024, 1),
                }
            )
        clusters.append(
            {
                "name": cl.name,
                "profile": cl.profile,
                "context": cl.context,
                "user_contexts": [c for c in _user_contexts(cl.name) if c != cl.context],
                "server": cl.server,
                "audit_log": cl.audit_log,
                "pod_logs": cl.pod_logs,
                "components": comps,
            }
        )
    everything = all(c["running"] for cl in clusters for c in cl["components"])
    return {
        "running": everything,
        "run_dir": state.run_dir,
        "kubeconfig": state.kubeconfig,
        "started_at": state.started_at,
        "contexts": [c for cl in clusters for c in [cl["context"], *cl["user_contexts"]]],
        "clusters": clusters,
    }
