"""Logic of the workload, quota, usage and placement tools on plain data (no cluster).

An in-memory ClusterPort serves nodes, pods and objects; the tools run on it directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from mcp_kube.domain import Json, Principal
from mcp_kube.errors import ClusterUnavailable, NotFound
from mcp_kube.kube.objects import NodeInfo, PodInfo, QuotaInfo
from mcp_kube.kube.port import ClusterPort, Kind, LogChunk
from mcp_kube.settings import Limits
from mcp_kube.tools import placement, usage
from mcp_kube.tools.placement import RECOMMEND_PLACEMENT, PlacementInput
from mcp_kube.tools.quota import GPU_QUOTA, GpuQuotaInput
from mcp_kube.tools.usage import GPU_USAGE_REPORT, GpuUsageInput
from mcp_kube.tools.workloads import GPU_WORKLOADS, GpuWorkloadsInput

NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)
H100 = "NVIDIA-H100-80GB-HBM3"


def ago(hours: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours)


def node(
    name: str,
    zone: str,
    gpus: int = 8,
    product: str = H100,
    memory_mib: int = 81559,
    ready: bool = True,
    cordoned: bool = False,
    taints: tuple[tuple[str, str], ...] = (),
) -> NodeInfo:
    labels = {
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.memory": str(memory_mib),
        "topology.kubernetes.io/zone": zone,
    }
    res = {"nvidia.com/gpu": gpus}
    return NodeInfo(name, labels, res, res, ready, cordoned, taints)


def pod(
    name: str,
    namespace: str = "team-a",
    node_name: str = "n1",
    gpus: dict[str, int] | None = None,
    started: dt.datetime | None = None,
    phase: str = "Running",
    finished: dt.datetime | None = None,
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] = ("", ""),
) -> PodInfo:
    return PodInfo(
        name=name,
        namespace=namespace,
        uid=name,
        node=node_name,
        phase=phase,
        gpus={"nvidia.com/gpu": 1} if gpus is None else gpus,
        owner_kind=owner[0],
        owner_name=owner[1],
        labels=labels or {},
        created=started,
        started=started,
        finished=finished,
        restarts=0,
        scheduler="default-scheduler",
    )


@dataclass
class FakePort:
    name: str
    node_list: list[NodeInfo] = field(default_factory=list)
    pod_list: list[PodInfo] = field(default_factory=list)
    objects: dict[Kind, list[Json]] = field(default_factory=dict)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise ClusterUnavailable(f"cluster unavailable: {self.name} (test)")

    async def version(self) -> Json:
        return {"gitVersion": "v1.36.0"}

    async def list_objects(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[Json]:
        self._check()
        return [
            o
            for o in self.objects.get(kind, [])
            if namespace is None or o["metadata"].get("namespace") == namespace
        ]

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Json:
        self._check()
        for o in await self.list_objects(kind, namespace):
            if o["metadata"]["name"] == name:
                return o
        raise NotFound(f"{self.name}: {kind.plural} {name!r} not found")

    async def nodes(self) -> list[NodeInfo]:
        self._check()
        return self.node_list

    async def pods(self) -> list[PodInfo]:
        self._check()
        return self.pod_list

    async def derived(self, key: str, build: Any) -> Any:
        return build(await self.nodes(), await self.pods())

    async def pod_log(self, namespace: str, pod: str, **_: Any) -> LogChunk:
        raise NotImplementedError


class FakeContext:
    def __init__(self, *ports: FakePort) -> None:
        self.principal = Principal("tester")
        self.limits = Limits()
        self._ports = {p.name: p for p in ports}

    def cluster(self, name: str | None) -> ClusterPort:
        return self._ports[name or next(iter(self._ports))]

    def clusters(self, name: str | None) -> list[ClusterPort]:
        return [self.cluster(name)] if name else list(self._ports.values())

    def cluster_names(self) -> list[str]:
        return list(self._ports)

    def permissions(self) -> list[tuple[str, bool, str]]:
        return []

    @property
    def progress_patterns(self) -> Sequence[str]:
        return ()


def ns(name: str) -> Json:
    return {"metadata": {"name": name}}


def quota(namespace: str, hard: dict[str, str], used: dict[str, str]) -> Json:
    return {
        "metadata": {"name": "gpu-quota", "namespace": namespace},
        "spec": {"hard": hard},
        "status": {"hard": hard, "used": used},
    }


# ---------------------------------------------------------------------------- usage


def test_gpu_hours_count_only_the_overlap_with_the_window() -> None:
    start = ago(24)
    running = pod("a", gpus={"nvidia.com/gpu": 2}, started=ago(30))  # whole window: 24 h
    recent = pod("b", started=ago(1.5))  # 1.5 h
    ended = pod("c", phase="Succeeded", started=ago(26), finished=ago(20))  # 4 h inside
    before = pod("d", phase="Failed", started=ago(50), finished=ago(30))  # outside
    lost = pod("e", phase="Failed", started=ago(5))  # no finish time: not counted
    pending = pod("f", node_name="", started=None)
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
            pod("a", labels={"team": "nlp"}, started=ago(1 / 3)),
            pod("b", labels={"team": "vision"}, gpus={"nvidia.com/gpu": 8}, started=ago(2)),
            pod("c", started=ago(1)),
        ],
        "west": [pod("d", labels={"team": "nlp"}, started=ago(1))],
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
    port = FakePort(
        "c1",
        pod_list=[
            pod(f"p{i}", namespace=f"ns-{i}", started=now - dt.timedelta(hours=i + 1))
            for i in range(5)
        ],
    )
    out = anyio.run(GPU_USAGE_REPORT.run, FakeContext(port), GpuUsageInput(limit=2))
    assert [g.group for g in out.groups] == ["ns-4", "ns-3"]
    assert out.groups_total == 5
    assert out.total_gpu_hours == pytest.approx(15, abs=0.01)
    assert "GPU-hours" in GPU_USAGE_REPORT.summary(out)


# ---------------------------------------------------------------------------- workloads


def test_workloads_owners_queues_and_totals() -> None:
    port = FakePort(
        "c1",
        pod_list=[
            pod("job-x-1", owner=("Job", "job-x"), labels={"kueue.x-k8s.io/queue-name": "q1"}),
            pod("orphan", labels={"batch.kubernetes.io/job-name": "old-job"}),
            pod("web-5d9", owner=("ReplicaSet", "web-5d9"), labels={"kai.scheduler/queue": "k"}),
            pod("done", phase="Succeeded", owner=("Job", "j")),  # released its GPUs
            pod("waiting", node_name=""),  # not bound yet: holds nothing
            pod("cpu", gpus={}),
            pod("b1", namespace="team-b", gpus={"nvidia.com/mig-1g.10gb": 3}, started=ago(1)),
        ],
    )
    out = anyio.run(GPU_WORKLOADS.run, FakeContext(port), GpuWorkloadsInput())
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
    up = FakePort("up", pod_list=[pod("a")])
    down = FakePort("down", down=True)
    ctx = FakeContext(up, down)
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
    port = FakePort(
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
    out = anyio.run(GPU_QUOTA.run, FakeContext(port), GpuQuotaInput())
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
    one = anyio.run(GPU_QUOTA.run, FakeContext(port), GpuQuotaInput(namespace="team-a"))
    assert [q.name for q in one.cluster_queues] == ["research"]


def test_quota_without_scheduler_crds_is_empty() -> None:
    out = anyio.run(GPU_QUOTA.run, FakeContext(FakePort("c1")), GpuQuotaInput())
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


def fleet() -> tuple[FakePort, FakePort]:
    east = FakePort(
        "east",
        node_list=[
            node("e-full", "e1"),
            node("e-free", "e1"),
            node("e-cordoned", "e1", cordoned=True),
            node("e-notready", "e1", ready=False),
            node("e-tainted", "e2", taints=(("dedicated", "NoSchedule"),)),
            node("e-l4", "e2", gpus=4, product="NVIDIA-L4", memory_mib=23034),
        ],
        pod_list=[pod("big", node_name="e-full", gpus={"nvidia.com/gpu": 8})],
        objects={Kind.NAMESPACES: [ns("team-a")]},
    )
    west = FakePort(
        "west",
        node_list=[node("w-h200", "w1", product="NVIDIA-H200", memory_mib=143771)],
        pod_list=[pod("two", node_name="w-h200", gpus={"nvidia.com/gpu": 2})],
        objects={Kind.NAMESPACES: [ns("team-a")]},
    )
    return east, west


def recommend(*ports: FakePort, **args: Any) -> placement.Placement:
    return anyio.run(RECOMMEND_PLACEMENT.run, FakeContext(*ports), PlacementInput(**args))


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
    east.objects[Kind.RESOURCE_QUOTAS] = [
        quota("team-a", {"requests.nvidia.com/gpu": "16"}, {"requests.nvidia.com/gpu": "12"})
    ]
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
    west.node_list.append(node("w-h100-z2", "w2"))
    west.objects[Kind.PVCS] = [pvc("data", "team-a", "pv-1")]
    west.objects[Kind.PVS] = [pv("pv-1", "w2")]
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
    west.objects[Kind.NAMESPACES] = []
    down = FakePort("down", down=True)
    out = recommend(east, west, down, gpus=2, namespace="team-a")
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
