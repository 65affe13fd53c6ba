"""Kubernetes objects as plain JSON, as the API server returns them and as tests create them.

Every builder returns what a ``MemoryCluster`` stores and what a real API server accepts on
create (it replaces ``uid``, ``creationTimestamp`` and ``status`` with its own), so the same
builder serves unit tests and the live testbed. Times are ``datetime`` or RFC 3339 text.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from mcp_kube.domain import Json
from mcp_kube.kube.objects import NodeInfo, PodInfo

NS = "team-a"
H100 = "NVIDIA-H100-80GB-HBM3"
IMAGE = "registry.internal/ml/trainer:1.4.2"
JOB_CREATED = "2026-01-01T00:00:00Z"
JOB_STARTED = "2026-01-01T00:00:10Z"
POD_CREATED = "2026-01-01T00:00:05Z"
KWOK_COMPLETE = "pod-complete.stage.kwok.x-k8s.io/delay"  # the testbed ends such a pod after it

Time = dt.datetime | str | None
_events = itertools.count(1)


def stamp(t: Time) -> str | None:
    """RFC 3339 in UTC, as the API server writes times."""
    if isinstance(t, dt.datetime):
        return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return t


def condition(type_: str, status: str = "True", **extra: str) -> Json:
    """A status condition: ``condition("Complete")``, ``condition("PodScheduled", "False",
    reason="Unschedulable", message=...)``."""
    return {"type": type_, "status": status, **extra}


def _containers(
    names: Sequence[str], gpus: Mapping[str, int], image: str, env: Mapping[str, str] | None
) -> list[Json]:
    """Containers of a pod (template); the first asks for the GPUs (requests == limits)."""
    out: list[Json] = []
    for i, name in enumerate(names):
        c: Json = {"name": name, "image": image}
        if i == 0 and env:
            c["env"] = [{"name": k, "value": v} for k, v in env.items()]
        if i == 0 and gpus:
            amounts = {k: str(n) for k, n in gpus.items()}
            c["resources"] = {"requests": dict(amounts), "limits": dict(amounts)}
        out.append(c)
    return out


def _gpus(gpus: int | Mapping[str, int]) -> dict[str, int]:
    if isinstance(gpus, int):
        return {"nvidia.com/gpu": gpus} if gpus else {}
    return dict(gpus)


def namespace(name: str) -> Json:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def node(
    name: str,
    zone: str = "zone-a",
    *,
    gpus: int = 8,
    product: str = H100,
    memory_mib: int = 81559,
    ready: bool = True,
    cordoned: bool = False,
    taints: Sequence[tuple[str, str]] = (),
) -> Json:
    """A GPU node: the GPU Operator's product and memory labels, its zone, its GPUs."""
    labels = {
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.memory": str(memory_mib),
        "topology.kubernetes.io/zone": zone,
    }
    res = {"nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "unschedulable": cordoned,
            "taints": [{"key": k, "effect": e} for k, e in taints],
        },
        "status": {
            "allocatable": res,
            "capacity": dict(res),
            "conditions": [condition("Ready", "True" if ready else "False")],
        },
    }


def pod(
    name: str,
    namespace: str = NS,
    *,
    node: str = "h100-0",
    gpus: int | Mapping[str, int] = 1,
    phase: str = "Running",
    job: str | None = None,
    owner: tuple[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    created: Time = None,
    started: Time = None,
    finished: Time = None,
    restarts: int = 0,
    conditions: Sequence[Json] = (),
    containers: Sequence[str] = ("trainer",),
    image: str = IMAGE,
) -> Json:
    """A pod on ``node`` ("" while unscheduled). ``job``: a Job's pod (its ``job-name`` label
    and owner); ``owner``: any other controller, as (kind, name). ``finished``: when its
    container terminated. Created when it started, else at ``POD_CREATED``."""
    meta: Json = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}",
        "creationTimestamp": stamp(created or started) or POD_CREATED,
        "labels": ({"job-name": job} if job else {}) | dict(labels or {}),
    }
    if job or owner:
        kind, owner_name = owner or ("Job", str(job))
        meta["ownerReferences"] = [
            {
                "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
                "kind": kind,
                "name": owner_name,
                "uid": f"uid-{owner_name}",
                "controller": True,
            }
        ]
    state: Json = {"terminated": {"finishedAt": stamp(finished)}} if finished else {}
    status: Json = {
        "phase": phase,
        "conditions": list(conditions),
        "containerStatuses": [
            {
                "name": containers[0],
                "image": image,
                "imageID": "",
                "ready": phase == "Running",
                "restartCount": restarts,
                "state": state,
            }
        ],
    }
    if started:
        status["startTime"] = stamp(started)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": _containers(containers, _gpus(gpus), image, None),
        },
        "status": status,
    }


def job(
    name: str,
    namespace: str = NS,
    *,
    gpus: int | Mapping[str, int] = 1,
    conditions: Sequence[Json] = (),
    status: Mapping[str, Any] | None = None,
    suspend: bool = False,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    template_meta: Json | None = None,
    node_selector: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    image: str = IMAGE,
    created: Time = JOB_CREATED,
    started: Time = JOB_STARTED,
    backoff_limit: int = 0,
) -> Json:
    """A batch/v1 Job of one pod; its trainer container asks for ``gpus``. ``status`` adds
    to the observed status (``succeeded``, ``completionTime``, ...)."""
    pod_spec: Json = {
        "restartPolicy": "Never",
        "containers": _containers(("trainer",), _gpus(gpus), image, env),
    }
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    observed: Json = {"conditions": list(conditions), **(status or {})}
    if started:
        observed["startTime"] = stamp(started)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "creationTimestamp": stamp(created),
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": backoff_limit,
            "suspend": suspend,
            "template": {"metadata": dict(template_meta or {}), "spec": pod_spec},
        },
        "status": observed,
    }


def quota(
    namespace: str,
    hard: Mapping[str, str],
    used: Mapping[str, str] | None = None,
    name: str = "gpu-quota",
) -> Json:
    """A ResourceQuota as the quota controller has reconciled it (status.hard == spec.hard)."""
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hard": dict(hard)},
        "status": {"hard": dict(hard), "used": dict(used or {})},
    }


def event(
    kind: str,
    name: str,
    reason: str,
    message: str,
    last: Time,
    type_: str = "Warning",
    *,
    namespace: str = NS,
    count: int = 2,
) -> Json:
    """An Event about object ``kind``/``name``, last seen at ``last``."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{next(_events):x}", "namespace": namespace},
        "type": type_,
        "reason": reason,
        "message": message,
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
        "count": count,
        "lastTimestamp": stamp(last),
    }


def node_info(name: str, zone: str = "zone-a", **kw: Any) -> NodeInfo:
    """A node as the tools see it (``NodeInfo``), for tests of pure functions."""
    return NodeInfo.from_json(node(name, zone, **kw))


def pod_info(name: str, namespace: str = NS, **kw: Any) -> PodInfo:
    """A pod as the tools see it (``PodInfo``), for tests of pure functions."""
    return PodInfo.from_json(pod(name, namespace, **kw))
