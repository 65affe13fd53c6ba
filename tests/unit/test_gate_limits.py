"""Stateful policy limits the gate enforces: calls per minute, concurrent GPUs per principal."""

from __future__ import annotations

from support.gates import call, error_of, make_gate, ok, policy_file
from support.objects import condition, job

from mcp_kube.domain import Principal
from mcp_kube.kube.memory import MemoryCluster
from mcp_kube.kube.port import Kind
from mcp_kube.tools.jobspec import SUBMITTED_BY_LABEL

ALICE = Principal("alice", ("team-a",))
RULES = "  rules: [{id: all, match: {tools: ['*']}}]\n"


def gpu_job(name: str, gpus: int, done: bool = False) -> dict:
    """A job alice submitted through mcp-kube, finished or not."""
    conditions = [condition("Complete")] if done else []
    return job(name, gpus=gpus, labels={SUBMITTED_BY_LABEL: "alice"}, conditions=conditions)


def test_calls_per_minute_are_limited_per_principal(tmp_path) -> None:
    spec = "spec:\n  limits: {callsPerMinute: {whoami: 2}}\n" + RULES
    gate = make_gate(MemoryCluster("c"), policy=[policy_file(tmp_path, spec)])

    def go(who: Principal) -> list[bool]:
        return [call(gate, "whoami", {}, who).is_error for _ in range(3)]

    assert go(ALICE) == [False, False, True]
    assert go(Principal("bob")) == [False, False, True]  # bob has his own budget
    assert error_of(call(gate, "whoami", {}, ALICE))[0] == "rate_limited"


def test_concurrent_gpus_per_principal_count_active_jobs_only(tmp_path) -> None:
    spec = "spec:\n  limits: {maxConcurrentGpusPerPrincipal: 10}\n" + RULES
    port = MemoryCluster("c", {Kind.JOBS: [gpu_job("a", 8), gpu_job("old", 8, done=True)]})
    gate = make_gate(port, policy=[policy_file(tmp_path, spec)])
    args = {"name": "n", "namespace": "team-a", "image": "registry.internal/x:1", "gpus": 2}
    ok(call(gate, "submit_job", args, ALICE))
    code, message = error_of(call(gate, "submit_job", args | {"name": "m", "gpus": 3}, ALICE))
    assert code == "policy_denied"
    # a (8) and the new n (2) are active; old is Complete and holds nothing
    assert "maxConcurrentGpusPerPrincipal: 10 GPUs already" in message
    assert [c["metadata"]["name"] for c in port.written("create")] == ["n"]
