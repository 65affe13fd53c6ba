"""Build the pinned upstream binaries from their Go modules into the cache, once per version.

``go build`` runs inside each wrapper module (``testbed/go/<wrapper>``), so go.sum verifies every
downloaded module. Binaries land in ``<cache>/testbed/bin/<name>-<version>/`` and are reused
while present; each build writes its full output to a log whose path every error names.
Besides binaries, the KWOK stage definitions and (optionally) the Kueue CRDs are copied from the
module cache next to them: they ship in the upstream modules and are never committed here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mcp_kube.errors import BuildFailed, ToolchainMissing
from mcp_kube.testbed.paths import (
    COMPONENTS,
    Component,
    binary_path,
    cache_dir,
    pinned_version,
    wrapper_dir,
)

__all__ = [
    "Report",
    "build_all",
    "kueue_crd_dir",
    "kwok_stage_dir",
    "missing_components",
    "to_stderr",
]

Report = Callable[[str], None]

# The stage sets copied from the kwok module: node life cycle with leases, and pods that pass
# through create -> (init containers) -> ready -> complete (Job pods) -> delete like a kubelet's.
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/general/pod-create.yaml",
    "kustomize/stage/pod/general/pod-init-container-running.yaml",
    "kustomize/stage/pod/general/pod-init-container-completed.yaml",
    "kustomize/stage/pod/general/pod-ready.yaml",
    "kustomize/stage/pod/general/pod-complete.yaml",
    "kustomize/stage/pod/general/pod-delete.yaml",
)
KUEUE_MODULE = "sigs.k8s.io/kueue"
HELM_MODULE = "helm.sh/helm/v3"
PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
# Every CRD of the release: the controller exits when one of its kinds is missing.
KUEUE_CRDS = (
    "admissionchecks",
    "clusterqueues",
    "cohorts",
    "localqueues",
    "multikueueclusters",
    "multikueueconfigs",
    "provisioningrequestconfigs",
    "resourceflavors",
    "topologies",
    "workloadpriorityclasses",
    "workloads",
)


def to_stderr(msg: str) -> None:
    """The default :data:`Report`: progress lines on stderr."""
    print(msg, file=sys.stderr, flush=True)


def go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolchainMissing(
            "the Go toolchain ('go') is not on PATH; the testbed builds etcd, kube-apiserver, "
            "kube-controller-manager, kube-scheduler, kwok, kueue, prometheus, kubectl and helm "
            "from source and needs Go >= 1.26 (see testbed/go/*/go.mod)"
        )
    return go


def _ldflags(component: Component) -> str:
    version = pinned_version(component.wrapper, component.module)
    flags = ["-s", "-w"]
    if component.module == "k8s.io/kubernetes":
        major, minor = version.lstrip("v").split(".")[:2]
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [
                f"-X {pkg}.gitVersion={version}",
                f"-X {pkg}.gitMajor={major}",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
            ]
    elif component.module == "sigs.k8s.io/kwok":
        flags.append(f"-X sigs.k8s.io/kwok/pkg/consts.Version={version.lstrip('v')}")
    elif component.module == HELM_MODULE:
        flags += _helm_ldflags(component, version)
    elif component.module == PROMETHEUS_MODULE:  # v0.316.0 is Prometheus 3.16.0
        minor, patch = version.lstrip("v").split(".")[1:3]
        release = f"{int(minor) // 100}.{int(minor) % 100}.{patch}"
        flags.append(f"-X github.com/prometheus/common/version.Version={release}")
    return " ".join(flags)


def _helm_ldflags(component: Component, version: str) -> list[str]:
    """What Helm's Makefile sets: its version, and the Kubernetes version its client-go
    targets (the default for ``.Capabilities.KubeVersion`` and the deprecation lint)."""
    flags = [
        f"-X {HELM_MODULE}/internal/version.version={version}",
        f"-X {HELM_MODULE}/internal/version.gitTreeState=clean",
    ]
    gosum = wrapper_dir(component) / "go.sum"
    found = re.search(r"^k8s\.io/client-go v0\.(\d+)\.\d+ ", gosum.read_text(), re.MULTILINE)
    if found:
        for pkg in ("pkg/lint/rules", "pkg/chartutil"):
            flags += [
                f"-X {HELM_MODULE}/{pkg}.k8sVersionMajor=1",
                f"-X {HELM_MODULE}/{pkg}.k8sVersionMinor={found.group(1)}",
            ]
    return flags


def _log_dir() -> Path:
    d = cache_dir() / "testbed" / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _run_go(args: list[str], cwd: Path, log: Path, what: str) -> None:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")
    with log.open("ab") as out:
        out.write(f"$ {' '.join(args)}  (in {cwd})\n".encode())
        out.flush()
        proc = subprocess.run(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise BuildFailed(
            f"{what} failed (go exited {proc.returncode}); full log: {log}\n{_tail(log)}"
        )


def _module_dir(component_wrapper: str, module: str, log: Path) -> Path:
    """The unpacked source of ``module`` at its pinned version (downloaded if needed)."""
    cwd = wrapper_dir(Component(module, component_wrapper, module, module))
    env = dict(os.environ, GOFLAGS="-mod=readonly")
    with log.open("ab") as out:
        proc = subprocess.run(
            [go_binary(), "mod", "download", "-json", module],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=out,
            env=env,
        )
    if proc.returncode != 0:
        raise BuildFailed(f"downloading {module} failed; full log: {log}\n{_tail(log)}")
    return Path(json.loads(proc.stdout)["Dir"])


def _go_binary_name(package: str) -> str:
    """The file name ``go build -o DIR/`` gives a main package (major-version suffix dropped)."""
    parts = package.split("/")
    last = parts[-1]
    if len(parts) > 1 and last.startswith("v") and last[1:].isdigit():
        return parts[-2]
    return last


def kwok_stage_dir() -> Path:
    kwok = next(c for c in COMPONENTS if c.name == "kwok")
    return binary_path(kwok).parent / "stages"


def kueue_crd_dir() -> Path:
    version = pinned_version("kueue", KUEUE_MODULE)
    return cache_dir() / "testbed" / f"kueue-crds-{version}"


def missing_components() -> list[Component]:
    return [c for c in COMPONENTS if not binary_path(c).is_file()]


def _copy_kwok_stages(log: Path) -> None:
    dest = kwok_stage_dir()
    if dest.is_dir() and len(list(dest.glob("*.yaml"))) == len(KWOK_STAGES):
        return
    src = _module_dir("kwok", "sigs.k8s.io/kwok", log)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent))
    for rel in KWOK_STAGES:
        shutil.copyfile(src / rel, tmp / Path(rel).name)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def _copy_kueue_crds(log: Path, report: Report) -> None:
    dest = kueue_crd_dir()
    if dest.is_dir() and len(list(dest.glob("*.yaml"))) == len(KUEUE_CRDS):
        return
    try:
        src = _module_dir("kueue", KUEUE_MODULE, log) / "config" / "components" / "crd" / "bases"
        files = [src / f"kueue.x-k8s.io_{name}.yaml" for name in KUEUE_CRDS]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise BuildFailed(f"the kueue module has no {', '.join(missing)}")
    except BuildFailed as e:
        report(f"kueue CRDs unavailable, queues will not be simulated: {e}")
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent))
    for f in files:
        shutil.copyfile(f, tmp / f.name)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def build_all(force: bool = False, report: Report = to_stderr) -> dict[str, Path]:
    """Build every component not cached yet; returns name -> binary path."""
    todo = list(COMPONENTS) if force else missing_components()
    log_dir = _log_dir()
    by_wrapper: dict[str, list[Component]] = {}
    for comp in todo:
        by_wrapper.setdefault(comp.wrapper, []).append(comp)
    if todo:
        go = go_binary()
    for wrapper, comps in by_wrapper.items():
        names = ", ".join(c.name for c in comps)
        version = pinned_version(comps[0].wrapper, comps[0].module)
        log = log_dir / f"build-{wrapper}-{version}.log"
        log.write_text("")
        report(f"building {names} {version} (log: {log}) ...")
        started = time.monotonic()
        out_root = cache_dir() / "testbed" / "bin"
        out_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{wrapper}-", dir=out_root))
        try:
            args = [go, "build", "-trimpath", "-tags", "notest"]
            args += ["-ldflags", _ldflags(comps[0]), "-o", str(tmp) + os.sep]
            args += [c.package for c in comps]
            _run_go(args, wrapper_dir(comps[0]), log, f"building {names}")
            for comp in comps:
                built = tmp / _go_binary_name(comp.package)
                dest = binary_path(comp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(built, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        report(f"built {names} in {time.monotonic() - started:.0f}s")
    extras_log = log_dir / "build-extras.log"
    _copy_kwok_stages(extras_log)
    _copy_kueue_crds(extras_log, report)
    return {c.name: binary_path(c) for c in COMPONENTS}
