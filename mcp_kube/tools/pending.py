"""explain_pending: why a Job or pod is not running, as structured reasons and one verdict.

It reads the scheduler's verdict (the PodScheduled condition and FailedScheduling events,
structured by ``schedmsg``), the namespace's GPU ResourceQuota (pods that would exceed it are
never created) and Kueue's Workload for the job (admission, eviction, preemption), then picks
the most decisive reason for the verdict line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import anyio
from pydantic import Field, model_validator

from mcp_kube.domain import KUEUE_QUEUE_LABEL, DnsLabel, DnsSubdomain, Json
from mcp_kube.errors import NotFound, ToolError
from mcp_kube.kube.objects import JobInfo, PodInfo, QuotaInfo, quota_resource
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.tools import nearby
from mcp_kube.tools.base import ClusterInput, ToolContext, ToolOutput, ToolSpec
from mcp_kube.tools.common import clip
from mcp_kube.tools.kueueview import workload_findings
from mcp_kube.tools.reads import fetch_events, job_pods
from mcp_kube.tools.schedmsg import SchedulerFindings, parse_scheduler_message

__all__ = ["EXPLAIN_PENDING", "gpu_quotas", "kueue_reasons", "quota_reasons"]


# ---------------------------------------------------------------------------- reasons


Source = Literal["scheduler", "quota", "kueue", "job"]


class Reason(ToolOutput):
    source: Source
    reason: str
    detail: str
    nodes: int | None = Field(None, description="nodes this applies to (scheduler reasons)")


def scheduler_reasons(f: SchedulerFindings) -> list[Reason]:
    found = [
        *(
            ("insufficient_resource", f"Insufficient {res} on {n} of {f.total} nodes", n)
            for res, n in f.insufficient.items()
        ),
        *(
            (
                "untolerated_taint",
                f"{n} node(s) have taint {{{t}}} that the pod does not tolerate",
                n,
            )
            for t, n in f.untolerated_taints.items()
        ),
    ]
    if n := f.selector_mismatch:
        found.append(
            ("node_selector_mismatch", f"{n} node(s) do not match the nodeSelector/affinity", n)
        )
    if n := f.unschedulable:
        found.append(("unschedulable_nodes", f"{n} node(s) are cordoned (unschedulable)", n))
    found += [("other", f"{n} node(s): {t}", n) for t, n in f.other.items()]
    return [Reason(source="scheduler", reason=r, detail=d, nodes=n) for r, d, n in found]


# ---------------------------------------------------------------------------- quota, kueue


class QuotaView(ToolOutput):
    name: str
    resource: str
    hard: int
    used: int


def gpu_quotas(items: list[Json]) -> list[QuotaView]:
    """The GPU lines with a hard limit of the namespace's ResourceQuotas."""
    return [
        QuotaView(name=clip(q.name, 253), resource=line.key, hard=line.hard, used=line.used or 0)
        for q in map(QuotaInfo.from_json, items)
        for line in q.gpu_lines
        if line.hard is not None
    ]


def quota_reasons(quotas: list[QuotaView], request: dict[str, int]) -> list[Reason]:
    """Quotas a not-yet-created pod requesting ``request`` would exceed."""
    out = []
    for q in quotas:
        need = request.get(quota_resource(q.resource), 0)
        if need and q.used + need > q.hard:
            out.append(
                Reason(
                    source="quota",
                    reason="quota_exceeded",
                    detail=f"ResourceQuota {q.name}: {q.resource} used {q.used} + requested "
                    f"{need} > hard {q.hard}",
                )
            )
    return out


def kueue_reasons(workload: Json | None, queue: str) -> list[Reason]:
    """Kueue's own account of the job's Workload (see ``kueueview.workload_findings``)."""
    if workload is None:
        return [
            Reason(
                source="kueue",
                reason="no_workload",
                detail=f"queue {queue} is set but Kueue has no Workload for it "
                "(Kueue not running, or not yet reconciled)",
            )
        ]
    out = [
        Reason(source="kueue", reason=f.reason, detail=f.detail)
        for f in workload_findings(workload)
    ]
    if not out:
        out.append(Reason(source="kueue", reason="not_admitted", detail=f"queued in {queue}"))
    return out


async def _workload(port: ClusterPort, namespace: str, owner_uid: str) -> Json | None:
    items = await port.list_objects(
        Kind.KUEUE_WORKLOADS,
        namespace,
        label_selector=f"kueue.x-k8s.io/job-uid={owner_uid}",
        limit=10,
    )
    return items[0] if items else None


# ---------------------------------------------------------------------------- explain_pending


class ExplainInput(ClusterInput):
    namespace: DnsLabel
    job: DnsSubdomain | None = None
    pod: DnsSubdomain | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ExplainInput:
        if (self.pod is None) == (self.job is None):
            raise ValueError("give exactly one of `job` or `pod`")
        return self


