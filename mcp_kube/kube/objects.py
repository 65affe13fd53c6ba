"""Compact, typed views of the Kubernetes objects the tools reason about.

Raw API objects never leave the access layer: a pod becomes a ``PodInfo`` with its GPU requests,
owner and state, and nothing else (no env values, no annotations, no Secret references), so a
cache of 10,000 pods stays small and no tool can leak what it never holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from mcp_kube.domain import is_gpu_resource

__all__ = ["NodeInfo", "PodInfo", "parse_quantity", "parse_time"]

Json = dict[str, Any]
_NODE_LABEL_PREFIXES = (
    "nvidia.com/",
    "amd.com/",
    "beta.amd.com/",
    "topology.kubernetes.io/",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/hostname",
)
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def parse_quantity(value: str | int | float) -> float:
    """Kubernetes quantity -> number (GPU counts are integers; cpu/memory use suffixes)."""
    if isinstance(value, int | float):
        return float(value)
    s = value.strip()
    suffixes = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "Pi": 2**50,
        "Ei": 2**60,
        "n": 1e-9,
        "u": 1e-6,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "P": 1e15,
        "E": 1e18,
    }
    for suffix in sorted(suffixes, key=len, reverse=True):
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * suffixes[suffix]
    return float(s)


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


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
        meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
        labels = {
            k: v
            for k, v in (meta.get("labels") or {}).items()
            if k.startswith(_NODE_LABEL_PREFIXES)
        }
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        taints = tuple(
            sorted(
                (t.get("key", ""), t.get("effect", ""))
                for t in spec.get("taints") or []
                if t.get("effect") in ("NoSchedule", "NoExecute")
            )
        )

        def gpus(section: Json | None) -> dict[str, int]:
            return {
                k: int(parse_quantity(v)) for k, v in (section or {}).items() if is_gpu_resource(k)
            }

        return cls(
            name=meta.get("name", ""),
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
        meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
        gpus: dict[str, int] = {}
        for c in spec.get("containers") or []:
            res = c.get("resources") or {}
            # extended resources have requests == limits; either one alone counts too
            merged = {**(res.get("requests") or {}), **(res.get("limits") or {})}
            for k, v in merged.items():
                if is_gpu_resource(k):
                    gpus[k] = gpus.get(k, 0) + int(parse_quantity(v))
        # init containers run one at a time: the pod holds the larger of the two
        for c in spec.get("initContainers") or []:
            merged = {
                **((c.get("resources") or {}).get("requests") or {}),
                **((c.get("resources") or {}).get("limits") or {}),
            }
            for k, v in merged.items():
                if is_gpu_resource(k):
                    gpus[k] = max(gpus.get(k, 0), int(parse_quantity(v)))
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
                reason = cond.get("reason") or ""
                message = (cond.get("message") or "")[:500]
        return cls(
            name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            uid=meta.get("uid", ""),
            node=spec.get("nodeName") or "",
            phase=status.get("phase") or "Pending",
            gpus={k: v for k, v in gpus.items() if v > 0},
            owner_kind=owner.get("kind", ""),
            owner_name=owner.get("name", ""),
            labels=dict(list((meta.get("labels") or {}).items())[:32]),
            created=parse_time(meta.get("creationTimestamp")),
            started=parse_time(status.get("startTime")),
            finished=finished,
            restarts=restarts,
            scheduler=spec.get("schedulerName") or "default-scheduler",
            pending_reason=reason,
            pending_message=message,
            containers=tuple(c.get("name", "") for c in spec.get("containers") or []),
        )

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def holds_gpus(self) -> bool:
        return bool(self.gpus) and not self.terminal and bool(self.node)
