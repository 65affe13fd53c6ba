"""Logic of the workload, quota, usage and placement tools on plain data (no cluster).

An in-memory ClusterPort serves nodes, pods and objects; the tools run on it directly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
import pytest
from pydantic import ValidationError
from support.gates import run_tool, tool_context
from support.objects import H100, namespace, node, pod, pod_info, quota

from mcp_kube.domain import Json
from mcp_kube.errors import ClusterUnavailable
from mcp_kube.kube.memory import MemoryCluster
from mcp_kube.kube.objects import QuotaInfo
from mcp_kube.kube.port import Kind
from mcp_kube.tools import placement, usage
from mcp_kube.tools.placement import RECOMMEND_PLACEMENT, PlacementInput
from mcp_kube.tools.quota import GPU_QUOTA, GpuQuotaInput
from mcp_kube.tools.usage import GPU_USAGE_REPORT, GpuUsageInput
from mcp_kube.tools.workloads import GPU_WORKLOADS, GpuWorkloadsInput

NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def ago(hours: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours)


def down(name: str) -> MemoryCluster:
    """A cluster that does not answer."""
    return MemoryCluster(name, outage="test")


# ---------------------------------------------------------------------------- usage


def test_gpu_hours_count_only_the_overlap_with_the_window() -> None:
    start = ago(24)
    running = pod_info("a", gpus={"nvidia.com/gpu": 2}, started=ago(30))  # whole window: 24 h
    recent = pod_info("b", started=ago(1.5))  # 1.5 h
    ended = pod_info("c", phase="Succeeded", started=ago(26), finished=ago(20))  # 4 h inside
    before = pod_info("d", phase="Failed", started=ago(50), finished=ago(30))  # outside
    lost = pod_info("e", phase="Failed", started=ago(5))  # no finish time: not counted
    pending = pod_info("f", node="", started=None)
    assert usage.pod_gpu_hours(running, start, NOW) == pytest.approx(24)
    assert usage.pod_gpu_hours(recent, start, NOW) == pytest.approx(1.5)
    assert usage.pod_gpu_hours(ended, start, NOW) == pytest.approx(4)
    for p in (before, lost, pending):
        assert usage.pod_gpu_hours(p, start, NOW) == 0
    groups = usage.usage_by_group(
        {"c1": [running, recent, ended, before, lost, pending]}, "namespace", start, NOW
    )
    assert [(g.group, g.gpu_hours, g.pods) for g in groups] == [("team-a", 53.5, 3)]


def test_usage_groups_by_label_sorted_and_rounded() -> None:
    start = ago(24)
    pods = {
        "east": [
            pod_info("a", labels={"team": "nlp"}, started=ago(1 / 3)),
            pod_info("b", labels={"team": "vision"}, gpus={"nvidia.com/gpu": 8}, started=ago(2)),
            pod_info("c", started=ago(1)),
        ],
        "west": [pod_info("d", labels={"team": "nlp"}, started=ago(1))],
    }
    groups = usage.usage_by_group(pods, "label:team", start, NOW)
    assert [(g.group, g.gpu_hours, g.pods, g.clusters) for g in groups] == [
        ("vision", 16.0, 1, ["east"]),
        ("nlp", 1.333, 2, ["east", "west"]),
        (usage.NO_LABEL, 1.0, 1, ["east"]),
    ]


@pytest.mark.parametrize("group_by", ["namespace", "label:team", "label:app.kubernetes.io/name"])
def test_group_by_accepts_namespace_and_label_keys(group_by: str) -> None:
    assert GpuUsageInput(group_by=group_by).group_by == group_by


@pytest.mark.parametrize(
    "bad",
    [
        {"group_by": "node"},
        {"group_by": "label:"},
        {"group_by": "label:bad key"},
        {"group_by": "label:-team"},
        {"since_hours": 0},
        {"since_hours": 24 * 90 + 1},
        {"extra": 1},
    ],
)
def test_usage_input_refuses(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GpuUsageInput.model_validate(bad)


def test_usage_report_tool_totals_and_limit() -> None:
    now = dt.datetime.now(dt.UTC)  # the tool measures against the clock
    port = MemoryCluster(
        "c1",
        {
            Kind.PODS: [
                pod(f"p{i}", namespace=f"ns-{i}", started=now - dt.timedelta(hours=i + 1))
                for i in range(5)
            ]
        },
    )
    out = run_tool(GPU_USAGE_REPORT, GpuUsageInput(limit=2), port)
    assert [g.group for g in out.groups] == ["ns-4", "ns-3"]
    assert out.groups_total == 5
    assert out.total_gpu_hours == pytest.approx(15, abs=0.01)
    assert "GPU-hours" in GPU_USAGE_REPORT.summary(out)


# ---------------------------------------------------------------------------- workloads


def test_workloads_owners_queues_and_totals() -> None:
    port = MemoryCluster(
        "c1",
        {
            Kind.PODS: [
                pod("job-x-1", owner=("Job", "job-x"), labels={"kueue.x-k8s.io/queue-name": "q1"}),
                pod("orphan", labels={"batch.kubernetes.io/job-name": "old-job"}),
                pod(
                    "web-5d9", owner=("ReplicaSet", "web-5d9"), labels={"kai.scheduler/queue": "k"}
                ),
                pod("done", phase="Succeeded", owner=("Job", "j")),  # released its GPUs
                pod("waiting", node=""),  # not bound yet: holds nothing
                pod("cpu", gpus={}),
                pod("b1", namespace="team-b", gpus={"nvidia.com/mig-1g.10gb": 3}, started=ago(1)),
            ]
        },
    )
    out = run_tool(GPU_WORKLOADS, GpuWorkloadsInput(), port)
    rows = {w.pod: w for w in out.workloads}
    assert set(rows) == {"job-x-1", "orphan", "web-5d9", "b1"}
    assert (rows["job-x-1"].owner_kind, rows["job-x-1"].owner_name) == ("Job", "job-x")
    assert (rows["orphan"].owner_kind, rows["orphan"].owner_name) == ("Job", "old-job")
    assert (rows["web-5d9"].owner_kind, rows["web-5d9"].queue) == ("ReplicaSet", "k")
    assert rows["job-x-1"].queue == "q1"
    assert rows["b1"].age_s is not None
    assert rows["b1"].age_s >= 3600
    totals = {t.namespace: (t.pods, t.gpus) for t in out.totals}
    assert totals == {
        "team-a": (3, {"nvidia.com/gpu": 3}),
        "team-b": (1, {"nvidia.com/mig-1g.10gb": 3}),
    }


def test_fleet_view_reports_an_unreachable_cluster_and_serves_the_rest() -> None:
    ctx = tool_context(MemoryCluster("up", {Kind.PODS: [pod("a")]}), down("down"))
    out = anyio.run(GPU_WORKLOADS.run, ctx, GpuWorkloadsInput())
    assert [(c.cluster, c.reachable) for c in out.clusters] == [("up", True), ("down", False)]
    assert [w.pod for w in out.workloads] == ["a"]
    assert "down: unavailable" in GPU_WORKLOADS.summary(out)
    with pytest.raises(ClusterUnavailable):  # a named cluster fails loudly
        anyio.run(GPU_WORKLOADS.run, ctx, GpuWorkloadsInput(cluster="down"))


# ---------------------------------------------------------------------------- quota


def test_quota_views_read_gpu_lines_and_scheduler_queues() -> None:
    cq = {
        "metadata": {"name": "research"},
        "spec": {
            "cohort": "all",
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": "h100",
                            "resources": [
                                {"name": "cpu", "nominalQuota": "100"},
                                {
                                    "name": "nvidia.com/gpu",
                                    "nominalQuota": "16",
                                    "borrowingLimit": "4",
                                },
                            ],
                        }
                    ],
                }
            ],
        },
        "status": {
            "flavorsUsage": [
                {"name": "h100", "resources": [{"name": "nvidia.com/gpu", "total": "6"}]}
            ],
            "pendingWorkloads": 2,
        },
    }
    port = MemoryCluster(
        "c1",
        objects={
            Kind.RESOURCE_QUOTAS: [
                quota(
                    "team-a",
                    {
                        "requests.nvidia.com/gpu": "16",
                        "requests.cpu": "10",
                        "nvidia.com/mig-1g.10gb": "7",
                    },
                    {"requests.nvidia.com/gpu": "12", "requests.cpu": "2"},
                ),
                quota("team-b", {"requests.cpu": "4"}, {}),  # no GPU lines: left out
            ],
            Kind.KUEUE_CLUSTER_QUEUES: [cq, {"metadata": {"name": "other"}, "spec": {}}],
            Kind.KUEUE_LOCAL_QUEUES: [
                {
                    "metadata": {"name": "lq", "namespace": "team-a"},
                    "spec": {"clusterQueue": "research"},
                }
            ],
            Kind.KAI_QUEUES: [
                {
                    "metadata": {"name": "train"},
                    "spec": {
                        "parentQueue": "root",
                        "resources": {"gpu": {"quota": 8, "limit": -1, "overQuotaWeight": 2}},
                    },
                }
            ],
            Kind.VOLCANO_QUEUES: [
                {
                    "metadata": {"name": "default"},
                    "spec": {"weight": 1, "capability": {"nvidia.com/gpu": "32"}},
                    "status": {"state": "Open"},
                }
            ],
        },
    )
    out = run_tool(GPU_QUOTA, GpuQuotaInput(), port)
    [rq] = out.resource_quotas
    assert [(r.resource, r.hard, r.used) for r in rq.resources] == [
        ("nvidia.com/mig-1g.10gb", 7, None),
        ("requests.nvidia.com/gpu", 16, 12),
    ]
    research = next(q for q in out.cluster_queues if q.name == "research")
    [flavor] = research.flavors
    assert (flavor.flavor, flavor.nominal, flavor.borrowing_limit, flavor.used) == (
        "h100",
        16,
        4,
        6,
    )
    assert (research.cohort, research.pending_workloads) == ("all", 2)
    [kai] = out.kai_queues
    assert (kai.parent_queue, kai.gpu_quota, kai.gpu_limit, kai.over_quota_weight) == (
        "root",
        8,
        -1,
        2,
    )
    [vq] = out.volcano_queues
    assert (vq.gpu_capability, vq.weight, vq.state) == (32, 1, "Open")
    # one namespace: its quota, its local queues and only the cluster queues they use
    one = run_tool(GPU_QUOTA, GpuQuotaInput(namespace="team-a"), port)
    assert [q.name for q in one.cluster_queues] == ["research"]


def test_quota_without_scheduler_crds_is_empty() -> None:
    out = run_tool(GPU_QUOTA, GpuQuotaInput(), MemoryCluster("c1"))
    assert (out.cluster_queues, out.kai_queues, out.volcano_queues) == ([], [], [])
    assert GPU_QUOTA.summary(out) == "no GPU quotas or queues"


# ---------------------------------------------------------------------------- placement


def pv(name: str, zone: str) -> Json:
    term = {
        "matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}
        ]
    }
    return {
        "metadata": {"name": name},
        "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [term]}}},
    }


def pvc(name: str, namespace: str, volume: str) -> Json:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"volumeName": volume},
        "status": {"phase": "Bound"},
    }


def fleet() -> tuple[MemoryCluster, MemoryCluster]:
    east = MemoryCluster(
        "east",
        {
            Kind.NODES: [
                node("e-full", "e1"),
                node("e-free", "e1"),
                node("e-cordoned", "e1", cordoned=True),
                node("e-notready", "e1", ready=False),
                node("e-tainted", "e2", taints=(("dedicated", "NoSchedule"),)),
                node("e-l4", "e2", gpus=4, product="NVIDIA-L4", memory_mib=23034),
            ],
            Kind.PODS: [pod("big", node="e-full", gpus={"nvidia.com/gpu": 8})],
            Kind.NAMESPACES: [namespace("team-a")],
        },
    )
    west = MemoryCluster(
        "west",
        {
            Kind.NODES: [node("w-h200", "w1", product="NVIDIA-H200", memory_mib=143771)],
            Kind.PODS: [pod("two", node="w-h200", gpus={"nvidia.com/gpu": 2})],
            Kind.NAMESPACES: [namespace("team-a")],
        },
    )
    return east, west


def recommend(*ports: MemoryCluster, **args: Any) -> placement.Placement:
    out: placement.Placement = run_tool(RECOMMEND_PLACEMENT, PlacementInput(**args), *ports)
    return out


def test_placement_fits_on_one_schedulable_node_only() -> None:
    out = recommend(*fleet(), gpus=8)
    best = out.options[0]
    assert out.fits
    assert (best.cluster, best.zone, best.product) == ("east", "e1", H100)
    assert best.nodes_that_fit == ["e-free"]
    assert best.free_gpus_in_pool == 8  # cordoned and NotReady capacity is not free
    tainted = next(o for o in out.options if o.zone == "e2" and o.product == H100)
    assert not tainted.fits
    assert "no schedulable node" in tainted.reason
    h200 = next(o for o in out.options if o.cluster == "west")
    assert not h200.fits
    assert h200.largest_free_block == 6
    assert [o.fits for o in out.options] == sorted((o.fits for o in out.options), reverse=True)


def test_placement_filters_product_and_memory() -> None:
    out = recommend(*fleet(), gpus=2, product="h200")
    assert {o.product for o in out.options} == {"NVIDIA-H200"}
    out = recommend(*fleet(), gpus=2, min_gpu_memory_gib=100)
    assert {o.product for o in out.options} == {"NVIDIA-H200"}
    out = recommend(*fleet(), gpus=1, product="MI300")
    assert not out.fits
    assert out.options == []
    assert out.note
    assert "filters" in out.note


def test_placement_respects_quota_headroom() -> None:
    east, west = fleet()
    east.add(
        Kind.RESOURCE_QUOTAS,
        quota("team-a", {"requests.nvidia.com/gpu": "16"}, {"requests.nvidia.com/gpu": "12"}),
    )
    out = recommend(east, west, gpus=4, namespace="team-a")
    best = out.options[0]
    assert (best.cluster, best.fits, best.quota_headroom) == ("east", True, 4)
    out = recommend(east, west, gpus=6, namespace="team-a")
    east_h100 = next(o for o in out.options if o.cluster == "east" and o.zone == "e1")
    assert not east_h100.fits
    assert "quota headroom 4 < 6" in east_h100.reason
    assert out.options[0].cluster == "west"
    assert out.options[0].fits
    out = recommend(east, west, gpus=8, namespace="team-a")
    assert not out.fits
    assert out.note
    assert "quota" in out.note


def test_placement_prefers_the_zone_of_the_pvc_and_ranks_clusters_without_it_lower() -> None:
    east, west = fleet()
    west.add(Kind.NODES, node("w-h100-z2", "w2"))
    west.add(Kind.PVCS, pvc("data", "team-a", "pv-1"))
    west.add(Kind.PVS, pv("pv-1", "w2"))
    without = recommend(east, west, gpus=4, product="H100", namespace="team-a")
    assert without.options[0].cluster == "east"
    out = recommend(east, west, gpus=4, product="H100", namespace="team-a", near_pvc="data")
    best = out.options[0]
    assert (best.cluster, best.zone, best.near_data) == ("west", "w2", True)
    east_option = next(o for o in out.options if o.cluster == "east" and o.fits)
    assert east_option.near_data is False
    assert "not in this cluster" in east_option.reason
    assert east_option.score < best.score


def test_placement_skips_clusters_without_the_namespace_and_unreachable_ones() -> None:
    east, west = fleet()
    west.remove(Kind.NAMESPACES, "team-a")
    out = recommend(east, west, down("down"), gpus=2, namespace="team-a")
    west_option = next(o for o in out.options if o.cluster == "west")
    assert not west_option.fits
    assert "does not exist" in west_option.reason
    assert [c.cluster for c in out.clusters if not c.reachable] == ["down"]
    assert out.fits


def test_placement_nothing_fits_names_the_largest_block() -> None:
    out = recommend(*fleet(), gpus=64)
    assert not out.fits
    assert out.note == "nothing fits: largest free block 8 < 64"
    assert "nothing fits" in RECOMMEND_PLACEMENT.summary(out)


def test_placement_input_rules() -> None:
    for bad in (
        {"gpus": 0},
        {"gpus": 65},
        {"gpus": 1, "near_pvc": "data"},
        {"gpus": 1, "namespace": "A"},
    ):
        with pytest.raises(ValidationError):
            PlacementInput.model_validate(bad)


def test_headroom_takes_the_tightest_quota() -> None:
    quotas = [
        quota("a", {"requests.nvidia.com/gpu": "16"}, {"requests.nvidia.com/gpu": "4"}),
        quota("a", {"nvidia.com/gpu": "8", "requests.amd.com/gpu": "2"}, {"nvidia.com/gpu": "2"}),
    ]
    assert placement.headroom(quotas) == {"nvidia.com/gpu": 6, "amd.com/gpu": 2}


def test_quota_info_reads_the_enforced_hard_and_every_gpu_key() -> None:
    enforced = QuotaInfo.from_json(
        {
            "metadata": {"name": "q", "namespace": "team-a"},
            "spec": {"hard": {"requests.nvidia.com/gpu": "8", "pods": "9"}},
            "status": {
                "hard": {"requests.nvidia.com/gpu": "4", "pods": "9"},
                "used": {"requests.nvidia.com/gpu": "1", "limits.amd.com/gpu": "2"},
            },
        }
    )
    assert [(q.key, q.resource, q.hard, q.used) for q in enforced.gpu_lines] == [
        ("limits.amd.com/gpu", "amd.com/gpu", None, 2),
        ("requests.nvidia.com/gpu", "nvidia.com/gpu", 4, 1),
    ]
    unreconciled = QuotaInfo.from_json({"spec": {"hard": {"nvidia.com/gpu": "2", "cpu": "1"}}})
    assert [(q.key, q.hard, q.used) for q in unreconciled.gpu_lines] == [
        ("nvidia.com/gpu", 2, None)
    ]
