"""The real gate over memory clusters (``mcp_kube.kube.memory``), and what tests read of its
answers. ``make_gate(cluster)`` is the gate of a server with that cluster; ``call`` runs one
tool call through it as ``principal``; ``ok`` and ``error_of`` read the outcome."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import anyio

from mcp_kube.domain import ManifestReview, Principal
from mcp_kube.gate import ClusterSource, Elicit, Gate, Outcome
from mcp_kube.gate.approval import WriteCall
from mcp_kube.gate.context import CallContext
from mcp_kube.kube.memory import MemoryCluster, MemoryClusters
from mcp_kube.policy.decision import Decision, Policy, ReadOnlyPolicy
from mcp_kube.policy.loader import ReloadablePolicy
from mcp_kube.settings import Settings
from mcp_kube.tools.base import StrictInput, ToolOutput, ToolSpec
from mcp_kube.tools.catalog import TOOLS, by_name

TESTER = Principal("tester")
POLICY_HEADER = "apiVersion: mcp-kube.io/v1alpha1\nkind: ToolPolicy\nmetadata: {name: %s}\n"
ALLOW_ALL_RULES = "spec:\n  rules: [{id: all, match: {tools: ['*']}}]\n"

# Every tool that reaches a cluster, with arguments that pass validation.
CLUSTER_CALLS: dict[str, dict[str, Any]] = {
    "list_clusters": {},
    "gpu_inventory": {},
    "gpu_workloads": {},
    "gpu_quota": {},
    "gpu_usage_report": {"since_hours": 24},
    "gpu_utilization": {},
    "idle_gpus": {},
    "recommend_placement": {"gpus": 2},
    "list_jobs": {"namespace": "team-a"},
    "get_job": {"namespace": "team-a", "name": "x"},
    "wait_job": {"namespace": "team-a", "name": "x", "timeout_s": 1},
    "pod_logs": {"namespace": "team-a", "pod": "x"},
    "list_events": {"namespace": "team-a"},
    "explain_pending": {"namespace": "team-a", "pod": "x"},
    "submit_job": {"name": "x", "namespace": "team-a", "image": "registry.internal/a:1"},
    "cancel_job": {"namespace": "team-a", "name": "x"},
    "suspend_job": {"namespace": "team-a", "name": "x"},
    "resume_job": {"namespace": "team-a", "name": "x"},
}


def policy_file(folder: Path, spec: str = ALLOW_ALL_RULES, name: str = "p") -> Path:
    """A ToolPolicy file named ``name`` in ``folder``, with ``spec`` (YAML from ``spec:``)."""
    path = folder / f"{name}.yaml"
    path.write_text(POLICY_HEADER % name + spec)
    return path


Approval = Literal["none", "elicitation", "out_of_band"]


class AllowAll(Policy):
    """Allows every call; a write's manifest passes unchanged, approved as ``approval`` says.
    A subclass changes a write's manifest in ``adjust`` and its approval in ``approval_for``;
    ``rule`` names it in decisions and reviews."""

    rule = "test.allow"

    def __init__(self, approval: Approval = "none") -> None:
        self.approval: Approval = approval

    def decide(
        self, principal: Principal, tool: str, read_only: bool, args: dict[str, Any]
    ) -> Decision:
        return Decision("allow", self.rule)

    def review(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: dict[str, Any],
        args: Mapping[str, Any] | None = None,
    ) -> ManifestReview:
        out = copy.deepcopy(manifest)
        changes = self.adjust(tool, cluster, namespace, out)
        return ManifestReview(out, changes, [], [self.rule], self.approval_for(tool))

    def approval_for(self, tool: str) -> Approval:
        return self.approval

    def adjust(
        self, tool: str, cluster: str, namespace: str, manifest: dict[str, Any]
    ) -> list[str]:
        """Change a write's manifest in place; returns what changed, in words."""
        return []


def make_gate(
    *clusters: MemoryCluster,
    source: ClusterSource | None = None,
    policy: Policy | Sequence[Path] | None = None,
    settings: Settings | None = None,
    tools: Sequence[ToolSpec[Any, Any]] = TOOLS,
    audit: Any = None,
) -> Gate:
    """The gate over ``clusters`` (the first is the default) or another ``source``; the policy
    is read-only unless given, as an object or as policy files."""
    if policy is None:
        policy = ReadOnlyPolicy()
    elif isinstance(policy, list | tuple):
        policy = ReloadablePolicy(list(policy))
    return Gate(source or MemoryClusters(*clusters), settings or Settings(), policy, tools, audit)


def call(
    gate: Gate,
    tool: ToolSpec[Any, Any] | str,
    args: dict[str, Any],
    principal: Principal = TESTER,
    elicit: Elicit | None = None,
) -> Outcome:
    """One tool call through the gate, as ``principal``."""
    spec = by_name()[tool] if isinstance(tool, str) else tool
    return anyio.run(gate.call, spec, args, principal, elicit)


def ok(result: Outcome) -> dict[str, Any]:
    """The structured content of a call that succeeded."""
    assert not result.is_error, result.text
    assert result.text  # a text summary always comes along
    return result.structured_content or {}


def error_of(result: Outcome) -> tuple[str, str]:
    """(code, message) of a call that failed."""
    assert result.is_error, result.structured_content
    return result.error_code, result.text.partition("]: ")[2]


def error_code(result: Outcome) -> str:
    return error_of(result)[0]


def tool_context(
    *clusters: MemoryCluster, principal: Principal = TESTER, settings: Settings | None = None
) -> CallContext:
    """The context the gate hands a tool, over ``clusters``: for running a tool directly."""
    gate = make_gate(*clusters, settings=settings)
    return CallContext(gate, WriteCall(principal, "test", {}))


def run_tool(spec: ToolSpec[Any, Any], args: StrictInput, *clusters: MemoryCluster) -> Any:
    """A tool's typed output, run directly (no validation, policy or shaping) on ``clusters``."""
    out: ToolOutput = anyio.run(spec.run, tool_context(*clusters), args)
    return out
