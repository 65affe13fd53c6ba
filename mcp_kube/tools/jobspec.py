"""The job template: typed parameters in, a restricted batch/v1 Job manifest out.

There is no free-form YAML and no way to name another kind, a volume, a host namespace, a
privileged container or a Secret: the input model knows only the fields below (unknown ones
are refused), and ``build_job`` writes every security-relevant field itself. The pod runs
under the "restricted" Pod Security profile: non-root, no privilege escalation, every
capability dropped, the runtime's default seccomp profile, no service account token, no
volumes, no host network/PID/IPC.

GPU requests, one of three ways:

* ``gpus=N``: N whole GPUs (``nvidia.com/gpu``, requests = limits);
* ``mig_profile="1g.10gb"`` with ``gpus=N``: N MIG instances of that profile
  (``nvidia.com/mig-1g.10gb``) instead of whole GPUs;
* ``gpu_fraction=0.5`` with ``gpus=0``: a share of one GPU through KAI-Scheduler (pod
  annotation ``gpu-fraction``, ``schedulerName: kai-scheduler``); it cannot be combined with
  whole GPUs or MIG.

Scheduling, and nothing else of it (no tolerations, affinity, nodeName or other node
selectors, so no way onto control-plane or tainted nodes):

* ``gpu_product`` pins the pods to nodes labelled ``nvidia.com/gpu.product=<value>``;
* ``queue`` hands the job to Kueue (label ``kueue.x-k8s.io/queue-name``; created suspended,
  Kueue unsuspends it on admission); the policy may list the queues allowed
  (``limits.queues``);
* ``priority_class`` sets ``priorityClassName``: only a class the policy lists
  (``limits.priorityClasses``, checked by the policy review), and never a ``system-*`` class
  (refused here, whatever the policy says: those preempt everything, system pods included);
* ``gpu_fraction`` sets ``schedulerName: kai-scheduler``.

Every Job carries ``app.kubernetes.io/managed-by=mcp-kube`` (only such Jobs can later be
cancelled, suspended or resumed through mcp-kube), the submitting principal and an
idempotency key: the caller's, or a hash of the canonical arguments.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator

from mcp_kube.canonical import canonical_json
from mcp_kube.domain import (
    KUEUE_QUEUE_LABEL,
    RESERVED_PRIORITY_PREFIX,
    DnsLabel,
    DnsSubdomain,
    Json,
    Principal,
)
from mcp_kube.tools.base import ClusterInput

__all__ = [
    "CONTAINER",
    "IDEMPOTENCY_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "RESERVED_PRIORITY_PREFIX",
    "SUBMITTED_BY_LABEL",
    "SubmitJobInput",
    "build_job",
    "idempotency_key",
    "preview_manifest",
    "principal_label",
]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mcp-kube"
SUBMITTED_BY_LABEL = "mcp-kube.io/submitted-by"
IDEMPOTENCY_LABEL = "mcp-kube.io/idempotency-key"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
KAI_SCHEDULER = "kai-scheduler"
KAI_FRACTION_ANNOTATION = "gpu-fraction"
CONTAINER = "trainer"
MAX_DEADLINE_S = 30 * 24 * 3600

_LABEL_VALUE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"

JobName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=52, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
Image = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
]
Arg = Annotated[str, StringConstraints(max_length=1024)]
LabelValue = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=_LABEL_VALUE)]
MigProfile = Annotated[
    str, StringConstraints(max_length=16, pattern=r"^[1-9]g\.[1-9][0-9]{0,2}gb$")
]
CpuQuantity = Annotated[
    str,
    StringConstraints(max_length=12, pattern=r"^([1-9][0-9]{0,6}m|[0-9]{1,4}(\.[0-9]{1,3})?)$"),
]
MemoryQuantity = Annotated[
    str,
    StringConstraints(
        max_length=16, pattern=r"^[0-9]{1,9}(\.[0-9]{1,3})?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"
    ),
]
EnvName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]
EnvValue = Annotated[str, StringConstraints(max_length=4096)]
IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=_LABEL_VALUE)
]


class SubmitJobInput(ClusterInput):
    """A training/batch job from a fixed template (see the module docstring for the rules)."""

    name: JobName = Field(description="Job name: RFC 1123 label, at most 52 characters")
    namespace: DnsLabel
    image: Image = Field(description="container image reference, e.g. registry/ml/trainer:1.4")
    command: list[Arg] = Field(
        default_factory=list, max_length=32, description="entrypoint override (exec form)"
    )
    args: list[Arg] = Field(default_factory=list, max_length=32, description="arguments")
    gpus: int = Field(
        0,
        ge=0,
        le=64,
        description="whole GPUs per pod (nvidia.com/gpu); with mig_profile: MIG instances",
    )
    gpu_product: LabelValue | None = Field(
        None, description="only nodes with this nvidia.com/gpu.product label value"
    )
    mig_profile: MigProfile | None = Field(
        None, description="MIG profile such as 1g.10gb: `gpus` counts instances of it"
    )
    gpu_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="share of one GPU via KAI-Scheduler (needs gpus=0 and no mig_profile)",
    )
    cpu: CpuQuantity | None = Field(None, description="CPU request, e.g. 4 or 500m")
    memory: MemoryQuantity | None = Field(None, description="memory request and limit, e.g. 32Gi")
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict, max_length=32, description="plain environment variables"
    )
    queue: DnsLabel | None = Field(
        None, description="Kueue LocalQueue; the job is created suspended for Kueue to admit"
    )
    priority_class: DnsSubdomain | None = Field(None, description="PriorityClass name")
    deadline_seconds: int | None = Field(
        None, ge=60, le=MAX_DEADLINE_S, description="activeDeadlineSeconds"
    )
    parallelism: int = Field(1, ge=1, le=64)
    completions: int = Field(1, ge=1, le=64)
    backoff_limit: int | None = Field(
        None, ge=0, le=20, description="retries before the job fails; unset: policy default"
    )
    idempotency_key: IdempotencyKey | None = Field(
        None,
        description="repeat a submission safely: a second call with the same key returns the "
        "first job instead of creating another (default: a hash of the arguments)",
    )

    @field_validator("image")
    @classmethod
    def _no_scheme(cls, value: str) -> str:
        if "://" in value:
            raise ValueError("an image reference has no URL scheme (drop 'https://')")
        return value

    @field_validator("priority_class")
    @classmethod
    def _no_system_priority(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(RESERVED_PRIORITY_PREFIX):
            raise ValueError(
                f"{value!r} is refused: {RESERVED_PRIORITY_PREFIX}* PriorityClasses belong to "
                "cluster components and are never allowed for jobs; use a class the policy "
                "lists (limits.priorityClasses) or leave priority_class unset"
            )
        return value

    @model_validator(mode="after")
    def _gpu_rules(self) -> SubmitJobInput:
        if self.gpu_fraction is not None and (self.gpus != 0 or self.mig_profile is not None):
            raise ValueError("gpu_fraction needs gpus=0 and no mig_profile (a share of one GPU)")
        if self.mig_profile is not None and self.gpus < 1:
            raise ValueError("mig_profile needs gpus >= 1 (the number of MIG instances)")
        return self


def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def principal_label(subject: str) -> str:
    """The principal's subject as a label value; altered subjects get a hash suffix."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", subject).strip("._-")
    if clean == subject and 0 < len(clean) <= 63:
        return clean
    return f"{clean[:54].rstrip('._-') or 'subject'}-{_short_hash(subject)}"