class PendingExplanation(ToolOutput):
    cluster: str
    namespace: str
    target: str = Field(description="job/NAME or pod/NAME")
    verdict: str
    reasons: list[Reason]
    pending_pods: list[str] = Field(description="examined pending pods (at most 3)")
    scheduler: SchedulerFindings | None = None
    quotas: list[QuotaView] = Field(default_factory=list, description="GPU quotas in namespace")
    gpus: int | None = Field(None, description="GPUs each of its pods requests")


async def _pod_reasons(
    port: ClusterPort, pod: PodInfo
) -> tuple[list[Reason], SchedulerFindings | None]:
    events = await fetch_events(
        port, pod.namespace, kind="Pod", name=pod.name, reason="FailedScheduling"
    )
    messages = [pod.pending_message] + [e.message for e in events]
    out: list[Reason] = []
    for msg in messages:
        findings = parse_scheduler_message(msg) if msg else None
        if findings:
            return scheduler_reasons(findings), findings
    if pod.pending_message or events:
        out.append(
            Reason(
                source="scheduler",
                reason=clip(pod.pending_reason or "FailedScheduling", 128),
                detail=clip(pod.pending_message or events[0].message),
            )
        )
    elif pod.node:
        out.append(
            Reason(
                source="scheduler",
                reason="scheduled",
                detail=f"bound to node {pod.node}; containers have not started yet",
            )
        )
    elif pod.scheduler != "default-scheduler":
        out.append(
            Reason(
                source="scheduler",
                reason="custom_scheduler",
                detail=clip(f"scheduler {pod.scheduler} has not placed the pod yet"),
            )
        )
    return out, None


@dataclass
class _Target:
    """What is known of the job or pod asked about, before its pods are examined."""

    pods: list[PodInfo]
    queue: str | None  # Kueue's queue: its Workload is read when set
    owner_uid: str  # the job's uid (Kueue's Workload names it), else the pod's
    reasons: list[Reason] = field(default_factory=list)
    settled: str | None = None  # the verdict when nothing is pending
    gpus: int = 0  # GPUs each pod requests


def _decided(job: JobInfo) -> str:
    if job.terminal:
        return f"not pending: the job has {job.decided}"
    return f"not pending: the job has {job.decided} (its remaining pods are being stopped)"


async def _job_target(port: ClusterPort, ns: str, name: str, quotas: list[QuotaView]) -> _Target:
    job = JobInfo.from_json(await port.get(Kind.JOBS, name, ns))
    gpus = sum(job.gpus.values())
    if job.decided:
        return _Target([], None, job.uid, settled=_decided(job), gpus=gpus)
    target = _Target(await job_pods(port, ns, name), job.kueue_queue, job.uid, gpus=gpus)
    if target.pods:
        return target
    target.reasons.append(Reason(source="job", reason="no_pods", detail="no pods exist yet"))
    if job.state == "suspended":
        why = (
            "Kueue admits it by unsuspending once quota is available"
            if job.kueue_queue
            else "nothing runs until spec.suspend is set to false"
        )
        target.reasons.append(Reason(source="job", reason="suspended", detail=why))
    target.reasons += quota_reasons(quotas, job.gpus)
    for e in (await fetch_events(port, ns, kind="Job", name=name))[:3]:
        target.reasons.append(Reason(source="job", reason=e.reason, detail=e.message))
    return target


async def _pod_target(port: ClusterPort, ns: str, name: str) -> _Target:
    pod = PodInfo.from_json(await port.get(Kind.PODS, name, ns))
    target = _Target([pod], pod.labels.get(KUEUE_QUEUE_LABEL), pod.uid)
    target.gpus = sum(pod.gpus.values())
    if pod.owner_kind == "Job":
        try:
            owner = JobInfo.from_json(await port.get(Kind.JOBS, pod.owner_name, ns))
        except ToolError:
            return target
        target.owner_uid = owner.uid or target.owner_uid
        target.queue = target.queue or owner.kueue_queue
    return target


async def _scheduler_verdicts(
    port: ClusterPort, pending: list[PodInfo]
) -> tuple[list[Reason], SchedulerFindings | None]:
    """The scheduler's reasons for each pending pod (read at once), in the pods' order."""
    results: dict[str, tuple[list[Reason], SchedulerFindings | None]] = {}

    async def one(p: PodInfo) -> None:
        results[p.name] = await _pod_reasons(port, p)

    async with anyio.create_task_group() as tg:
        for p in pending:
            tg.start_soon(one, p)
    reasons: list[Reason] = []
    findings: SchedulerFindings | None = None
    for p in pending:
        found, parsed = results[p.name]
        reasons += found
        findings = findings or parsed
    return reasons, findings


def _dedupe(reasons: list[Reason]) -> list[Reason]:
    seen, out = set(), []
    for r in reasons:
        if (r.source, r.reason, r.detail) not in seen:
            seen.add((r.source, r.reason, r.detail))
            out.append(r)
    return out[:30]


