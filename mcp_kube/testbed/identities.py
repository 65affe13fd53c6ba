"""Who exists in a testbed cluster, and the RBAC that limits the non-admin identities.

- ``admin``: system:masters.
- ``alice`` (group team-a) and ``bob`` (group team-b): may edit their own namespace and read nodes.
- ``auditor`` (group auditors): read-only everywhere (the built-in ``view`` role: no Secrets).
- ``mcp-kube-server``: read-only, and may impersonate alice, bob and their team groups, which
  is all an impersonating mcp-kube server needs.
The control-plane components get the identities their default RBAC roles expect.
"""

from __future__ import annotations

from typing import Any

from mcp_kube.testbed.pki import Identity

__all__ = ["COMPONENT_IDENTITIES", "USER_IDENTITIES", "rbac_manifests"]

Manifest = dict[str, Any]

USER_IDENTITIES: tuple[Identity, ...] = (
    Identity("admin", ("system:masters",)),
    Identity("alice", ("team-a",)),
    Identity("bob", ("team-b",)),
    Identity("auditor", ("auditors",)),
    Identity("mcp-kube-server", ("mcp-kube",)),
)
COMPONENT_IDENTITIES: tuple[Identity, ...] = (
    Identity("system:kube-controller-manager"),
    Identity("system:kube-scheduler"),
    Identity("kwok-controller", ("system:masters",)),  # plays every kubelet
    Identity("kueue-controller", ("system:masters",)),  # admits queued Jobs
    Identity("kube-apiserver-kubelet-client", ("system:masters",)),
)

_GROUP = "rbac.authorization.k8s.io"
_RBAC = f"{_GROUP}/v1"


def _cluster_role(name: str, rules: list[Manifest]) -> Manifest:
    return {"apiVersion": _RBAC, "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}


def _subject(kind: str, name: str) -> Manifest:
    return {"kind": kind, "name": name, "apiGroup": _GROUP}


def _binding(name: str, role: str, subjects: list[Manifest], namespace: str = "") -> Manifest:
    meta: Manifest = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": _RBAC,
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": _GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def rbac_manifests(team_namespaces: list[str]) -> list[Manifest]:
    read = ["get", "list", "watch"]
    out: list[Manifest] = [
        _cluster_role(
            "testbed:gpu-viewer",
            [
                {"apiGroups": [""], "resources": ["nodes", "namespaces"], "verbs": read},
                {"apiGroups": ["kueue.x-k8s.io"], "resources": ["*"], "verbs": read},
            ],
        ),
        _cluster_role(
            "testbed:impersonate-teams",
            [
                {
                    "apiGroups": [""],
                    "resources": ["users"],
                    "verbs": ["impersonate"],
                    "resourceNames": ["alice", "bob"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["groups"],
                    "verbs": ["impersonate"],
                    "resourceNames": ["team-a", "team-b"],
                },
            ],
        ),
        _binding(
            "testbed:gpu-viewer",
            "testbed:gpu-viewer",
            [_subject("Group", g) for g in ("team-a", "team-b", "auditors", "mcp-kube")],
        ),
        _binding("testbed:auditors-view", "view", [_subject("Group", "auditors")]),
        _binding("testbed:mcp-kube-view", "view", [_subject("Group", "mcp-kube")]),
        _binding(
            "testbed:mcp-kube-impersonate",
            "testbed:impersonate-teams",
            [_subject("User", "mcp-kube-server")],
        ),
    ]
    for ns in team_namespaces:
        out.append(_binding(f"testbed:{ns}-edit", "edit", [_subject("Group", ns)], namespace=ns))
    return out
