"""GPU telemetry without a cluster: the fleet files' expected answers, the PromQL the server
builds, and the metric tools on memory clusters whose Prometheus is simulated (support.promsim).
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from support.gates import call, error_of, make_gate, ok, run_tool
from support.objects import job, pod
from support.promsim import simulated

from mcp_kube.errors import InvalidArgument, MetricsUnavailable
from mcp_kube.kube.memory import MemoryCluster
from mcp_kube.kube.port import Kind
from mcp_kube.metrics import promql
from mcp_kube.metrics.promql import Matcher
from mcp_kube.metrics.result import parse_vector
from mcp_kube.testbed import fleet, gpusim
from mcp_kube.tools.gpumetrics import DeviceStats, group_stats
from mcp_kube.tools.idle import IDLE_GPUS, IdleGpusInput
from mcp_kube.tools.usage import GPU_USAGE_REPORT, GpuUsageInput
from mcp_kube.tools.utilization import GPU_UTILIZATION, GpuUtilizationInput

T0 = 1_790_000_040.0  # a testbed start, on a minute
PROFILES = ["default", "west"]


def _cluster(profile: str, at: float = T0) -> MemoryCluster:
    """The fleet's workload pods in memory, its Prometheus simulated, its prices set."""
    fl = fleet.load_fleet(profile)
    assert fl.telemetry is not None
    started = dt.datetime.fromtimestamp(at - 24 * 3600, dt.UTC)
    pods = [
        pod(w.name, w.namespace, node=w.node, gpus={w.resource: w.count}, started=started)
        for w in fl.workloads
        if w.resource
    ]
    cluster = MemoryCluster(fl.cluster, {Kind.PODS: pods})
    cluster.metrics = simulated(fl, T0)
    cluster.prices = dict(fl.telemetry.prices)
    return cluster


def _expected(profile: str) -> fleet.Fleet:
    fl = fleet.load_fleet(profile)
    assert fl.telemetry is not None
    assert fl.telemetry.expected is not None
    return fl


# ---------------------------------------------------------------------------- fleet files


@pytest.mark.parametrize("profile", PROFILES)
def test_expected_telemetry_follows_from_the_patterns(profile: str) -> None:
    """The fleet file's answers, recomputed minute by minute from the simulated exporter."""
    fl = _expected(profile)
    exp = fl.telemetry.expected  # type: ignore[union-attr]
    minutes = [T0 - 24 * 3600 + 60 * i for i in range(1, 24 * 60 + 1)]
    held: dict[str, list[float]] = {}
    cost: dict[str, float] = {}
    for d in gpusim.devices(fl):
        if d.holder is None:
            continue
        mean = sum(gpusim.reading(d, t, T0)["DCGM_FI_DEV_GPU_UTIL"] for t in minutes) / 1440
        held.setdefault(d.holder.namespace, []).append(mean)
        share = int(d.mig_profile.split("g.")[0]) / 7 if d.mig_profile else 1.0
        price = fl.telemetry.prices[d.model.replace(" ", "-")]  # type: ignore[union-attr]
        cost[d.holder.namespace] = cost.get(d.holder.namespace, 0.0) + 24 * share * price
    for ns, means in held.items():
        util = sum(means) / len(means)
        # one sample of a step at a boundary: the declared numbers are the continuous ones
        assert util == pytest.approx(exp.utilization_by_namespace[ns], abs=0.1), ns
        assert util / 100 == pytest.approx(exp.efficiency_by_namespace[ns], abs=1e-3), ns
        assert cost[ns] == pytest.approx(exp.cost_by_namespace[ns], abs=0.01), ns
    assert set(held) == set(exp.utilization_by_namespace)


