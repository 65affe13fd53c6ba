"""The audit trail on the real server: every call recorded, chained, secret-free, joinable."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from support.gates import call

from mcp_kube.audit import AuditLog, verify
from mcp_kube.cli import main
from mcp_kube.domain import Principal
from mcp_kube.gate import Gate
from mcp_kube.kube.client import ClusterRegistry
from mcp_kube.policy.loader import ReloadablePolicy
from mcp_kube.settings import AuditSettings, ClusterSettings, Settings
from mcp_kube.testbed import cluster
from mcp_kube.tools.catalog import TOOLS, by_name

from .mcp_helpers import http_server

REPO = Path(__file__).resolve().parents[2]
TEAMS = [REPO / "policies" / "default.yaml", REPO / "policies" / "examples" / "gpu-teams.yaml"]
ALICE = Principal("alice", ("team-a",), "test")
PLANTED = "AKIAIOSFODNN7EXAMPLE/wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def audited(testbed: cluster.TestbedState, tmp_path: Path) -> Iterator[tuple[Gate, Path]]:
    settings = Settings(
        clusters=ClusterSettings(kubeconfig=Path(testbed.kubeconfig), contexts=["gpu-east"]),
        audit=AuditSettings(path=tmp_path / "audit.jsonl", fsync=False),
    )
    registry = ClusterRegistry(settings.clusters)
    log = AuditLog(settings.audit.path, checkpoint_every=50, fsync=False)
    try:
        yield Gate(registry, settings, ReloadablePolicy(TEAMS), TOOLS, log), settings.audit.path
    finally:
        log.close()
        registry.close()


def test_a_hundred_mixed_calls_give_exactly_the_expected_records(audited) -> None:
    gate, path = audited
    tools = by_name()

    async def no(_text: str, _binding: str) -> bool:
        return False

    async def go() -> None:
        for _ in range(40):
            await gate.call(tools["whoami"], {}, ALICE, transport="test")
        for _ in range(20):
            await gate.call(tools["list_jobs"], {"namespace": "Team_A"}, ALICE)
        for _ in range(20):
            await gate.call(tools["pod_logs"], {"namespace": "team-a", "pod": "gone"}, ALICE)
        for _ in range(10):
            await gate.call(tools["gpu_quota"], {"cluster": "gpu-east"}, ALICE)
        # gpu-teams allows 10 submit_job calls a minute: 5 refused on review, 5 not approved
        submit = {"name": "x", "namespace": "team-b", "image": "registry.internal/x:1", "gpus": 1}
        for _ in range(5):
            await gate.call(tools["submit_job"], submit, ALICE)
        big = submit | {"namespace": "team-a", "gpus": 4, "queue": "team-a-queue"}
        for _ in range(5):
            await gate.call(tools["submit_job"], big, ALICE, no)
        refused = await gate.call(tools["submit_job"], big, ALICE, no)  # the 11th this minute
        assert refused.text.startswith("error [rate_limited]")

    anyio.run(go)
    rows = records(path)
    calls = [r for r in rows if r["kind"] == "tool_call"]
    intents = [r for r in rows if r["kind"] == "tool_call.intent"]
    assert len(calls) == 101
    assert len(intents) == 10  # the writes the policy let through, logged before acting
    outcomes = Counter((r["tool"], r["outcome"], r["error_code"]) for r in calls)
    assert outcomes == {
        ("whoami", "ok", ""): 40,
        ("list_jobs", "error", "invalid_argument"): 20,
        ("pod_logs", "error", "not_found"): 20,
        ("gpu_quota", "ok", ""): 10,
        ("submit_job", "denied", "policy_denied"): 5,
        ("submit_job", "error", "approval_refused"): 5,
        ("submit_job", "denied", "rate_limited"): 1,
    }
    denied = next(r for r in calls if r["error_code"] == "policy_denied")
    assert denied["decision"]["action"] == "deny"
    assert denied["decision"]["rule"] == "teams-write"
    assert denied["principal"] == {
        "subject": "alice",
        "groups": ["team-a"],
        "authenticated_by": "test",
    }
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    report = verify([path])
    assert report.ok, report.problems
    assert report.checkpoints >= 2


def test_a_submit_record_joins_the_api_servers_audit_event(testbed, audited) -> None:
    gate, path = audited
    name = f"audit-join-{int(time.time())}"
    args = {
        "name": name,
        "namespace": "team-a",
        "image": "registry.internal/ml/trainer@sha256:" + "cd" * 32,
        "gpus": 1,
    }
    result = call(gate, "submit_job", args, ALICE)
    try:
        assert not result.is_error, result.text
        record = [r for r in records(path) if r["kind"] == "tool_call"][-1]
        creates = [k for k in record["kube_requests"] if k["verb"] == "POST" and not k["dry_run"]]
        assert len(creates) == 1
        audit_id = creates[0]["audit_id"]
        assert audit_id
        events = [
            json.loads(line)
            for line in Path(testbed.clusters[0].audit_log).read_text().splitlines()
        ]
        joined = [e for e in events if e.get("auditID") == audit_id]
        assert joined, "no API server audit event with that Audit-ID"
        event = joined[-1]
        assert event["verb"] == "create"
        assert event["objectRef"]["resource"] == "jobs"
        assert event["objectRef"]["namespace"] == "team-a"
        assert event["responseStatus"]["code"] == 201
        dry = [k for k in record["kube_requests"] if k["dry_run"]]
        assert dry, "the server-side dry run is in the record too"
    finally:
        api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
        k8s.BatchV1Api(api).delete_namespaced_job(name, "team-a", propagation_policy="Background")


def test_writes_are_refused_when_the_audit_log_cannot_be_written(testbed, tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log's folder should be")
    broken = AuditLog(blocker / "audit.jsonl")
    assert broken.available is False
    for fail_closed_reads in (False, True):
        settings = Settings(
            clusters=ClusterSettings(kubeconfig=Path(testbed.kubeconfig), contexts=["gpu-east"]),
            audit=AuditSettings(path=blocker / "audit.jsonl", fail_closed_reads=fail_closed_reads),
        )
        registry = ClusterRegistry(settings.clusters)
        gate = Gate(registry, settings, ReloadablePolicy(TEAMS), TOOLS, broken)
        args = {"name": "no-audit", "namespace": "team-a", "image": "registry.internal/x:1"}
        write = call(gate, "submit_job", args, ALICE)
        read = call(gate, "gpu_inventory", {"include_nodes": False}, ALICE)
        registry.close()
        assert write.is_error
        assert write.text.startswith("error [audit_unavailable]")
        assert read.is_error is fail_closed_reads
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    jobs = k8s.BatchV1Api(api).list_namespaced_job("team-a").items
    assert "no-audit" not in {j.metadata.name for j in jobs}


def test_planted_secrets_never_reach_the_audit_log_or_the_server_log(testbed, tmp_path) -> None:
    from mcp import Client

    log_path = tmp_path / "audit.jsonl"
    args = ["--audit-log", str(log_path), "--principal", "alice", "--groups", "team-a"]
    with http_server(testbed.kubeconfig, ["gpu-east"], args) as (url, proc):

        async def go() -> None:
            async with Client(url) as c:
                await c.call_tool(
                    "submit_job",
                    {
                        "name": "leak",
                        "namespace": "team-b",
                        "image": "registry.internal/x:1",
                        "env": {"AWS_SECRET_ACCESS_KEY": PLANTED, "AUTH": TOKEN},
                    },
                )
                await c.call_tool("pod_logs", {"namespace": "team-a", "pod": "x", "grep": PLANTED})
                await c.call_tool("list_jobs", {"namespace": TOKEN})

        anyio.run(go)
        proc.terminate()
        server_log = proc.communicate(timeout=10)[1].decode(errors="replace")
    text = log_path.read_text()
    assert len(records(log_path)) >= 3
    for secret in (PLANTED, TOKEN, TOKEN.split(" ", 1)[1]):
        assert secret not in text
        assert secret not in server_log
    assert verify([log_path]).ok


def test_a_scripted_audit_run_is_reproducible(testbed, tmp_path, settled_fleet) -> None:
    server = (
        f"mcp-kube serve --kubeconfig {testbed.kubeconfig} --context gpu-east --context gpu-west"
        f" --audit-log {tmp_path / 'audit.jsonl'} --principal carol --groups auditors"
        f" --policy {REPO / 'policies' / 'default.yaml'}"
        f" --policy {REPO / 'policies' / 'examples' / 'auditors.yaml'}"
    )
    digests = []
    for run in ("first", "second"):
        out = tmp_path / run
        for script in ("gpu-inventory", "gpu-workloads", "quota-compliance"):
            code = main(
                [
                    "audit",
                    "run",
                    str(REPO / "audits" / f"{script}.yaml"),
                    "--server",
                    server,
                    "--out",
                    str(out),
                ]
            )
            assert code == 0, (run, script)
        reports = sorted(out.glob("*.evidence.json"))
        assert len(reports) == 3
        assert all(p.with_suffix(".md").is_file() for p in reports)
        rows = [row for p in reports for row in json.loads(p.read_text())["calls"]]
        assert all(row["audit_request_id"] for row in rows)
        digests.append([row["digest"] for row in rows])
    assert digests[0] == digests[1]
    ids = {r["request_id"] for r in records(tmp_path / "audit.jsonl") if r["kind"] == "tool_call"}
    report_ids = {
        row["audit_request_id"]
        for p in (tmp_path / "first").glob("*.json")
        for row in json.loads(p.read_text())["calls"]
    }
    assert report_ids <= ids  # every call in the report has its audit record


def test_kill_9_of_the_server_mid_calls_loses_at_most_one_record(testbed, tmp_path) -> None:
    import signal
    import threading

    from mcp import Client

    log_path = tmp_path / "audit.jsonl"
    args = ["--audit-log", str(log_path)]
    done = threading.Event()
    with http_server(testbed.kubeconfig, ["gpu-east"], args) as (url, proc):

        async def hammer() -> None:
            try:
                async with Client(url) as c:
                    while not done.is_set():
                        await c.call_tool("whoami", {})
            except Exception:  # the server is killed under the client: expected
                return

        worker = threading.Thread(target=anyio.run, args=(hammer,))
        worker.start()
        time.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        done.set()
        worker.join(30)
    before = verify([log_path])
    assert before.records > 5
    assert before.ok or {p.kind for p in before.problems} == {"torn_line"}, before.problems
    # A restarted server continues the chain; the whole log verifies.
    with http_server(testbed.kubeconfig, ["gpu-east"], args) as (url, _proc):

        async def once() -> None:
            async with Client(url) as c:
                await c.call_tool("whoami", {})

        anyio.run(once)
    after = verify([log_path])
    assert after.ok, after.problems
    assert after.records > before.records