def idempotency_key(args: SubmitJobInput) -> str:
    """The caller's key, or a hash of the canonical arguments (cluster excluded)."""
    if args.idempotency_key:
        return args.idempotency_key
    canon = args.model_dump(mode="json", exclude={"cluster", "idempotency_key"})
    text = canonical_json(canon, ensure_ascii=True)  # the form stored keys were hashed in
    return "h" + _short_hash(text, 40)


def _resources(args: SubmitJobInput) -> Json:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if args.mig_profile is not None:
        requests[f"nvidia.com/mig-{args.mig_profile}"] = str(args.gpus)
    elif args.gpus:
        requests["nvidia.com/gpu"] = str(args.gpus)
    limits.update(requests)  # extended resources: limits must equal requests
    if args.cpu is not None:
        requests["cpu"] = args.cpu  # no CPU limit: throttling hurts input pipelines
    if args.memory is not None:
        requests["memory"] = limits["memory"] = args.memory
    out: Json = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _container(args: SubmitJobInput) -> Json:
    """The one container: the image and what it runs, unprivileged, with its resources."""
    container: Json = {
        "name": CONTAINER,
        "image": args.image,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if args.command:
        container["command"] = list(args.command)
    if args.args:
        container["args"] = list(args.args)
    if args.env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(args.env.items())]
    resources = _resources(args)
    if resources:
        container["resources"] = resources
    return container


def _pod_template(args: SubmitJobInput, owner: str) -> Json:
    """The pod template: no host namespaces or service account token; the GPU product,
    priority class and fractional-GPU scheduler the arguments ask for."""
    pod_spec: Json = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(args)],
    }
    pod_meta: Json = {"labels": {MANAGED_BY_LABEL: MANAGED_BY, SUBMITTED_BY_LABEL: owner}}
    if args.gpu_product is not None:
        pod_spec["nodeSelector"] = {GPU_PRODUCT_LABEL: args.gpu_product}
    if args.priority_class is not None:
        pod_spec["priorityClassName"] = args.priority_class
    if args.gpu_fraction is not None:
        pod_spec["schedulerName"] = KAI_SCHEDULER
        pod_meta["annotations"] = {KAI_FRACTION_ANNOTATION: f"{args.gpu_fraction:g}"}
    return {"metadata": pod_meta, "spec": pod_spec}


def build_job(args: SubmitJobInput, principal: Principal) -> Json:
    """The batch/v1 Job for these arguments, before the policy's defaults."""
    owner = principal_label(principal.subject)
    job_labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        SUBMITTED_BY_LABEL: owner,
        IDEMPOTENCY_LABEL: idempotency_key(args),
    }
    if args.queue is not None:
        job_labels[KUEUE_QUEUE_LABEL] = args.queue
    spec: Json = {
        "parallelism": args.parallelism,
        "completions": args.completions,
        "template": _pod_template(args, owner),
    }
    if args.backoff_limit is not None:
        spec["backoffLimit"] = args.backoff_limit
    if args.deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = args.deadline_seconds
    if args.queue is not None:
        spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": args.name, "namespace": args.namespace, "labels": job_labels},
        "spec": spec,
    }


def preview_manifest(manifest: Json) -> Json:
    """A manifest safe to show: env values, envFrom sources and server bookkeeping removed."""
    out = copy.deepcopy(manifest)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in ("managedFields", "uid", "resourceVersion", "generation", "selfLink"):
            meta.pop(key, None)
    pod_spec = ((out.get("spec") or {}).get("template") or {}).get("spec") or {}
    for group in ("initContainers", "containers"):
        for c in pod_spec.get(group) or []:
            if not isinstance(c, dict):
                continue
            if "env" in c:
                c["env"] = [str(e.get("name", "")) for e in c["env"] or [] if isinstance(e, dict)]
            if "envFrom" in c:
                c["envFrom"] = len(c["envFrom"] or [])
    return out
