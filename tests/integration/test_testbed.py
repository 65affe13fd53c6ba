"""The testbed is a real control plane: scheduling, Jobs, logs, RBAC, versions, loopback only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from support.objects import H100, KWOK_COMPLETE, job
from support.waiting import wait_for

from mcp_kube.testbed import cluster, fleet
from mcp_kube.testbed.paths import pinned_version


def api(state: cluster.TestbedState, context: str, **impersonate: str) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=state.kubeconfig, context=context, client_configuration=cfg)
    c = client.ApiClient(cfg)
    for header, value in impersonate.items():
        c.set_default_header(header, value)
    return c


@pytest.fixture(scope="module")
def east(testbed: cluster.TestbedState) -> client.ApiClient:
    return api(testbed, "gpu-east")


def test_version_is_the_pinned_release(testbed: cluster.TestbedState) -> None:
    pinned = pinned_version("kubernetes", "k8s.io/kubernetes")
    for cl in testbed.clusters:
        info = client.VersionApi(api(testbed, cl.context)).get_code()
        assert info.git_version == pinned
        assert info.minor == pinned.split(".")[1]


def test_two_independent_clusters_with_their_own_fleets(testbed: cluster.TestbedState) -> None:
    assert [c.name for c in testbed.clusters] == ["gpu-east", "gpu-west"]
    for cl in testbed.clusters:
        nodes = client.CoreV1Api(api(testbed, cl.context)).list_node().items
        expected = fleet.load_fleet(cl.profile).expected
        assert len(nodes) == expected.nodes
        assert {n.metadata.labels[fleet.TESTBED_LABEL] for n in nodes} == {cl.name}


def _ready(node: client.V1Node) -> str:
    return next(c.status for c in node.status.conditions if c.type == "Ready")


def test_node_states_match_the_fleet(east: client.ApiClient) -> None:
    nodes = {n.metadata.name: n for n in client.CoreV1Api(east).list_node().items}
    assert _ready(nodes["h100-0"]) == "True"
    assert _ready(nodes["h100-notready-0"]) != "True"
    assert nodes["h100-cordoned-0"].spec.unschedulable is True
    assert nodes["a100-mig-0"].status.allocatable["nvidia.com/mig-3g.40gb"] == "4"
    assert nodes["mi300x-0"].status.allocatable["amd.com/gpu"] == "8"


def test_inventory_from_the_live_cluster_matches_the_fleet_file(
    testbed: cluster.TestbedState, settled_fleet: None
) -> None:
    for cl in testbed.clusters:
        core = client.CoreV1Api(api(testbed, cl.context))
        expected = fleet.load_fleet(cl.profile).expected
        pods = core.list_pod_for_all_namespaces(label_selector=fleet.TESTBED_LABEL).items
        assert all(p.status.phase == "Running" for p in pods)
        allocated: dict[str, int] = {}
        for pod in pods:
            for res, qty in (pod.spec.containers[0].resources.requests or {}).items():
                allocated[res] = allocated.get(res, 0) + int(qty)
        for res, totals in expected.resources.items():
            assert allocated.get(res, 0) == totals.allocated, res
        for ns, used in expected.quota_used.items():
            quota = core.read_namespaced_resource_quota("gpu-quota", ns)
            assert quota.status.used["requests.nvidia.com/gpu"] == str(used)


def test_gpu_job_is_scheduled_runs_completes_and_serves_logs(
    testbed: cluster.TestbedState, east: client.ApiClient
) -> None:
    smoke = job(
        "smoke-train",
        node_selector={"nvidia.com/gpu.product": H100},
        template_meta={"annotations": {KWOK_COMPLETE: "3s"}},
    )
    batch, core = client.BatchV1Api(east), client.CoreV1Api(east)
    batch.create_namespaced_job("team-a", smoke)
    try:
        phases: list[str] = []
        node = ""
        w = watch.Watch()
        for ev in w.stream(
            core.list_namespaced_pod,
            "team-a",
            label_selector="job-name=smoke-train",
            timeout_seconds=90,
        ):
            pod = ev["object"]
            if pod.status.phase and (not phases or phases[-1] != pod.status.phase):
                phases.append(pod.status.phase)
            node = pod.spec.node_name or node
            if pod.status.phase in ("Succeeded", "Failed"):
                w.stop()
        assert phases[-2:] == ["Running", "Succeeded"], phases
        # The real scheduler chose a schedulable, Ready, untainted H100 node.
        assert node in {"h100-0", "h100-1", "h100-2"}
        pod_name = core.list_namespaced_pod("team-a", label_selector="job-name=smoke-train").items[
            0
        ]

        def complete() -> Any:
            status = batch.read_namespaced_job_status("smoke-train", "team-a").status
            done = any(c.type == "Complete" and c.status == "True" for c in status.conditions or [])
            return status if done else None

        assert wait_for(complete, "the Job to reach Complete").succeeded == 1

        logs = core.read_namespaced_pod_log(pod_name.metadata.name, "team-a", container="trainer")
        expected = [
            line.split(" ", 3)[3].rstrip("\n")
            for line in Path(testbed.clusters[0].pod_logs["trainer"]).read_text().splitlines()
        ]
        assert logs.splitlines() == expected
        assert "loss=" in expected[-2]
        tail = core.read_namespaced_pod_log(pod_name.metadata.name, "team-a", tail_lines=2)
        assert tail.splitlines() == expected[-2:]
    finally:
        batch.delete_namespaced_job("smoke-train", "team-a", propagation_policy="Background")


def _status(fn, *args) -> int:
    try:
        fn(*args)
    except ApiException as e:
        return int(e.status)
    return 200


def test_rbac_is_real(testbed: cluster.TestbedState, east: client.ApiClient) -> None:
    alice = client.CoreV1Api(api(testbed, "alice@gpu-east"))
    assert _status(alice.list_namespaced_pod, "team-a") == 200
    assert _status(alice.list_namespaced_pod, "team-b") == 403
    assert _status(client.CoreV1Api(east).list_namespaced_pod, "team-b") == 200
    auditor = client.CoreV1Api(api(testbed, "auditor@gpu-east"))
    assert _status(auditor.list_namespaced_pod, "team-b") == 200
    assert _status(auditor.list_namespaced_secret, "team-b") == 403


def test_impersonation_only_for_identities_granted_it(testbed: cluster.TestbedState) -> None:
    as_alice = {"Impersonate-User": "alice", "Impersonate-Group": "team-a"}
    server = client.CoreV1Api(api(testbed, "mcp-kube-server@gpu-east", **as_alice))
    assert _status(server.list_namespaced_pod, "team-a") == 200
    assert _status(server.list_namespaced_pod, "team-b") == 403  # alice's RBAC applies
    bob = client.CoreV1Api(api(testbed, "bob@gpu-east", **as_alice))
    assert _status(bob.list_namespaced_pod, "team-a") == 403  # bob may not impersonate


def test_every_listening_socket_is_on_loopback(testbed: cluster.TestbedState) -> None:
    seen = 0
    now = cluster.load_state(Path(testbed.run_dir))  # a component restarted since has a new PID
    assert now is not None
    for cl in now.clusters:
        for comp in cl.components:
            socks = cluster.listeners(comp.pid)
            assert socks, f"{comp.name} listens nowhere?"
            for addr, port in socks:
                seen += 1
                assert addr == "127.0.0.1", f"{cl.name}/{comp.name} listens on {addr}:{port}"
    assert seen >= 10


def test_kueue_queues_exist_with_gpu_quotas(east: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(east)
    cq = custom.get_cluster_custom_object("kueue.x-k8s.io", "v1beta2", "clusterqueues", "research")
    flavors = cq["spec"]["resourceGroups"][0]["flavors"]
    gpus = {
        f["name"]: r["nominalQuota"]
        for f in flavors
        for r in f["resources"]
        if r["name"] == "nvidia.com/gpu"
    }
    assert gpus == {"h100": "16", "l4": "8"}
    lq = custom.get_namespaced_custom_object(
        "kueue.x-k8s.io", "v1beta2", "team-a", "localqueues", "team-a-queue"
    )
    assert lq["spec"]["clusterQueue"] == "research"
    # the Kueue controller runs: it reports the queue active
    active = [c for c in cq.get("status", {}).get("conditions", []) if c["type"] == "Active"]
    assert [c["status"] for c in active] == ["True"], cq.get("status")


def test_status_reports_components_ports_and_logs(testbed: cluster.TestbedState) -> None:
    info = cluster.status(Path(testbed.run_dir))
    assert info["running"] is True
    assert info["kubeconfig"] == testbed.kubeconfig
    assert "alice@gpu-east" in info["contexts"]
    names = [c["name"] for c in info["clusters"][0]["components"]]
    control_plane = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
    # gpu-east's fleet has queues (kueue) and telemetry (exporter + Prometheus)
    assert names == [*control_plane, "kueue", "dcgm-exporter", "prometheus"]
    for comp in info["clusters"][0]["components"]:
        assert Path(comp["log"]).is_file()
        assert all(p > 0 for p in comp["ports"].values())
