"""gpu_workloads, gpu_quota, gpu_usage_report and recommend_placement against the live testbed.

Calls go through the gate (validation, policy, tool errors) without the MCP transport. The
expected numbers come from the fleet files. Objects this module creates are named ``wt-...``
and removed again; nothing existing is changed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from support.gates import call, error_code, ok

from mcp_kube.gate import Gate
from mcp_kube.testbed import cluster, fleet
from mcp_kube.tools.placement import RECOMMEND_PLACEMENT
from mcp_kube.tools.quota import GPU_QUOTA
from mcp_kube.tools.usage import GPU_USAGE_REPORT
from mcp_kube.tools.workloads import GPU_WORKLOADS

EAST, WEST = fleet.load_fleet("default"), fleet.load_fleet("west")
BAD_NODES = {"h100-cordoned-0", "h100-notready-0", "h100-tainted-0"}


def _core(testbed: cluster.TestbedState, context: str) -> client.CoreV1Api:
    cfg = client.Configuration()
    config.load_kube_config(
        config_file=testbed.kubeconfig, context=context, client_configuration=cfg
    )
    return client.CoreV1Api(client.ApiClient(cfg))


# ---------------------------------------------------------------------------- gpu_workloads


def test_workloads_list_the_fleet_pods_with_nodes_and_gpus(gate: Gate) -> None:
    out = ok(call(gate, GPU_WORKLOADS, {"limit": 1000}))
    assert all(c["reachable"] for c in out["clusters"])
    rows = {(w["cluster"], w["namespace"], w["pod"]): w for w in out["workloads"]}
    for fl in (EAST, WEST):
        for w in fl.workloads:
            key = (fl.cluster, w.namespace, w.name)
            if not w.resource:
                assert key not in rows  # web-0 holds no GPU
                continue
            row = rows[key]
            assert row["node"] == w.node
            assert row["gpus"] == {w.resource: w.count}
            assert row["owner_kind"] is None  # the fleet's pods are bare pods
            assert row["age_s"] >= 0
    totals = {(t["cluster"], t["namespace"]): t for t in out["totals"]}
    assert totals["gpu-east", "team-a"]["gpus"]["nvidia.com/gpu"] >= 12
    assert totals["gpu-west", "team-b"]["gpus"]["nvidia.com/gpu"] >= 8


def test_workloads_filter_by_cluster_and_namespace_and_page(gate: Gate) -> None:
    east = {"cluster": "gpu-east", "namespace": "team-a"}
    first = ok(call(gate, GPU_WORKLOADS, east | {"limit": 2}))
    assert [c["cluster"] for c in first["clusters"]] == ["gpu-east"]
    assert first["page"]["returned"] == 2
    seen = [w["pod"] for w in first["workloads"]]
    cursor = first["page"]["next_cursor"]
    while cursor:
        more = ok(call(gate, GPU_WORKLOADS, east | {"limit": 2, "cursor": cursor}))
        seen += [w["pod"] for w in more["workloads"]]
        cursor = more["page"]["next_cursor"]
    assert {"llama-pretrain-0", "leftover-eval-0", "mig-infer-0"} <= set(seen)
    assert len(seen) == len(set(seen)) == first["page"]["total"]


def test_workloads_refuse_bad_arguments(gate: Gate) -> None:
    assert error_code(call(gate, GPU_WORKLOADS, {"cluster": "nope"})) == "unknown_cluster"
    assert error_code(call(gate, GPU_WORKLOADS, {"namespace": "Team_A"})) == "invalid_argument"


# ---------------------------------------------------------------------------- gpu_quota


def test_quota_used_and_hard_match_the_fleet(gate: Gate, settled_fleet: None) -> None:
    out = ok(call(gate, GPU_QUOTA, {}))
    got = {
        (q["cluster"], q["namespace"]): {r["resource"]: r for r in q["resources"]}
        for q in out["resource_quotas"]
    }
    for fl in (EAST, WEST):
        for ns in fl.namespaces:
            if ns.gpu_quota is None:
                continue
            line = got[fl.cluster, ns.name]["requests.nvidia.com/gpu"]
            assert line["hard"] == ns.gpu_quota
            assert line["used"] == fl.expected.quota_used[ns.name]


def test_quota_reads_kueue_queues_and_tolerates_absent_schedulers(gate: Gate) -> None:
    out = ok(call(gate, GPU_QUOTA, {}))
    research = next(
        q for q in out["cluster_queues"] if q["cluster"] == "gpu-east" and q["name"] == "research"
    )
    nominal = {f["flavor"]: f["nominal"] for f in research["flavors"]}
    assert nominal == {"h100": 16, "l4": 8}
    assert {f["resource"] for f in research["flavors"]} == {"nvidia.com/gpu"}
    local = {(q["namespace"], q["name"], q["cluster_queue"]) for q in out["local_queues"]}
    assert {("team-a", "team-a-queue", "research"), ("team-b", "team-b-queue", "research")} <= local
    # gpu-west has no Kueue; neither cluster has KAI-Scheduler or Volcano: empty, not errors
    assert not [q for q in out["cluster_queues"] if q["cluster"] == "gpu-west"]
    assert out["kai_queues"] == []
    assert out["volcano_queues"] == []
    assert all(c["reachable"] for c in out["clusters"])


def test_quota_for_one_namespace(gate: Gate) -> None:
    out = ok(call(gate, GPU_QUOTA, {"cluster": "gpu-east", "namespace": "team-b"}))
    assert [(q["namespace"], q["name"]) for q in out["resource_quotas"]] == [
        ("team-b", "gpu-quota")
    ]
    assert [q["name"] for q in out["local_queues"]] == ["team-b-queue"]
    assert [q["name"] for q in out["cluster_queues"]] == ["research"]


# ---------------------------------------------------------------------------- gpu_usage_report


def test_usage_report_by_namespace(gate: Gate) -> None:
    out = ok(call(gate, GPU_USAGE_REPORT, {"since_hours": 24}))
    groups = {g["group"]: g for g in out["groups"]}
    assert groups["team-a"]["gpu_hours"] > 0
    assert groups["team-a"]["pods"] >= 4  # 3 in gpu-east, 1 in gpu-west
    assert groups["team-a"]["clusters"] == ["gpu-east", "gpu-west"]
    hours = [g["gpu_hours"] for g in out["groups"]]
    assert hours == sorted(hours, reverse=True)
    assert out["total_gpu_hours"] == pytest.approx(sum(hours), abs=0.01)


def test_usage_report_by_label_and_validation(gate: Gate) -> None:
    by_app = {"cluster": "gpu-east", "group_by": "label:app.kubernetes.io/name"}
    out = ok(call(gate, GPU_USAGE_REPORT, by_app))
    assert "llama-pretrain" in {g["group"] for g in out["groups"]}
    for bad in ({"group_by": "label:Bad Key!"}, {"group_by": "node"}, {"since_hours": 0}):
        assert error_code(call(gate, GPU_USAGE_REPORT, bad)) == "invalid_argument"


# ---------------------------------------------------------------------------- placement


def _never_bad(out: dict[str, Any]) -> None:
    for o in out["options"]:
        assert not BAD_NODES & set(o["nodes_that_fit"])
        if o["cluster"] == "gpu-east" and o["zone"] == "east-1b" and "H100" in o["product"]:
            assert not o["fits"]  # only the tainted H100 node lives there


def test_placement_of_8_h100_picks_a_node_with_8_free(gate: Gate, settled_fleet: None) -> None:
    out = ok(call(gate, RECOMMEND_PLACEMENT, {"gpus": 8, "product": "h100"}))
    best = out["options"][0]
    assert out["fits"]
    assert best["fits"]
    assert (best["cluster"], best["zone"]) == ("gpu-east", "east-1a")
    assert best["nodes_that_fit"] == ["h100-2"]  # h100-0 is full, h100-1 has 6 free
    assert all("H100" in o["product"] for o in out["options"])
    west = next(o for o in out["options"] if o["cluster"] == "gpu-west")
    assert not west["fits"]
    assert west["largest_free_block"] == 6
    _never_bad(out)


def test_placement_respects_quota_headroom(gate: Gate, settled_fleet: None) -> None:
    # team-a: gpu-east headroom 16 - 12 = 4, gpu-west 8 - 2 = 6: 8 GPUs fit nowhere
    out = ok(call(gate, RECOMMEND_PLACEMENT, {"gpus": 8, "product": "H100", "namespace": "team-a"}))
    assert not out["fits"]
    assert "quota" in out["note"]
    east = next(o for o in out["options"] if o["nodes_that_fit"])
    assert east["quota_headroom"] == 4
    assert "quota headroom 4 < 8" in east["reason"]
    # 4 fit in both clusters
    out = ok(call(gate, RECOMMEND_PLACEMENT, {"gpus": 4, "product": "H100", "namespace": "team-a"}))
    fitting = {(o["cluster"], o["zone"]) for o in out["options"] if o["fits"]}
    assert fitting == {("gpu-east", "east-1a"), ("gpu-west", "west-1a")}
    _never_bad(out)


def test_placement_of_64_gpus_says_nothing_fits(gate: Gate, settled_fleet: None) -> None:
    out = ok(call(gate, RECOMMEND_PLACEMENT, {"gpus": 64}))
    assert not out["fits"]
    assert not any(o["fits"] for o in out["options"])
    assert "largest free block 8 < 64" in out["note"]
    assert len(out["options"]) <= 10


def test_placement_filters_by_memory(gate: Gate) -> None:
    out = ok(call(gate, RECOMMEND_PLACEMENT, {"gpus": 1, "min_gpu_memory_gib": 150}))
    assert {o["product"] for o in out["options"]} == {"AMD-Instinct-MI300X"}
    for bad in ({"gpus": 65}, {"gpus": 1, "near_pvc": "x"}):
        assert error_code(call(gate, RECOMMEND_PLACEMENT, bad)) == "invalid_argument"


@pytest.fixture
def west_pvc(testbed: cluster.TestbedState) -> Iterator[str]:
    """A PVC in gpu-west team-a, statically bound to a PV pinned to zone west-1a."""
    core = _core(testbed, "gpu-west")
    suffix = uuid.uuid4().hex[:8]
    pv_name, pvc_name, ns = f"wt-pv-{suffix}", f"wt-pvc-{suffix}", "team-a"
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["west-1a"]}
    core.create_persistent_volume(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "wt-manual",
                "hostPath": {"path": f"/tmp/{pv_name}"},
                "claimRef": {"namespace": ns, "name": pvc_name},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [zone]}]}},
            },
        }
    )
    try:
        core.create_namespaced_persistent_volume_claim(
            ns,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": pvc_name},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "wt-manual",
                    "volumeName": pv_name,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        deadline = time.monotonic() + 60
        while core.read_namespaced_persistent_volume_claim(pvc_name, ns).status.phase != "Bound":
            assert time.monotonic() < deadline, "the PVC did not bind"
            time.sleep(0.5)
        yield pvc_name
    finally:
        for delete in (
            lambda: core.delete_namespaced_persistent_volume_claim(pvc_name, ns),
            lambda: core.delete_persistent_volume(pv_name),
        ):
            try:
                delete()
            except ApiException as e:
                if e.status != 404:
                    raise


def test_placement_prefers_the_zone_of_the_data(
    gate: Gate, settled_fleet: None, west_pvc: str
) -> None:
    base = {"gpus": 4, "product": "H100", "namespace": "team-a"}
    without = ok(call(gate, RECOMMEND_PLACEMENT, base))
    assert without["options"][0]["cluster"] == "gpu-east"  # more free H100s there
    out = ok(call(gate, RECOMMEND_PLACEMENT, {**base, "near_pvc": west_pvc}))
    best = out["options"][0]
    assert (best["cluster"], best["zone"], best["fits"]) == ("gpu-west", "west-1a", True)
    assert best["near_data"] is True
    assert "zone of the PVC" in best["reason"]
    for o in out["options"]:
        if o["cluster"] == "gpu-east":
            assert o["near_data"] is False
            assert o["score"] < best["score"]
    _never_bad(out)
