"""idle_gpus: allocated GPUs that have stayed under a utilization threshold for a while.

For each holder (a pod, and its Job when it has one): where its idle GPUs are, since when they
have been idle (searched back over a lookback window), the GPU-hours wasted since then (a MIG
slice counts as its share of a GPU), and the action to take. The action is only a suggestion:
suspend_job and cancel_job are writes, so the policy and approval decide as for any write.
"""

from __future__ import annotations

import time
from collections import defaultdict

import anyio
from pydantic import Field

from mcp_kube.domain import DnsLabel
from mcp_kube.errors import ToolError
from mcp_kube.kube.port import ClusterPort
from mcp_kube.metrics.promql import PromQuery, first_seen, last_above, over_window
from mcp_kube.metrics.result import Sample, device_key
from mcp_kube.tools.base import ToolContext, ToolOutput, ToolSpec
from mcp_kube.tools.common import ClusterStatus, FleetInput, fan_out, unavailable_lines
from mcp_kube.tools.gpumetrics import holder_matchers, mig_share

__all__ = ["IDLE_GPUS", "IdleHolder", "suggested_action"]

JOB_LABELS = ("batch.kubernetes.io/job-name", "job-name")


class IdleGpusInput(FleetInput):
    namespace: DnsLabel | None = Field(None, description="only GPUs held in this namespace")
    threshold_percent: float = Field(5.0, ge=0, le=100, description="idle: utilization below")
    idle_hours: float = Field(1.0, gt=0.0166, le=24 * 7, description="idle at least this long")
    lookback_hours: float = Field(
        24.0, gt=0.0166, le=24 * 30, description="how far back 'idle since' is searched"
    )
    limit: int = Field(50, ge=1, le=500)


class IdleHolder(ToolOutput):
    cluster: str
    namespace: str
    pod: str
    job: str | None = Field(description="the Job owning the pod, when there is one")
    nodes: list[str]
    devices: list[str] = Field(description="e.g. 'h100-1 gpu 3' or 'a100-0 gpu 0 / MIG 1g.10gb'")
    gpus: float = Field(description="GPUs held idle (a MIG slice counts as its share)")
    idle_since: str = Field(description="UTC ISO 8601; the lookback's start if idle throughout")
    idle_hours: float
    gpu_hours_wasted: float
    suggested_action: str


class IdleGpus(ToolOutput):
    clusters: list[ClusterStatus] = Field(description="unreachable ones: metrics unavailable")
    threshold_percent: float
    idle_hours: float
    holders: list[IdleHolder] = Field(description="most GPU-hours wasted first")
    holders_total: int
    total_gpu_hours_wasted: float
    note: str


def suggested_action(cluster: str, namespace: str, pod: str, job: str | None) -> str:
    if job:
        return (
            f"suspend_job cluster={cluster} namespace={namespace} name={job} (frees the GPUs, "
            "can be resumed), or cancel_job if it is not needed; both ask for approval"
        )
    return f"ask the owner of pod {namespace}/{pod} to stop it (no Job: no tool suspends it)"


async def _ask_all(port: ClusterPort, queries: dict[str, PromQuery]) -> dict[str, list[Sample]]:
    """Every query at once; a failing one is raised as itself, not inside an exception group."""
    got: dict[str, list[Sample]] = {}
    failed: list[ToolError] = []

    async def ask(name: str) -> None:
        try:
            got[name] = await port.query_metrics(queries[name])
        except ToolError as e:
            failed.append(e)

    async with anyio.create_task_group() as tg:
        for name in queries:
            tg.start_soon(ask, name)
    if failed:
        raise failed[0]
    return got


