"""Reading Kueue's objects with plain data: Workload conditions, ClusterQueue usage, headroom.

The objects are shaped as the Kueue controller (v1beta2) writes them: its condition reasons and
messages are quoted, never rephrased.
"""

from __future__ import annotations

from typing import Any

from support.gates import run_tool
from support.objects import H100, namespace, node, quota

from mcp_kube.domain import Json
from mcp_kube.kube.memory import MemoryCluster
from mcp_kube.kube.port import Kind
from mcp_kube.tools.kueueview import (
    flavor_headroom,
    queue_facts,
    workload_findings,
    workload_gpus,
    workload_state,
)
from mcp_kube.tools.placement import RECOMMEND_PLACEMENT, PlacementInput
from mcp_kube.tools.quota import GPU_QUOTA, GpuQuotaInput

NS = "team-a"
OVER = (
    "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor "
    "h100, previously considered podsets requests (0) + current podset request (20) > maximum "
    "capacity (16)"
)


def cond(ctype: str, status: str, reason: str, message: str = "") -> Json:
    return {"type": ctype, "status": status, "reason": reason, "message": message}


def workload(
    name: str, gpus: int, *conditions: Json, queue: str = "team-a-queue", **status: Any
) -> Json:
    container = {"name": "trainer", "resources": {"requests": {"nvidia.com/gpu": str(gpus)}}}
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "queueName": queue,
            "podSets": [
                {"name": "main", "count": 1, "template": {"spec": {"containers": [container]}}}
            ],
        },
        "status": {"conditions": list(conditions), **status},
    }


ADMITTED = workload(
    "job-small-1",
    4,
    cond("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue research"),
    cond("Admitted", "True", "Admitted", "The workload is admitted"),
    admission={
        "clusterQueue": "research",
        "podSetAssignments": [{"name": "main", "flavors": {"nvidia.com/gpu": "h100"}, "count": 1}],
    },
)
PENDING = workload("job-big-1", 20, cond("QuotaReserved", "False", "Pending", OVER))


