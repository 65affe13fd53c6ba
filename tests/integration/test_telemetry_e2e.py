"""GPU telemetry end to end: the testbed's simulated dcgm-exporter, scraped by the real
Prometheus (24 h of history backfilled at start), read over MCP by ``mcp-kube serve``.

The answers must equal the fleet files' ``telemetry.expected`` blocks. Times drift with the
minutes since the testbed started (a stalled job's idle time grows), so each expectation is
shifted by that elapsed time, read from the exporter's own command line.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_helpers import stdio_client

from mcp_kube.testbed import cluster, fleet
from mcp_kube.testbed.telemetry import EXPORTER, prometheus_url

CONTEXTS = ["gpu-east", "gpu-west"]


def _started(cs: cluster.ClusterState) -> float:
    exporter = next(c for c in cs.components if c.name == EXPORTER)
    return float(exporter.args[exporter.args.index("--t0") + 1])


@pytest.fixture(scope="module")
def metrics_env(testbed: cluster.TestbedState) -> dict[str, str]:
    sources: dict[str, Any] = {}
    prices: dict[str, float] = {}
    for cs in testbed.clusters:
        url = prometheus_url(cs)
        if url is None:
            pytest.fail(f"the testbed's {cs.name} runs no Prometheus (its fleet has telemetry)")
        sources[cs.name] = {"url": url, "timeout_s": 10}
        tel = fleet.load_fleet(cs.profile).telemetry
        assert tel is not None
        prices |= tel.prices
    return {
        "MCP_KUBE_CLUSTERS__METRICS": json.dumps(sources),
        "MCP_KUBE_CLUSTERS__GPU_PRICES": json.dumps(prices),
    }


def _call(
    testbed: cluster.TestbedState, env: dict[str, str], tool: str, args: dict[str, Any], **kw: Any
) -> Any:
    async def go() -> Any:
        async with stdio_client(testbed.kubeconfig, CONTEXTS, kw.get("extra"), env=env) as c:
            r = await c.call_tool(tool, args)
            assert not r.is_error, r.content
            return r.structured_content

    return anyio.run(go)


def _expectations(testbed: cluster.TestbedState) -> Iterator[tuple[str, float, Any]]:
    for cs in testbed.clusters:
        tel = fleet.load_fleet(cs.profile).telemetry
        assert tel is not None
        assert tel.expected is not None
        yield cs.name, (time.time() - _started(cs)) / 3600, tel.expected


def test_idle_gpus_equal_the_fleet_files(testbed, metrics_env, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    out = _call(testbed, metrics_env, "idle_gpus", {}, extra=["--audit-log", str(audit)])
    assert all(c["reachable"] for c in out["clusters"]), out["clusters"]
    got = {(h["cluster"], h["namespace"], h["pod"]): h for h in out["holders"]}
    want = {}
    for name, elapsed, exp in _expectations(testbed):
        for idle in exp.idle_gpus:
            want[name, idle.namespace, idle.pod] = (idle, min(24.0, elapsed - idle.idle_since_h))
    assert set(got) == set(want)
    for key, (idle, hours) in want.items():
        h = got[key]
        assert h["nodes"] == [idle.node], key
        assert h["gpus"] == idle.gpus, key
        assert h["idle_hours"] == pytest.approx(hours, abs=0.1), key
        assert h["gpu_hours_wasted"] == pytest.approx(hours * idle.gpus, abs=0.1 * idle.gpus)
    # the audit record of the call names the PromQL it ran, as it names Kubernetes requests
    records = [json.loads(ln) for ln in audit.read_text().splitlines() if ln.strip()]
    call = next(r for r in records if r.get("tool") == "idle_gpus")
    promql = [q["promql"] for q in call["kube_requests"] if "promql" in q]
    assert promql
    assert all("DCGM_FI_DEV_GPU_UTIL" in q for q in promql)


def test_utilization_efficiency_and_cost_equal_the_fleet_files(testbed, metrics_env) -> None:
    util = _call(testbed, metrics_env, "gpu_utilization", {"window_hours": 24})
    usage = _call(testbed, metrics_env, "gpu_usage_report", {"since_hours": 24})
    rows = {(r["cluster"], r["group"]): r for r in util["rows"]}
    assert usage["metrics_unavailable"] == []
    groups = {g["group"]: g for g in usage["groups"]}
    cost: dict[str, float] = {}
    for name, _elapsed, exp in _expectations(testbed):
        tol = exp.tolerance
        for ns, mean in exp.utilization_by_namespace.items():
            assert rows[name, ns]["utilization_mean"] == pytest.approx(mean, rel=tol, abs=0.5)
        for ns, price in exp.cost_by_namespace.items():
            cost[ns] = cost.get(ns, 0.0) + price
    # the report adds both clusters up per namespace: the east and west answers summed
    for ns, total in cost.items():
        assert groups[ns]["cost"] == pytest.approx(total, rel=0.01), ns
        assert 0 <= groups[ns]["efficiency"] <= 1
    east = fleet.load_fleet("default").telemetry.expected  # type: ignore[union-attr]
    alone = _call(
        testbed, metrics_env, "gpu_usage_report", {"since_hours": 24, "cluster": "gpu-east"}
    )
    for g in alone["groups"]:
        if g["group"] in east.efficiency_by_namespace:
            want = east.efficiency_by_namespace[g["group"]]
            assert g["efficiency"] == pytest.approx(want, rel=east.tolerance), g


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a Prometheus that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for s in held:
        s.close()
    server.close()


def test_prometheus_slow_or_down_leaves_allocation_and_the_other_cluster(
    testbed, metrics_env, silent_port
) -> None:
    sources = json.loads(metrics_env["MCP_KUBE_CLUSTERS__METRICS"])
    sources["gpu-west"] = {"url": f"http://127.0.0.1:{silent_port}", "timeout_s": 1}
    env = dict(metrics_env, MCP_KUBE_CLUSTERS__METRICS=json.dumps(sources))
    started = time.monotonic()
    out = _call(testbed, env, "idle_gpus", {})
    assert time.monotonic() - started < 20  # the hung source costs its time limit, not more
    status = {c["cluster"]: c for c in out["clusters"]}
    assert status["gpu-east"]["reachable"]
    assert not status["gpu-west"]["reachable"]
    assert "metrics unavailable for cluster gpu-west" in status["gpu-west"]["error"]
    assert {h["cluster"] for h in out["holders"]} == {"gpu-east"}
    usage = _call(testbed, env, "gpu_usage_report", {"since_hours": 1})
    assert all(c["reachable"] for c in usage["clusters"])  # allocation: both clusters
    assert [m.split(":")[0] for m in usage["metrics_unavailable"]] == ["gpu-west"]
    sources["gpu-west"] = {"url": "http://127.0.0.1:9", "timeout_s": 2}  # nothing listens
    env = dict(metrics_env, MCP_KUBE_CLUSTERS__METRICS=json.dumps(sources))
    inv = _call(testbed, env, "gpu_inventory", {})
    assert all(c["reachable"] for c in inv["clusters"])
    util = _call(testbed, env, "gpu_utilization", {})
    assert (
        "metrics unavailable for cluster gpu-west"
        in {c["cluster"]: c for c in util["clusters"]}["gpu-west"]["error"]
    )


@pytest.fixture
def running_job(testbed: cluster.TestbedState) -> Iterator[str]:
    """A 1-GPU Job in team-a whose pod keeps running (KWOK) for five minutes."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    batch = k8s.BatchV1Api(api)
    gpu = {"nvidia.com/gpu": "1"}
    stay = {f"pod-complete.stage.kwok.x-k8s.io/{k}": "300s" for k in ("delay", "jitter-delay")}
    name = "util-probe"
    container = {"name": "trainer", "image": "registry.internal/ml/trainer:1.4.2"}
    container["resources"] = {"requests": gpu, "limits": gpu}  # type: ignore[assignment]
    batch.create_namespaced_job(
        "team-a",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "template": {
                    "metadata": {"annotations": stay},
                    "spec": {"restartPolicy": "Never", "containers": [container]},
                }
            },
        },
    )
    try:
        yield name
    finally:
        batch.delete_namespaced_job(name, "team-a", propagation_policy="Background")
        api.close()


