"""The command lines of the testbed's components, in one place to review.

Every listener is on 127.0.0.1; the API server runs with TLS, Node + RBAC authorization,
service accounts and an audit log, like a production control plane minus the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mcp_kube.testbed.fleet import KWOK_ANNOTATION
from mcp_kube.testbed.pki import Pki

__all__ = [
    "AUDIT_POLICY",
    "SA_ISSUER",
    "etcd",
    "kube_apiserver",
    "kube_controller_manager",
    "kube_scheduler",
    "kwok",
    "kwok_config",
]

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"

AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # The simulated kubelets and controllers are noise for anyone reading what clients did.
        {
            "level": "None",
            "users": [
                "kwok-controller",
                "kueue-controller",
                "system:kube-controller-manager",
                "system:kube-scheduler",
                "system:apiserver",
            ],
        },
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
        {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version"]},
        {"level": "Metadata"},
    ],
}


def etcd(data_dir: Path, client: int, peer: int) -> list[str]:
    return [
        "--name=testbed",
        f"--data-dir={data_dir}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=testbed=http://127.0.0.1:{peer}",
        "--unsafe-no-fsync=true",  # a disposable test store: speed over durability
        "--quota-backend-bytes=4294967296",
        "--auto-compaction-retention=1",
        "--log-level=warn",
    ]


def kube_apiserver(pki: Pki, etcd_port: int, port: int, policy: Path, audit_log: Path) -> list[str]:
    kubelet_cert, kubelet_key = pki.clients["kube-apiserver-kubelet-client"]
    return [
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        # loopback only; these three belong together
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        f"--secure-port={port}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=Node,RBAC",
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={kubelet_cert}",
        f"--kubelet-client-key={kubelet_key}",
        f"--audit-policy-file={policy}",
        f"--audit-log-path={audit_log}",
        "--audit-log-format=json",
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=2",
        "--allow-privileged=true",  # so that policy, not the API server, is what refuses it
        "--profiling=false",
        "--max-requests-inflight=800",
        "--max-mutating-requests-inflight=400",
    ]


def _controller(kubeconfig: Path, port: int) -> list[str]:
    """What the controller manager and the scheduler share: one identity, one instance,
    health served on loopback."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
    ]


def kube_controller_manager(pki: Pki, kubeconfig: Path, port: int) -> list[str]:
    return [
        *_controller(kubeconfig, port),
        f"--root-ca-file={pki.ca_cert}",
        f"--service-account-private-key-file={pki.sa_key}",
        "--use-service-account-credentials=true",  # each controller with its own RBAC
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
    ]


def kube_scheduler(kubeconfig: Path, port: int) -> list[str]:
    return _controller(kubeconfig, port)


def kwok(pki: Pki, kubeconfig: Path, config: Path, port: int) -> list[str]:
    cert, key = pki.clients["kwok-controller"]
    return [
        f"--kubeconfig={kubeconfig}",
        f"--config={config}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
        f"--tls-cert-file={cert}",
        f"--tls-private-key-file={key}",
        "--node-ip=127.0.0.1",
        f"--node-port={port}",
        f"--server-address=127.0.0.1:{port}",
        "--node-lease-duration-seconds=40",
    ]


def kwok_config(stage_dir: Path, log_files: dict[str, Path]) -> str:
    """KWOK's config: the upstream stages, and which log file each container name reads.

    Exec and port-forward are never configured: they would run commands on this host.
    """
    docs = [stage.read_text() for stage in sorted(stage_dir.glob("*.yaml"))]
    logs: list[dict[str, Any]] = [
        {"containers": [kind], "logsFile": str(path)}
        for kind, path in log_files.items()
        if kind != "default"
    ]
    logs.append({"logsFile": str(log_files["default"])})
    cluster_logs = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterLogs",
        "metadata": {"name": "testbed-logs"},
        "spec": {"selector": {}, "logs": logs},
    }
    docs.append(yaml.safe_dump(cluster_logs))
    return "\n---\n".join(d.strip() for d in docs) + "\n"
