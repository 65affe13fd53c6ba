"""Reading what the Kueue controller writes: Workload conditions, ClusterQueue usage, headroom.

Pure functions over the ``kueue.x-k8s.io/v1beta2`` objects (plain JSON in, plain data out), so
``explain_pending``, ``gpu_quota`` and ``recommend_placement`` read Kueue the same way, and the
parsing is tested with plain data. Kueue's own words (condition reasons and messages, admission
check messages) are quoted, clipped, never rephrased.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcp_kube.domain import Json, is_gpu_resource
from mcp_kube.kube.scalars import parse_count
from mcp_kube.tools.common import clip

__all__ = [
    "QueueFacts",
    "QueueFinding",
    "WorkloadState",
    "flavor_headroom",
    "flavor_status",
    "queue_facts",
    "workload_findings",
    "workload_gpus",
    "workload_queue",
    "workload_state",
]

WorkloadState = Literal["pending", "quota_reserved", "admitted", "evicted", "finished", "inactive"]


@dataclass(frozen=True)
class QueueFinding:
    """One thing Kueue says about a Workload; ``blocking``: it keeps the job from starting."""

    reason: str
    detail: str
    blocking: bool


def _conditions(obj: Json) -> dict[str, Json]:
    conds = (obj.get("status") or {}).get("conditions") or []
    return {str(c.get("type")): c for c in conds if isinstance(c, dict)}


def _true(cond: Json | None) -> bool:
    return cond is not None and cond.get("status") == "True"


def workload_state(obj: Json) -> WorkloadState:
    conds = _conditions(obj)
    if _true(conds.get("Finished")):
        return "finished"
    if (obj.get("spec") or {}).get("active") is False:
        return "inactive"
    if _true(conds.get("Admitted")):
        return "admitted"
    if _true(conds.get("QuotaReserved")):
        return "quota_reserved"
    if _true(conds.get("Evicted")):
        return "evicted"
    return "pending"


def workload_queue(obj: Json) -> str:
    """The LocalQueue the Workload was submitted to (``spec.queueName``)."""
    return clip(str((obj.get("spec") or {}).get("queueName") or ""), 253)


def workload_gpus(obj: Json) -> int:
    """GPUs the Workload asks for: every pod set's count times its pods' GPU requests."""
    total = 0
    for ps in (obj.get("spec") or {}).get("podSets") or []:
        count = parse_count(ps.get("count")) or 0
        pod = ((ps.get("template") or {}).get("spec")) or {}
        for c in pod.get("containers") or []:
            for res, qty in ((c.get("resources") or {}).get("requests") or {}).items():
                if is_gpu_resource(str(res)):
                    total += count * (parse_count(qty) or 0)
    return total


# Kueue lists every flavor it tried in one message: longer than other cluster messages.
KUEUE_MESSAGE_CHARS = 1000


def _cond_finding(ctype: str, cond: Json, blocking: bool) -> QueueFinding:
    status, why = cond.get("status"), cond.get("reason") or ""
    return QueueFinding(
        reason=clip(f"{ctype}={status} {why}".strip(), 128),
        detail=clip(str(cond.get("message") or ""), KUEUE_MESSAGE_CHARS),
        blocking=blocking,
    )


def _admission(obj: Json) -> str:
    admission = (obj.get("status") or {}).get("admission") or {}
    flavors = sorted(
        {
            f"{res}: {flavor}"
            for psa in admission.get("podSetAssignments") or []
            for res, flavor in (psa.get("flavors") or {}).items()
        }
    )
    where = f"ClusterQueue {clip(str(admission.get('clusterQueue') or '?'), 253)}"
    return where + (f" (flavors {', '.join(flavors)})" if flavors else "")


def _checks(obj: Json) -> list[QueueFinding]:
    return [
        QueueFinding(
            reason=clip(f"admission check {c.get('name')}: {c.get('state')}", 128),
            detail=clip(str(c.get("message") or "")),
            blocking=c.get("state") in ("Pending", "Retry", "Rejected"),
        )
        for c in (obj.get("status") or {}).get("admissionChecks") or []
        if c.get("state") != "Ready"
    ]


def workload_findings(obj: Json) -> list[QueueFinding]:
    """Kueue's account of one Workload: quota reservation, admission, admission checks,
    eviction and preemption, each quoted from its condition."""
    conds = _conditions(obj)
    state = workload_state(obj)
    out: list[QueueFinding] = []
    if state == "inactive":
        out.append(
            QueueFinding("inactive", "the Workload is deactivated (spec.active=false)", True)
        )
    reserved = conds.get("QuotaReserved")
    if state == "admitted":
        out.append(QueueFinding("admitted", "admitted by " + _admission(obj), False))
    elif reserved is not None and _true(reserved):
        out.append(QueueFinding("quota_reserved", "quota reserved in " + _admission(obj), False))
        admitted = conds.get("Admitted")
        if admitted is not None:
            out.append(_cond_finding("Admitted", admitted, True))
    elif reserved is not None:
        out.append(_cond_finding("QuotaReserved", reserved, True))
    out += _checks(obj)
    for ctype in ("Evicted", "Preempted"):
        cond = conds.get(ctype)
        if cond is not None and _true(cond):
            out.append(_cond_finding(ctype, cond, state not in ("admitted", "finished")))
    requeue_at = ((obj.get("status") or {}).get("requeueState") or {}).get("requeueAt")
    if requeue_at and state in ("pending", "evicted"):
        out.append(QueueFinding("requeue_at", f"Kueue requeues it at {clip(requeue_at)}", True))
    return out


def flavor_status(status: Json, key: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(flavor, resource) -> (total, borrowed) of ``status.flavorsUsage`` or
    ``status.flavorsReservation``."""
    return {
        (str(f.get("name")), str(r.get("name"))): (
            parse_count(r.get("total")) or 0,
            parse_count(r.get("borrowed")) or 0,
        )
        for f in status.get(key) or []
        for r in f.get("resources") or []
    }