def test_get_job_reports_its_pods_gpu_utilization(testbed, metrics_env, running_job) -> None:
    """A job submitted after the start gets GPUs from the exporter (which follows the running
    pods) and get_job reads their utilization next to its progress."""
    deadline = time.monotonic() + 120
    while True:
        out = _call(testbed, metrics_env, "get_job", {"namespace": "team-a", "name": running_job})
        use = out["gpu_use"]
        if use and use["stats"]:
            break
        assert time.monotonic() < deadline, use
        time.sleep(5)
    assert use["stats"]["gpus"] == 1
    assert use["stats"]["utilization_mean"] == pytest.approx(80)  # gpusim.SUBMITTED


def test_the_real_prometheus_killed_then_back(testbed, metrics_env) -> None:
    """gpu-west's Prometheus dies: its metrics are unavailable (named), gpu-east and every
    allocation answer are still served; once it is restarted, its answers come back (its
    history with it)."""
    from mcp_kube.testbed.processes import kill

    west = next(c for c in testbed.clusters if c.name == "gpu-west")
    state = cluster.load_state(Path(testbed.run_dir))
    assert state is not None
    prom = next(
        c
        for cs in state.clusters
        if cs.name == "gpu-west"
        for c in cs.components
        if c.name == "prometheus"
    )
    assert kill(prom)
    try:
        out = _call(testbed, metrics_env, "idle_gpus", {})
        status = {c["cluster"]: c for c in out["clusters"]}
        assert status["gpu-east"]["reachable"]
        assert status["gpu-west"]["error"].startswith("metrics unavailable for cluster gpu-west")
        inv = _call(testbed, metrics_env, "gpu_inventory", {})
        assert all(c["reachable"] for c in inv["clusters"])
    finally:
        cluster.restart(Path(testbed.run_dir), west.name, "prometheus", report=lambda _m: None)
    back = _call(testbed, metrics_env, "idle_gpus", {"cluster": "gpu-west"})
    assert [h["pod"] for h in back["holders"]] == ["eval-0"]
    assert back["holders"][0]["idle_hours"] == pytest.approx(24, abs=0.1)
