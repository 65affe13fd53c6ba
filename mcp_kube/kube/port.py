"""The cluster port: the only way tools reach a cluster, and only through the gate.

Calls are typed (a fixed set of resource kinds, validated names); there is no generic
"request this path" method, no exec, no port-forward, no proxy and no kubeconfig access.
GPU metrics are typed too: PromQL built from typed arguments (``mcp_kube.metrics.promql``),
sent only to the cluster's configured metrics source.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from mcp_kube.domain import Json
from mcp_kube.kube.objects import NodeInfo, PodInfo
from mcp_kube.metrics.promql import PromQuery
from mcp_kube.metrics.result import Sample

__all__ = ["ClusterPort", "ClusterSource", "Kind", "LogChunk"]

T = TypeVar("T")


class Kind(enum.Enum):
    """Readable resource kinds: (API prefix, plural, namespaced)."""

    NODES = ("/api/v1", "nodes", False)
    PODS = ("/api/v1", "pods", True)
    EVENTS = ("/api/v1", "events", True)
    RESOURCE_QUOTAS = ("/api/v1", "resourcequotas", True)
    PVCS = ("/api/v1", "persistentvolumeclaims", True)
    PVS = ("/api/v1", "persistentvolumes", False)
    NAMESPACES = ("/api/v1", "namespaces", False)
    CONFIG_MAPS = ("/api/v1", "configmaps", True)
    JOBS = ("/apis/batch/v1", "jobs", True)
    KUEUE_CLUSTER_QUEUES = ("/apis/kueue.x-k8s.io/v1beta2", "clusterqueues", False)
    KUEUE_LOCAL_QUEUES = ("/apis/kueue.x-k8s.io/v1beta2", "localqueues", True)
    KUEUE_WORKLOADS = ("/apis/kueue.x-k8s.io/v1beta2", "workloads", True)
    KUEUE_RESOURCE_FLAVORS = ("/apis/kueue.x-k8s.io/v1beta2", "resourceflavors", False)
    KAI_QUEUES = ("/apis/scheduling.run.ai/v2", "queues", False)
    VOLCANO_QUEUES = ("/apis/scheduling.volcano.sh/v1beta1", "queues", False)
    SELF_SUBJECT_REVIEWS = ("/apis/authentication.k8s.io/v1", "selfsubjectreviews", False)
    TOKEN_REVIEWS = ("/apis/authentication.k8s.io/v1", "tokenreviews", False)

    @property
    def prefix(self) -> str:
        return self.value[0]

    @property
    def plural(self) -> str:
        return self.value[1]

    @property
    def namespaced(self) -> bool:
        return self.value[2]

    @property
    def optional(self) -> bool:
        """A CRD that may not be installed: absent means empty, not an error."""
        return self.name.startswith(("KUEUE_", "KAI_", "VOLCANO_"))


@dataclass(frozen=True)
class LogChunk:
    text: str
    bytes_read: int
    truncated: bool


class ClusterPort(Protocol):
    """Reads and writes on one cluster (implemented by ``kube.cluster.KubeCluster``)."""

    name: str
    # the kubeconfig contexts that point at this cluster's API server (one cluster however
    # many contexts; empty for the cluster the server runs in)
    contexts: tuple[str, ...]

    @property
    def context(self) -> str | None:
        """The context whose credentials are in use (None before the first request)."""
        ...

    async def version(self) -> Json: ...

    async def list_objects(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[Json]: ...

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Json: ...

    async def create(self, kind: Kind, namespace: str, body: Json, *, dry_run: bool) -> Json:
        """Create an object (``dryRun=All`` and ``fieldValidation=Strict`` when dry_run)."""
        ...

    async def patch(
        self, kind: Kind, name: str, namespace: str, patch: Json, *, dry_run: bool
    ) -> Json:
        """Merge-patch an object."""
        ...

    async def delete(self, kind: Kind, name: str, namespace: str, *, dry_run: bool) -> Json:
        """Delete an object, its dependents in the background."""
        ...

    async def nodes(self) -> list[NodeInfo]: ...

    async def pods(self) -> list[PodInfo]: ...

    async def derived(self, key: str, build: Callable[[list[NodeInfo], list[PodInfo]], T]) -> T:
        """``build(nodes, pods)`` (a pure function named by ``key``); an implementation with
        watch caches may return the earlier result while neither nodes nor pods changed."""
        ...

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None,
        tail_lines: int | None,
        since_seconds: int | None,
        limit_bytes: int,
        previous: bool,
    ) -> LogChunk: ...

    async def query_metrics(self, query: PromQuery) -> list[Sample]:
        """One instant query on this cluster's GPU metrics source (bounded, time-limited);
        ``MetricsUnavailable`` when it has none, or it is down, slow or refuses."""
        ...

    def gpu_price(self, product: str) -> float | None:
        """The configured price per GPU-hour of a GPU product (None: not priced)."""
        ...

    def cache_sizes(self) -> dict[str, int]:
        """Objects in this port's watch caches, by kind, for metrics (default: no caches)."""
        return {}


class ClusterSource(Protocol):
    """The clusters a server serves, by name (``kube.registry.ClusterRegistry``).

    What the gate needs of them, kept small so that a test can hand it memory clusters.
    """

    @property
    def names(self) -> list[str]: ...

    def resolve(self, name: str | None) -> str:
        """The cluster ``name`` means (None: the default), or ``UnknownCluster``/``NoClusters``."""
        ...

    def get(self, name: str | None) -> ClusterPort: ...

    def close(self) -> None:
        """Release connections and watch caches when the server stops (default: none held)."""
        return
