"""Out-of-band approvals against the live testbed: the gate files, `mcp-kube approve` decides.

The server (admin credentials) keeps requests as ConfigMaps in mcp-kube-system of gpu-east;
approvers use their own kubeconfig contexts (alice, bob, auditor), identified by the API
server. A Role there lets teams a and b get/list/patch those ConfigMaps, so it is the CLI's
four-eyes check, not RBAC, that stops alice approving her own request.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from mcp_kube.cli import main
from mcp_kube.domain import ManifestReview, Principal
from mcp_kube.kube.client import ClusterRegistry
from mcp_kube.policy.approvals import STATE_LABEL, ApprovalTerms, configmap_name
from mcp_kube.policy.decision import Decision
from mcp_kube.policy.gate import Gate
from mcp_kube.settings import ApprovalSettings, ClusterSettings, Settings
from mcp_kube.testbed import cluster
from mcp_kube.tools.writes import SUBMIT_JOB

CLUSTER = "gpu-east"
NS = "team-a"
APPROVALS_NS = "mcp-kube-system"
SUFFIX = uuid.uuid4().hex[:6]
ALICE = Principal("alice", ("team-a",))
IMAGE = "registry.internal/ml/trainer:1.4.2"
ROLE = "mcp-kube-test-approvers"


def name(what: str) -> str:
    return f"ap-{what}-{SUFFIX}"


class OutOfBandPolicy:
    """Allows everything; submit_job needs an out-of-band approval by team-b, four-eyes."""

    def decide(
        self, principal: Principal, tool: str, read_only: bool, args: dict[str, Any]
    ) -> Decision:
        return Decision("allow", "test.allow")

    def review(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: dict[str, Any],
        args: Mapping[str, Any] | None = None,
    ) -> ManifestReview:
        mode: Literal["none", "out_of_band"] = "out_of_band" if tool == "submit_job" else "none"
        return ManifestReview(copy.deepcopy(manifest), [], [], ["test.oob"], mode)

    def approval_terms(self, *_: Any) -> ApprovalTerms:
        return ApprovalTerms(approvers=("team-b",), four_eyes=True, ttl_seconds=600)


@pytest.fixture(scope="module")
def admin(testbed: cluster.TestbedState) -> Iterator[client.ApiClient]:
    """Admin API access: sets up the approvals namespace and Role, cleans up after."""
    api = config.new_client_from_config(config_file=testbed.kubeconfig, context=CLUSTER)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)

    def create(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except ApiException as e:
            if e.status != 409:
                raise

    create(core.create_namespace, {"metadata": {"name": APPROVALS_NS}})
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "patch"]}]
    create(rbac.create_namespaced_role, APPROVALS_NS, {"metadata": {"name": ROLE}, "rules": rules})
    binding = {
        "metadata": {"name": ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
        "subjects": [
            {"kind": "Group", "name": g, "apiGroup": "rbac.authorization.k8s.io"}
            for g in ("team-a", "team-b")
        ],
    }
    create(rbac.create_namespaced_role_binding, APPROVALS_NS, binding)
    try:
        yield api
    finally:
        batch = client.BatchV1Api(api)
        for job in batch.list_namespaced_job(NS).items:
            if job.metadata.name.startswith("ap-") and job.metadata.name.endswith(SUFFIX):
                batch.delete_namespaced_job(job.metadata.name, NS, propagation_policy="Background")
        for cm in core.list_namespaced_config_map(APPROVALS_NS).items:
            data = json.loads((cm.data or {}).get("request") or "{}")
            if str((data.get("preview") or {}).get("name", "")).endswith(SUFFIX):
                core.delete_namespaced_config_map(cm.metadata.name, APPROVALS_NS)
        api.close()


@pytest.fixture(scope="module")
def gate(testbed: cluster.TestbedState, admin: client.ApiClient) -> Iterator[Gate]:
    settings = Settings(
        clusters=ClusterSettings(kubeconfig=Path(testbed.kubeconfig), contexts=[CLUSTER]),
        approvals=ApprovalSettings(namespace=APPROVALS_NS, cluster=CLUSTER),
    )
    registry = ClusterRegistry(settings.clusters)
    try:
        yield Gate(registry, settings, OutOfBandPolicy(), (SUBMIT_JOB,))
    finally:
        registry.close()


def submit(gate: Gate, job: str) -> Any:
    args = {
        "cluster": CLUSTER,
        "namespace": NS,
        "name": job,
        "image": IMAGE,
        "gpus": 0,
        "queue": "team-a-queue",  # unserved: Kueue keeps it suspended, it holds nothing
    }
    return anyio.run(gate.call, SUBMIT_JOB, args, ALICE, None)


def error(result: Any) -> tuple[str, str]:
    assert result.is_error, result.structured_content
    text: str = result.content[0].text
    code, _, message = text.partition("]: ")
    return code.removeprefix("error ["), message


def pending_id(result: Any) -> str:
    code, message = error(result)
    assert code == "approval_pending", message
    found = re.search(r"approval requested: ([0-9a-f]{16});", message)
    assert found, message
    return found.group(1)


def cli(
    testbed: cluster.TestbedState, capsys: pytest.CaptureFixture[str], who: str, *argv: str
) -> tuple[int, str]:
    capsys.readouterr()
    target = ["--kubeconfig", testbed.kubeconfig, "--context", f"{who}@{CLUSTER}"]
    rc = main([*argv, *target, "--namespace", APPROVALS_NS])
    out = capsys.readouterr()
    return rc, out.out + out.err


def jobs_named(admin: client.ApiClient, job: str) -> list[str]:
    items = client.BatchV1Api(admin).list_namespaced_job(NS).items
    return [j.metadata.name for j in items if j.metadata.name == job]


def record(admin: client.ApiClient, rid: str) -> tuple[str, dict[str, Any]]:
    cm = client.CoreV1Api(admin).read_namespaced_config_map(configmap_name(rid), APPROVALS_NS)
    return cm.metadata.labels[STATE_LABEL], json.loads(cm.data["request"])


def wait_for_rbac(testbed: cluster.TestbedState) -> None:
    """The new Role reaches the API server's authorizer a moment after it is created."""
    api = config.new_client_from_config(config_file=testbed.kubeconfig, context=f"bob@{CLUSTER}")
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                core.list_namespaced_config_map(APPROVALS_NS, limit=1)
                return
            except ApiException as e:
                if e.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        api.close()


