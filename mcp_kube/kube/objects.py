"""Compact, typed views of the Kubernetes objects the tools reason about.

Raw API objects never leave the access layer: a pod becomes a ``PodInfo`` with its GPU requests,
owner and state, and nothing else (no env values, no annotations, no Secret references), so a
cache of 10,000 pods stays small and no tool can leak what it never holds. A Job becomes a
``JobInfo`` (with the one rule for its state) and a ResourceQuota a ``QuotaInfo`` (its GPU
lines), each parsed once here rather than walked as dicts by every caller.

The strings a fleet repeats (namespaces, node names, phases, owner and scheduler names, label
keys and values, resource names) are interned, so that the cache holds each once, not once per
pod; names and uids, unique per object, are kept as parsed.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from mcp_kube.domain import (
    KUEUE_QUEUE_LABEL,
    QUEUE_LABELS,
    VOLCANO_QUEUE_ANNOTATION,
    Json,
    is_gpu_resource,
)
from mcp_kube.kube.scalars import parse_count, parse_quantity, parse_time

__all__ = [
    "JobCondition",
    "JobInfo",
    "JobState",
    "NodeInfo",
    "PodInfo",
    "QuotaInfo",
    "QuotaLine",
    "pod_gpus",
    "queue_name",
    "quota_resource",
]

_NODE_LABEL_PREFIXES = (
    "nvidia.com/",
    "amd.com/",
    "beta.amd.com/",
    "topology.kubernetes.io/",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/hostname",
)
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
POD_LABELS_KEPT = 32  # the first labels of a pod, for grouping and queue names


def _intern(text: object) -> str:
    """One shared copy of a repeated string (a JSON null reads as "", anything else as text)."""
    return sys.intern(text if type(text) is str else "" if text is None else str(text))


def _interned(labels: Mapping[str, str]) -> dict[str, str]:
    return {_intern(k): _intern(v) for k, v in labels.items()}


def _parts(obj: Json) -> tuple[Json, Json, Json]:
    """metadata, spec and status of an API object ({} for each one absent)."""
    return obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}


def queue_name(
    labels: Mapping[str, str], annotations: Mapping[str, str] | None = None
) -> str | None:
    """The Kueue or KAI queue label, else the Volcano queue annotation; None without one."""
    for key in QUEUE_LABELS:
        if labels.get(key):
            return labels[key]
    return (annotations or {}).get(VOLCANO_QUEUE_ANNOTATION) or None


def _gpu_requests(containers: list[Json] | None) -> list[dict[str, int]]:
    """GPU resources each container asks for (extended resources: requests == limits, and
    either one alone counts)."""
    out = []
    for c in containers or []:
        res = c.get("resources") or {}
        merged = {**(res.get("requests") or {}), **(res.get("limits") or {})}
        out.append(
            {_intern(k): int(parse_quantity(v)) for k, v in merged.items() if is_gpu_resource(k)}
        )
    return out


def pod_gpus(spec: Json) -> dict[str, int]:
    """GPUs a pod (or a pod template's spec) holds: its containers' sum, or more when an init
    container (they run one at a time) asks for more."""
    gpus: dict[str, int] = {}
    for c in _gpu_requests(spec.get("containers")):
        for k, n in c.items():
            gpus[k] = gpus.get(k, 0) + n
    for c in _gpu_requests(spec.get("initContainers")):
        for k, n in c.items():
            gpus[k] = max(gpus.get(k, 0), n)
    return {k: v for k, v in gpus.items() if v > 0}


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    labels: dict[str, str]
    allocatable: dict[str, int]  # GPU resources only
    capacity: dict[str, int]
    ready: bool
    unschedulable: bool
    taints: tuple[tuple[str, str], ...]  # (key, effect) of NoSchedule / NoExecute taints

    @classmethod
    def from_json(cls, obj: Json) -> NodeInfo:
        meta, spec, status = _parts(obj)
        labels = _interned(
            {
                k: v
                for k, v in (meta.get("labels") or {}).items()
                if k.startswith(_NODE_LABEL_PREFIXES)
            }
        )
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        taints = tuple(
            sorted(
                (_intern(t.get("key", "")), _intern(t.get("effect", "")))
                for t in spec.get("taints") or []
                if t.get("effect") in ("NoSchedule", "NoExecute")
            )
        )

        def gpus(section: Json | None) -> dict[str, int]:
            return {
                _intern(k): int(parse_quantity(v))
                for k, v in (section or {}).items()
                if is_gpu_resource(k)
            }

        return cls(
            name=_intern(meta.get("name", "")),  # pods name their node: one string for both
            labels=labels,
            allocatable=gpus(status.get("allocatable")),
            capacity=gpus(status.get("capacity")),
            ready=ready,
            unschedulable=bool(spec.get("unschedulable")),
            taints=taints,
        )

    @property
    def schedulable(self) -> bool:
        """New GPU work can land here: Ready, not cordoned, no NoSchedule/NoExecute taint."""
        return self.ready and not self.unschedulable and not self.taints


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str
    namespace: str
    uid: str
    node: str
    phase: str
    gpus: dict[str, int]
    owner_kind: str
    owner_name: str
    labels: dict[str, str]
    created: dt.datetime | None
    started: dt.datetime | None
    finished: dt.datetime | None
    restarts: int
    scheduler: str
    pending_reason: str = ""
    pending_message: str = ""
    containers: tuple[str, ...] = field(default=())

    @classmethod
    def from_json(cls, obj: Json) -> PodInfo:
        meta, spec, status = _parts(obj)
        owners = meta.get("ownerReferences") or []
        owner = next((o for o in owners if o.get("controller")), owners[0] if owners else {})
        finished = None
        restarts = 0
        for cs in status.get("containerStatuses") or []:
            restarts += int(cs.get("restartCount") or 0)
            term = (cs.get("state") or {}).get("terminated")
            if term and term.get("finishedAt"):
                t = parse_time(term["finishedAt"])
                if t and (finished is None or t > finished):
                    finished = t
        reason = message = ""
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                reason = _intern(cond.get("reason") or "")
                message = (cond.get("message") or "")[:500]
        return cls(
            name=meta.get("name", ""),
            namespace=_intern(meta.get("namespace", "")),
            uid=meta.get("uid", ""),
            node=_intern(spec.get("nodeName") or ""),
            phase=_intern(status.get("phase") or "Pending"),
            gpus=pod_gpus(spec),
            owner_kind=_intern(owner.get("kind", "")),
            owner_name=_intern(owner.get("name", "")),
            labels=_interned(dict(list((meta.get("labels") or {}).items())[:POD_LABELS_KEPT])),
            created=parse_time(meta.get("creationTimestamp")),
            started=parse_time(status.get("startTime")),
            finished=finished,
            restarts=restarts,
            scheduler=_intern(spec.get("schedulerName") or "default-scheduler"),
            pending_reason=reason,
            pending_message=message,
            containers=tuple(_intern(c.get("name", "")) for c in spec.get("containers") or []),
        )

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def holds_gpus(self) -> bool:
        return bool(self.gpus) and not self.terminal and bool(self.node)

    @property
    def queue(self) -> str | None:
        """The Kueue or KAI-Scheduler queue label (of the labels kept)."""
        return queue_name(self.labels)


JobState = Literal["active", "succeeded", "failed", "suspended"]


@dataclass(frozen=True, slots=True)
class JobCondition:
    type: str
    status: str
    reason: str
    message: str
    last_transition: dt.datetime | None


def _job_conditions(status: Json) -> tuple[JobCondition, ...]:
    return tuple(
        JobCondition(
            type=str(c.get("type") or ""),
            status=str(c.get("status") or ""),
            reason=str(c.get("reason") or ""),
            message=str(c.get("message") or ""),
            last_transition=parse_time(c.get("lastTransitionTime")),
        )
        for c in status.get("conditions") or []
    )


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A batch/v1 Job: what tools and the gate ask of it, with the one rule for its state.

    * ``succeeded`` / ``failed``: the Job controller set the terminal condition ``Complete`` /
      ``Failed``. Every pod has stopped; nothing more will run. Only these are ``terminal``.
    * ``active``: not terminal and not suspended. That includes a Job whose outcome is decided
      (``SuccessCriteriaMet`` or ``FailureTarget``, see ``decided``) while the controller still
      stops its remaining pods: they may hold GPUs until Complete or Failed is added.
    * ``suspended``: spec.suspend is set (e.g. waiting for Kueue to admit it), not terminal.

    A Job that is not terminal counts as holding (or about to hold) its GPUs.
    """

    name: str
    namespace: str
    uid: str
    created: dt.datetime | None
    suspend: bool
    parallelism: int
    completions: int | None
    succeeded_pods: int
    failed_pods: int
    active_pods: int
    started: dt.datetime | None
    completion_time: dt.datetime | None
    conditions: tuple[JobCondition, ...]
    gpus: dict[str, int]  # per pod, from the pod template
    queue: str | None  # Kueue / KAI / Volcano, from the Job or its pod template
    kueue_queue: str | None  # Kueue's label on the Job itself: only then Kueue manages it

    @classmethod
    def from_json(cls, obj: Json) -> JobInfo:
        meta, spec, status = _parts(obj)
        template = spec.get("template") or {}
        tmeta = template.get("metadata") or {}
        labels = meta.get("labels") or {}
        queue = queue_name(labels, meta.get("annotations")) or queue_name(
            tmeta.get("labels") or {}, tmeta.get("annotations")
        )
        return cls(
            name=str(meta.get("name") or ""),
            namespace=str(meta.get("namespace") or ""),
            uid=str(meta.get("uid") or ""),
            created=parse_time(meta.get("creationTimestamp")),
            suspend=bool(spec.get("suspend")),
            parallelism=int(spec.get("parallelism", 1) or 0),
            completions=spec.get("completions"),
            succeeded_pods=int(status.get("succeeded") or 0),
            failed_pods=int(status.get("failed") or 0),
            active_pods=int(status.get("active") or 0),
            started=parse_time(status.get("startTime")),
            completion_time=parse_time(status.get("completionTime")),
            conditions=_job_conditions(status),
            gpus=pod_gpus(template.get("spec") or {}),
            queue=queue,
            kueue_queue=str(labels[KUEUE_QUEUE_LABEL]) if labels.get(KUEUE_QUEUE_LABEL) else None,
        )

    def condition(self, type_: str) -> JobCondition | None:
        """The condition of this type when it is True."""
        return next((c for c in self.conditions if c.type == type_ and c.status == "True"), None)

    @property
    def terminal(self) -> bool:
        return bool(self.condition("Complete") or self.condition("Failed"))

    @property
    def state(self) -> JobState:
        if self.condition("Complete"):
            return "succeeded"
        if self.condition("Failed"):
            return "failed"
        return "suspended" if self.suspend else "active"

    @property
    def decided(self) -> Literal["succeeded", "failed"] | None:
        """The outcome once the controller has decided it, terminal or not yet."""
        if self.condition("Complete") or self.condition("SuccessCriteriaMet"):
            return "succeeded"
        if self.condition("Failed") or self.condition("FailureTarget"):
            return "failed"
        return None

    @property
    def finished(self) -> dt.datetime | None:
        """status.completionTime, or when the Failed condition was set."""
        if self.completion_time is not None:
            return self.completion_time
        failed = self.condition("Failed")
        return failed.last_transition if failed else None


@dataclass(frozen=True, slots=True)
class QuotaLine:
    """One GPU line of a ResourceQuota; ``key`` as written: requests.X, limits.X or X."""

    key: str
    hard: int | None
    used: int | None

    @property
    def resource(self) -> str:
        return quota_resource(self.key)


def quota_resource(key: str) -> str:
    """The resource a quota key bounds: requests.X, limits.X and X all bound X."""
    return key.removeprefix("requests.").removeprefix("limits.")


@dataclass(frozen=True, slots=True)
class QuotaInfo:
    """A ResourceQuota's GPU lines. ``hard`` is status.hard (what quota admission enforces
    now; it follows spec.hard within one controller pass), else spec.hard before that."""

    name: str
    namespace: str
    gpu_lines: tuple[QuotaLine, ...]  # sorted by key

    @classmethod
    def from_json(cls, obj: Json) -> QuotaInfo:
        meta, spec, status = _parts(obj)
        hard = status.get("hard") or spec.get("hard") or {}
        used = status.get("used") or {}
        keys = sorted(k for k in {*hard, *used} if is_gpu_resource(quota_resource(k)))
        return cls(
            name=str(meta.get("name") or ""),
            namespace=str(meta.get("namespace") or ""),
            gpu_lines=tuple(
                QuotaLine(key=k, hard=parse_count(hard.get(k)), used=parse_count(used.get(k)))
                for k in keys
            ),
        )
