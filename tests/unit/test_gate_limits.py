"""Stateful policy limits the gate enforces: calls per minute, concurrent GPUs per principal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from mcp_kube.domain import Principal
from mcp_kube.kube.port import Kind
from mcp_kube.policy.gate import Gate
from mcp_kube.policy.loader import ReloadablePolicy
from mcp_kube.settings import Settings
from mcp_kube.tools.catalog import by_name
from mcp_kube.tools.jobspec import SUBMITTED_BY_LABEL

HEADER = "apiVersion: mcp-kube.io/v1alpha1\nkind: ToolPolicy\nmetadata: {name: t}\n"
ALICE = Principal("alice", ("team-a",))


def gpu_job(name: str, gpus: int, done: bool = False) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(gpus)}
    status = {"conditions": [{"type": "Complete", "status": "True"}]} if done else {}
    return {
        "metadata": {"name": name, "namespace": "team-a", "labels": {SUBMITTED_BY_LABEL: "alice"}},
        "spec": {"template": {"spec": {"containers": [{"resources": {"limits": limits}}]}}},
        "status": status,
    }


class FakePort:
    name = "c"

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = jobs
        self.created: list[dict[str, Any]] = []

    async def list_objects(self, kind, namespace=None, *, label_selector=None, **_: Any):
        key, _, value = (label_selector or "").partition("=")
        return [j for j in self.jobs if j["metadata"]["labels"].get(key) == value]

    async def create(self, kind, namespace, body, *, dry_run):
        assert kind is Kind.JOBS
        if not dry_run:
            self.created.append(body)
        return {**body, "_audit_id": "x"}


class Source:
    def __init__(self, port: FakePort) -> None:
        self.port = port
        self.names = ["c"]

    def resolve(self, name):
        return "c"

    def get(self, name):
        return self.port


def make_gate(tmp_path: Path, spec: str, port: FakePort) -> Gate:
    path = tmp_path / "p.yaml"
    path.write_text(HEADER + spec)
    return Gate(Source(port), Settings(), ReloadablePolicy([path]), tuple(by_name().values()))


def test_calls_per_minute_are_limited_per_principal(tmp_path) -> None:
    spec = (
        "spec:\n  limits: {callsPerMinute: {whoami: 2}}\n"
        "  rules: [{id: all, match: {tools: ['*']}}]\n"
    )
    gate = make_gate(tmp_path, spec, FakePort([]))
    whoami = by_name()["whoami"]

    async def go(who: Principal) -> list[bool]:
        return [(await gate.call(whoami, {}, who)).is_error for _ in range(3)]

    assert anyio.run(go, ALICE) == [False, False, True]
    assert anyio.run(go, Principal("bob")) == [False, False, True]  # bob has his own budget
    last = anyio.run(gate.call, whoami, {}, ALICE)
    assert last.content[0].text.startswith("error [rate_limited]")


def test_concurrent_gpus_per_principal_count_active_jobs_only(tmp_path) -> None:
    spec = (
        "spec:\n  limits: {maxConcurrentGpusPerPrincipal: 10}\n"
        "  rules: [{id: all, match: {tools: ['*']}}]\n"
    )
    port = FakePort([gpu_job("a", 8), gpu_job("old", 8, done=True)])
    gate = make_gate(tmp_path, spec, port)
    submit = by_name()["submit_job"]
    args = {"name": "n", "namespace": "team-a", "image": "registry.internal/x:1", "gpus": 2}
    ok = anyio.run(gate.call, submit, args, ALICE)
    assert not ok.is_error, ok.content
    over = anyio.run(gate.call, submit, args | {"name": "m", "gpus": 3}, ALICE)
    assert over.is_error
    assert "maxConcurrentGpusPerPrincipal: 8 GPUs already" in over.content[0].text
    assert [c["metadata"]["name"] for c in port.created] == ["n"]
