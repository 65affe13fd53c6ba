"""The cluster access layer: the one place that talks to Kubernetes, and its front door.

The rest of mcp-kube imports from here; tools see only the ``ClusterPort`` (``kube.port``).
Behind this module, each concern has its own, and only these import the ``kubernetes``
package (an import contract checks it):

- ``kube.registry``: the clusters served, kubeconfig contexts grouped by API server;
- ``kube.kubeconfig``: reading the kubeconfig, loading an API client for a context;
- ``kube.credentials``: which context's credentials a cluster uses, chosen at first use;
- ``kube.cluster``: one cluster behind the port, its requests typed (``Kind``) and cached;
- ``kube.transport``: every HTTP request, with its timeout, identity and audit note;
- ``kube.errors``: answers and failures translated into the project's errors, once.

Each cluster gets one ``ApiClient`` (built at first use, reused for every call), bodies are
decoded as plain JSON rather than model objects, every request has a timeout and no automatic
retries (a struggling API server gets no retry storm), and every failure becomes one of the
project's ``ToolError`` types with a message safe to show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp_kube.kube.registry import ClusterRegistry

if TYPE_CHECKING:
    from mcp_kube.kube.cluster import KubeCluster
    from mcp_kube.kube.credentials import Credentials

__all__ = ["ClusterRegistry", "Credentials", "KubeCluster"]


def __getattr__(name: str) -> object:
    """``KubeCluster`` and ``Credentials`` import the ``kubernetes`` package: loaded when first
    asked for, so that a server starts (and answers ``tools/list``) without it."""
    if name == "KubeCluster":
        from mcp_kube.kube.cluster import KubeCluster

        return KubeCluster
    if name == "Credentials":
        from mcp_kube.kube.credentials import Credentials

        return Credentials
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
