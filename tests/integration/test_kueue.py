"""Kueue for real: the testbed's Kueue controller admits, refuses and accounts, and the tools
read what it writes (Workload conditions, ClusterQueue usage) - over MCP where a job is
submitted. gpu-west has no Kueue: there quota is the ResourceQuota alone.

Jobs this module creates are named ``kq-...`` and deleted again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from support.gates import call, ok
from support.objects import H100, KWOK_COMPLETE, job
from support.waiting import wait_for

from mcp_kube.gate import Gate
from mcp_kube.testbed import cluster, fleet
from mcp_kube.tools.pending import EXPLAIN_PENDING
from mcp_kube.tools.placement import RECOMMEND_PLACEMENT
from mcp_kube.tools.quota import GPU_QUOTA, GpuQuota

from .mcp_helpers import stdio_client

REPO = Path(__file__).resolve().parents[2]
ALLOW = ["--policy", str(REPO / "tests" / "data" / "allow-writes.yaml")]
IMAGE = "registry.internal/ml/trainer:1.4.2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KWOK_JITTER = "pod-complete.stage.kwok.x-k8s.io/jitter-delay"
EAST = fleet.load_fleet("default")


def name(prefix: str) -> str:
    return f"kq-{prefix}-{uuid.uuid4().hex[:6]}"


def api(testbed: cluster.TestbedState, context: str) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(
        config_file=testbed.kubeconfig, context=context, client_configuration=cfg
    )
    return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def east(testbed: cluster.TestbedState) -> Iterator[client.ApiClient]:
    c = api(testbed, "gpu-east")
    yield c
    c.close()


def workload(east: client.ApiClient, namespace: str, job_name: str) -> dict[str, Any] | None:
    """Kueue's Workload for the Job (v1beta2, the version Kueue stores)."""
    uid = client.BatchV1Api(east).read_namespaced_job(job_name, namespace).metadata.uid
    items = client.CustomObjectsApi(east).list_namespaced_custom_object(
        "kueue.x-k8s.io",
        "v1beta2",
        namespace,
        "workloads",
        label_selector=f"kueue.x-k8s.io/job-uid={uid}",
    )["items"]
    return items[0] if items else None


