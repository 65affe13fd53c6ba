"""What the watch caches keep of each pod and node: exactly the fields the tools read.

The caches hold ``PodInfo`` / ``NodeInfo`` (never the API's dicts), so their memory at 10,000
pods is bounded by these fields (BENCHMARKS.md, B7). The field sets are pinned here: a field
added for a tool is a reviewed change (and a field no code reads any more fails
``test_every_kept_field_is_read``); a tool reading a field that is not kept fails mypy and, at
run time, raises (the classes have slots).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
from pathlib import Path

import pytest

from mcp_kube.kube.cache import WatchCache
from mcp_kube.kube.objects import NodeInfo, PodInfo

ROOT = Path(__file__).resolve().parents[2] / "mcp_kube"
POD_FIELDS = {
    "name",
    "namespace",
    "uid",
    "node",
    "phase",
    "gpus",
    "owner_kind",
    "owner_name",
    "labels",
    "created",
    "started",
    "finished",
    "restarts",
    "scheduler",
    "pending_reason",
    "pending_message",
    "containers",
}
NODE_FIELDS = {
    "name",
    "labels",
    "allocatable",
    "capacity",
    "ready",
    "unschedulable",
    "taints",
}
SECRET = "s3cr3t-value"


def raw_pod(name: str = "w-0", namespace: str = "team-a", node: str = "h100-0") -> dict:
    """A pod as the API server lists it, with much that no tool needs (env, annotations...)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "fcf86389-407c-4392-a035-c69621a18072",
            "resourceVersion": "50307",
            "creationTimestamp": "2026-12-01T02:14:49Z",
            "generation": 1,
            "labels": {"app.kubernetes.io/name": "trainer", "kueue.x-k8s.io/queue-name": "q"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": SECRET * 100},
            "ownerReferences": [
                {"kind": "Job", "name": "train", "controller": True, "uid": "u-1"},
            ],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "nodeName": node,
            "schedulerName": "default-scheduler",
            "containers": [
                {
                    "name": "trainer",
                    "image": "registry.internal/ml/trainer:1.4.2",
                    "env": [{"name": "TOKEN", "value": SECRET}],
                    "command": ["python", "train.py", f"--key={SECRET}"],
                    "resources": {
                        "requests": {"nvidia.com/gpu": "2", "cpu": "8"},
                        "limits": {"nvidia.com/gpu": "2"},
                    },
                    "volumeMounts": [{"name": "creds", "mountPath": "/creds"}],
                }
            ],
            "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
            "tolerations": [{"operator": "Exists"}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.20.7",
            "startTime": "2026-12-01T02:16:45Z",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "trainer", "restartCount": 1, "state": {"running": {}}},
            ],
        },
    }


def raw_node(name: str = "h100-0") -> dict:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "topology.kubernetes.io/zone": "zone-a",
                "beta.kubernetes.io/os": "linux",
                "team.example.com/owner": SECRET,
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "x": SECRET},
        },
        "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "PreferNoSchedule"}]},
        "status": {
            "allocatable": {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1Ti"},
            "capacity": {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1Ti"},
            "conditions": [{"type": "Ready", "status": "True"}],
            "images": [{"names": ["registry.internal/ml/trainer:1.4.2"], "sizeBytes": 1}],
            "nodeInfo": {"kubeletVersion": "v1.36.0"},
        },
    }


def _values(x: object) -> list[object]:
    """Every scalar inside a value (dicts, tuples, lists walked)."""
    if isinstance(x, dict):
        return [v for k, val in x.items() for v in (k, *_values(val))]
    if isinstance(x, list | tuple):
        return [v for item in x for v in _values(item)]
    return [x]


def test_the_kept_fields_are_pinned() -> None:
    assert {f.name for f in dataclasses.fields(PodInfo)} == POD_FIELDS
    assert {f.name for f in dataclasses.fields(NodeInfo)} == NODE_FIELDS
    assert not hasattr(PodInfo.from_json(raw_pod()), "__dict__")  # slots: nothing else fits


def test_every_kept_field_is_read() -> None:
    """Each field is read somewhere outside objects.py (else it is memory for nothing)."""
    read: set[str] = set()
    for path in ROOT.rglob("*.py"):
        if path.name == "objects.py" and path.parent.name == "kube":
            continue
        read |= {
            n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)
        }
    assert POD_FIELDS - read == set()
    assert NODE_FIELDS - read == set()


def test_a_cached_pod_holds_what_tools_read_and_nothing_else() -> None:
    p = PodInfo.from_json(raw_pod())
    assert (p.name, p.namespace, p.node, p.phase) == ("w-0", "team-a", "h100-0", "Running")
    assert p.gpus == {"nvidia.com/gpu": 2}
    assert (p.owner_kind, p.owner_name, p.restarts, p.containers) == (
        "Job",
        "train",
        1,
        ("trainer",),
    )
    assert p.queue == "q"
    assert p.created is not None
    assert p.started is not None
    values = _values([getattr(p, f) for f in POD_FIELDS])
    assert not any(SECRET in str(v) for v in values)  # no env, command, annotations, volumes
    assert not any(isinstance(v, dict) for v in values)


def test_a_cached_node_keeps_only_scheduling_labels_and_gpu_resources() -> None:
    n = NodeInfo.from_json(raw_node())
    assert n.labels == {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "topology.kubernetes.io/zone": "zone-a",
    }
    assert n.allocatable == n.capacity == {"nvidia.com/gpu": 8}
    assert n.schedulable  # PreferNoSchedule does not keep GPU work away
    assert not any(SECRET in str(v) for v in _values([getattr(n, f) for f in NODE_FIELDS]))


def test_repeated_strings_are_held_once() -> None:
    """Namespaces, node names, label keys and values, resource names: one object per fleet."""
    # decoded JSON, as the API's answers: equal strings, distinct objects
    a = PodInfo.from_json(json.loads(json.dumps(raw_pod("w-0"))))
    b = PodInfo.from_json(json.loads(json.dumps(raw_pod("w-1"))))
    node = NodeInfo.from_json(json.loads(json.dumps(raw_node())))
    assert a.namespace is b.namespace
    assert a.node is b.node is node.name
    assert a.phase is b.phase
    assert a.owner_name is b.owner_name
    assert a.started is b.started  # one datetime per distinct time
    for (ka, va), (kb, vb) in zip(a.labels.items(), b.labels.items(), strict=True):
        assert ka is kb
        assert va is vb
    assert next(iter(a.gpus)) is next(iter(b.gpus)) is sys.intern("nvidia.com/gpu")


def test_the_cache_stores_the_trimmed_objects_only() -> None:
    pages = [[raw_pod(f"w-{i}") for i in range(3)], [raw_pod("w-3")]]
    cache = WatchCache(
        "pods", lambda: [(p, "1") for p in pages], lambda rv: iter(()), PodInfo.from_json, 10
    )
    try:
        got = cache.snapshot(5)
    finally:
        cache.stop()
    assert [p.name for p in got] == ["w-0", "w-1", "w-2", "w-3"]
    assert all(type(p) is PodInfo for p in got)
    assert pages == [[], []]  # the raw objects were let go as they were trimmed


@pytest.mark.parametrize("field", sorted(POD_FIELDS))
def test_no_pod_field_is_a_raw_api_object(field: str) -> None:
    value = getattr(PodInfo.from_json(raw_pod()), field)
    assert not (isinstance(value, dict) and {"metadata", "spec", "status"} & value.keys())
