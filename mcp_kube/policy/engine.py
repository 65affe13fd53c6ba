"""The policy engine: pure decisions (no I/O) over compiled policy files.

A call is allowed only when at least one Allow rule matches it, every Deny validation of the
matching Allow rules yields exactly ``true``, and no Deny rule applies. Anything else (no rule,
an expression error, a non-boolean result) is a refusal naming the rule and its message.
Warn and Audit validations never refuse: their messages travel with the decision.
For writes, ``review`` first fills the policy's job defaults into the manifest and then decides
on the final manifest, so validations see exactly what would be created.

A submitted Job's scheduling is judged in code before any rule, on the final manifest: a
``priorityClassName`` must be one the policy lists (``limits.priorityClasses``; none listed:
none allowed) and never a ``system-*`` class; a Kueue queue must be listed when the policy lists
queues (``limits.queues``); and the pod template may carry no tolerations, affinity or nodeName
and no node selector but ``nvidia.com/gpu.product`` (``submit_job`` writes none of those; one
that appears was added on the way, and could put pods on control-plane or tainted nodes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from mcp_kube.domain import KUEUE_QUEUE_LABEL, ManifestReview, Principal
from mcp_kube.errors import PolicyDenied
from mcp_kube.policy.cel import CelBackend, CelError, CommonCel, Compiled
from mcp_kube.policy.decision import Decision
from mcp_kube.policy.model import (
    RESERVED_PRIORITY_PREFIX,
    Approval,
    JobDefaults,
    PolicyFile,
    Rule,
)

__all__ = ["Explained", "PolicyEngine", "PolicyError", "apply_defaults", "manifest_gpus"]

ApprovalMode = Literal["none", "elicitation", "out_of_band"]
_STRICTNESS = {"none": 0, "elicitation": 1, "out_of_band": 2}
DEFAULT_DENY = "default-deny"
# The only node selector submit_job writes (its gpu_product argument).
ALLOWED_NODE_SELECTORS = frozenset({"nvidia.com/gpu.product"})
# Pod fields submit_job never writes; each would let pods onto control-plane or tainted nodes.
FORBIDDEN_POD_FIELDS = ("tolerations", "affinity", "nodeName")


class PolicyError(ValueError):
    """A policy file is invalid: names the file, the rule and what is wrong."""


@dataclass(frozen=True)
class _CompiledRule:
    source: str
    rule: Rule
    condition: Compiled | None
    validations: tuple[tuple[Compiled, str, str], ...]  # (program, message, action)
    approval_when: Compiled | None


@dataclass
class Explained:
    """A decision with its reasoning, for `mcp-kube policy explain` and the audit trail."""

    decision: Decision
    matched: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    audits: list[str] = field(default_factory=list)
    approval: ApprovalMode = "none"
    approval_terms: Approval | None = None  # approvers, four-eyes, expiry of that approval
    notes: list[str] = field(default_factory=list)


def _compile(backend: CelBackend, source: str, rule: str, where: str, expr: str) -> Compiled:
    try:
        return backend.compile(expr)
    except CelError as e:
        raise PolicyError(f"{source}: rule {rule}: {where}: invalid CEL: {e}") from None


def _is_true(value: object) -> bool:
    return value is True


_QTY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")


def _times(quantity: str, n: int) -> str:
    m = _QTY.match(quantity)
    if not m:
        return quantity
    number = float(m.group(1)) * n
    text = str(int(number)) if number.is_integer() else f"{number:g}"
    return text + m.group(2)


def _gpu_count(container: Mapping[str, Any]) -> int:
    limits = (container.get("resources") or {}).get("limits") or {}
    total = 0
    for key, value in limits.items():
        if key.startswith(("nvidia.com/gpu", "nvidia.com/mig-", "amd.com/gpu")):
            try:
                total += int(value)
            except (TypeError, ValueError):
                continue
    return total


def manifest_gpus(manifest: Mapping[str, Any]) -> int:
    """GPUs (whole, MIG or AMD) a Job's pod template asks for."""
    template = ((manifest.get("spec") or {}).get("template") or {}).get("spec") or {}
    return sum(_gpu_count(c) for c in template.get("containers") or [])


