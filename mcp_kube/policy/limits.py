"""The policy's limits, judged in code rather than in CEL (pure).

Across policy files a number limit is the smallest one set, a list limit what every file that
sets it allows, and calls per minute come from the first file that names the tool (or ``*``).

A submitted Job's scheduling is judged before any rule, on the final manifest: a
``priorityClassName`` must be one the policy lists (``limits.priorityClasses``; none listed:
none allowed) and never a ``system-*`` class; a Kueue queue must be listed when the policy lists
queues (``limits.queues``); and the pod template may carry no tolerations, affinity or nodeName
and no node selector but ``nvidia.com/gpu.product`` (``submit_job`` writes none of those; one
that appears was added on the way, and could put pods on control-plane or tainted nodes).

``maxConcurrentGpusPerPrincipal`` counts the caller's active Jobs, which only the cluster knows:
the review hands the limit on (``ManifestReview.max_concurrent_gpus``), the gate counts, and
``check_concurrent_gpus`` decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from mcp_kube.domain import KUEUE_QUEUE_LABEL
from mcp_kube.errors import PolicyDenied
from mcp_kube.policy.manifest import manifest_gpus
from mcp_kube.policy.model import RESERVED_PRIORITY_PREFIX, Limits

__all__ = ["PolicyLimits", "check_concurrent_gpus"]

# The only node selector submit_job writes (its gpu_product argument).
ALLOWED_NODE_SELECTORS = frozenset({"nvidia.com/gpu.product"})
# Pod fields submit_job never writes; each would let pods onto control-plane or tainted nodes.
FORBIDDEN_POD_FIELDS = ("tolerations", "affinity", "nodeName")


def _deny_limit(limit: str, message: str) -> NoReturn:
    raise PolicyDenied(f"denied by policy limit {limit}: {message}", limit)


def check_concurrent_gpus(limit: int, running: int, wanted: int, subject: str) -> None:
    """Refuse a Job whose GPUs, with those of the caller's active Jobs, exceed ``limit``."""
    if running + wanted > limit:
        _deny_limit(
            "maxConcurrentGpusPerPrincipal",
            f"{running} GPUs already in active jobs of {subject} + {wanted} > {limit}",
        )


class PolicyLimits:
    """The ``limits`` of every policy file, combined."""

    def __init__(self, limits: Sequence[Limits]) -> None:
        self._all = list(limits)
        # the combined limits a review reads, worked out once (the files are frozen)
        self._max_gpus = self._smallest([lim.max_gpus_per_job for lim in self._all])
        self._queues = self._listed(lambda limits: limits.queues)

    def calls_per_minute(self, tool: str) -> int | None:
        for limits in self._all:
            cpm = limits.calls_per_minute
            if tool in cpm:
                return cpm[tool]
            if "*" in cpm:
                return cpm["*"]
        return None

    def max_gpus_per_job(self) -> int | None:
        return self._max_gpus

    @staticmethod
    def _smallest(values: Sequence[int | None]) -> int | None:
        set_ = [v for v in values if v is not None]
        return min(set_) if set_ else None

    def _listed(self, pick: Callable[[Limits], list[str] | None]) -> list[str] | None:
        """A list limit across files: what every file that sets it allows (None: none sets it)."""
        lists: list[list[str]] = [
            value for limits in self._all if (value := pick(limits)) is not None
        ]
        if not lists:
            return None
        common = set(lists[0]).intersection(*lists[1:])
        return [v for v in lists[0] if v in common]

    def allowed_priority_classes(self) -> list[str]:
        """PriorityClasses submit_job may name: listed by the policy, never system-*."""
        listed = self._listed(lambda limits: limits.priority_classes) or []
        return [c for c in listed if not c.startswith(RESERVED_PRIORITY_PREFIX)]

    def allowed_queues(self) -> list[str] | None:
        """Kueue LocalQueues submit_job may name; None: the policy does not restrict them."""
        return None if self._queues is None else list(self._queues)

    def check_scheduling(self, manifest: Mapping[str, Any]) -> None:
        """Refuse a Job whose scheduling the policy does not allow (``PolicyDenied``)."""
        spec = manifest.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        wanted = pod.get("priorityClassName")
        if wanted is not None:
            allowed = self.allowed_priority_classes()
            offer = (
                f"allowed: {', '.join(allowed)}"
                if allowed
                else "this policy allows none (limits.priorityClasses); leave it unset"
            )
            if str(wanted).startswith(RESERVED_PRIORITY_PREFIX):
                _deny_limit(
                    "priorityClasses",
                    f"priority_class {wanted!r} is refused: {RESERVED_PRIORITY_PREFIX}* classes "
                    f"belong to cluster components and are never allowed; {offer}",
                )
            if wanted not in allowed:
                _deny_limit("priorityClasses", f"priority_class {wanted!r} is not allowed; {offer}")
        labels = (manifest.get("metadata") or {}).get("labels") or {}
        queue = labels.get(KUEUE_QUEUE_LABEL)
        queues = self._queues
        if queue is not None and queues is not None and queue not in queues:
            offer = f"allowed: {', '.join(queues)}" if queues else "this policy allows none"
            _deny_limit("queues", f"queue {queue!r} is not allowed; {offer}")
        for key in FORBIDDEN_POD_FIELDS:
            if pod.get(key):
                _deny_limit(key, f"a submitted job may not set {key}")
        extra = sorted(set(pod.get("nodeSelector") or {}) - ALLOWED_NODE_SELECTORS)
        if extra:
            only = ", ".join(sorted(ALLOWED_NODE_SELECTORS))
            _deny_limit(
                "nodeSelector",
                f"a submitted job may select nodes only by {only} (gpu_product), "
                f"not by {', '.join(extra)}",
            )

    def max_concurrent_gpus_per_principal(self) -> int | None:
        """Handed to the gate in a submit_job's review: it counts the caller's active Jobs."""
        values = [
            limits.max_concurrent_gpus_per_principal
            for limits in self._all
            if limits.max_concurrent_gpus_per_principal is not None
        ]
        return min(values) if values else None

    def check_job(self, manifest: Mapping[str, Any]) -> None:
        """Refuse a submitted Job this policy's limits do not allow (``PolicyDenied``)."""
        self.check_scheduling(manifest)
        limit = self.max_gpus_per_job()
        if limit is not None:
            gpus = manifest_gpus(manifest)
            if gpus > limit:
                raise PolicyDenied(
                    f"denied by policy limit maxGpusPerJob: {gpus} GPUs requested, at most {limit}",
                    "maxGpusPerJob",
                )