def research(reserved: int, hold: bool = False) -> Json:
    spec: Json = {
        "namespaceSelector": {},
        "cohortName": "all",
        "resourceGroups": [
            {
                "coveredResources": ["nvidia.com/gpu"],
                "flavors": [
                    {
                        "name": "h100",
                        "resources": [{"name": "nvidia.com/gpu", "nominalQuota": "16"}],
                    },
                    {"name": "l4", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": "8"}]},
                ],
            }
        ],
    }
    if hold:
        spec["stopPolicy"] = "Hold"
    usage = [
        {
            "name": "h100",
            "resources": [{"name": "nvidia.com/gpu", "total": str(reserved), "borrowed": "0"}],
        },
        {"name": "l4", "resources": [{"name": "nvidia.com/gpu", "total": "0"}]},
    ]
    return {
        "metadata": {"name": "research"},
        "spec": spec,
        "status": {
            "flavorsReservation": usage,
            "flavorsUsage": usage,
            "pendingWorkloads": 1,
            "reservingWorkloads": 1,
            "admittedWorkloads": 1,
        },
    }


LOCAL = {
    "metadata": {"name": "team-a-queue", "namespace": NS},
    "spec": {"clusterQueue": "research"},
}
FLAVORS = [
    {"metadata": {"name": "h100"}, "spec": {"nodeLabels": {"nvidia.com/gpu.product": H100}}},
    {"metadata": {"name": "l4"}, "spec": {"nodeLabels": {"nvidia.com/gpu.product": "NVIDIA-L4"}}},
]


def test_workload_state_and_gpus() -> None:
    assert workload_state(ADMITTED) == "admitted"
    assert workload_state(PENDING) == "pending"
    assert workload_gpus(PENDING) == 20
    finished = workload("w", 1, cond("Finished", "True", "Succeeded", "Job finished successfully"))
    assert workload_state(finished) == "finished"
    inactive = PENDING | {"spec": PENDING["spec"] | {"active": False}}
    assert workload_state(inactive) == "inactive"
    assert workload_findings(inactive)[0].reason == "inactive"


def test_findings_quote_kueue_for_a_pending_workload() -> None:
    [f] = workload_findings(PENDING)
    assert (f.reason, f.detail, f.blocking) == ("QuotaReserved=False Pending", OVER, True)


def test_findings_name_the_admission_and_its_flavors() -> None:
    [f] = workload_findings(ADMITTED)
    assert f.reason == "admitted"
    assert f.detail == "admitted by ClusterQueue research (flavors nvidia.com/gpu: h100)"
    assert not f.blocking


def test_findings_for_checks_eviction_preemption_and_requeue() -> None:
    waiting = workload(
        "w",
        2,
        cond("QuotaReserved", "True", "QuotaReserved"),
        cond("Admitted", "False", "NoChecks", "The workload has not all checks ready"),
        admission={"clusterQueue": "research", "podSetAssignments": []},
        admissionChecks=[
            {"name": "prov", "state": "Pending", "message": "Waiting for capacity"},
            {"name": "ok", "state": "Ready", "message": ""},
        ],
    )
    reasons = [(f.reason, f.detail, f.blocking) for f in workload_findings(waiting)]
    assert reasons == [
        ("quota_reserved", "quota reserved in ClusterQueue research", False),
        ("Admitted=False NoChecks", "The workload has not all checks ready", True),
        ("admission check prov: Pending", "Waiting for capacity", True),
    ]
    evicted = workload(
        "w",
        2,
        cond("QuotaReserved", "False", "Pending", "couldn't assign flavors"),
        cond("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: u1)"),
        cond("Preempted", "True", "InClusterQueue", "Preempted to accommodate a workload"),
        requeueState={"count": 1, "requeueAt": "2026-12-01T03:00:00Z"},
    )
    found = {f.reason: f for f in workload_findings(evicted)}
    assert found["Evicted=True Preempted"].detail.startswith("Preempted to accommodate")
    assert found["Preempted=True InClusterQueue"].blocking
    assert "2026-12-01T03:00:00Z" in found["requeue_at"].detail


def test_headroom_counts_reservations_and_holds() -> None:
    assert flavor_headroom(research(reserved=12), "nvidia.com/gpu") == {"h100": 4, "l4": 8}
    assert flavor_headroom(research(reserved=20), "nvidia.com/gpu")["h100"] == 0
    assert flavor_headroom(research(0, hold=True), "nvidia.com/gpu") == {"h100": 0, "l4": 0}
    facts = queue_facts([LOCAL], [research(reserved=12)], FLAVORS)
    assert facts.names == ("team-a-queue -> research",)
    assert facts.headroom_on([{"nvidia.com/gpu.product": H100, "x": "y"}]) == 4
    assert facts.headroom_on([{"nvidia.com/gpu.product": "NVIDIA-H200"}]) == 0


def test_gpu_quota_shows_usage_borrowing_and_waiting_workloads() -> None:
    port = MemoryCluster(
        "c1",
        objects={
            Kind.KUEUE_CLUSTER_QUEUES: [research(reserved=4)],
            Kind.KUEUE_LOCAL_QUEUES: [LOCAL],
            Kind.KUEUE_WORKLOADS: [ADMITTED, PENDING],
        },
    )
    out = run_tool(GPU_QUOTA, GpuQuotaInput(), port)
    [cq] = out.cluster_queues
    h100 = next(f for f in cq.flavors if f.flavor == "h100")
    assert (h100.nominal, h100.used, h100.reserved, h100.borrowed) == (16, 4, 4, 0)
    assert (cq.cohort, cq.held, cq.pending_workloads, cq.reserving_workloads) == (
        "all",
        False,
        1,
        1,
    )
    [waiting] = cq.pending
    assert (waiting.name, waiting.gpus, waiting.state) == ("job-big-1", 20, "pending")
    assert waiting.message == f"QuotaReserved=False Pending: {OVER}"
    text = GPU_QUOTA.summary(out)
    assert "h100 nvidia.com/gpu: 4/16 used" in text
    assert "waiting team-a/job-big-1 (20 GPUs)" in text


def _placement_cluster(reserved: int) -> MemoryCluster:
    return MemoryCluster(
        "east",
        {
            Kind.NODES: [node("h-0", "z1"), node("l4-0", "z1", gpus=4, product="NVIDIA-L4")],
            Kind.NAMESPACES: [namespace(NS)],
            Kind.RESOURCE_QUOTAS: [quota(NS, {"requests.nvidia.com/gpu": "64"}, {})],
            Kind.KUEUE_LOCAL_QUEUES: [LOCAL],
            Kind.KUEUE_CLUSTER_QUEUES: [research(reserved)],
            Kind.KUEUE_RESOURCE_FLAVORS: FLAVORS,
        },
    )


def test_placement_needs_queue_headroom_in_a_namespace_with_queues() -> None:
    args = PlacementInput(gpus=4, namespace=NS)
    out = run_tool(RECOMMEND_PLACEMENT, args, _placement_cluster(reserved=12))
    h100 = next(o for o in out.options if o.product == H100)
    assert (h100.fits, h100.queue_headroom) == (True, 4)
    assert "Kueue queue headroom 4 >= 4 (team-a-queue -> research)" in h100.reason
    out = run_tool(RECOMMEND_PLACEMENT, args, _placement_cluster(reserved=16))
    h100 = next(o for o in out.options if o.product == H100)
    assert (h100.fits, h100.queue_headroom) == (False, 0)
    assert "Kueue queue headroom 0 < 4" in h100.reason
    l4 = next(o for o in out.options if o.product == "NVIDIA-L4")
    assert (l4.fits, l4.queue_headroom) == (True, 8)
    assert out.options[0].product == "NVIDIA-L4"


def test_placement_without_kueue_uses_the_resource_quota_only() -> None:
    port = MemoryCluster(
        "west",
        {
            Kind.NODES: [node("h-0", "z1")],
            Kind.NAMESPACES: [namespace(NS)],
            Kind.RESOURCE_QUOTAS: [quota(NS, {"requests.nvidia.com/gpu": "4"}, {})],
        },
    )
    out = run_tool(RECOMMEND_PLACEMENT, PlacementInput(gpus=4, namespace=NS), port)
    [option] = out.options
    assert (option.fits, option.quota_headroom, option.queue_headroom) == (True, 4, None)
    assert "Kueue" not in option.reason
