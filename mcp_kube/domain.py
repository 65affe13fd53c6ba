"""Small validated value types shared by tools, the gate and the access layer."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import StringConstraints

__all__ = [
    "ACTING_FOR",
    "GPU_RESOURCE_PREFIXES",
    "KAI_QUEUE_LABEL",
    "KUBE_REQUESTS",
    "KUEUE_QUEUE_LABEL",
    "QUEUE_LABELS",
    "RESERVED_PRIORITY_PREFIX",
    "TRACE_HEADERS",
    "VOLCANO_QUEUE_ANNOTATION",
    "ClusterName",
    "DnsLabel",
    "DnsSubdomain",
    "Json",
    "LabelKey",
    "ManifestReview",
    "Principal",
    "is_gpu_resource",
]

# A JSON object as the Kubernetes API returns it, and as manifests are built: parsed into the
# typed views of ``kube.objects`` before tools reason about it.
Json = dict[str, Any]

# A namespace, a container name: RFC 1123 label.
DnsLabel = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
# Most object names (pods, jobs): RFC 1123 subdomain.
DnsSubdomain = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]
# A kubeconfig context or configured cluster name.
ClusterName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9@._:-]*$")
]
LabelKey = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=253,
        pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    ),
]

GPU_RESOURCE_PREFIXES = ("nvidia.com/gpu", "nvidia.com/mig-", "amd.com/gpu", "gpu.intel.com/")


def is_gpu_resource(name: str) -> bool:
    return name.startswith(GPU_RESOURCE_PREFIXES)


# Where a workload names its queue. Kueue manages a Job only when the Job itself carries
# KUEUE_QUEUE_LABEL; KAI-Scheduler reads a label too, Volcano an annotation.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# PriorityClasses named system-* belong to cluster components (system-node-critical,
# system-cluster-critical: priorities above 2,000,000,000, able to preempt anything). No policy
# may grant them to a submitted job.
RESERVED_PRIORITY_PREFIX = "system-"
KAI_QUEUE_LABEL = "kai.scheduler/queue"
VOLCANO_QUEUE_ANNOTATION = "scheduling.volcano.sh/queue-name"
QUEUE_LABELS = (KUEUE_QUEUE_LABEL, KAI_QUEUE_LABEL)


@dataclass(frozen=True)
class Principal:
    """Who is calling: never taken from tool arguments."""

    subject: str
    groups: tuple[str, ...] = ()
    authenticated_by: str = "stdio-os-user"
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ManifestReview:
    """The policy's verdict on a write's final manifest (after its defaults were applied)."""

    manifest: dict[str, Any]
    changes: list[str]  # what the policy's defaults changed, e.g. "set spec.backoffLimit=1"
    warnings: list[str]
    rules: list[str]  # ids of the rules that decided
    approval: Literal["none", "elicitation", "out_of_band"]
    # maxConcurrentGpusPerPrincipal: the most GPUs the caller's active Jobs may hold together,
    # this one included; the gate counts them in the cluster before anyone is asked to approve.
    # None: no such limit applies to this write.
    max_concurrent_gpus: int | None = None


# The verified caller a tool call runs for; the access layer impersonates it when configured.
ACTING_FOR: ContextVar[Principal | None] = ContextVar("mcp_kube_acting_for", default=None)
# The Kubernetes requests one tool call made (verb, path, status, Audit-ID), for its audit record.
KUBE_REQUESTS: ContextVar[list[dict[str, object]] | None] = ContextVar(
    "mcp_kube_kube_requests", default=None
)
# The W3C trace headers (traceparent, tracestate) sent on the Kubernetes requests made on behalf
# of the tool call running now; empty outside a call (cache list+watch, server's own requests).
TRACE_HEADERS: ContextVar[tuple[tuple[str, str], ...]] = ContextVar(
    "mcp_kube_trace_headers", default=()
)
