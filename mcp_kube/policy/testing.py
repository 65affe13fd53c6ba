"""Policy test cases (``mcp-kube policy test``): a principal, a tool call, the expected decision.

Each test file names the policy files it loads (relative to itself) and its cases. Write calls
are turned into the Job manifest the server would build, with the policy's defaults applied,
so cases test exactly what ``submit_job`` would be judged on. Every case runs on both CEL
implementations where cel-python is installed (the dev extra); a disagreement fails the case.

The runner knows no tool itself (the policy is a leaf): the caller hands it the server's tools
as ``ToolFacts`` (``mcp_kube.tools.catalog.CatalogFacts``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mcp_kube.domain import Principal
from mcp_kube.errors import PolicyDenied
from mcp_kube.policy.cel import CelPy, CommonCel
from mcp_kube.policy.engine import PolicyEngine, PolicyError
from mcp_kube.policy.loader import load_engine, safe_yaml

__all__ = ["CaseResult", "ToolFacts", "run_test_file", "run_tests"]


class ToolFacts(Protocol):
    """What the runner needs to know of the server's tools."""

    def read_only(self, tool: str) -> bool:
        """Whether ``tool`` only reads; one the server does not offer is a write (fail closed)."""
        ...

    def manifest(
        self, tool: str, args: Mapping[str, Any], principal: Principal
    ) -> dict[str, Any] | None:
        """The manifest ``tool`` would send for review with ``args`` (None: it builds none;
        the runner then judges a minimal managed Job). Invalid arguments raise pydantic's
        ``ValidationError``, as the tool's input model does."""
        ...


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    principal: str = "tester"
    groups: list[str] = Field(default_factory=list)
    tool: str
    cluster: str = "test"
    args: dict[str, Any] = Field(default_factory=dict)
    expect: Literal["allow", "deny"]
    rule: str | None = None
    approval: Literal["none", "elicitation", "out_of_band"] | None = None
    message: str | None = Field(None, description="a substring of the refusal")
    warnings: int | None = None


class TestFile(BaseModel):
    __test__ = False
    model_config = ConfigDict(extra="forbid")
    policies: list[str]
    cases: list[Case] = Field(max_length=2000)


@dataclass
class CaseResult:
    file: str
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class _Outcome:
    decision: str
    rule: str
    message: str
    approval: str
    warnings: int


def _manifest_for(case: Case, principal: Principal, tools: ToolFacts) -> dict[str, Any]:
    built = tools.manifest(case.tool, case.args, principal)
    if built is not None:
        return built
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": case.args.get("name", "job"),
            "namespace": case.args.get("namespace", ""),
            "labels": {"app.kubernetes.io/managed-by": "mcp-kube"},
        },
        "spec": {"template": {"spec": {"containers": []}}},
    }


def _outcome(engine: PolicyEngine, case: Case, tools: ToolFacts) -> _Outcome:
    principal = Principal(case.principal, tuple(case.groups), "policy-test")
    if tools.read_only(case.tool):
        ex = engine.explain(principal, case.tool, True, case.args, cluster=case.cluster)
        d = ex.decision
        return _Outcome(d.action, d.rule, d.message, ex.approval, len(ex.warnings))
    pre = engine.explain(principal, case.tool, False, case.args, cluster=case.cluster)
    if not pre.decision.allowed:
        d = pre.decision
        return _Outcome("deny", d.rule, d.message, "none", 0)
    try:
        manifest = _manifest_for(case, principal, tools)
        review = engine.review(
            principal, case.tool, case.cluster, case.args.get("namespace", ""), manifest, case.args
        )
    except ValidationError as e:
        return _Outcome("deny", "input-validation", str(e.errors()[0]["msg"]), "none", 0)
    except PolicyDenied as e:
        text = str(e)
        rule = text.split("denied by policy rule ", 1)[-1].split(":", 1)[0]
        if text.startswith("denied by policy limit"):
            rule = text.split("denied by policy limit ", 1)[1].split(":", 1)[0]
        return _Outcome("deny", rule, text, "none", 0)
    return _Outcome(
        "allow", review.rules[0] if review.rules else "", "", review.approval, len(review.warnings)
    )


def _check(case: Case, got: _Outcome) -> str:
    problems = []
    if got.decision != case.expect:
        problems.append(f"expected {case.expect}, got {got.decision} ({got.rule}: {got.message})")
    if case.rule is not None and got.rule != case.rule:
        problems.append(f"expected rule {case.rule}, got {got.rule}")
    if case.approval is not None and got.approval != case.approval:
        problems.append(f"expected approval {case.approval}, got {got.approval}")
    if case.message is not None and case.message not in got.message:
        problems.append(f"message {got.message!r} lacks {case.message!r}")
    if case.warnings is not None and got.warnings != case.warnings:
        problems.append(f"expected {case.warnings} warnings, got {got.warnings}")
    return "; ".join(problems)


def run_test_file(path: Path, tools: ToolFacts) -> list[CaseResult]:
    try:
        spec = TestFile.model_validate(safe_yaml(path.read_text(), str(path)))
    except ValidationError as e:
        raise PolicyError(f"{path}: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None
    paths = [(path.parent / p).resolve() for p in spec.policies]
    engines = [load_engine(paths, CommonCel())]
    # the second implementation is a development tool (the dev extra); sites may lack it
    with contextlib.suppress(ImportError):
        engines.append(load_engine(paths, CelPy()))
    results = []
    for case in spec.cases:
        outcomes = [_outcome(engine, case, tools) for engine in engines]
        problem = _check(case, outcomes[0])
        if not problem and any(o != outcomes[0] for o in outcomes[1:]):
            problem = f"CEL implementations disagree: {outcomes[0]} vs {outcomes[1]}"
        results.append(CaseResult(str(path), case.name, not problem, problem))
    return results


def run_tests(folder: Path, tools: ToolFacts) -> list[CaseResult]:
    """Run a test file, a folder of them, or a policy folder's ``tests/`` sub-folder."""
    if folder.is_dir() and (folder / "tests").is_dir():
        folder = folder / "tests"
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else [folder]
    if not files:
        raise PolicyError(f"no policy test files in {folder}")
    out: list[CaseResult] = []
    for f in files:
        out += run_test_file(f, tools)
    return out
