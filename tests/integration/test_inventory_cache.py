"""The GPU view is computed once per change of the watch caches and reused between calls: a
warm call must still show a pod that started or went away a moment ago."""

from __future__ import annotations

import time
from typing import Any

import anyio
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from mcp_kube.domain import Principal
from mcp_kube.tools.catalog import by_name

ME = Principal("tester", (), "test")
H100 = "NVIDIA-H100-80GB-HBM3"


def free_h100(gate: Any) -> int:
    result = anyio.run(
        gate.call, by_name()["gpu_inventory"], {"cluster": "gpu-east", "include_nodes": False}, ME
    )
    assert not result.is_error, result.content
    products = result.structured_content["fleet_products"]
    return next(p["free"] for p in products if p["product"] == H100)


def wait_for(gate: Any, expected: int) -> int:
    deadline = time.monotonic() + 20
    while (got := free_h100(gate)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return got


def test_a_new_gpu_pod_and_its_deletion_show_in_the_cached_view(testbed, gate, settled_fleet):
    before = free_h100(gate)
    assert free_h100(gate) == before  # reused: nothing changed
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    core = k8s.CoreV1Api(api)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "cache-probe", "namespace": "ml-platform"},
        "spec": {
            "nodeName": "h100-2",
            "containers": [
                {
                    "name": "c",
                    "image": "registry.internal/x:1",
                    "resources": {
                        "requests": {"nvidia.com/gpu": "2"},
                        "limits": {"nvidia.com/gpu": "2"},
                    },
                }
            ],
        },
    }
    core.create_namespaced_pod("ml-platform", pod)
    try:
        assert wait_for(gate, before - 2) == before - 2
    finally:
        core.delete_namespaced_pod("cache-probe", "ml-platform", grace_period_seconds=0)
    assert wait_for(gate, before) == before