def test_devices_follow_the_device_plugin() -> None:
    devs = gpusim.devices(fleet.load_fleet("default"))
    nodes = {d.node for d in devs}
    assert "h100-notready-0" not in nodes
    assert "mi300x-0" not in nodes
    mig = [d for d in devs if d.mig_profile]
    assert len(mig) == 18
    assert {d.gpu for d in mig} == {0, 1, 2, 3}
    held = [d for d in devs if d.holder and d.holder.name == "mig-infer-0"]
    assert [(d.gpu, d.mig_profile, d.mig_id) for d in held] == [(0, "1g.10gb", i) for i in range(3)]
    text = gpusim.exposition(devs, T0, T0)
    line = next(ln for ln in text.splitlines() if 'pod="llama-pretrain-0"' in ln)
    assert line.startswith("DCGM_FI_DEV_GPU_UTIL{")
    assert line.endswith(" 92")
    for label in ("gpu=", "UUID=", "modelName=", "Hostname=", "namespace=", "container="):
        assert label in line


def test_history_is_openmetrics_ending_before_the_start() -> None:
    fl = fleet.load_fleet("west")
    devs = gpusim.devices(fl)
    text = "".join(gpusim.openmetrics_history(devs, T0, 1, 60, {"job": "dcgm-exporter"}))
    assert text.endswith("# EOF\n")
    stamps = [int(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if not ln.startswith("#")]
    assert len(stamps) == len(devs) * len(gpusim.METRICS) * 60
    assert min(stamps) == T0 - 3600
    assert max(stamps) == T0 - 60


# ---------------------------------------------------------------------------- PromQL


def test_promql_is_built_from_typed_arguments_only() -> None:
    q = promql.over_window(
        "p95", "DCGM_FI_DEV_GPU_UTIL", 3600, (Matcher("namespace", "team-a"),), T0
    )
    assert q.expr == 'quantile_over_time(0.95, DCGM_FI_DEV_GPU_UTIL{namespace="team-a"}[3600s:60s])'
    for bad in ('team-a"} or vector(1) #', "a\nb", "x{y}", "-lead"):
        with pytest.raises(InvalidArgument):
            promql.over_window("avg", "DCGM_FI_DEV_GPU_UTIL", 3600, (Matcher("pod", bad),), T0)
    with pytest.raises(InvalidArgument):
        promql.over_window("avg", "DCGM_FI_DEV_GPU_UTIL", 10, (), T0)  # under a minute
    with pytest.raises(InvalidArgument):
        promql.last_above(101, 3600, (), T0)
    # a long window gets a coarser step, so the points of one series stay bounded
    assert 30 * 86400 / promql.step_for(30 * 86400) <= promql.MAX_POINTS


def test_answers_are_bounded_and_failures_name_the_cluster() -> None:
    def answer(n: int) -> bytes:
        result = [{"metric": {"gpu": str(i)}, "value": [T0, "1"]} for i in range(n)]
        return json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        ).encode()

    assert len(parse_vector("gpu-east", answer(3), 3)) == 3
    with pytest.raises(MetricsUnavailable, match="gpu-east: 4 series exceed the bound of 3"):
        parse_vector("gpu-east", answer(4), 3)
    with pytest.raises(MetricsUnavailable, match="metrics unavailable for cluster gpu-east"):
        parse_vector("gpu-east", b'{"status":"error","error":"query timed out"}', 3)


# ---------------------------------------------------------------------------- tools


