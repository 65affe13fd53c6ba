"""Scheduling a submitted job: PriorityClasses, queues and node placement the policy allows.

Issue 21, hole 3: under gpu-teams a team member's ``submit_job`` with ``priority_class:
system-node-critical`` was created, and her pod preempted with priority 2000001000. These tests
run the real gate and policy engine on the shipped policy files, with an in-memory cluster.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from support.gates import ALLOW_ALL_RULES as ALLOW_ALL
from support.gates import call, make_gate, policy_file

from mcp_kube.domain import Principal
from mcp_kube.errors import PolicyDenied
from mcp_kube.gate import Gate
from mcp_kube.kube.memory import MemoryCluster
from mcp_kube.policy.engine import PolicyError
from mcp_kube.policy.loader import load_engine
from mcp_kube.tools.jobspec import SubmitJobInput, build_job

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
DEFAULT = POLICIES / "default.yaml"
EXAMPLES = sorted((POLICIES / "examples").glob("*.yaml"))
GPU_TEAMS = POLICIES / "examples" / "gpu-teams.yaml"
TEAM_CLASSES = "team-batch, team-interactive"  # as gpu-teams.yaml lists them
SYSTEM_CLASSES = ["system-node-critical", "system-cluster-critical"]

# Every shipped policy file alone, and each example as it is meant to run: after default.yaml.
SHIPPED: list[list[Path]] = [[DEFAULT], *([p] for p in EXAMPLES), *([DEFAULT, p] for p in EXAMPLES)]
# Whoever might get a write through some shipped policy, and one caller in every group.
CALLERS = [
    Principal("alice", ("team-a",)),
    Principal("bob", ("team-b",)),
    Principal("carol", ("auditors",)),
    Principal("mallory", ("team-a", "team-b", "auditors", "kube-system")),
]
ALICE = CALLERS[0]


def gate_for(paths: list[Path]) -> tuple[Gate, MemoryCluster]:
    port = MemoryCluster("c")
    return make_gate(port, policy=paths), port


def submit_args(who: Principal, **extra: Any) -> dict[str, Any]:
    namespace = who.groups[0] if who.groups and who.groups[0].startswith("team-") else "team-a"
    base = {"name": "train", "namespace": namespace, "image": "registry.internal/ml/t:1", "gpus": 1}
    return base | extra


def submit(gate: Gate, who: Principal, **extra: Any) -> tuple[bool, str]:
    result = call(gate, "submit_job", submit_args(who, **extra), who)
    return result.is_error, result.text


def manifest(**pod: Any) -> dict[str, Any]:
    job = build_job(SubmitJobInput.model_validate(submit_args(ALICE)), ALICE)
    job["spec"]["template"]["spec"].update(pod)
    return job


# ------------------------------------------------------------------ system-* never


@pytest.mark.parametrize("priority_class", SYSTEM_CLASSES)
@pytest.mark.parametrize("paths", SHIPPED, ids=lambda ps: "+".join(p.stem for p in ps))
def test_system_priority_classes_are_refused_under_every_shipped_policy(
    paths: list[Path], priority_class: str
) -> None:
    gate, port = gate_for(paths)
    for who in CALLERS:
        is_error, text = submit(gate, who, priority_class=priority_class)
        assert is_error, (who, text)
        assert "priority_class" in text
        assert "system-*" in text
    assert port.written("create", dry_run=None) == []  # not even a dry run reached the cluster
    # The same under the policy review itself, for a manifest that skipped input validation.
    engine = load_engine(paths)
    job = manifest(priorityClassName=priority_class)
    for who in CALLERS:
        with pytest.raises(PolicyDenied, match=r"priorityClasses.*system-\* classes"):
            engine.review(who, "submit_job", "c", "team-a", job, {"gpus": 1})


@pytest.mark.parametrize("priority_class", SYSTEM_CLASSES)
def test_system_priority_classes_are_refused_even_when_a_policy_allows_everything(
    tmp_path: Path, priority_class: str
) -> None:
    gate, port = gate_for([policy_file(tmp_path, ALLOW_ALL)])
    is_error, text = submit(gate, ALICE, priority_class=priority_class)
    assert is_error
    assert text.startswith("error [invalid_argument]:")
    assert f"priority_class: Value error, '{priority_class}' is refused" in text
    assert port.written("create", dry_run=None) == []
    with pytest.raises(ValidationError, match="system-"):
        SubmitJobInput.model_validate(submit_args(ALICE, priority_class=priority_class))


def test_a_policy_cannot_list_a_system_priority_class(tmp_path: Path) -> None:
    body = "spec:\n  limits: {priorityClasses: [team-batch, system-node-critical]}\n"
    with pytest.raises(PolicyError) as e:
        load_engine([policy_file(tmp_path, body)])
    text = str(e.value)
    assert "p.yaml" in text
    assert "spec.limits.priorityClasses" in text
    assert "system-node-critical" in text


# ------------------------------------------------------------------ listed classes only


def test_gpu_teams_allows_its_listed_classes_and_refuses_others() -> None:
    gate, port = gate_for([DEFAULT, GPU_TEAMS])
    for name, cls in (("a", "team-batch"), ("b", "team-interactive")):
        is_error, text = submit(gate, ALICE, name=f"train-{name}", priority_class=cls)
        assert not is_error, text
    classes = [j["spec"]["template"]["spec"]["priorityClassName"] for j in port.written("create")]
    assert classes == ["team-batch", "team-interactive"]
    for cls in ("high-priority", "team-batch-x", "critical"):
        is_error, text = submit(gate, ALICE, name="other", priority_class=cls)
        assert is_error
        assert text.startswith("error [policy_denied]: denied by policy limit priorityClasses:")
        assert f"priority_class '{cls}' is not allowed; allowed: {TEAM_CLASSES}" in text
    # two dry runs, two creates: nothing for the refused ones
    assert len(port.written("create", dry_run=None)) == 4
    is_error, text = submit(gate, ALICE, name="plain")  # no class: the cluster's default
    assert not is_error, text
    assert "priorityClassName" not in port.written("create")[-1]["spec"]["template"]["spec"]


def test_no_listed_classes_means_none_allowed(tmp_path: Path) -> None:
    gate, port = gate_for([policy_file(tmp_path, ALLOW_ALL)])
    is_error, text = submit(gate, ALICE, priority_class="team-batch")
    assert is_error
    assert "priority_class 'team-batch' is not allowed; this policy allows none" in text
    assert "limits.priorityClasses" in text
    assert port.written("create", dry_run=None) == []


def test_several_files_allow_only_classes_every_list_allows(tmp_path: Path) -> None:
    lists = "  limits: {priorityClasses: [low, mid, high]}\n"
    one = policy_file(tmp_path, ALLOW_ALL + lists, "one")
    two = policy_file(tmp_path, "spec:\n  limits: {priorityClasses: [high, mid]}\n", "two")
    silent = policy_file(tmp_path, "spec: {}\n", "silent")  # lists nothing: restricts nothing
    engine = load_engine([one, silent, two])
    assert engine.limits.allowed_priority_classes() == ["mid", "high"]
    assert load_engine([one, silent]).limits.allowed_priority_classes() == ["low", "mid", "high"]
    assert load_engine([silent]).limits.allowed_priority_classes() == []
    engine.review(ALICE, "submit_job", "c", "team-a", manifest(priorityClassName="mid"), {})
    with pytest.raises(PolicyDenied, match="'low' is not allowed; allowed: mid, high"):
        engine.review(ALICE, "submit_job", "c", "team-a", manifest(priorityClassName="low"), {})


# ------------------------------------------------------------------ queues


def test_queues_are_limited_where_the_policy_lists_them(tmp_path: Path) -> None:
    gate, port = gate_for([DEFAULT, GPU_TEAMS])
    is_error, text = submit(gate, ALICE, queue="team-a-queue")
    assert not is_error, text
    is_error, text = submit(gate, ALICE, name="vip", queue="vip-queue")
    assert is_error
    assert "denied by policy limit queues: queue 'vip-queue' is not allowed; allowed: " in text
    assert "team-a-queue, team-b-queue" in text
    assert [j["metadata"]["name"] for j in port.written("create")] == ["train"]
    # unlisted: any LocalQueue (namespaced; an admin binds each to a ClusterQueue)
    open_gate, open_port = gate_for([policy_file(tmp_path, ALLOW_ALL)])
    is_error, text = submit(open_gate, ALICE, queue="any-queue")
    assert not is_error, text
    [made] = open_port.written("create")
    assert made["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "any-queue"


# ------------------------------------------------------------------ node placement


@pytest.mark.parametrize(
    "argument",
    [
        "tolerations",
        "affinity",
        "node_affinity",
        "node_name",
        "node_selector",
        "runtime_class_name",
        "scheduler_name",
        "priority",
        "preemption_policy",
        "topology_spread_constraints",
    ],
)
def test_submit_job_offers_no_other_scheduling_argument(argument: str) -> None:
    gate, port = gate_for([DEFAULT, GPU_TEAMS])
    is_error, text = submit(gate, ALICE, **{argument: "x"})
    assert is_error
    assert f"{argument}: unknown argument" in text
    assert port.written("create", dry_run=None) == []


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"gpu_product": "NVIDIA-H100-80GB-HBM3"},
        {"gpus": 0, "gpu_fraction": 0.5},
        {"gpus": 2, "mig_profile": "1g.10gb", "queue": "q", "priority_class": "team-batch"},
    ],
)
def test_the_template_writes_no_placement_but_the_gpu_product(extra: dict[str, Any]) -> None:
    pod = build_job(SubmitJobInput.model_validate(submit_args(ALICE) | extra), ALICE)
    spec = pod["spec"]["template"]["spec"]
    assert not {"tolerations", "affinity", "nodeName", "runtimeClassName", "priority"} & set(spec)
    assert set(spec.get("nodeSelector") or {}) <= {"nvidia.com/gpu.product"}
    assert spec.get("schedulerName") in (None, "kai-scheduler")


@pytest.mark.parametrize(
    ("pod", "refusal"),
    [
        (
            {
                "tolerations": [
                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
                ]
            },
            "limit tolerations: a submitted job may not set tolerations",
        ),
        (
            {"tolerations": [{"operator": "Exists"}]},
            "limit tolerations",
        ),
        (
            {"tolerations": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]},
            "limit tolerations",
        ),
        ({"nodeName": "control-plane-0"}, "limit nodeName"),
        (
            {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
            "limit affinity",
        ),
        (
            {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}},
            "not by node-role.kubernetes.io/control-plane",
        ),
        (
            {"nodeSelector": {"nvidia.com/gpu.product": "x", "kubernetes.io/hostname": "n1"}},
            "select nodes only by nvidia.com/gpu.product (gpu_product), not by "
            "kubernetes.io/hostname",
        ),
    ],
)
def test_the_review_refuses_placement_the_template_never_writes(
    tmp_path: Path, pod: dict[str, Any], refusal: str
) -> None:
    """Defence in depth: a manifest changed on its way to the review is still refused."""
    engine = load_engine([policy_file(tmp_path, ALLOW_ALL)])
    with pytest.raises(PolicyDenied, match=re.escape(refusal)):
        engine.review(ALICE, "submit_job", "c", "team-a", manifest(**pod), {})
    fine = manifest(nodeSelector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    engine.review(ALICE, "submit_job", "c", "team-a", fine, {})