async def _idle_in(port: ClusterPort, args: IdleGpusInput, now: float) -> list[IdleHolder]:
    held = holder_matchers(args.namespace, None, held=True)
    idle_s = max(60, round(args.idle_hours * 3600))
    look_s = max(idle_s, round(args.lookback_hours * 3600))
    queries = {  # independent: asked at once (the latency is the slowest, not the sum)
        "peak": over_window("max", "DCGM_FI_DEV_GPU_UTIL", idle_s, held, now),
        "busy": last_above(args.threshold_percent, look_s, held, now),
        "seen": first_seen(look_s, held, now),
    }
    got = await _ask_all(port, queries)
    idle = [s for s in got["peak"] if s.labels.get("pod") and s.value < args.threshold_percent]
    if not idle:
        return []
    pods = {(p.namespace, p.name): p for p in await port.pods() if not p.terminal}
    # held now: a pod that ended within the window left its series behind
    idle = [s for s in idle if (s.labels.get("namespace", ""), s.labels["pod"]) in pods]
    busy = {device_key(s.labels): s.value for s in got["busy"]}
    seen = {device_key(s.labels): s.value for s in got["seen"]}
    jobs = {
        key: next((p.labels[k] for k in JOB_LABELS if p.labels.get(k)), None)
        for key, p in pods.items()
    }
    by_holder: dict[tuple[str, str], list[tuple[dict[str, str], float]]] = defaultdict(list)
    for s in idle:
        key = device_key(s.labels)
        since = max(busy.get(key, 0.0), seen.get(key, now - look_s))
        by_holder[s.labels["namespace"], s.labels["pod"]].append((s.labels, since))
    out = []
    for (namespace, pod), devs in by_holder.items():
        since = min(t for _, t in devs)
        job = jobs.get((namespace, pod))
        out.append(
            IdleHolder(
                cluster=port.name,
                namespace=namespace,
                pod=pod,
                job=job,
                nodes=sorted({lab.get("Hostname", "") for lab, _ in devs}),
                devices=sorted(_device_name(lab) for lab, _ in devs)[:64],
                gpus=round(sum(mig_share(lab) for lab, _ in devs), 3),
                idle_since=_iso(since),
                idle_hours=round((now - since) / 3600, 2),
                gpu_hours_wasted=round(
                    sum(mig_share(lab) * (now - t) for lab, t in devs) / 3600, 2
                ),
                suggested_action=suggested_action(port.name, namespace, pod, job),
            )
        )
    return out


def _device_name(labels: dict[str, str]) -> str:
    text = f"{labels.get('Hostname', '?')} gpu {labels.get('gpu', '?')}"
    if labels.get("GPU_I_PROFILE"):
        text += f" / MIG {labels['GPU_I_PROFILE']} #{labels.get('GPU_I_ID', '?')}"
    return text


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def _idle_gpus(ctx: ToolContext, args: IdleGpusInput) -> IdleGpus:
    now = time.time()

    async def one(port: ClusterPort) -> list[IdleHolder]:
        return await _idle_in(port, args, now)

    got, status = await fan_out(ctx.clusters(args.cluster), one, strict=args.cluster is not None)
    holders = sorted(
        (h for hs in got.values() for h in hs),
        key=lambda h: (-h.gpu_hours_wasted, h.cluster, h.namespace, h.pod),
    )
    return IdleGpus(
        clusters=status,
        threshold_percent=args.threshold_percent,
        idle_hours=args.idle_hours,
        holders=holders[: args.limit],
        holders_total=len(holders),
        total_gpu_hours_wasted=round(sum(h.gpu_hours_wasted for h in holders), 2),
        note=(
            f"Allocated GPUs whose utilization stayed under {args.threshold_percent:g}% for the "
            f"last {args.idle_hours:g} h (dcgm-exporter via Prometheus); 'idle since' is searched "
            f"back {args.lookback_hours:g} h. Wasted = GPU share x hours idle."
        ),
    )


def _summary(out: IdleGpus) -> str:
    lines = unavailable_lines(out.clusters)
    lines.append(
        f"{out.holders_total} holders of idle GPUs (< {out.threshold_percent:g}% for "
        f"{out.idle_hours:g} h), {out.total_gpu_hours_wasted} GPU-hours wasted"
    )
    lines += [
        f"  {h.cluster} {h.namespace}/{h.pod}{f' (job {h.job})' if h.job else ''}: {h.gpus:g} "
        f"GPUs on {', '.join(h.nodes)}, idle since {h.idle_since}, {h.gpu_hours_wasted} GPU-h; "
        f"{h.suggested_action}"
        for h in out.holders[:20]
    ]
    return "\n".join(lines)


IDLE_GPUS: ToolSpec[IdleGpusInput, IdleGpus] = ToolSpec(
    name="idle_gpus",
    title="Idle GPUs",
    description=(
        "Allocated GPUs under a utilization threshold (default 5%) for at least a window "
        "(default 1 h): who holds them (namespace, pod, job), where, since when, the GPU-hours "
        "wasted, and the action to take (suspend_job or cancel_job, which ask for approval). "
        "Default: every cluster."
    ),
    input=IdleGpusInput,
    output=IdleGpus,
    run=_idle_gpus,
    summary=_summary,
    examples=(
        ("Which GPUs are allocated but idle?", {}),
        (
            "Has team-b had GPUs sitting idle for the last 3 hours?",
            {"namespace": "team-b", "idle_hours": 3},
        ),
    ),
)
