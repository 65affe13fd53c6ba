"""The policy engine: pure decisions (no I/O) over compiled policy files.

A call is allowed only when at least one Allow rule matches it, every Deny validation of the
matching Allow rules yields exactly ``true``, and no Deny rule applies. Anything else (no rule,
an expression error, a non-boolean result) is a refusal naming the rule and its message.
Warn and Audit validations never refuse: their messages travel with the decision.
For writes, ``review`` first fills the policy's job defaults into the manifest and then decides
on the final manifest, so validations see exactly what would be created. A submitted Job's
limits (scheduling, GPUs per job) are judged in code before any rule (``policy.limits``), and
its review carries the per-principal GPU limit the gate enforces against the cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp_kube.domain import ManifestReview, Principal
from mcp_kube.errors import McpKubeError, PolicyDenied
from mcp_kube.policy.approvals import ApprovalTerms
from mcp_kube.policy.cel import CelBackend, CelError, CommonCel, Compiled
from mcp_kube.policy.decision import Decision, Policy
from mcp_kube.policy.limits import PolicyLimits
from mcp_kube.policy.manifest import apply_defaults
from mcp_kube.policy.model import Approval, JobDefaults, PolicyFile, Rule
from mcp_kube.policy.reads import needs_of, prune_all

__all__ = ["Explained", "PolicyEngine", "PolicyError"]

ApprovalMode = Literal["none", "elicitation", "out_of_band"]
_STRICTNESS = {"none": 0, "elicitation": 1, "out_of_band": 2}
DEFAULT_DENY = "default-deny"


class PolicyError(McpKubeError, ValueError):
    """A policy file is invalid: names the file, the rule and what is wrong."""

    code = "policy.invalid"


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


VARIABLES = ("principal", "tool", "readOnly", "args", "cluster", "namespace", "manifest")


def _activation(
    principal: Principal,
    tool: str,
    read_only: bool,
    args: Mapping[str, Any],
    cluster: str,
    namespace: str | None,
    manifest: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The variables of a decision, as the policy's expressions see them."""
    return {
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


def _sources(rules: Sequence[_CompiledRule]) -> list[str]:
    """The text of every expression of ``rules``."""
    out: list[str] = []
    for cr in rules:
        rule = cr.rule
        out += [rule.condition] if rule.condition else []
        out += [v.expression for v in rule.validations]
        out += [rule.approval.when] if rule.approval and rule.approval.when else []
    return out


class PolicyEngine(Policy):
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
        self.limits = PolicyLimits([pf.spec.limits for _, pf in self.files])
        # Deny rules first: a Deny that applies wins whatever the order of files and rules
        self._ordered = sorted(self._rules, key=lambda r: r.rule.effect != "Deny")
        # what of the variables any expression may read: only that is converted per decision
        self._needs = needs_of(_sources(self._rules), VARIABLES)

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
            for name, value in d.model_dump(exclude={"labels"}, exclude_none=True).items():
                merged.setdefault(name, value)
            for k, v in d.labels.items():
                labels.setdefault(k, v)
        return JobDefaults.model_validate({**merged, "labels": labels})

    @property
    def rule_ids(self) -> list[str]:
        return [r.rule.id for r in self._rules]

    def calls_per_minute(self, tool: str) -> int | None:
        return self.limits.calls_per_minute(tool)

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
        bound: list[object] = []

        def run(program: Compiled) -> object:
            if not bound:  # convert the variables once, and only if an expression needs them
                values = _activation(principal, tool, read_only, args, cluster, namespace, manifest)
                bound.append(self.backend.bind(prune_all(values, self._needs)))
            return program.run(bound[0])

        out = Explained(decision=Decision("deny", DEFAULT_DENY, f"no policy rule allows {tool}"))
        # A write's validations judge its final manifest: they run at review time only.
        deferred = manifest is None and not read_only
        granted: list[_CompiledRule] = []
        for cr in self._ordered:  # Deny rules first
            if not self._matches(cr.rule, principal, tool, read_only, cluster, namespace):
                continue
            verdict = self._judge(cr, run, out, deferred)
            if verdict == "deny":
                return out
            if verdict == "grant":
                granted.append(cr)
        if granted:
            out.decision = Decision("allow", granted[0].rule.id)
            self._pick_approval(granted, run, out)
        return out

    @staticmethod
    def _judge(
        cr: _CompiledRule, run: Callable[[Compiled], object], out: Explained, deferred: bool
    ) -> Literal["skip", "deny", "grant"]:
        """One matching rule: its condition, its effect, its validations (noted in ``out``)."""
        rule = cr.rule
        if cr.condition is not None:
            try:
                applies = _is_true(run(cr.condition))
            except CelError as e:
                if rule.effect == "Deny":  # cannot tell: fail closed
                    out.decision = Decision("deny", rule.id, f"condition failed: {e}")
                    out.matched.append(rule.id)
                    return "deny"
                out.notes.append(f"{rule.id}: condition failed ({e}); rule not applied")
                return "skip"
            if not applies:
                return "skip"
        out.matched.append(rule.id)
        if rule.effect == "Deny":
            out.decision = Decision("deny", rule.id, rule.message or "denied")
            return "deny"
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
                return "deny"
            (out.warnings if action == "Warn" else out.audits).append(f"{rule.id}: {detail}")
        return "grant"

    @staticmethod
    def _pick_approval(
        granted: list[_CompiledRule], run: Callable[[Compiled], object], out: Explained
    ) -> None:
        """The strictest approval any granting rule asks for (when its ``when`` holds)."""
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
        args: Mapping[str, Any] | None = None,
    ) -> ApprovalTerms | None:
        """Who may approve a write the policy sends out of band, with four-eyes and expiry: the
        rules are matched on the call's own arguments, as when the write was decided."""
        given = {**(args or {}), "namespace": namespace}
        ex = self.explain(principal, tool, False, given, cluster=cluster, manifest=manifest)
        found = ex.approval_terms
        if found is None:
            return None
        return ApprovalTerms(tuple(found.approvers), found.four_eyes, found.ttl_seconds)

    def review(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: dict[str, Any],
        args: Mapping[str, Any] | None = None,
    ) -> ManifestReview:
        submit = tool == "submit_job"
        final, changes = apply_defaults(manifest, self.defaults) if submit else (manifest, [])
        if submit:
            self.limits.check_job(final)
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
            max_concurrent_gpus=self.limits.max_concurrent_gpus_per_principal() if submit else None,
        )