def test_out_of_band_approval_runs_exactly_once(
    testbed: cluster.TestbedState,
    gate: Gate,
    admin: client.ApiClient,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    wait_for_rbac(testbed)
    job = name("once")
    # 1. the first call files a request and creates nothing
    rid = pending_id(submit(gate, job))
    assert jobs_named(admin, job) == []
    state, data = record(admin, rid)
    assert state == "pending"
    assert data["requester"]["subject"] == "alice"
    assert data["approvers"] == ["team-b"]
    assert data["preview"]["name"] == job
    # the same call again (any replica, after a restart) finds the same request
    assert pending_id(submit(gate, job)) == rid
    # nothing a caller can pass counts as approval: an approval argument is refused outright
    args = {"namespace": NS, "name": job, "image": IMAGE, "approved": True}
    refused = anyio.run(gate.call, SUBMIT_JOB, args, ALICE, None)
    assert error(refused)[0] == "invalid_argument"

    rc, out = cli(testbed, capsys, "bob", "approvals", "list")
    assert rc == 0
    assert rid in out
    assert "alice" in out

    # 2. alice cannot approve her own request (four-eyes), although RBAC would let her patch
    rc, out = cli(testbed, capsys, "alice", "approve", rid)
    assert rc == 2
    assert "four-eyes" in out
    # the auditor can read the request but is in no approver group
    rc, out = cli(testbed, capsys, "auditor", "approve", rid)
    assert rc == 2
    assert "none of the approver groups" in out
    assert record(admin, rid)[0] == "pending"

    # 3. bob approves, as the API server knows him; the decision lands in the audit log
    audit_log = tmp_path / "approvals.jsonl"
    rc, out = cli(testbed, capsys, "bob", "approve", rid, "--audit-log", str(audit_log))
    assert rc == 0, out
    assert f"approved {rid} as bob" in out
    [event] = [json.loads(line) for line in audit_log.read_text().splitlines()[:1]]
    assert (event["kind"], event["request_id"], event["approver"]) == ("approval", rid, "bob")
    state, data = record(admin, rid)
    assert state == "approved"
    assert data["approved_by"] == "bob"
    rc, out = cli(testbed, capsys, "bob", "approve", rid)
    assert rc == 2
    assert "already approved" in out

    # 4. the next call runs the write, once
    result = submit(gate, job)
    assert not result.is_error, result.content[0].text
    assert result.structured_content["created"] is True
    assert result.structured_content["approval"] == "out_of_band:bob"
    assert jobs_named(admin, job) == [job]
    state, data = record(admin, rid)
    assert state == "used"
    assert data["used_at"]

    # 5. the same call again: the tool's idempotency check answers before any approval
    again = submit(gate, job)
    assert not again.is_error, again.content[0].text
    assert again.structured_content["created"] is False
    assert record(admin, rid)[0] == "used"

    # 6. with the job gone, the spent approval does not create it a second time
    batch = client.BatchV1Api(admin)
    batch.delete_namespaced_job(job, NS, propagation_policy="Background")
    deadline = time.monotonic() + 30
    while jobs_named(admin, job) and time.monotonic() < deadline:
        time.sleep(0.5)
    code, message = error(submit(gate, job))
    assert code == "approval_refused"
    assert "already used" in message
    assert jobs_named(admin, job) == []


def test_expired_request_cannot_be_approved(
    testbed: cluster.TestbedState,
    gate: Gate,
    admin: client.ApiClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wait_for_rbac(testbed)
    job = name("late")
    rid = pending_id(submit(gate, job))
    # let it expire: move expires_at into the past
    core = client.CoreV1Api(admin)
    _, data = record(admin, rid)
    data["expires_at"] = "2020-01-01T00:00:00Z"
    core.patch_namespaced_config_map(
        configmap_name(rid), APPROVALS_NS, {"data": {"request": json.dumps(data)}}
    )
    rc, out = cli(testbed, capsys, "bob", "approve", rid)
    assert rc == 2
    assert "expired" in out
    assert record(admin, rid)[0] == "pending"
    rc, out = cli(testbed, capsys, "bob", "approvals", "list")
    assert rid not in out

    # the requester is told once; the call after that files a fresh request under the same id
    code, message = error(submit(gate, job))
    assert code == "approval_refused"
    assert "expired at 2020-01-01T00:00:00Z" in message
    assert record(admin, rid)[0] == "expired"
    code, message = error(submit(gate, job))
    assert code == "approval_pending"
    assert "earlier request expired" in message
    state, data = record(admin, rid)
    assert state == "pending"
    assert data["expires_at"] > "2020"
    assert jobs_named(admin, job) == []

    # bob rejects it this time: the write is refused
    rc, out = cli(testbed, capsys, "bob", "approve", rid, "--reject")
    assert rc == 0, out
    code, message = error(submit(gate, job))
    assert code == "approval_refused"
    assert "rejected by bob" in message
    assert jobs_named(admin, job) == []