def flavor_headroom(cluster_queue: Json, resource: str) -> dict[str, int]:
    """Flavor -> units of ``resource`` the ClusterQueue can still reserve from its own
    nominal quota (nominal - reserved, at least 0). Borrowing from a cohort is not counted:
    it depends on the other queues. A held or stopped queue has no headroom at all."""
    spec, status = cluster_queue.get("spec") or {}, cluster_queue.get("status") or {}
    reserved = flavor_status(status, "flavorsReservation")
    stopped = spec.get("stopPolicy") in ("Hold", "HoldAndDrain")
    out: dict[str, int] = {}
    for group in spec.get("resourceGroups") or []:
        for f in group.get("flavors") or []:
            for r in f.get("resources") or []:
                if r.get("name") != resource:
                    continue
                name = str(f.get("name"))
                nominal = parse_count(r.get("nominalQuota")) or 0
                used = reserved.get((name, resource), (0, 0))[0]
                out[name] = 0 if stopped else max(0, nominal - used)
    return out


@dataclass(frozen=True)
class QueueFacts:
    """A namespace's Kueue LocalQueues: what their ClusterQueues can still admit."""

    names: tuple[str, ...]  # "LocalQueue -> ClusterQueue"
    flavors: dict[str, dict[str, str]]  # ResourceFlavor -> its node labels
    left: dict[str, int]  # flavor -> most GPUs one of those ClusterQueues can still reserve

    def headroom_on(self, node_labels: list[dict[str, str]]) -> int:
        """GPUs the queues can still admit onto nodes with these labels: the best headroom of
        the flavors whose node labels one of the nodes carries (0: no flavor covers them)."""
        best = 0
        for flavor, left in self.left.items():
            wanted = self.flavors.get(flavor, {}).items()
            if any(wanted <= labels.items() for labels in node_labels):
                best = max(best, left)
        return best


def queue_facts(
    local_queues: list[Json], cluster_queues: list[Json], flavors: list[Json]
) -> QueueFacts:
    """The headroom, per flavor, of the ClusterQueues behind ``local_queues``."""
    targets = {
        str((lq.get("metadata") or {}).get("name")): str((lq.get("spec") or {}).get("clusterQueue"))
        for lq in local_queues
    }
    left: dict[str, int] = {}
    for cq in cluster_queues:
        if str((cq.get("metadata") or {}).get("name")) in targets.values():
            for flavor, n in flavor_headroom(cq, "nvidia.com/gpu").items():
                left[flavor] = max(left.get(flavor, 0), n)
    return QueueFacts(
        names=tuple(f"{lq} -> {cq}" for lq, cq in sorted(targets.items())),
        flavors={
            str((f.get("metadata") or {}).get("name")): {
                str(k): str(v) for k, v in ((f.get("spec") or {}).get("nodeLabels") or {}).items()
            }
            for f in flavors
        },
        left=left,
    )
