"""Write tools: submit_job, cancel_job, suspend_job and resume_job.

Every write follows one path: build (or read) the manifest, let the policy apply its defaults
and decide on the final manifest (``ctx.review_manifest``, which raises ``PolicyDenied``),
run it as a server-side dry run so the API server's own validation speaks before anyone is
asked, obtain the approval the policy asks for (``ctx.require_approval``), then write once,
without retries. Only Jobs labelled ``app.kubernetes.io/managed-by=mcp-kube`` can be
cancelled, suspended or resumed: mcp-kube never touches workloads it did not create.
Env values never appear in a result or an approval prompt; only their names do.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mcp_kube.domain import DnsLabel, DnsSubdomain, Json
from mcp_kube.errors import InvalidArgument, PolicyDenied
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.tools.base import ClusterInput, ManifestReview, ToolContext, ToolOutput, ToolSpec
from mcp_kube.tools.common import job_gpus, job_status
from mcp_kube.tools.jobspec import (
    GPU_PRODUCT_LABEL,
    IDEMPOTENCY_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SUBMITTED_BY_LABEL,
    SubmitJobInput,
    build_job,
    preview_manifest,
    principal_label,
)

__all__ = ["CANCEL_JOB", "RESUME_JOB", "SUBMIT_JOB", "SUSPEND_JOB"]


def _meta(obj: Json) -> Json:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _labels(obj: Json) -> dict[str, str]:
    labels = _meta(obj).get("labels")
    return labels if isinstance(labels, dict) else {}


def _containers(manifest: Json) -> list[Json]:
    spec = ((manifest.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


# ---------------------------------------------------------------------------- submit_job


class SubmitJobOutput(ToolOutput):
    created: bool = Field(description="false when the idempotency key matched an earlier job")
    cluster: str
    namespace: str
    name: str
    idempotency_key: str
    approval: str = Field(
        description="how the write was approved: none, elicitation, out_of_band:<approver>"
    )
    policy_changes: list[str] = Field(description="what the policy's defaults changed")
    warnings: list[str]
    rules: list[str] = Field(description="policy rules that decided")
    preview: dict[str, Any] = Field(description="the job's manifest (env names only)")
    audit_id: str | None = Field(None, description="the API server's Audit-Id of the create")
    note: str = ""


def _approval_preview(cluster: str, manifest: Json, review: ManifestReview) -> Json:
    containers = _containers(manifest)
    first = containers[0] if containers else {}
    meta = _meta(manifest)
    return {
        "cluster": cluster,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "image": first.get("image"),
        "command": list(first.get("command") or []) + list(first.get("args") or []),
        "gpus": job_gpus(manifest),
        "resources": first.get("resources") or {},
        "env": [e.get("name") for e in first.get("env") or [] if isinstance(e, dict)],
        "labels": _labels(manifest),
        "policy_changes": list(review.changes),
        "warnings": list(review.warnings),
    }


def _same_identity(built: Json, final: Json) -> None:
    """The policy may add defaults; it may not turn the job into another object."""
    for key in ("apiVersion", "kind"):
        if final.get(key) != built.get(key):
            raise InvalidArgument(f"the policy review changed the manifest's {key}: refused")
    for key in ("name", "namespace"):
        if _meta(final).get(key) != _meta(built).get(key):
            raise InvalidArgument(f"the policy review changed metadata.{key}: refused")
    for key in (MANAGED_BY_LABEL, SUBMITTED_BY_LABEL, IDEMPOTENCY_LABEL):
        if _labels(final).get(key) != _labels(built).get(key):
            raise InvalidArgument(f"the policy review changed the label {key}: refused")


async def _resolved_product(port: ClusterPort, args: SubmitJobInput) -> SubmitJobInput:
    """``gpu_product`` as the nodes' label spells it: "A100" stands for the one product label
    on the cluster that contains it (``NVIDIA-A100-SXM4-80GB``). A value that is no node's
    label and names none, or several, is refused: the Job would wait for a node forever."""
    want = args.gpu_product
    if want is None:
        return args
    products = sorted({p for n in await port.nodes() if (p := n.labels.get(GPU_PRODUCT_LABEL))})
    if want in products:
        return args
    hits = [p for p in products if want.lower() in p.lower()]
    if len(hits) == 1:
        return args.model_copy(update={"gpu_product": hits[0]})
    which = f"matches several: {', '.join(hits)}" if hits else "matches no node's label"
    known = ", ".join(products[:20]) or "none"
    raise InvalidArgument(
        f"gpu_product {want!r} {which} ({GPU_PRODUCT_LABEL} on {port.name}: {known})"
    )


async def _submit_job(ctx: ToolContext, args: SubmitJobInput) -> SubmitJobOutput:
    port = ctx.cluster(args.cluster)
    args = await _resolved_product(port, args)
    built = build_job(args, ctx.principal)
    review = ctx.review_manifest(port.name, args.namespace, built)
    manifest = review.manifest
    _same_identity(built, manifest)
    key = _labels(built)[IDEMPOTENCY_LABEL]
    owner = principal_label(ctx.principal.subject)
    earlier = await port.list_objects(
        Kind.JOBS,
        args.namespace,
        label_selector=f"{IDEMPOTENCY_LABEL}={key},{SUBMITTED_BY_LABEL}={owner}",
        limit=5,
    )
    if earlier:
        job = earlier[0]
        return SubmitJobOutput(
            created=False,
            cluster=port.name,
            namespace=args.namespace,
            name=str(_meta(job).get("name", "")),
            idempotency_key=key,
            approval="none",
            policy_changes=[],
            warnings=[],
            rules=list(review.rules),
            preview=preview_manifest(job),
            note=f"already submitted (idempotency key {key}, status {job_status(job)}): "
            "nothing created",
        )
    await port.create(Kind.JOBS, args.namespace, manifest, dry_run=True)
    how = await ctx.require_approval(review, _approval_preview(port.name, manifest, review))
    created = await port.create(Kind.JOBS, args.namespace, manifest, dry_run=False)
    return SubmitJobOutput(
        created=True,
        cluster=port.name,
        namespace=args.namespace,
        name=str(_meta(created).get("name") or args.name),
        idempotency_key=key,
        approval=how,
        policy_changes=list(review.changes),
        warnings=list(review.warnings),
        rules=list(review.rules),
        preview=preview_manifest(manifest),
        audit_id=str(created.get("_audit_id") or "") or None,
    )


def _submit_summary(out: SubmitJobOutput) -> str:
    where = f"{out.cluster}/{out.namespace}/{out.name}"
    if not out.created:
        return f"{where}: {out.note}"
    gpus = job_gpus(out.preview)
    what = ", ".join(f"{n} {r}" for r, n in gpus.items()) or "no GPUs"
    lines = [f"{where}: job submitted ({what}/pod, approval: {out.approval})"]
    if out.policy_changes:
        lines.append("  policy defaults: " + "; ".join(out.policy_changes))
    lines += [f"  warning: {w}" for w in out.warnings]
    return "\n".join(lines)


SUBMIT_JOB: ToolSpec[SubmitJobInput, SubmitJobOutput] = ToolSpec(
    name="submit_job",
    title="Submit job",
    description=(
        "Create a batch Job from a fixed template: image, command/args, GPUs (whole, MIG "
        "profile, or a KAI-Scheduler fraction), GPU product, CPU/memory, plain env vars, "
        "Kueue queue, priority class, deadline, parallelism/completions. Pods run restricted "
        "(non-root, no privilege escalation, all capabilities dropped, no volumes, no host "
        "access, no service account token). The policy's defaults are applied, the API server "
        "validates it in a dry run, and approval is asked when the policy requires it. "
        "Repeating a call with the same idempotency_key returns the first job."
    ),
    input=SubmitJobInput,
    output=SubmitJobOutput,
    run=_submit_job,
    summary=_submit_summary,
    read_only=False,
    examples=(
        (
            "Run image registry.internal/ml/train:2 as job exp-1 in team-x with 1 GPU",
            {
                "name": "exp-1",
                "namespace": "team-x",
                "image": "registry.internal/ml/train:2",
                "gpus": 1,
            },
        ),
    ),
)


# ---------------------------------------------------------------------------- job actions

Action = Literal["cancel", "suspend", "resume"]


class JobActionInput(ClusterInput):
    namespace: DnsLabel
    name: DnsSubdomain


class JobActionOutput(ToolOutput):
    action: Action
    changed: bool = Field(description="false when the job was already in the asked state")
    cluster: str
    namespace: str
    name: str
    status: str = Field(description="the job's status before the action")
    suspended: bool | None = Field(None, description="spec.suspend after the action")
    approval: str
    warnings: list[str]
    rules: list[str]
    audit_id: str | None = None
    note: str = ""


async def _managed_job(port: ClusterPort, namespace: str, name: str) -> Json:
    job = await port.get(Kind.JOBS, name, namespace)
    if _labels(job).get(MANAGED_BY_LABEL) != MANAGED_BY:
        raise PolicyDenied(
            f"job {namespace}/{name} was not submitted through mcp-kube "
            f"(no label {MANAGED_BY_LABEL}={MANAGED_BY}): mcp-kube does not change it"
        )
    meta = {k: v for k, v in _meta(job).items() if k != "managedFields"}
    return job | {"metadata": meta}


def _action_preview(action: Action, cluster: str, job: Json) -> Json:
    meta = _meta(job)
    return {
        "action": f"{action} job",
        "cluster": cluster,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "status": job_status(job),
        "gpus": job_gpus(job),
        "active_pods": int((job.get("status") or {}).get("active") or 0),
        "submitted_by": _labels(job).get(SUBMITTED_BY_LABEL),
    }


async def _job_action(ctx: ToolContext, args: JobActionInput, action: Action) -> JobActionOutput:
    port = ctx.cluster(args.cluster)
    job = await _managed_job(port, args.namespace, args.name)
    review = ctx.review_manifest(port.name, args.namespace, job)
    status = job_status(job)
    suspended = bool((job.get("spec") or {}).get("suspend"))

    def out(
        changed: bool, how: str, after: bool | None, audit: Json | None, note: str = ""
    ) -> JobActionOutput:
        return JobActionOutput(
            action=action,
            changed=changed,
            cluster=port.name,
            namespace=args.namespace,
            name=args.name,
            status=status,
            suspended=after,
            approval=how,
            warnings=list(review.warnings),
            rules=list(review.rules),
            audit_id=(str((audit or {}).get("_audit_id") or "") or None),
            note=note,
        )

    if action == "cancel":
        await port.delete(Kind.JOBS, args.name, args.namespace, dry_run=True)
        how = await ctx.require_approval(review, _action_preview(action, port.name, job))
        result = await port.delete(Kind.JOBS, args.name, args.namespace, dry_run=False)
        return out(True, how, None, result, "deleted; its pods are removed in the background")
    target = action == "suspend"
    if status in ("succeeded", "failed"):
        raise InvalidArgument(f"job {args.namespace}/{args.name} has {status}: nothing to {action}")
    if suspended == target:
        return out(
            False, "none", suspended, None, f"already {'suspended' if target else 'running'}"
        )
    patch: Json = {"spec": {"suspend": target}}
    await port.patch(Kind.JOBS, args.name, args.namespace, patch, dry_run=True)
    how = await ctx.require_approval(review, _action_preview(action, port.name, job))
    result = await port.patch(Kind.JOBS, args.name, args.namespace, patch, dry_run=False)
    return out(True, how, bool((result.get("spec") or {}).get("suspend")), result)


async def _cancel(ctx: ToolContext, args: JobActionInput) -> JobActionOutput:
    return await _job_action(ctx, args, "cancel")


async def _suspend(ctx: ToolContext, args: JobActionInput) -> JobActionOutput:
    return await _job_action(ctx, args, "suspend")


async def _resume(ctx: ToolContext, args: JobActionInput) -> JobActionOutput:
    return await _job_action(ctx, args, "resume")


def _action_summary(out: JobActionOutput) -> str:
    where = f"{out.cluster}/{out.namespace}/{out.name}"
    if not out.changed:
        return f"{where}: {out.note}, nothing changed"
    done = {"cancel": "cancelled", "suspend": "suspended", "resume": "resumed"}[out.action]
    text = f"{where}: {done} (was {out.status}, approval: {out.approval})"
    if out.note:
        text += f"; {out.note}"
    return "\n".join([text] + [f"  warning: {w}" for w in out.warnings])


_ONLY_OURS = "Only Jobs submitted through mcp-kube (label app.kubernetes.io/managed-by=mcp-kube)."

CANCEL_JOB: ToolSpec[JobActionInput, JobActionOutput] = ToolSpec(
    name="cancel_job",
    title="Cancel job",
    description="Delete a Job and, in the background, its pods. " + _ONLY_OURS,
    input=JobActionInput,
    output=JobActionOutput,
    run=_cancel,
    summary=_action_summary,
    read_only=False,
    examples=(("Cancel job exp-1 in team-x", {"namespace": "team-x", "name": "exp-1"}),),
)

SUSPEND_JOB: ToolSpec[JobActionInput, JobActionOutput] = ToolSpec(
    name="suspend_job",
    title="Suspend job",
    description="Suspend a running Job (spec.suspend=true): its active pods are stopped and "
    "it keeps its completions; resume_job continues it. " + _ONLY_OURS,
    input=JobActionInput,
    output=JobActionOutput,
    run=_suspend,
    summary=_action_summary,
    read_only=False,
    examples=(("Pause job exp-1 in team-x", {"namespace": "team-x", "name": "exp-1"}),),
)

RESUME_JOB: ToolSpec[JobActionInput, JobActionOutput] = ToolSpec(
    name="resume_job",
    title="Resume job",
    description="Resume a suspended Job (spec.suspend=false). For a Job in a Kueue queue, "
    "Kueue normally decides when to unsuspend it. " + _ONLY_OURS,
    input=JobActionInput,
    output=JobActionOutput,
    run=_resume,
    summary=_action_summary,
    read_only=False,
    examples=(("Resume job exp-1 in team-x", {"namespace": "team-x", "name": "exp-1"}),),
)
