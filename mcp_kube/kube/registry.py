"""The clusters this server serves, by name: kubeconfig contexts grouped by API server.

A cluster is an API server, not a kubeconfig context: contexts that point at the same server
(server URL and CA) are one cluster, named after its first context, whose credentials are those
of the current context (when it points there) or else of the first of its contexts that may
list nodes and pods (chosen at its first request, ``mcp_kube.kube.credentials``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp_kube.errors import NoClusters, UnknownCluster
from mcp_kube.kube.kubeconfig import (
    Contexts,
    ServerKey,
    kubeconfig_source,
    load_api_client,
    read_contexts,
)
from mcp_kube.settings import ClusterSettings

if TYPE_CHECKING:
    from kubernetes import client as k8s

    from mcp_kube.kube.cluster import KubeCluster

__all__ = ["ClusterRegistry"]


@dataclass(frozen=True)
class _Served:
    """One served cluster: its name, its contexts and whose credentials it uses."""

    name: str
    contexts: tuple[str, ...]  # every served context pointing at this API server
    candidates: tuple[str, ...]  # contexts whose credentials may be used, preferred first
    choose: bool  # try the candidates in turn (else the first, as it is)
    in_cluster: bool = False


class ClusterRegistry:
    """The clusters this server serves: kubeconfig contexts grouped by API server, and the
    cluster the server runs in.

    Contexts that point at the same API server (server URL and CA) are one cluster, named
    after its first context (in file order, or in the order of the ``contexts`` allowlist).
    Its credentials are the current context's when the current context points at it (and no
    allowlist is given); otherwise the first of its contexts whose credentials may list nodes
    and pods. Another context of a cluster is not a cluster name: naming one is refused with
    the cluster to use instead, so a policy that names a cluster cannot be sidestepped.
    """

    def __init__(self, settings: ClusterSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._clusters: dict[str, KubeCluster] = {}
        self._served: dict[str, _Served] = {}
        self._alias: dict[str, str] = {}  # served context -> its cluster's name
        self.default: str | None = None
        self._kubeconfig, self.source = kubeconfig_source(settings.kubeconfig)
        found = read_contexts(self._kubeconfig)
        self.problem = found.problem  # why the kubeconfig gave no context, in words
        self._serve(found, self._allowed(found))
        if settings.in_cluster:
            name = settings.in_cluster_name
            self._served[name] = _Served(name, (), (), False, in_cluster=True)
            self.default = self.default or name

    def _allowed(self, found: Contexts) -> list[str]:
        """The contexts to serve: the allowlist (each must exist), else every one."""
        allow = self._settings.contexts
        if not allow:
            return list(found.servers)
        missing = [c for c in allow if c not in found.servers]
        if missing:
            where = f"{self.source}" + (f", which {self.problem}" if self.problem else "")
            raise UnknownCluster(f"configured contexts not in the {where}: {', '.join(missing)}")
        return list(dict.fromkeys(allow))

    def _serve(self, found: Contexts, names: list[str]) -> None:
        """One served cluster per API server among ``names``; the default cluster."""
        groups: dict[ServerKey, list[str]] = {}
        for ctx in names:
            groups.setdefault(found.servers[ctx], []).append(ctx)
        current = found.current
        for members in groups.values():
            if not self._settings.contexts and current in members:
                served = _Served(members[0], tuple(members), (current,), False)  # you are you
            else:
                served = _Served(members[0], tuple(members), tuple(members), True)
            self._served[served.name] = served
            for ctx in members:
                self._alias[ctx] = served.name
        if current is not None and current in self._alias:
            self.default = self._alias[current]
        elif self._served:
            self.default = next(iter(self._served))

    @property
    def names(self) -> list[str]:
        return list(self._served)

    def contexts_of(self, name: str) -> list[str]:
        """The served kubeconfig contexts of a cluster (empty for the in-cluster one)."""
        return list(self._served[self.resolve(name)].contexts)

    def describe(self) -> str:
        """What was read and what is served, for the server's start line."""
        if not self._served:
            problem = f" {self.problem}" if self.problem else ""
            return (
                f"read {self.source}:{problem}; found no context: no cluster to serve "
                "(every cluster tool answers no_clusters)"
            )
        parts = []
        for s in self._served.values():
            if s.in_cluster:
                parts.append(f"{s.name} (the cluster this pod runs in)")
                continue
            creds = s.candidates[0] if not s.choose else "the first that may list nodes and pods"
            parts.append(f"{s.name} (contexts: {', '.join(s.contexts)}; credentials: {creds})")
        return f"read {self.source}: clusters " + "; ".join(parts)

    def _no_clusters(self) -> NoClusters:
        problem = f" {self.problem}" if self.problem else ""
        return NoClusters(
            f"no clusters: {self.source}{problem}, so no context was found. Point --kubeconfig "
            "or $KUBECONFIG at a kubeconfig with contexts (or serve --in-cluster)"
        )

    def resolve(self, name: str | None) -> str:
        if not self._served:
            raise self._no_clusters()
        chosen = name or self.default
        if chosen is None:  # unreachable: a served cluster is always the default
            raise self._no_clusters()
        if chosen in self._served:
            return chosen
        valid = ", ".join(self._served)
        owner = self._alias.get(chosen)
        if owner is not None:
            raise UnknownCluster(
                f"unknown cluster {chosen!r}: it is a kubeconfig context of cluster {owner!r} "
                f"(the same API server); use cluster {owner!r}; valid clusters: {valid}"
            )
        raise UnknownCluster(f"unknown cluster {chosen!r}; valid clusters: {valid}")

    def get(self, name: str | None) -> KubeCluster:
        # the kubernetes client comes with the first cluster used, not with the server's start
        from mcp_kube.kube.cluster import KubeCluster
        from mcp_kube.kube.credentials import Credentials

        chosen = self.resolve(name)
        with self._lock:
            cluster = self._clusters.get(chosen)
            if cluster is None:
                served = self._served[chosen]
                creds = [
                    Credentials(ctx, self._loader(chosen, ctx))
                    for ctx in served.candidates or (None,)
                ]
                cluster = KubeCluster(
                    chosen,
                    creds,
                    self._settings,
                    contexts=served.contexts,
                    choose=served.choose,
                )
                self._clusters[chosen] = cluster
            return cluster

    def _loader(self, name: str, context: str | None) -> Callable[[], k8s.ApiClient]:
        return lambda: load_api_client(self._kubeconfig, name, context)

    def close(self) -> None:
        with self._lock:
            for cluster in self._clusters.values():
                cluster.close()
            self._clusters.clear()
