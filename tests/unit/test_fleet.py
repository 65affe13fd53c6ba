"""The fleet files are valid, and their `expected` blocks agree with their node groups."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml
from pydantic import ValidationError

from mcp_kube.errors import TestbedError
from mcp_kube.testbed import fleet

PROFILES = ["default", "west", "scale"]


def _node_is_free_capacity(node: dict) -> bool:
    spec = node["spec"]
    ready = fleet.KWOK_ANNOTATION in node["metadata"]["annotations"]
    no_schedule = any(t["effect"] in ("NoSchedule", "NoExecute") for t in spec.get("taints", []))
    return ready and not spec.get("unschedulable") and not no_schedule


def _recompute(fl: fleet.Fleet) -> dict:
    """Inventory numbers computed from the manifests the testbed creates."""
    nodes = {n["metadata"]["name"]: n for n in fleet.node_manifests(fl)}
    pods = fleet.workload_manifests(fl)
    allocated: Counter[tuple[str, str]] = Counter()
    quota: Counter[str] = Counter()
    for pod in pods:
        node = pod["spec"]["nodeName"]
        for res, qty in pod["spec"]["containers"][0]["resources"].get("requests", {}).items():
            allocated[node, res] += int(qty)
            if res == "nvidia.com/gpu":
                quota[pod["metadata"]["namespace"]] += int(qty)
    resources: dict[str, Counter[str]] = {}
    products: dict[str, Counter[str]] = {}
    for name, node in nodes.items():
        labels = node["metadata"]["labels"]
        product = labels.get("nvidia.com/gpu.product") or labels.get("amd.com/gpu.product-name")
        whole = {"nvidia.com/gpu", "amd.com/gpu"}
        for res, qty in node["status"]["allocatable"].items():
            if "gpu" not in res and "mig-" not in res:
                continue
            used = allocated[name, res]
            free = int(qty) - used if _node_is_free_capacity(node) else 0
            tot = resources.setdefault(res, Counter())
            tot.update(allocatable=int(qty), allocated=used, free=free)
            if res in whole and product:
                p = products.setdefault(product, Counter())
                p.update(allocatable=int(qty), allocated=used, free=free)
        if product:
            products.setdefault(product, Counter())["nodes"] += 1
    return {
        "nodes": len(nodes),
        "gpu_nodes": sum(
            1
            for n in nodes.values()
            if any("gpu" in r or "mig-" in r for r in n["status"]["allocatable"])
        ),
        "pods": len(pods),
        "resources": resources,
        "products": products,
        "quota": quota,
    }


@pytest.mark.parametrize("profile", PROFILES)
def test_expected_block_matches_the_fleet(profile: str) -> None:
    fl = fleet.load_fleet(profile)
    got = _recompute(fl)
    exp = fl.expected
    assert got["nodes"] == exp.nodes
    assert got["gpu_nodes"] == exp.gpu_nodes
    if exp.pods is not None:
        assert got["pods"] == exp.pods
    for res, totals in exp.resources.items():
        assert dict(got["resources"][res]) == {
            "allocatable": totals.allocatable,
            "allocated": totals.allocated,
            "free": totals.free,
        }, res
    for product, totals in exp.products.items():
        assert got["products"][product]["nodes"] == totals.nodes, product
        for key in ("allocatable", "allocated", "free"):
            assert got["products"][product][key] == getattr(totals, key), (product, key)
    for ns, used in exp.quota_used.items():
        assert got["quota"][ns] == used


def test_default_fleet_covers_every_gpu_situation() -> None:
    nodes = {n["metadata"]["name"]: n for n in fleet.node_manifests(fleet.load_fleet("default"))}
    mig = nodes["a100-mig-0"]
    assert mig["status"]["allocatable"]["nvidia.com/mig-1g.10gb"] == "14"
    assert "nvidia.com/gpu" not in mig["status"]["allocatable"]
    assert mig["metadata"]["labels"]["nvidia.com/mig.strategy"] == "mixed"
    assert mig["metadata"]["labels"]["nvidia.com/mig-3g.40gb.memory"] == str(40 * 1024)

    l4 = nodes["l4-shared-0"]
    assert l4["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-L4-SHARED"
    assert l4["metadata"]["labels"]["nvidia.com/gpu.replicas"] == "4"
    assert l4["status"]["allocatable"]["nvidia.com/gpu"] == "16"  # 4 GPUs x 4 replicas

    assert nodes["h100-cordoned-0"]["spec"]["unschedulable"] is True
    notready = nodes["h100-notready-0"]
    assert fleet.KWOK_ANNOTATION not in notready["metadata"]["annotations"]
    assert notready["status"]["conditions"][0]["status"] == "False"
    assert nodes["h100-tainted-0"]["spec"]["taints"][0]["effect"] == "NoSchedule"
    assert nodes["mi300x-0"]["status"]["allocatable"]["amd.com/gpu"] == "8"
    assert "nvidia.com/gpu.present" not in nodes["cpu-0"]["metadata"]["labels"]
    gfd = nodes["h100-0"]["metadata"]["labels"]
    for key in ("gpu.count", "gpu.memory", "gpu.family", "cuda.driver.major", "gpu.compute.major"):
        assert f"nvidia.com/{key}" in gfd
    for node in nodes.values():
        assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.1"}


def test_scale_profile_has_a_thousand_gpu_nodes_and_ten_thousand_pods() -> None:
    fl = fleet.load_fleet("scale")
    assert len(fleet.node_manifests(fl)) == 1000
    assert len(fleet.workload_manifests(fl)) == 10_000


def test_unknown_fields_and_profiles_are_rejected(tmp_path, monkeypatch) -> None:
    data = yaml.safe_load(fleet.fleet_path("west").read_text())
    data["node_groups"][0]["gpus_typo"] = 3
    with pytest.raises(ValidationError, match="gpus_typo"):
        fleet.Fleet.model_validate(data)
    with pytest.raises(TestbedError, match=r"unknown fleet profile 'nope'; known: default"):
        fleet.load_fleet("nope")
