"""The GPU view is computed once per change of the watch caches and reused between calls: a
warm call must still show a pod that started or went away a moment ago."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from support.gates import call, ok
from support.objects import H100, pod
from support.waiting import wait_for

from mcp_kube.domain import Principal

ME = Principal("tester", (), "test")


def free_h100(gate: Any) -> int:
    out = ok(call(gate, "gpu_inventory", {"cluster": "gpu-east", "include_nodes": False}, ME))
    return next(p["free"] for p in out["fleet_products"] if p["product"] == H100)


def shows(gate: Any, free: int) -> None:
    """Until a call shows ``free`` H100s free (20 s at most)."""
    wait_for(lambda: free_h100(gate) == free, f"{free} free H100s", timeout=20, every=0.2)


def test_a_new_gpu_pod_and_its_deletion_show_in_the_cached_view(testbed, gate, settled_fleet):
    before = free_h100(gate)
    assert free_h100(gate) == before  # reused: nothing changed
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    core = k8s.CoreV1Api(api)
    probe = pod("cache-probe", "ml-platform", node="h100-2", gpus=2, containers=("c",))
    core.create_namespaced_pod("ml-platform", probe)
    try:
        shows(gate, before - 2)
    finally:
        core.delete_namespaced_pod("cache-probe", "ml-platform", grace_period_seconds=0)
    shows(gate, before)