def apply_defaults(
    manifest: dict[str, Any], defaults: JobDefaults
) -> tuple[dict[str, Any], list[str]]:
    """A copy of a Job manifest with unset fields filled from ``defaults``, and what changed."""
    out: dict[str, Any] = json.loads(json.dumps(manifest))  # a deep copy of plain JSON, fast
    changes: list[str] = []
    spec = out.setdefault("spec", {})
    for key, value in (
        ("activeDeadlineSeconds", defaults.active_deadline_seconds),
        ("ttlSecondsAfterFinished", defaults.ttl_seconds_after_finished),
        ("backoffLimit", defaults.backoff_limit),
    ):
        if value is not None and spec.get(key) is None:
            spec[key] = value
            changes.append(f"set spec.{key}={value}")
    meta = out.setdefault("metadata", {})
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    for label, text in defaults.labels.items():
        for where, m in (("metadata", meta), ("template.metadata", tmeta)):
            labels = m.setdefault("labels", {})
            if label not in labels:
                labels[label] = text
                changes.append(f"set {where}.labels[{label}]={text}")
    for c in (template.get("spec") or {}).get("containers") or []:
        gpus = _gpu_count(c)
        if not gpus:
            continue
        requests = c.setdefault("resources", {}).setdefault("requests", {})
        for res, per_gpu in (("cpu", defaults.cpu_per_gpu), ("memory", defaults.memory_per_gpu)):
            if per_gpu and res not in requests:
                requests[res] = _times(per_gpu, gpus)
                changes.append(f"set {c.get('name')}.resources.requests.{res}={requests[res]}")
    return out, changes


def _deny_limit(limit: str, message: str) -> NoReturn:
    raise PolicyDenied(f"denied by policy limit {limit}: {message}", limit)


