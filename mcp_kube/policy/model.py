"""Policy files: the schema (pydantic, unknown fields rejected) of ``policies/*.yaml``.

A file holds one ``ToolPolicy``: rules that match calls (tool, cluster, namespace, principal,
groups), CEL validations with a message and an action, defaults for job manifests, limits, and
approval requirements (``limits`` also lists the PriorityClasses and Kueue queues that
``submit_job`` may name). CEL is the expression language of Kubernetes' ValidatingAdmissionPolicy;
expressions see ``principal``, ``tool``, ``args``, ``cluster``, ``namespace`` and, for writes,
``manifest`` (the final Job, after defaults).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from mcp_kube.domain import RESERVED_PRIORITY_PREFIX

__all__ = [
    "RESERVED_PRIORITY_PREFIX",
    "Approval",
    "JobDefaults",
    "Limits",
    "Match",
    "PolicyFile",
    "Rule",
    "Validation",
]


_K8sName = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Match(_Strict):
    """Which calls a rule applies to. Empty lists match everything."""

    tools: list[str] = Field(
        default_factory=list,
        description="tool names; '@read' = every read-only tool, '@write' = every write",
    )
    clusters: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    principals: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list, description="any of these groups")


class Validation(_Strict):
    expression: str = Field(max_length=4096)
    message: str = Field(max_length=500)
    action: Literal["Deny", "Warn", "Audit"] = "Deny"


class Approval(_Strict):
    mode: Literal["none", "elicitation", "out_of_band"] = "none"
    when: str | None = Field(
        None, max_length=4096, description="CEL: approval is required only when true"
    )
    approvers: list[str] = Field(default_factory=list, description="groups that may approve")
    four_eyes: bool = Field(True, alias="fourEyes", description="the requester may not approve")
    ttl_seconds: int = Field(3600, alias="ttlSeconds", ge=60, le=7 * 86400)


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$")
    description: str = ""
    match: Match = Match()
    effect: Literal["Allow", "Deny"] = "Allow"
    condition: str | None = Field(
        None, max_length=4096, description="CEL: the rule applies only when true"
    )
    message: str = Field("", max_length=500, description="why, for Deny rules")
    validations: list[Validation] = Field(default_factory=list, max_length=64)
    approval: Approval | None = None


class JobDefaults(_Strict):
    """Filled into submitted Jobs where the caller left them unset."""

    cpu_per_gpu: str | None = Field(None, alias="cpuPerGpu")
    memory_per_gpu: str | None = Field(None, alias="memoryPerGpu")
    active_deadline_seconds: int | None = Field(None, alias="activeDeadlineSeconds", ge=60)
    ttl_seconds_after_finished: int | None = Field(None, alias="ttlSecondsAfterFinished", ge=0)
    backoff_limit: int | None = Field(None, alias="backoffLimit", ge=0, le=20)
    labels: dict[str, str] = Field(default_factory=dict)


class Limits(_Strict):
    max_gpus_per_job: int | None = Field(None, alias="maxGpusPerJob", ge=0)
    max_concurrent_gpus_per_principal: int | None = Field(
        None, alias="maxConcurrentGpusPerPrincipal", ge=0
    )
    calls_per_minute: dict[str, int] = Field(
        default_factory=dict,
        alias="callsPerMinute",
        description="tool name (or '*') -> calls per minute per principal",
    )
    priority_classes: list[_K8sName] | None = Field(
        None,
        alias="priorityClasses",
        max_length=64,
        description="PriorityClasses submit_job may name; unset or empty: priority_class is "
        "refused. system-* classes can never be listed. Across files: in every list that is set",
    )
    queues: list[_K8sName] | None = Field(
        None,
        max_length=256,
        description="Kueue LocalQueues submit_job may name; unset: any (LocalQueues are "
        "namespaced and admins bind them to ClusterQueues). Across files: in every list set",
    )

    @field_validator("priority_classes")
    @classmethod
    def _no_system_classes(cls, value: list[str] | None) -> list[str] | None:
        reserved = [c for c in value or [] if c.startswith(RESERVED_PRIORITY_PREFIX)]
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)}: {RESERVED_PRIORITY_PREFIX}* PriorityClasses belong to "
                "cluster components and cannot be allowed for submitted jobs"
            )
        return value


class PolicySpec(_Strict):
    rules: list[Rule] = Field(default_factory=list, max_length=500)
    defaults: JobDefaults = JobDefaults()
    limits: Limits = Limits()


class Metadata(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$")
    description: str = ""


class PolicyFile(_Strict):
    api_version: Literal["mcp-kube.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ToolPolicy"]
    metadata: Metadata
    spec: PolicySpec
