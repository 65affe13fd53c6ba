"""The policy engine fails closed, and bad policy files are refused with a precise message."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mcp_kube.cli import main
from mcp_kube.domain import Principal
from mcp_kube.errors import PolicyDenied
from mcp_kube.policy.cel import CelPy, CommonCel
from mcp_kube.policy.engine import PolicyError
from mcp_kube.policy.loader import ReloadablePolicy, load_engine
from mcp_kube.policy.testing import run_tests
from mcp_kube.tools.catalog import CatalogFacts

REPO = Path(__file__).resolve().parents[2]
ALICE = Principal("alice", ("team-a",))

HEADER = "apiVersion: mcp-kube.io/v1alpha1\nkind: ToolPolicy\nmetadata: {name: t}\n"


def write(tmp_path: Path, body: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def test_the_shipped_corpus_passes_on_both_cel_implementations(capsys) -> None:
    results = run_tests(REPO / "policies" / "tests", CatalogFacts())
    assert len(results) >= 20
    assert [r for r in results if not r.ok] == []
    assert main(["policy", "test", str(REPO / "policies" / "tests")]) == 0
    assert "0 failed" in capsys.readouterr().out
    assert main(["policy", "test", str(REPO / "policies")]) == 0  # the policy folder itself
    assert f"{len(results)} passed, 0 failed" in capsys.readouterr().out


def test_a_failing_case_fails_the_run(tmp_path, capsys) -> None:
    (tmp_path / "t.yaml").write_text(
        f"policies: [{REPO / 'policies' / 'default.yaml'}]\n"
        "cases:\n  - {name: wrong, tool: submit_job, expect: allow}\n"
    )
    assert main(["policy", "test", str(tmp_path)]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("backend", [CommonCel(), CelPy()], ids=lambda b: b.name)
def test_errors_and_non_booleans_deny(tmp_path, backend) -> None:
    path = write(
        tmp_path,
        """spec:
  rules:
    - id: needs-field
      match: {tools: [gpu_inventory]}
      validations:
        - {expression: "args.missing.deeper == 1", message: needs a field}
    - id: non-boolean
      match: {tools: [list_jobs]}
      validations:
        - {expression: "args.namespace", message: not a boolean}
    - id: truthy-int
      match: {tools: [list_events]}
      validations:
        - {expression: "1", message: one is not true}
""",
    )
    engine = load_engine([path], backend)
    for tool, rule in (
        ("gpu_inventory", "needs-field"),
        ("list_jobs", "non-boolean"),
        ("list_events", "truthy-int"),
    ):
        d = engine.decide(ALICE, tool, True, {"namespace": "team-a"})
        assert (d.action, d.rule) == ("deny", rule)
    assert engine.decide(ALICE, "whoami", True, {}).rule == "default-deny"


def test_a_deny_rule_wins_over_an_allow_whatever_the_order(tmp_path) -> None:
    path = write(
        tmp_path,
        """spec:
  rules:
    - {id: allow-all, match: {tools: ["*"]}}
    - {id: no-logs, match: {tools: [pod_logs]}, effect: Deny, message: no logs}
