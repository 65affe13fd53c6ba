"""Kubeconfig files for the testbed: one per component, and one merged file for clients.

Why certificates embedded as data: the run folder's PKI is made fresh at every ``up``, and a
kubeconfig that carries its own CA and client certificate stays valid when copied elsewhere
(into a test's temp folder, a container). The admin context carries the cluster's name; every
other user identity gets a ``<user>@<cluster>`` context, so RBAC can be exercised by name.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from mcp_kube.testbed import identities
from mcp_kube.testbed.pki import Pki

__all__ = ["merge", "render", "user_contexts", "write", "write_component", "write_merged"]

Kubeconfig = dict[str, Any]


def render(
    cluster: str, server: str, pki: Pki, users: list[str], contexts: dict[str, str]
) -> Kubeconfig:
    """A kubeconfig for ``cluster``: ``users`` by client certificate, ``contexts`` name -> user."""

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


def user_contexts(cluster: str) -> dict[str, str]:
    """Context name -> user: the admin context carries the cluster's name."""
    out = {cluster: "admin"}
    for ident in identities.USER_IDENTITIES:
        if ident.user != "admin":
            out[f"{ident.user}@{cluster}"] = ident.user
    return out


def merge(configs: list[Kubeconfig]) -> Kubeconfig:
    merged: Kubeconfig = {
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


def write(path: Path, cfg: Kubeconfig, *, sort_keys: bool = True) -> Path:
    """Write a kubeconfig readable by its owner only (it holds private keys)."""
    path.write_text(yaml.safe_dump(cfg, sort_keys=sort_keys))
    path.chmod(0o600)
    return path


def write_component(folder: Path, cluster: str, server: str, pki: Pki, user: str) -> Path:
    """The kubeconfig a control-plane component (``user``) runs with, in ``<folder>``."""
    folder.mkdir(exist_ok=True)
    cfg = render(cluster, server, pki, [user], {cluster: user})
    return write(folder / f"{user.replace(':', '-')}.kubeconfig", cfg)


def write_merged(path: Path, clusters: list[tuple[str, str, Pki]]) -> Path:
    """The clients' kubeconfig: every user identity of every ``(name, server, pki)`` cluster."""
    users = [i.user for i in identities.USER_IDENTITIES]
    configs = [
        render(name, server, pki, users, user_contexts(name)) for name, server, pki in clusters
    ]
    return write(path, merge(configs), sort_keys=False)