@pytest.mark.parametrize("profile", PROFILES)
def test_idle_gpus_are_the_fleet_files(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fl = _expected(profile)
    exp = fl.telemetry.expected  # type: ignore[union-attr]
    monkeypatch.setattr(time, "time", lambda: T0)
    args = IdleGpusInput(threshold_percent=exp.idle_threshold)
    out = run_tool(IDLE_GPUS, args, _cluster(profile))
    got = {(h.namespace, h.pod): h for h in out.holders}
    assert set(got) == {(i.namespace, i.pod) for i in exp.idle_gpus}
    for want in exp.idle_gpus:
        h = got[want.namespace, want.pod]
        assert h.nodes == [want.node]
        assert h.gpus == want.gpus
        assert h.idle_hours == pytest.approx(-want.idle_since_h, abs=0.05)
        assert h.gpu_hours_wasted == pytest.approx(-want.idle_since_h * want.gpus, abs=0.2)
        assert "approval" in h.suggested_action or "no Job" in h.suggested_action


@pytest.mark.parametrize("profile", PROFILES)
def test_utilization_and_efficiency_are_the_fleet_files(
    profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fl = _expected(profile)
    exp = fl.telemetry.expected  # type: ignore[union-attr]
    monkeypatch.setattr(time, "time", lambda: T0)
    cluster = _cluster(profile)
    util = run_tool(GPU_UTILIZATION, GpuUtilizationInput(window_hours=exp.window_h), cluster)
    rows = {r.group: r for r in util.rows}
    for ns, mean in exp.utilization_by_namespace.items():
        assert rows[ns].utilization_mean == pytest.approx(mean, abs=0.05), ns
        assert rows[ns].memory_used_mib <= rows[ns].memory_total_mib
    report = run_tool(GPU_USAGE_REPORT, GpuUsageInput(since_hours=exp.window_h), cluster)
    groups = {g.group: g for g in report.groups}
    for ns, eff in exp.efficiency_by_namespace.items():
        assert groups[ns].efficiency == pytest.approx(eff, abs=0.001), ns
        assert groups[ns].cost == pytest.approx(exp.cost_by_namespace[ns], abs=0.05), ns
    assert report.metrics_unavailable == []
    # every metrics query the tools made was one of the typed shapes, never free text
    assert all(
        q.expr.startswith(("avg_", "max_", "min_", "sum_", "count_", "quantile_"))
        for q in cluster.metrics_queries
    )


def test_metrics_down_in_one_cluster_leaves_the_rest_served() -> None:
    east, west = _cluster("default"), _cluster("west")

    def down(_q: promql.PromQuery) -> list:  # type: ignore[type-arg]
        raise MetricsUnavailable("metrics unavailable for cluster gpu-west: no answer in time")

    west.metrics = down
    gate = make_gate(east, west)
    idle = ok(call(gate, "idle_gpus", {}))
    assert {c["cluster"]: c["reachable"] for c in idle["clusters"]} == {
        "gpu-east": True,
        "gpu-west": False,
    }
    assert "metrics unavailable for cluster gpu-west" in idle["clusters"][1]["error"]
    assert {h["cluster"] for h in idle["holders"]} == {"gpu-east"}
    code, message = error_of(call(gate, "gpu_utilization", {"cluster": "gpu-west"}))
    assert code == "metrics_unavailable"
    assert "gpu-west" in message
    usage = ok(call(gate, "gpu_usage_report", {}))
    assert usage["total_gpu_hours"] > 0  # allocation still answered for both clusters
    assert usage["metrics_unavailable"] == [
        "gpu-west: metrics unavailable for cluster gpu-west: no answer in time"
    ]


def test_no_metrics_source_is_said_plainly() -> None:
    plain = MemoryCluster("gpu-east", {Kind.PODS: []})
    code, message = error_of(call(make_gate(plain), "idle_gpus", {"cluster": "gpu-east"}))
    assert code == "metrics_unavailable"
    assert message.startswith("metrics unavailable for cluster gpu-east")


def test_get_job_adds_the_gpu_utilization_of_its_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: T0)
    cluster = _cluster("default")
    cluster.add(Kind.JOBS, job("llama", "team-a", gpus=8))
    cluster.add(Kind.PODS, pod("llama-pretrain-0", "team-a", gpus=8, job="llama"))
    out = ok(call(make_gate(cluster), "get_job", {"namespace": "team-a", "name": "llama"}))
    stats = out["gpu_use"]["stats"]
    assert stats["gpus"] == 8
    assert stats["utilization_mean"] == pytest.approx(92)
    assert stats["memory_used_mib"] == pytest.approx(8 * round(81559 * 0.85), abs=1)
    cluster.metrics = None  # no metrics source: the job's answer stands, with a note
    out = ok(call(make_gate(cluster), "get_job", {"namespace": "team-a", "name": "llama"}))
    assert out["gpu_use"]["stats"] is None
    assert out["gpu_use"]["note"].startswith("metrics unavailable for cluster gpu-east")


def test_the_scale_profile_has_telemetry_with_a_bounded_history() -> None:
    fl = fleet.load_fleet("scale")
    assert fl.telemetry is not None
    devs = gpusim.devices(fl)
    assert len(devs) == 7200
    # 4 GPU pods a node; an L4 (2 time-slice replicas) is labelled with the first of its two
    assert sum(1 for d in devs if d.holder) == 500 * 4 + 300 * 4 + 200 * 2
    points = fl.telemetry.history_h * 3600 / fl.telemetry.history_step_s
    assert len(devs) * len(gpusim.METRICS) * points <= 400_000  # backfill stays seconds


def test_gpus_follow_the_running_pods() -> None:
    """The exporter's view once pods change: a deleted fleet pod frees its GPUs, a submitted
    job's pod holds some (busy), and the fleet's pods keep the devices the history gave them."""
    fl = fleet.load_fleet("default")
    running = [p for p in fleet.workload_manifests(fl) if p["metadata"]["name"] != "bert-ft-0"]
    submitted = pod("train-x-abc12", "team-a", node="h100-1", gpus=2, job="train-x")
    shared = pod("nb-2", "team-b", node="l4-shared-0", gpus=1)  # gpu 0 is the notebook's
    live = gpusim.live_workloads(fl, [*running, submitted, shared])
    devs = {(d.node, d.gpu, d.mig_id): d for d in gpusim.devices(fl, live)}
    before = {(d.node, d.gpu, d.mig_id): d for d in gpusim.devices(fl)}
    for key, d in before.items():
        if d.holder and d.holder.name != "bert-ft-0":
            assert devs[key].holder == d.holder, key  # same device, same holder
    new = [d for d in devs.values() if d.holder and d.holder.name == "train-x-abc12"]
    assert [(d.node, d.gpu) for d in new] == [("h100-1", 0), ("h100-1", 1)]  # bert's, freed
    assert gpusim.reading(new[0], T0, T0)["DCGM_FI_DEV_GPU_UTIL"] == gpusim.SUBMITTED.level
    assert [(d.node, d.gpu) for d in devs.values() if d.holder and d.holder.name == "nb-2"] == [
        ("l4-shared-0", 1)
    ]


def test_a_short_lived_holder_weighs_its_time_only() -> None:
    """A job that held a GPU for six minutes of a day barely moves the namespace's mean;
    memory and power are the namespace's totals averaged over the window."""
    day = DeviceStats("c", {"namespace": "a", "pod": "p"}, 50, 60, 1000, 3000, 100, hours=24)
    blip = DeviceStats("c", {"namespace": "a", "pod": "q"}, 100, 100, 2400, 0, 700, hours=0.1)
    (row,) = group_stats([day, blip], {0: "a", 1: "a"}, 24)
    assert row.gpus == 2
    assert row.gpu_hours == pytest.approx(24.1)
    assert row.utilization_mean == pytest.approx((50 * 24 + 100 * 0.1) / 24.1, abs=0.01)
    assert row.memory_used_mib == pytest.approx(1000 + 2400 * 0.1 / 24, abs=1)
    assert row.power_w == pytest.approx(100 + 700 * 0.1 / 24, abs=0.1)


def test_a_pod_gone_within_the_window_is_not_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: T0)
    cluster = _cluster("default")
    cluster.remove(Kind.PODS, "leftover-eval-0", "team-a")  # its series are still in the window
    out = run_tool(IDLE_GPUS, IdleGpusInput(), cluster)
    assert [h.pod for h in out.holders] == ["bert-ft-0"]
