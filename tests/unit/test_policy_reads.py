"""The policy's CEL expressions see the same values in the pruned variables as in the whole
ones (``mcp_kube.policy.reads``): every shipped expression and some that try the pruning's
edges, on submit_job manifests as built and as changed on the way."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_kube.domain import Principal
from mcp_kube.policy.cel import CelBackend, CelError, CelPy, CommonCel
from mcp_kube.policy.engine import VARIABLES
from mcp_kube.policy.reads import Need, needs_of, prune, prune_all
from mcp_kube.tools.jobspec import SubmitJobInput, build_job

REPO = Path(__file__).resolve().parents[2]
EDGES = [
    "manifest.spec.template.spec.containers.filter(c, c.image != '').all(d, d.name == 'trainer')",
    "manifest.spec.template.spec.containers.map(c, c.securityContext).all(s, !s.privileged)",
    "manifest.spec.template.spec.containers.map(c, c).all(s, s.name.size() > 0)",
    "size(manifest.spec.template.spec.containers) == 1",
    "manifest.spec.template.spec.containers[0].name == 'trainer'",
    "manifest.metadata.labels.all(k, k.startsWith('mcp-kube') || k.startsWith('app'))",
    "manifest.metadata.labels['mcp-kube.io/policy'] == 'gpu-teams'",
    "manifest.spec.template.spec.containers.exists_one(c, has(c.securityContext.capabilities))",
    "manifest.spec.template.spec.containers.all(c, c.env.all(e, e.name != 'X'))",
    "manifest.spec.template.spec.containers.all(c, c.nosuch == 1)",
    "manifest.spec.template.spec.containers.map(c, c.name, c.image).all(i, i.startsWith('r'))",
    "manifest.spec.template.spec.containers.all(manifest, manifest.name != '')"
    " && manifest.kind != ''",
    "manifest // manifest.x\n.spec.backoffLimit == 1",
    "'manifest.spec.x' != '' && manifest.spec == manifest.spec",
    "[manifest.spec.template.spec.containers[0]].all(c, c.image != '')",
    "principal.groups.exists(g, g == args.namespace) && tool == 'submit_job' && !readOnly",
    "manifest.spec.template.spec.containers.all(c, !has(c.resources) || has(c.resources.limits))",
    "has(manifest.spec.template) && has(manifest.spec.template.spec.volumes)",
    "has(manifest.spec.template.spec.containers) && manifest.spec.template.spec.containers"
    ".all(c, has(c.env))",
    "has(manifest.spec.template.spec.containers[0].resources)",
    "manifest.spec.has(manifest.spec.template)",
]


def _shipped() -> list[str]:
    out: list[str] = []
    for path in sorted([*REPO.glob("policies/**/*.yaml"), *REPO.glob("tests/data/*.yaml")]):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "ToolPolicy":
                continue
            for rule in doc["spec"].get("rules", []):
                out += [rule["condition"]] if rule.get("condition") else []
                out += [v["expression"] for v in rule.get("validations", [])]
                out += (
                    [rule["approval"]["when"]] if (rule.get("approval") or {}).get("when") else []
                )
    return out


def _manifests() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    alice = Principal("alice", ("team-a",))
    args = {"name": "t", "namespace": "team-a", "image": "registry.internal/ml/t:1", "gpus": 2}
    built = build_job(SubmitJobInput.model_validate(args), alice)
    pod = ("spec", "template", "spec")
    changes: list[Callable[[dict[str, Any]], object]] = [
        lambda m: None,
        lambda m: _at(m, pod).update(volumes=[{"name": "v"}]),
        lambda m: _at(m, pod)["containers"][0].update(env=[{"name": "X", "valueFrom": {}}]),
        lambda m: _at(m, pod)["containers"].append({"name": "side", "envFrom": [{}]}),
        lambda m: _at(m, pod).update(containers="not a list"),
        lambda m: _at(m, pod)["containers"][0].update(resources="x"),
        lambda m: m["spec"].pop("template"),
    ]
    out = []
    for change in changes:
        m = copy.deepcopy(built)
        change(m)
        out.append((args, m))
    return out


def _at(m: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        m = m[key]
    return m


def _results(backend: CelBackend, programs: list[Any], act: dict[str, Any]) -> list[str]:
    bound = backend.bind(act)
    out = []
    for program in programs:
        try:
            out.append(repr(program.run(bound)))
        except CelError as e:  # cel-python's messages print the whole activation: not compared
            out.append("error " + re.sub(r"Activation\(.*", "", str(e), flags=re.S)[:60])
    return out


def _activations() -> list[dict[str, Any]]:
    return [
        {
            "principal": {"name": "alice", "groups": ["team-a"], "authenticatedBy": "jwt"},
            "tool": "submit_job",
            "readOnly": False,
            "args": args,
            "cluster": "c",
            "namespace": "team-a",
            "manifest": manifest,
        }
        for args, manifest in _manifests()
    ]


@pytest.mark.parametrize("backend", [CommonCel(), CelPy()], ids=lambda b: b.name)
def test_pruned_variables_give_every_expression_the_same_result(backend: CelBackend) -> None:
    shipped = _shipped()
    together = needs_of(shipped, VARIABLES)
    assert not together["manifest"].whole  # the shipped expressions read parts of it
    # the shipped ones together (as an engine prunes), and each one alone (the sharpest cut)
    cases = [(shipped, together)] + [([e], needs_of([e], VARIABLES)) for e in shipped + EDGES]
    for act in _activations():
        for expressions, needs in cases:
            programs = [backend.compile(e) for e in expressions]
            pruned = _results(backend, programs, prune_all(act, needs))
            assert pruned == _results(backend, programs, act), expressions


def test_what_is_kept() -> None:
    needs = needs_of(
        ["manifest.spec.x.all(c, c.image.startsWith('r')) && has(manifest.spec.y)"], VARIABLES
    )
    assert set(needs) == {"manifest"}  # the others are not named: not converted at all
    m = {"spec": {"x": [{"image": "r", "big": {"a": 1}}], "y": 1, "z": 2}, "kind": "Job"}
    assert prune(m, needs["manifest"]) == {"spec": {"x": [{"image": "r"}], "y": 1}}


def test_a_presence_test_keeps_the_field_not_what_is_in_it() -> None:
    need = needs_of(["has(manifest.spec.x) && manifest.spec.x.all(c, has(c.r))"], ["manifest"])
    m = {"spec": {"x": [{"r": {"big": [1, 2]}, "s": 1}], "w": {"a": 1}}, "kind": "Job"}
    assert prune(m, need["manifest"]) == {"spec": {"x": [{"r": {}}]}}


@pytest.mark.parametrize(
    "expression",
    [
        "manifest.spec.x",  # then the whole of spec.x
        "manifest == {}",  # the variable alone
        "manifest['spec'].x",  # indexed
        "manifest.?spec.x",  # optional selection
        "manifest.spec.x.filter(c, c.a).size() > 0",  # filter's elements flow out
        "manifest.spec.x.all(i, v, v.a)",  # the two-variable form
        "manifest.spec.`x`",  # a backquoted field
        "'unterminated + manifest.spec.x",
    ],
)
def test_other_uses_keep_the_value_whole_where_they_start(expression: str) -> None:
    need = needs_of([expression], ["manifest"])["manifest"]
    m: dict[str, Any] = {"spec": {"x": [{"a": 1, "b": 2}], "w": 3}, "kind": "Job"}
    pruned = prune(m, need)
    if expression.startswith("manifest.spec.x"):
        assert pruned == {"spec": {"x": m["spec"]["x"]}}
    else:
        assert pruned == m
    assert isinstance(need, Need)