def _kueue_blocker(reasons: list[Reason], first: dict[str, Reason]) -> Reason | None:
    """Kueue's reason a suspended job in a queue does not start (its Workload is not admitted):
    the decisive one, ahead of the namespace's quota, which applies only once admitted."""
    if "suspended" not in first:
        return None
    passing = ("no_workload", "admitted", "quota_reserved", "not_admitted")
    return next((r for r in reasons if r.source == "kueue" and r.reason not in passing), None)


def _verdict(reasons: list[Reason], findings: SchedulerFindings | None) -> str:
    """The most decisive reason, in one line: quota, suspension, scheduler, then the rest."""
    first = {r.reason: r for r in reversed(reasons)}
    if r := _kueue_blocker(reasons, first):
        return clip(f"Kueue has not admitted it: {r.reason}: {r.detail}", 1100)
    if r := first.get("quota_exceeded"):
        return "pods cannot be created: the GPU request exceeds the quota: " + r.detail
    if r := first.get("suspended"):
        return "the job is suspended: " + r.detail
    if findings:
        top = "; ".join(r.detail for r in reasons if r.source == "scheduler")
        return f"unschedulable: {findings.available}/{findings.total} nodes fit: {clip(top, 400)}"
    for source in ("kueue", "scheduler", "job"):
        if r := next((r for r in reasons if r.source == source and r.reason != "no_pods"), None):
            return clip(f"{r.reason}: {r.detail}", 500)
    if "no_pods" in first:
        return "the job has no pods yet and no reason was reported (controller lag?)"
    return "pending, but no reason was reported yet (just created?)"


async def _explain(ctx: ToolContext, args: ExplainInput) -> PendingExplanation:
    port = ctx.cluster(args.cluster)
    ns = args.namespace
    quotas = gpu_quotas(await port.list_objects(Kind.RESOURCE_QUOTAS, ns, limit=100))
    kind, name = (Kind.JOBS, args.job) if args.job is not None else (Kind.PODS, args.pod)
    assert name is not None
    what = f"{'job' if kind is Kind.JOBS else 'pod'}/{name}"
    try:
        if kind is Kind.JOBS:
            target = await _job_target(port, ns, name, quotas)
        else:
            target = await _pod_target(port, ns, name)
    except NotFound as e:
        raise await nearby.missing(ctx, port, kind, name, ns, e) from e
    pending = [p for p in target.pods if p.phase == "Pending"][:3]
    if target.pods and not pending:
        target.settled = "not pending: its pods are " + ", ".join(
            sorted({p.phase for p in target.pods})
        )
    if target.settled:
        return PendingExplanation(
            cluster=port.name,
            namespace=ns,
            target=what,
            verdict=target.settled,
            reasons=[],
            pending_pods=[],
            quotas=quotas,
            gpus=target.gpus or None,
        )
    found, findings = await _scheduler_verdicts(port, pending)
    reasons = target.reasons + found
    if target.queue:
        workload = await _workload(port, ns, target.owner_uid)
        reasons += kueue_reasons(workload, clip(target.queue, 253))
    reasons = _dedupe(reasons)
    return PendingExplanation(
        cluster=port.name,
        namespace=ns,
        target=what,
        verdict=_verdict(reasons, findings),
        reasons=reasons,
        pending_pods=[p.name for p in pending],
        scheduler=findings,
        quotas=quotas,
        gpus=target.gpus or None,
    )


def _explain_summary(out: PendingExplanation) -> str:
    asks = f" (each pod requests {out.gpus} GPUs)" if out.gpus else ""
    lines = [f"{out.cluster}/{out.namespace}/{out.target}{asks}: {out.verdict}"]
    lines += [f"  [{r.source}] {r.reason}: {r.detail}" for r in out.reasons]
    lines += [f"  quota {q.name} {q.resource}: {q.used}/{q.hard} used" for q in out.quotas]
    return "\n".join(lines)


EXPLAIN_PENDING: ToolSpec[ExplainInput, PendingExplanation] = ToolSpec(
    name="explain_pending",
    title="Explain pending",
    description=(
        "Why a Job or pod is not running: the scheduler's reasons (insufficient GPUs by node "
        "count, untolerated taints, selector/affinity mismatch, cordoned nodes), the "
        "namespace's GPU ResourceQuota, Kueue admission and suspension, with a one-line verdict."
    ),
    input=ExplainInput,
    output=PendingExplanation,
    run=_explain,
    summary=_explain_summary,
    examples=(
        (
            "Why is job resnet-7 in team-x still pending?",
            {"namespace": "team-x", "job": "resnet-7"},
        ),
        ("Why is pod web-1 in team-x not running?", {"namespace": "team-x", "pod": "web-1"}),
    ),
)