""",
    )
    d = load_engine([path]).decide(ALICE, "pod_logs", True, {})
    assert (d.action, d.rule, d.message) == ("deny", "no-logs", "no logs")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "spec: {rules: [{id: a, match: {tool: [x]}}]}",
            r"p.yaml: rule a: spec.rules.0.match.tool",
        ),
        (
            'spec: {rules: [{id: b, validations: [{expression: "args.x >", message: m}]}]}',
            r"p.yaml: rule b: validations\[0\]: invalid CEL: .*1:9",
        ),
        ("spec: {rules: [{id: c}, {id: c}]}", "rule c: duplicate id"),
        ("spec: {rules: [{id: Bad_Id}]}", "rule Bad_Id: spec.rules.0.id"),
        ("spec: {rules: []}\nextra: 1", "extra: Extra inputs are not permitted"),
    ],
)
def test_invalid_policy_files_name_file_rule_and_position(tmp_path, body, expected) -> None:
    with pytest.raises(PolicyError, match=expected):
        load_engine([write(tmp_path, body)])


def test_yaml_bombs_and_deep_nesting_are_refused_quickly(tmp_path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    deep = "spec: " + "[" * 200 + "]" * 200 + "\n"
    for name, text in (("bomb.yaml", bomb), ("deep.yaml", deep), ("big.yaml", "#" * (2 << 20))):
        path = tmp_path / name
        path.write_text(text)
        t0 = time.monotonic()
        with pytest.raises(PolicyError):
            load_engine([path])
        assert time.monotonic() - t0 < 2


def test_serve_refuses_to_start_on_an_invalid_policy(tmp_path, capsys) -> None:
    bad = write(tmp_path, "spec: {rules: [{id: x, effect: Maybe}]}")
    assert main(["serve", "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "p.yaml: rule x: spec.rules.0.effect" in err


def test_reload_keeps_the_running_policy_when_the_new_one_is_invalid(tmp_path) -> None:
    path = write(tmp_path, "spec: {rules: [{id: reads, match: {tools: ['@read']}}]}")
    policy = ReloadablePolicy([path])
    assert policy.decide(ALICE, "gpu_inventory", True, {}).allowed
    path.write_text(HEADER + "spec: {rules: [{id: reads, match: {tools: [oops]}, effect: Nope}]}")
    error = policy.reload()
    assert error is not None
    assert "effect" in error
    assert policy.decide(ALICE, "gpu_inventory", True, {}).allowed  # old policy still in force
    path.write_text(HEADER + "spec: {rules: []}")
    assert policy.reload() is None
    assert not policy.decide(ALICE, "gpu_inventory", True, {}).allowed


def test_review_applies_defaults_then_judges_the_final_manifest() -> None:
    engine = load_engine([REPO / "policies" / "default.yaml", REPO / "policies" / "examples"])
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "t", "namespace": "team-a"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "registry.internal/ml/t:1",
                            "resources": {"limits": {"nvidia.com/gpu": "2"}},
                        }
                    ]
                }
            }
        },
    }
    review = engine.review(ALICE, "submit_job", "c", "team-a", manifest, {"gpus": 2})
    spec = review.manifest["spec"]
    assert spec["activeDeadlineSeconds"] == 86400
    assert spec["backoffLimit"] == 1
    requests = spec["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": "16", "memory": "128Gi"}
    assert "set spec.activeDeadlineSeconds=86400" in review.changes
    assert review.approval == "none"
    assert manifest["spec"].get("backoffLimit") is None  # the caller's copy is untouched
    manifest["spec"]["template"]["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": "/"}}]
    with pytest.raises(PolicyDenied, match="teams-write: volumes are not allowed"):
        engine.review(ALICE, "submit_job", "c", "team-a", manifest, {"gpus": 2})


def test_out_of_band_terms_come_from_the_rule_that_asks_for_them(tmp_path) -> None:
    path = write(
        tmp_path,
        """spec:
  rules:
    - id: big-jobs
      match: {tools: [submit_job]}
      approval: {mode: out_of_band, approvers: [gpu-leads], fourEyes: true, ttlSeconds: 600}
""",
    )
    engine = load_engine([path])
    manifest = {"spec": {"template": {"spec": {"containers": []}}}}
    review = engine.review(ALICE, "submit_job", "c", "team-a", manifest, {"gpus": 1})
    assert review.approval == "out_of_band"
    terms = engine.approval_terms(ALICE, "submit_job", "c", "team-a", review.manifest)
    assert terms is not None
    assert (terms.approvers, terms.four_eyes, terms.ttl_seconds) == (("gpu-leads",), True, 600)


def test_out_of_band_terms_match_a_rule_on_the_call_arguments(tmp_path) -> None:
    """A rule that asks for approval only for big jobs names its approvers for those jobs:
    the terms are never the defaults (anyone may approve) because the arguments were left out."""
    path = write(
        tmp_path,
        """spec:
  rules:
    - id: big-jobs
      match: {tools: [submit_job]}
      approval:
        mode: out_of_band
        when: "has(args.gpus) && args.gpus > 2"
        approvers: [gpu-leads]
