"""The evaluation sets are honest: no request paraphrases a tool example, every request names a
real tool and category, every tool is covered, and the test set is big enough."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mcp_kube.tools.catalog import TOOLS, by_name

EVAL = Path(__file__).parents[1] / "eval"
THRESHOLD = 0.8  # normalized similarity at or above this is a paraphrase


def _cases_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_cases", EVAL / "cases.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("eval_cases", module)
    spec.loader.exec_module(module)
    return module


cases = _cases_module()
SETS: dict[str, list[dict[str, Any]]] = {name: cases.load(p) for name, p in cases.SETS.items()}
ALL = [(name, c) for name, items in SETS.items() for c in items]


def test_normalize_replaces_names_and_digits() -> None:
    assert cases.normalize("Why is job resnet-7 in team-x pending?") == (
        "why is job <name> in <name> pending"
    )
    assert cases.normalize("a 12 GPU job") == "a <n> gpu job"


def test_similarity_catches_a_paraphrase() -> None:
    assert cases.similarity("any warning events in team-a?", "Any warning events in team-x?") == 1
    assert cases.similarity("clusters?", "Which clusters can you see?") < THRESHOLD


@pytest.mark.parametrize("set_name", sorted(SETS))
def test_no_request_paraphrases_a_tool_example(set_name: str) -> None:
    close = [
        (c["request"], tool, example, round(cases.similarity(c["request"], example), 2))
        for c in SETS[set_name]
        for tool, example in cases.tool_examples()
        if cases.similarity(c["request"], example) >= THRESHOLD
    ]
    assert not close, close


def test_requests_are_unique_and_dev_and_test_disjoint() -> None:
    norm = Counter(cases.normalize(c["request"]) for _, c in ALL)
    assert [r for r, n in norm.items() if n > 1] == []


@pytest.mark.parametrize(("set_name", "case"), ALL, ids=lambda v: v if isinstance(v, str) else "")
def test_case_is_well_formed(set_name: str, case: dict[str, Any]) -> None:
    tools = by_name()
    assert set(case) <= {"request", "tool", "args", "category", "also", "calls"}, case
    assert case["category"] in cases.CATEGORIES, case
    calls = [{"tool": case["tool"], "args": case.get("args") or {}}, *case.get("calls", [])]
    for call in calls:
        assert call["tool"] in tools, call
        fields = tools[call["tool"]].input.model_fields
        assert set(call["args"]) <= set(fields), call
    for alt in case.get("also", []):
        assert alt in tools, case
        assert alt != case["tool"], case
    if case["category"] == "two-call":
        assert case.get("calls"), case
    if case["category"] == "no-write":
        assert not cases.is_write(case["tool"]), case
        assert not any(cases.is_write(a) for a in case.get("also", [])), case


def test_writes_name_every_required_argument() -> None:
    for _, c in ALL:
        if cases.is_write(c["tool"]):
            fields = by_name()[c["tool"]].input.model_fields
            required = {k for k, f in fields.items() if f.is_required()}
            assert required <= set(c["args"]), c


def test_test_set_covers_every_tool_and_category() -> None:
    test = SETS["test"]
    assert len(test) >= 150
    per_tool = Counter(c["tool"] for c in test)
    assert {t.name for t in TOOLS} <= set(per_tool), per_tool
    assert min(per_tool.values()) >= 5, per_tool
    assert set(cases.CATEGORIES) == {c["category"] for c in test}
    assert sum(c["category"] == "no-write" for c in test) >= 5
    assert len(SETS["dev"]) >= 50


def test_scoring_counts_defaults_and_flags_wrong_writes() -> None:
    case = {"request": "r", "tool": "pod_logs", "args": {"namespace": "team-a", "tail_lines": 100}}
    call = {"tool": "pod_logs", "arguments": {"namespace": "team-a"}}
    assert cases.score(case, call) == (True, True)
    wrong_ns = {"tool": "pod_logs", "arguments": {"namespace": "team-a", "pod": "team-a"}}
    assert cases.score(case, wrong_ns) == (True, False)
    write = {"request": "r", "tool": "submit_job", "args": {"name": "x-7b", "namespace": "team-a",
             "image": "r/i:1", "gpus": 1}}  # fmt: skip
    seven = {"tool": "submit_job", "arguments": {**write["args"], "gpus": 7}}
    assert cases.write_wrong(write, seven, "gpu-east")
    home = {"tool": "submit_job", "arguments": {**write["args"], "cluster": "gpu-east"}}
    assert not cases.write_wrong(write, home, "gpu-east")
    assert cases.write_wrong(case, {"tool": "cancel_job", "arguments": {}}, "gpu-east")


def test_arguments_compare_by_type_booleans_included() -> None:
    same = cases.same
    assert same("previous", True, True)
    assert not same("previous", True, False)
    assert not same("limit", 1, True)  # a boolean is no count
    assert same("gpus", 2, 2.0)
    assert same("product", "H100", "NVIDIA-H100-80GB-HBM3")
