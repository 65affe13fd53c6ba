"""Where the testbed's sources, pins, cached binaries and run folders live.

The pinned versions are read from the Go wrapper modules (``testbed/go/*/go.mod``), the one
place they are written, so a version bump is a one-line change reviewed with its go.sum.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mcp_kube.errors import TestbedError

__all__ = [
    "COMPONENTS",
    "Component",
    "binary_path",
    "cache_dir",
    "default_run_dir",
    "pinned_version",
    "repo_root",
]


@dataclass(frozen=True)
class Component:
    """One upstream binary: which wrapper module builds it, from which package."""

    name: str
    wrapper: str  # folder under testbed/go
    module: str  # the upstream module whose version keys the cache
    package: str  # the Go package that is the binary's main


COMPONENTS: tuple[Component, ...] = (
    Component("etcd", "etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"),
    Component(
        "kube-apiserver", "kubernetes", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver"
    ),
    Component(
        "kube-controller-manager",
        "kubernetes",
        "k8s.io/kubernetes",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
    ),
    Component(
        "kube-scheduler", "kubernetes", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler"
    ),
    Component("kwok", "kwok", "sigs.k8s.io/kwok", "sigs.k8s.io/kwok/cmd/kwok"),
    # not a control-plane component: the client that applies deploy/ and is benchmarked
    Component("kubectl", "kubernetes", "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kubectl"),
    # renders and lints the Helm chart in deploy/helm
    Component("helm", "helm", "helm.sh/helm/v3", "helm.sh/helm/v3/cmd/helm"),
    # admits the Jobs submitted to a queue, in the clusters whose fleet has a kueue block
    Component("kueue", "kueue", "sigs.k8s.io/kueue", "sigs.k8s.io/kueue/cmd/kueue"),
    # metrics: one Prometheus per cluster scrapes the simulated dcgm-exporter; promtool
    # backfills its history at start
    Component(
        "prometheus",
        "prometheus",
        "github.com/prometheus/prometheus",
        "github.com/prometheus/prometheus/cmd/prometheus",
    ),
    Component(
        "promtool",
        "prometheus",
        "github.com/prometheus/prometheus",
        "github.com/prometheus/prometheus/cmd/promtool",
    ),
)


def repo_root() -> Path:
    """The checkout that holds ``testbed/`` (the testbed is a development tool)."""
    env = os.environ.get("MCP_KUBE_REPO")
    candidates = [Path(env)] if env else []
    candidates += list(Path(__file__).resolve().parents)
    for cand in candidates:
        if (cand / "testbed" / "go").is_dir():
            return cand
    raise TestbedError(
        "cannot find the testbed sources (testbed/go); run from a checkout of mcp-kube "
        "or set MCP_KUBE_REPO to one"
    )


def cache_dir() -> Path:
    """Root of everything slow to make: built binaries, build logs. Outside the repository."""
    env = os.environ.get("MCP_KUBE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcp-kube"


def default_run_dir() -> Path:
    """Where ``testbed up`` keeps certificates, kubeconfig, data, logs and its state file."""
    env = os.environ.get("MCP_KUBE_TESTBED_DIR")
    if env:
        return Path(env)
    return cache_dir() / "testbed" / "run"


def wrapper_dir(component: Component) -> Path:
    return repo_root() / "testbed" / "go" / component.wrapper


_REQUIRE = re.compile(r"^\s*(?:require\s+)?(?P<mod>\S+)\s+(?P<ver>v\S+)\s*(?://.*)?$")


def pinned_version(wrapper: str, module: str) -> str:
    """The version of ``module`` that ``testbed/go/<wrapper>/go.mod`` requires."""
    gomod = repo_root() / "testbed" / "go" / wrapper / "go.mod"
    in_replace = False
    for line in gomod.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("replace ("):
            in_replace = True
            continue
        if in_replace:
            if stripped == ")":
                in_replace = False
            continue
        m = _REQUIRE.match(line)
        if m and m.group("mod") == module:
            return m.group("ver")
    raise TestbedError(f"{gomod} does not require {module}")


def binary_path(component: Component) -> Path:
    """Cached binary, keyed by component and pinned version."""
    version = pinned_version(component.wrapper, component.module)
    return cache_dir() / "testbed" / "bin" / f"{component.name}-{version}" / component.name