def condition(wl: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    conds = ((wl or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == ctype), None)


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    return wait_for(check, what, timeout=timeout, every=0.3)


def delete_job(east: client.ApiClient, namespace: str, job_name: str) -> None:
    try:
        client.BatchV1Api(east).delete_namespaced_job(
            job_name, namespace, propagation_policy="Background"
        )
    except ApiException as e:
        if e.status != 404:
            raise


def submit_over_mcp(testbed: cluster.TestbedState, args: dict[str, Any]) -> Any:
    async def go() -> Any:
        c = stdio_client(
            testbed.kubeconfig,
            ["gpu-east", "gpu-west"],
            [*ALLOW, "--principal", "alice", "--groups", "team-a"],
        )
        async with c:
            return await c.call_tool("submit_job", args)

    return anyio.run(go)


def explain_over_mcp(testbed: cluster.TestbedState, args: dict[str, Any]) -> Any:
    async def go() -> Any:
        c = stdio_client(testbed.kubeconfig, ["gpu-east", "gpu-west"], ALLOW)
        async with c:
            return await c.call_tool("explain_pending", args)

    return anyio.run(go)


# ---------------------------------------------------------------------------- admission


def test_a_job_submitted_to_a_queue_is_admitted_by_kueue_and_completes(
    testbed: cluster.TestbedState, east: client.ApiClient
) -> None:
    job_name = name("small")
    args = {"cluster": "gpu-east", "namespace": "team-a", "name": job_name, "image": IMAGE}
    args |= {"gpus": 4, "queue": "team-a-queue"}
    t0 = time.monotonic()
    result = submit_over_mcp(testbed, args)
    try:
        assert not result.is_error, result.content
        assert result.structured_content["created"] is True
        batch = client.BatchV1Api(east)
        # created suspended (mcp-kube), unsuspended by Kueue once it admits the Workload
        wl = until(lambda: _admitted(workload(east, "team-a", job_name)), "Kueue to admit the job")
        admitted_after = time.monotonic() - t0
        [assignment] = wl["status"]["admission"]["podSetAssignments"]
        assert assignment["flavors"]["nvidia.com/gpu"] == "h100"
        assert wl["status"]["admission"]["clusterQueue"] == "research"

        def complete() -> bool:
            conds = batch.read_namespaced_job_status(job_name, "team-a").status.conditions or []
            return any(c.type == "Complete" and c.status == "True" for c in conds)

        until(complete, "the admitted job to complete", timeout=90)
        spec = batch.read_namespaced_job(job_name, "team-a").spec
        assert spec.suspend is False
        # Kueue put its flavor's node labels on the pods: they ran on an H100 node
        assert spec.template.spec.node_selector["nvidia.com/gpu.product"] == H100
        print(f"submit-to-admitted: {admitted_after:.1f}s")
    finally:
        delete_job(east, "team-a", job_name)


def _admitted(wl: dict[str, Any] | None) -> dict[str, Any] | None:
    cond = condition(wl, "Admitted")
    return wl if cond is not None and cond["status"] == "True" else None


def test_an_over_quota_job_is_explained_with_kueues_own_message(
    testbed: cluster.TestbedState, east: client.ApiClient
) -> None:
    job_name = name("big")
    args = {"cluster": "gpu-east", "namespace": "team-a", "name": job_name, "image": IMAGE}
    args |= {"gpus": 20, "queue": "team-a-queue"}
    result = submit_over_mcp(testbed, args)
    try:
        assert not result.is_error, result.content

        def refused() -> dict[str, Any] | None:
            cond = condition(workload(east, "team-a", job_name), "QuotaReserved")
            return cond if cond is not None and cond["status"] == "False" else None

        cond = until(refused, "Kueue to refuse the 20-GPU workload")
        message = cond["message"]
        assert "insufficient quota for nvidia.com/gpu in flavor h100" in message
        assert "maximum capacity (16)" in message  # the fleet's nominal quota of h100
        explained = explain_over_mcp(
            testbed, {"cluster": "gpu-east", "namespace": "team-a", "job": job_name}
        )
        assert not explained.is_error, explained.content
        out = explained.structured_content
        assert out["verdict"].startswith("Kueue has not admitted it: QuotaReserved=False")
        assert message[:200] in out["verdict"]
        kueue = [r for r in out["reasons"] if r["source"] == "kueue"]
        assert kueue[0]["detail"] == message
        batch = client.BatchV1Api(east)
        assert batch.read_namespaced_job(job_name, "team-a").spec.suspend is True
    finally:
        delete_job(east, "team-a", job_name)


# ---------------------------------------------------------------------------- usage, headroom


@pytest.fixture(scope="module")
def research_full(east: client.ApiClient) -> Iterator[str]:
    """A job of 2 x 8 GPUs admitted into team-b-queue: it reserves all 16 H100s of research
    (team-b's ResourceQuota then refuses its pods: the reservation stands regardless)."""
    job_name = name("full")
    body = job(
        job_name,
        "team-b",
        gpus=8,
        suspend=True,
        labels={QUEUE_LABEL: "team-b-queue"},
        template_meta={"annotations": {KWOK_COMPLETE: "300s", KWOK_JITTER: "300s"}},
    )
    body["spec"] |= {"parallelism": 2, "completions": 2}
    del body["status"], body["metadata"]["uid"], body["metadata"]["creationTimestamp"]
    client.BatchV1Api(east).create_namespaced_job("team-b", body)
    try:
        until(lambda: _admitted(workload(east, "team-b", job_name)), "Kueue to admit 16 GPUs")
        # Kueue writes the ClusterQueue's status a moment after the admission
        until(lambda: _reserved(east, "h100") == 16, "research to report 16 H100s reserved")
        yield job_name
    finally:
        delete_job(east, "team-b", job_name)


def _reserved(east: client.ApiClient, flavor: str) -> int:
    raw = client.CustomObjectsApi(east).get_cluster_custom_object(
        "kueue.x-k8s.io", "v1beta2", "clusterqueues", "research"
    )
    return sum(
        int(r["total"])
        for f in (raw.get("status") or {}).get("flavorsReservation") or []
        if f["name"] == flavor
        for r in f["resources"]
        if r["name"] == "nvidia.com/gpu"
    )


def test_gpu_quota_shows_the_usage_kueue_writes(
    gate: Gate, east: client.ApiClient, research_full: str
) -> None:
    assert EAST.kueue is not None
    out = ok(call(gate, GPU_QUOTA, {"cluster": "gpu-east"}))
    queues = {q["name"]: q for q in out["cluster_queues"]}
    for cq in EAST.kueue.cluster_queues:
        nominal = {f["flavor"]: f["nominal"] for f in queues[cq.name]["flavors"]}
        assert nominal == cq.quotas  # the fleet file's nominal GPU quotas
    research = queues["research"]
    # what the ClusterQueue's status says, read independently of the tool
    raw = client.CustomObjectsApi(east).get_cluster_custom_object(
        "kueue.x-k8s.io", "v1beta2", "clusterqueues", "research"
    )
    status = raw["status"]
    for f in research["flavors"]:
        usage = {
            u["name"]: int(r["total"])
            for u in status["flavorsReservation"]
            for r in u["resources"]
            if r["name"] == "nvidia.com/gpu"
        }
        assert f["reserved"] == usage[f["flavor"]]
    h100 = next(f for f in research["flavors"] if f["flavor"] == "h100")
    assert h100["reserved"] == 16
    assert research["admitted_workloads"] == status["admittedWorkloads"] >= 1
    assert queues["on-hold"]["held"] is True
    assert "h100 nvidia.com/gpu: 16/16 used" in GPU_QUOTA.summary(GpuQuota.model_validate(out))


def test_placement_skips_a_queue_with_no_quota_left(gate: Gate, research_full: str) -> None:
    out = ok(call(gate, RECOMMEND_PLACEMENT, {"gpus": 4, "namespace": "team-a"}))
    options = {(o["cluster"], o["zone"], o["product"]): o for o in out["options"]}
    h100 = options["gpu-east", "east-1a", H100]
    assert h100["nodes_that_fit"]  # a node has 4 free H100s...
    assert h100["queue_headroom"] == 0  # ...but research has none left to admit them
    assert h100["fits"] is False
    assert "Kueue queue headroom 0 < 4" in h100["reason"]
    # gpu-west has no Kueue: its pools are judged by the ResourceQuota alone
    west = [o for o in out["options"] if o["cluster"] == "gpu-west"]
    assert west
    assert all(o["queue_headroom"] is None for o in west)


# ---------------------------------------------------------------------------- no Kueue


def test_without_kueue_quota_is_the_resource_quota_only(
    gate: Gate, testbed: cluster.TestbedState
) -> None:
    west = fleet.load_fleet("west")
    assert west.kueue is None
    out = ok(call(gate, GPU_QUOTA, {"cluster": "gpu-west"}))
    assert out["cluster_queues"] == []
    assert out["local_queues"] == []
    hard = {
        q["namespace"]: r["hard"]
        for q in out["resource_quotas"]
        for r in q["resources"]
        if r["resource"] == "requests.nvidia.com/gpu"
    }
    assert hard == {ns.name: ns.gpu_quota for ns in west.namespaces if ns.gpu_quota}
    # a job naming a queue in a cluster without Kueue: nothing will ever admit it
    w = api(testbed, "gpu-west")
    job_name = name("west")
    body = job(job_name, "team-a", gpus=1, suspend=True, labels={QUEUE_LABEL: "team-a-queue"})
    del body["status"], body["metadata"]["uid"], body["metadata"]["creationTimestamp"]
    client.BatchV1Api(w).create_namespaced_job("team-a", body)
    try:
        got = ok(
            call(
                gate,
                EXPLAIN_PENDING,
                {"cluster": "gpu-west", "namespace": "team-a", "job": job_name},
            )
        )
        assert [r["reason"] for r in got["reasons"] if r["source"] == "kueue"] == ["no_workload"]
        assert got["verdict"].startswith("the job is suspended")
    finally:
        delete_job(w, "team-a", job_name)
        w.close()
