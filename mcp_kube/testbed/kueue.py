"""The Kueue controller of a testbed cluster: its Configuration and its command line.

Kueue runs out of cluster against the testbed's API server, like the other components: every
listener (health, metrics, webhooks) on 127.0.0.1 at a free port, no leader election, no
certificate management of its own, Jobs (``batch/job``) as the only integration, and only Jobs
labelled with a queue are managed (``manageJobsWithoutQueueName: false``). The Job webhooks are
not registered with the API server: mcp-kube creates queued Jobs suspended, which is all Kueue
needs from them.

Why a private mount namespace: with certificate management off, ``cmd/kueue`` reads its metrics
certificate from the fixed path ``/etc/kueue/metrics/certs`` (no flag or field moves it). The
controller therefore starts under ``unshare -m``, where a read-only overlay puts the testbed's
own serving certificate at that path; the host's /etc is never written, and the mount goes away
with the process. That needs the right to create a mount namespace (root, as in CI):
:func:`check_mount_namespace` fails first, with the reason, where it is missing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from mcp_kube.errors import ComponentFailed
from mcp_kube.testbed.pki import Pki

__all__ = [
    "PORTS",
    "USER",
    "check_mount_namespace",
    "command",
    "configuration",
    "lower_dir",
    "prepare",
]

USER = "kueue-controller"  # its client certificate's CN (bound to system:masters)
PORTS = ("health", "metrics", "webhook")
_CERT_PATH = ("kueue", "metrics", "certs")  # under /etc, where cmd/kueue reads it


def configuration(ports: dict[str, int], cert_dir: Path) -> dict[str, Any]:
    """The ``config.kueue.x-k8s.io/v1beta2`` Configuration of a testbed controller."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": "kueue-system",
        "manageJobsWithoutQueueName": False,
        "internalCertManagement": {"enable": False},
        "leaderElection": {"leaderElect": False},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{ports['health']}"},
        "metrics": {"bindAddress": f"127.0.0.1:{ports['metrics']}"},
        "webhook": {"host": "127.0.0.1", "port": ports["webhook"], "certDir": str(cert_dir)},
        "featureGates": {"VisibilityOnDemand": False},
        "integrations": {"frameworks": ["batch/job"]},
        "clientConnection": {"qps": 50, "burst": 100},
    }


def lower_dir(folder: Path) -> Path:
    """The overlay's lower folder: what the controller sees added to /etc."""
    return folder / "pki" / "kueue-etc"


def prepare(folder: Path, pki: Pki, ports: dict[str, int]) -> Path:
    """Write the overlay's lower folder (the testbed's serving certificate, for 127.0.0.1, at
    ``kueue/metrics/certs``; it serves the webhooks too) and the Configuration file; returns
    the Configuration file."""
    certs = lower_dir(folder).joinpath(*_CERT_PATH)
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pki.serving_cert, certs / "tls.crt")
    shutil.copyfile(pki.serving_key, certs / "tls.key")
    (certs / "tls.key").chmod(0o600)
    config = folder / "kueue-config.yaml"
    config.write_text(yaml.safe_dump(configuration(ports, certs), sort_keys=False))
    return config


def _script(lower: Path, then: str) -> str:
    if any(c in str(lower) for c in ":,\n\\"):
        raise ComponentFailed(f"cannot start kueue: the run folder path {lower} has ':' or ','")
    option = shlex.quote(f"lowerdir={lower}:/etc")
    return f"mount -t overlay testbed-kueue -o {option} /etc && {then}"


def _unshare() -> list[str]:
    found = shutil.which("unshare")
    if found is None:
        raise ComponentFailed(
            "cannot start kueue: 'unshare' (util-linux) is not on PATH; the Kueue controller "
            "needs a private mount namespace to see its certificate at /etc/kueue/metrics/certs"
        )
    return [found, "--mount", "--propagation", "private", "--", "/bin/sh", "-c"]


def command(binary: str, lower: Path, args: list[str]) -> list[str]:
    """unshare, the overlay mount, then the shell becomes kueue (``$0``, same PID)."""
    return [*_unshare(), _script(lower, 'exec "$0" "$@"'), binary, *args]


def check_mount_namespace(lower: Path) -> None:
    """Mount the overlay once in a throw-away namespace; fail with the reason if it cannot."""
    cert = "/etc/" + "/".join(_CERT_PATH) + "/tls.crt"
    probe = [*_unshare(), _script(lower, f"test -r {cert}")]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ComponentFailed(f"cannot start kueue: {e}") from e
    if proc.returncode != 0:
        raise ComponentFailed(
            "cannot start kueue: it needs a private mount namespace (unshare --mount, which "
            "takes root or CAP_SYS_ADMIN) with an overlay on /etc to read its metrics "
            f"certificate at {cert}; that failed (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-400:]}"
        )
