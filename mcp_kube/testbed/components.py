"""The control-plane components of one testbed cluster, in one table: ports, flags, readiness.

Why one table: ``up`` starts the components from it, stage by stage (the components of a stage
start together and are then waited for together), and ``restart`` waits for a restarted
component with the same probe, so what "ready" means cannot drift between the two. The flags
themselves are in :mod:`mcp_kube.testbed.flags`; a row's ``flags`` function also writes the
files its command line names (audit policy, kubeconfig, KWOK config).
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from mcp_kube.testbed import build, flags, kubeconfig, kueue
from mcp_kube.testbed.pki import Pki
from mcp_kube.testbed.processes import Proc, http_ok, wait
from mcp_kube.testbed.state import ComponentState

__all__ = ["KUEUE", "SPECS", "TABLE", "Probe", "Site", "Spec", "probe_url", "stages", "wait_ready"]


@dataclass(frozen=True)
class Probe:
    """An HTTP GET on 127.0.0.1 that answers 200 once the component serves."""

    port: str  # which of the component's ports
    path: str
    tls: Literal["none", "cluster-ca", "self-signed"]  # plain HTTP; the cluster's CA; any cert
    timeout: float  # seconds, from its start


@dataclass(frozen=True)
class Site:
    """What one cluster's command lines are made from; ``ports`` fills as components start."""

    cluster: str
    folder: Path
    pki: Pki
    server: str
    audit_log: Path
    pod_logs: dict[str, Path]
    ports: dict[str, dict[str, int]] = field(default_factory=dict)  # component -> its ports

    def component_kubeconfig(self, user: str) -> Path:
        return kubeconfig.write_component(
            self.folder / "kubeconfigs", self.cluster, self.server, self.pki, user
        )


Flags = Callable[[Site, dict[str, int]], list[str]]


@dataclass(frozen=True)
class Spec:
    name: str
    stage: int  # started with the others of its stage, after every earlier stage is ready
    ports: tuple[str, ...]
    flags: Flags
    probe: Probe


def _etcd(site: Site, ports: dict[str, int]) -> list[str]:
    return flags.etcd(site.folder / "etcd-data", ports["client"], ports["peer"])


def _kube_apiserver(site: Site, ports: dict[str, int]) -> list[str]:
    (site.folder / "audit").mkdir()
    policy = site.folder / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(flags.AUDIT_POLICY))
    etcd_port = site.ports["etcd"]["client"]
    return flags.kube_apiserver(site.pki, etcd_port, ports["secure"], policy, site.audit_log)


def _kube_controller_manager(site: Site, ports: dict[str, int]) -> list[str]:
    kc = site.component_kubeconfig("system:kube-controller-manager")
    return flags.kube_controller_manager(site.pki, kc, ports["secure"])


def _kube_scheduler(site: Site, ports: dict[str, int]) -> list[str]:
    return flags.kube_scheduler(site.component_kubeconfig("system:kube-scheduler"), ports["secure"])


def _kwok(site: Site, ports: dict[str, int]) -> list[str]:
    config = site.folder / "kwok.yaml"
    config.write_text(flags.kwok_config(build.kwok_stage_dir(), site.pod_logs))
    kc = site.component_kubeconfig("kwok-controller")
    return flags.kwok(site.pki, kc, config, ports["kubelet"])


def _kueue(site: Site, ports: dict[str, int]) -> list[str]:
    config = kueue.prepare(site.folder, site.pki, ports)
    return [f"--config={config}", f"--kubeconfig={site.component_kubeconfig(kueue.USER)}"]


TABLE: tuple[Spec, ...] = (
    Spec("etcd", 0, ("client", "peer"), _etcd, Probe("client", "/health", "none", 30)),
    Spec(
        "kube-apiserver",
        1,
        ("secure",),
        _kube_apiserver,
        Probe("secure", "/readyz", "cluster-ca", 120),
    ),
    Spec(
        "kube-controller-manager",
        2,
        ("secure",),
        _kube_controller_manager,
        Probe("secure", "/healthz", "self-signed", 60),
    ),
    Spec(
        "kube-scheduler",
        2,
        ("secure",),
        _kube_scheduler,
        Probe("secure", "/healthz", "self-signed", 60),
    ),
    # kwok's /healthz on its kubelet port: the simulated kubelets serve logs from there
    Spec("kwok", 3, ("kubelet",), _kwok, Probe("kubelet", "/healthz", "self-signed", 30)),
)

# Started after the fleet is loaded, and only where the fleet has queues: Kueue exits unless
# its CRDs are installed. Its command line is wrapped by ``kueue.command``.
KUEUE = Spec("kueue", 4, kueue.PORTS, _kueue, Probe("health", "/readyz", "none", 120))
SPECS: dict[str, Spec] = {s.name: s for s in (*TABLE, KUEUE)}


def stages() -> list[tuple[Spec, ...]]:
    """The rows of :data:`TABLE` grouped by stage, in start order."""
    ordered = sorted(TABLE, key=lambda s: s.stage)
    return [tuple(group) for _, group in itertools.groupby(ordered, key=lambda s: s.stage)]


def probe_url(spec: Spec, ports: dict[str, int]) -> str:
    scheme = "http" if spec.probe.tls == "none" else "https"
    return f"{scheme}://127.0.0.1:{ports[spec.probe.port]}{spec.probe.path}"


def wait_ready(
    specs: list[tuple[Spec, dict[str, int]]],
    ca: Path,
    procs: list[tuple[Proc, ComponentState]],
) -> None:
    """Wait until every ``(spec, ports)`` answers its probe (``ca``: the cluster's CA file);
    fail as soon as one of ``procs`` exits."""
    checks = [(probe_url(s, p), _tls(s.probe.tls, ca)) for s, p in specs]
    names = " and ".join(s.name for s, _ in specs)
    paths = " ".join(dict.fromkeys(s.probe.path for s, _ in specs))
    wait(
        f"{names} {paths}",
        lambda: all(http_ok(url, ctx) for url, ctx in checks),
        procs,
        max(s.probe.timeout for s, _ in specs),
    )


def _tls(tls: str, ca: Path) -> ssl.SSLContext | None:
    if tls == "none":
        return None
    if tls == "cluster-ca":
        return ssl.create_default_context(cafile=str(ca))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # components' self-signed serving certs, on loopback
    return ctx