class PolicyEngine:
    """Decides calls against policy files; compiled once, evaluated per call."""

    def __init__(
        self,
        files: Sequence[tuple[str, PolicyFile]],
        backend: CelBackend | None = None,
    ) -> None:
        self.backend = backend or CommonCel()
        self.files = list(files)
        self._rules: list[_CompiledRule] = []
        seen: dict[str, str] = {}
        for source, pf in self.files:
            for rule in pf.spec.rules:
                if rule.id in seen:
                    raise PolicyError(
                        f"{source}: rule {rule.id}: duplicate id (also in {seen[rule.id]})"
                    )
                seen[rule.id] = source
                self._rules.append(self._compile_rule(source, rule))
        self.defaults = self._merge_defaults()

    def _compile_rule(self, source: str, rule: Rule) -> _CompiledRule:
        b = self.backend
        cond = _compile(b, source, rule.id, "condition", rule.condition) if rule.condition else None
        validations = tuple(
            (_compile(b, source, rule.id, f"validations[{i}]", v.expression), v.message, v.action)
            for i, v in enumerate(rule.validations)
        )
        when = None
        if rule.approval and rule.approval.when:
            when = _compile(b, source, rule.id, "approval.when", rule.approval.when)
        return _CompiledRule(source, rule, cond, validations, when)

    def _merge_defaults(self) -> JobDefaults:
        merged: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for _, pf in self.files:
            d = pf.spec.defaults
            for name in JobDefaults.model_fields:
                if name == "labels":
                    continue
                value = getattr(d, name)
                if value is not None and name not in merged:
                    merged[name] = value
            for k, v in d.labels.items():
                labels.setdefault(k, v)
        return JobDefaults.model_validate({**merged, "labels": labels})

    @property
    def rule_ids(self) -> list[str]:
        return [r.rule.id for r in self._rules]

    def calls_per_minute(self, tool: str) -> int | None:
        for _, pf in self.files:
            cpm = pf.spec.limits.calls_per_minute
            if tool in cpm:
                return cpm[tool]
            if "*" in cpm:
                return cpm["*"]
        return None

    def max_gpus_per_job(self) -> int | None:
        values = [
            pf.spec.limits.max_gpus_per_job
            for _, pf in self.files
            if pf.spec.limits.max_gpus_per_job is not None
        ]
        return min(values) if values else None

    def _listed(self, name: str) -> list[str] | None:
        """A list limit across files: what every file that sets it allows (None: none sets it)."""
        lists: list[list[str]] = [
            value for _, pf in self.files if (value := getattr(pf.spec.limits, name)) is not None
        ]
        if not lists:
            return None
        common = set(lists[0]).intersection(*lists[1:])
        return [v for v in lists[0] if v in common]

    def allowed_priority_classes(self) -> list[str]:
        """PriorityClasses submit_job may name: listed by the policy, never system-*."""
        listed = self._listed("priority_classes") or []
        return [c for c in listed if not c.startswith(RESERVED_PRIORITY_PREFIX)]

    def allowed_queues(self) -> list[str] | None:
        """Kueue LocalQueues submit_job may name; None: the policy does not restrict them."""
        return self._listed("queues")

    def check_scheduling(self, manifest: Mapping[str, Any]) -> None:
        """Refuse a Job whose scheduling the policy does not allow (``PolicyDenied``)."""
        spec = manifest.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        wanted = pod.get("priorityClassName")
        if wanted is not None:
            allowed = self.allowed_priority_classes()
            offer = (
                f"allowed: {', '.join(allowed)}"
                if allowed
                else "this policy allows none (limits.priorityClasses); leave it unset"
            )
            if str(wanted).startswith(RESERVED_PRIORITY_PREFIX):
                _deny_limit(
                    "priorityClasses",
                    f"priority_class {wanted!r} is refused: {RESERVED_PRIORITY_PREFIX}* classes "
                    f"belong to cluster components and are never allowed; {offer}",
                )
            if wanted not in allowed:
                _deny_limit("priorityClasses", f"priority_class {wanted!r} is not allowed; {offer}")
        labels = (manifest.get("metadata") or {}).get("labels") or {}
        queue = labels.get(KUEUE_QUEUE_LABEL)
        queues = self.allowed_queues()
        if queue is not None and queues is not None and queue not in queues:
            offer = f"allowed: {', '.join(queues)}" if queues else "this policy allows none"
            _deny_limit("queues", f"queue {queue!r} is not allowed; {offer}")
        for key in FORBIDDEN_POD_FIELDS:
            if pod.get(key):
                _deny_limit(key, f"a submitted job may not set {key}")
        extra = sorted(set(pod.get("nodeSelector") or {}) - ALLOWED_NODE_SELECTORS)
        if extra:
            only = ", ".join(sorted(ALLOWED_NODE_SELECTORS))
            _deny_limit(
                "nodeSelector",
                f"a submitted job may select nodes only by {only} (gpu_product), "
                f"not by {', '.join(extra)}",
            )

    def max_concurrent_gpus_per_principal(self) -> int | None:
        """Enforced by the gate, which counts the caller's active jobs in the cluster."""
        values = [
            pf.spec.limits.max_concurrent_gpus_per_principal
            for _, pf in self.files
            if pf.spec.limits.max_concurrent_gpus_per_principal is not None
        ]
        return min(values) if values else None

    # ------------------------------------------------------------------ matching
    @staticmethod
    def _matches(
        rule: Rule,
        principal: Principal,
        tool: str,
        read_only: bool,
        cluster: str,
        namespace: str | None,
    ) -> bool:
        m = rule.match
        if m.tools and not any(
            t == tool
            or t == "*"
            or (t == "@read" and read_only)
            or (t == "@write" and not read_only)
            for t in m.tools
        ):
            return False
        if m.clusters and cluster not in m.clusters and "*" not in m.clusters:
            return False
        if m.namespaces and (namespace is None or namespace not in m.namespaces):
            return False
        if m.principals and principal.subject not in m.principals and "*" not in m.principals:
            return False
        return not (m.groups and not set(m.groups) & set(principal.groups))

    # ------------------------------------------------------------------ deciding
    def explain(
        self,
        principal: Principal,
        tool: str,
        read_only: bool,
        args: Mapping[str, Any],
        *,
        cluster: str = "",
        manifest: Mapping[str, Any] | None = None,
    ) -> Explained:
        namespace = args.get("namespace") if isinstance(args.get("namespace"), str) else None
        activation = {
            "principal": {
                "name": principal.subject,
                "groups": list(principal.groups),
                "authenticatedBy": principal.authenticated_by,
            },
            "tool": tool,
            "readOnly": read_only,
            "args": dict(args),
            "cluster": cluster,
            "namespace": namespace or "",
            "manifest": dict(manifest or {}),
        }
        bound: list[object] = []

        def run(program: Compiled) -> object:
            if not bound:  # convert the variables once, and only if an expression needs them
                bound.append(self.backend.bind(activation))
            return program.run(bound[0])

        out = Explained(decision=Decision("deny", DEFAULT_DENY, f"no policy rule allows {tool}"))
        granted: list[_CompiledRule] = []
        # Deny rules first: a Deny that applies wins whatever the order of files and rules.
        for cr in sorted(self._rules, key=lambda r: r.rule.effect != "Deny"):
            rule = cr.rule
            if not self._matches(rule, principal, tool, read_only, cluster, namespace):
                continue
            if cr.condition is not None:
                try:
                    applies = _is_true(run(cr.condition))
                except CelError as e:
                    if rule.effect == "Deny":  # cannot tell: fail closed
                        out.decision = Decision("deny", rule.id, f"condition failed: {e}")
                        out.matched.append(rule.id)
                        return out
                    out.notes.append(f"{rule.id}: condition failed ({e}); rule not applied")
                    continue
                if not applies:
                    continue
            out.matched.append(rule.id)
            if rule.effect == "Deny":
                out.decision = Decision("deny", rule.id, rule.message or "denied")
                return out
            # A write's validations judge its final manifest: they run at review time only.
            deferred = manifest is None and not read_only
            for program, message, action in () if deferred else cr.validations:
                try:
                    ok = _is_true(run(program))
                    detail = message
                except CelError as e:
                    ok, detail = False, f"{message} (expression failed: {e})"
                if ok:
                    continue
                if action == "Deny":
                    out.decision = Decision("deny", rule.id, detail)
                    return out
                (out.warnings if action == "Warn" else out.audits).append(f"{rule.id}: {detail}")
            granted.append(cr)
        if not granted:
            return out
        out.decision = Decision("allow", granted[0].rule.id)
        for cr in granted:
            approval = cr.rule.approval
            if approval is None or approval.mode == "none":
                continue
            needed = True
            if cr.approval_when is not None:
                try:
                    needed = _is_true(run(cr.approval_when))
                except CelError:
                    needed = True  # cannot tell whether it is needed: ask
            if needed and _STRICTNESS[approval.mode] > _STRICTNESS[out.approval]:
                out.approval = approval.mode
                out.approval_terms = approval
        return out

    def decide(
        self, principal: Principal, tool: str, read_only: bool, args: dict[str, Any]
    ) -> Decision:
        return self.explain(principal, tool, read_only, args).decision

    def approval_terms(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: Mapping[str, Any],
    ) -> Approval | None:
        """Who may approve a write the policy sends out of band, with four-eyes and expiry."""
        ex = self.explain(
            principal, tool, False, {"namespace": namespace}, cluster=cluster, manifest=manifest
        )
        return ex.approval_terms

    def review(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: dict[str, Any],
        args: Mapping[str, Any] | None = None,
    ) -> ManifestReview:
        final, changes = (
            apply_defaults(manifest, self.defaults)
            if tool == "submit_job"
            else (
                manifest,
                [],
            )
        )
        if tool == "submit_job":
            self.check_scheduling(final)
        limit = self.max_gpus_per_job()
        if limit is not None and tool == "submit_job":
            gpus = manifest_gpus(final)
            if gpus > limit:
                raise PolicyDenied(
                    f"denied by policy limit maxGpusPerJob: {gpus} GPUs requested, at most {limit}",
                    "maxGpusPerJob",
                )
        call_args = {"namespace": namespace, **dict(args or {})}
        ex = self.explain(principal, tool, False, call_args, cluster=cluster, manifest=final)
        if not ex.decision.allowed:
            raise PolicyDenied(
                f"denied by policy rule {ex.decision.rule}: {ex.decision.message or 'not allowed'}",
                ex.decision.rule,
            )
        return ManifestReview(
            manifest=final,
            changes=changes,
            warnings=ex.warnings,
            rules=ex.matched,
            approval=ex.approval,
        )
