"""Every tool the server offers, in the order clients see them (part of the interface)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp_kube.domain import Json, Principal
from mcp_kube.tools.base import ToolSpec
from mcp_kube.tools.clusters import LIST_CLUSTERS
from mcp_kube.tools.events import LIST_EVENTS
from mcp_kube.tools.follow import WAIT_JOB
from mcp_kube.tools.identity import WHOAMI
from mcp_kube.tools.idle import IDLE_GPUS
from mcp_kube.tools.inventory import GPU_INVENTORY
from mcp_kube.tools.jobs import GET_JOB, LIST_JOBS
from mcp_kube.tools.jobspec import SubmitJobInput, build_job
from mcp_kube.tools.logs import POD_LOGS
from mcp_kube.tools.pending import EXPLAIN_PENDING
from mcp_kube.tools.placement import RECOMMEND_PLACEMENT
from mcp_kube.tools.quota import GPU_QUOTA
from mcp_kube.tools.usage import GPU_USAGE_REPORT
from mcp_kube.tools.utilization import GPU_UTILIZATION
from mcp_kube.tools.workloads import GPU_WORKLOADS
from mcp_kube.tools.writes import CANCEL_JOB, RESUME_JOB, SUBMIT_JOB, SUSPEND_JOB

__all__ = ["TOOLS", "CatalogFacts", "by_name"]

TOOLS: tuple[ToolSpec[Any, Any], ...] = (
    LIST_CLUSTERS,
    GPU_INVENTORY,
    GPU_WORKLOADS,
    GPU_QUOTA,
    LIST_JOBS,
    GET_JOB,
    WAIT_JOB,
    POD_LOGS,
    LIST_EVENTS,
    EXPLAIN_PENDING,
    RECOMMEND_PLACEMENT,
    GPU_USAGE_REPORT,
    GPU_UTILIZATION,
    IDLE_GPUS,
    WHOAMI,
    SUBMIT_JOB,
    CANCEL_JOB,
    SUSPEND_JOB,
    RESUME_JOB,
)


def by_name() -> dict[str, ToolSpec[Any, Any]]:
    return {t.name: t for t in TOOLS}


class CatalogFacts:
    """These tools as policy tests see them (``mcp_kube.policy.testing.ToolFacts``): cases are
    judged on exactly the manifest ``submit_job`` would build."""

    def read_only(self, tool: str) -> bool:
        spec = by_name().get(tool)
        return bool(spec and spec.read_only)  # a tool not offered counts as a write

    def manifest(self, tool: str, args: Mapping[str, Any], principal: Principal) -> Json | None:
        if tool == SUBMIT_JOB.name:
            return build_job(SubmitJobInput.model_validate(args), principal)
        return None