""",
    )
    engine = load_engine([path])
    manifest = {"spec": {"template": {"spec": {"containers": []}}}}
    review = engine.review(ALICE, "submit_job", "c", "team-a", manifest, {"gpus": 4})
    assert review.approval == "out_of_band"
    terms = engine.approval_terms(ALICE, "submit_job", "c", "team-a", review.manifest, {"gpus": 4})
    assert terms is not None
    assert terms.approvers == ("gpu-leads",)


AMBIGUOUS = """spec:
  rules:
    - id: reads
      match: {tools: ['@read']}
      effect: Allow
      effect: Deny
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (AMBIGUOUS, r"p.yaml: duplicate key 'effect' at line 9 \(first at line 8\)"),
        (  # deeper: inside a validation of a rule
            "spec:\n  rules:\n    - id: v\n      validations:\n"
            "        - expression: 'true'\n          message: a\n          message: b\n",
            r"p.yaml: duplicate key 'message' at line 10 \(first at line 9\)",
        ),
        (  # a flow mapping on one line: the columns tell them apart
            "spec: {rules: [{id: f, match: {tools: [x], tools: ['*']}}]}",
            r"duplicate key 'tools' at line 4, column 44 \(first at line 4, column 32\)",
        ),
        (
            "spec: {rules: []}\nspec: {rules: []}\n",
            r"duplicate key 'spec' at line 5 \(first at line 4\)",
        ),
        ("metadata: {name: again}\nspec: {rules: []}\n", "duplicate key 'metadata' at line 4"),
        (
            "spec:\n  rules: []\n  <<: {rules: []}\n",
            r"merge keys \(<<\) are not allowed \(line 6\)",
        ),
    ],
)
def test_a_key_given_twice_at_any_depth_is_refused_naming_both_lines(
    tmp_path, body, expected
) -> None:
    with pytest.raises(PolicyError, match=expected):
        load_engine([write(tmp_path, body)])


@pytest.mark.parametrize("command", [["policy", "check"], ["serve", "--policy"]])
def test_policy_check_and_serve_exit_2_on_a_duplicate_key(tmp_path, capsys, command) -> None:
    path = write(tmp_path, AMBIGUOUS)
    assert main([*command, str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: duplicate key 'effect' at line 9 (first at line 8)" in err


def test_reload_refuses_a_duplicate_key_and_keeps_the_running_policy(tmp_path) -> None:
    path = write(tmp_path, "spec: {rules: [{id: reads, match: {tools: ['@read']}}]}")
    policy = ReloadablePolicy([path])
    # the reverse order: the last value would allow while a reviewer reads Deny
    path.write_text(
        HEADER + AMBIGUOUS.replace("Allow\n      effect: Deny", "Deny\n      effect: Allow")
    )
    error = policy.reload()
    assert error is not None
    assert "duplicate key 'effect' at line 9 (first at line 8)" in error
    assert policy.decide(ALICE, "gpu_inventory", True, {}).allowed  # old policy still in force


def test_an_audit_script_with_a_duplicate_key_is_refused_before_any_call(tmp_path, capsys) -> None:
    script = tmp_path / "audit.yaml"
    script.write_text(
        "name: weekly\n"
        "server: /nonexistent/never-started\n"
        "calls:\n"
        "  - name: jobs\n"
        "    tool: list_jobs\n"
        "    args:\n"
        "      namespace: team-a\n"
        "      namespace: team-b\n"
    )
    assert main(["audit", "run", str(script), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{script}: duplicate key 'namespace' at line 8 (first at line 7)" in err
    assert not list(tmp_path.glob("*.evidence.*"))  # nothing ran, no report
