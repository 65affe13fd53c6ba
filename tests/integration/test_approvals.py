"""Out-of-band approvals against the live testbed: the gate files, `mcp-kube approve` decides,
and the API server vouches for who decided.

The server (admin credentials, which may `manage` approvals) keeps requests as ConfigMaps in
mcp-kube-system of gpu-east, with the admission policy of deploy/base/approvals-admission.yaml
in force; approvers use their own kubeconfig contexts (alice, bob, auditor), identified by the
API server. A Role there lets teams a and b and the auditors get/list/patch those ConfigMaps,
as a site grants its approvers, so RBAC alone would let any of them write an approval: it is
the admission policy that refuses every decision but the decider's own, and the server that
refuses an approval nothing vouches for.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from support.gates import AllowAll, Approval, call, error_of, make_gate
from support.waiting import wait_for

from mcp_kube.cli import main
from mcp_kube.domain import Principal
from mcp_kube.gate import Gate
from mcp_kube.kube.client import ClusterRegistry
from mcp_kube.policy.approvals import (
    ADMISSION_POLICY,
    ApprovalRecord,
    ApprovalTerms,
    configmap_name,
)
from mcp_kube.settings import ApprovalSettings, ClusterSettings, Settings
from mcp_kube.testbed import cluster
from mcp_kube.testbed.paths import COMPONENTS, binary_path
from mcp_kube.tools.writes import SUBMIT_JOB

CLUSTER = "gpu-east"
NS = "team-a"
APPROVALS_NS = "mcp-kube-system"
SUFFIX = uuid.uuid4().hex[:6]
ALICE = Principal("alice", ("team-a",))
IMAGE = "registry.internal/ml/trainer:1.4.2"
ROLE = "mcp-kube-test-approvers"
REPO = Path(__file__).resolve().parents[2]
ADMISSION = REPO / "deploy" / "base" / "approvals-admission.yaml"
KUBECTL = str(binary_path(next(c for c in COMPONENTS if c.name == "kubectl")))
DENIED = f"ValidatingAdmissionPolicy '{ADMISSION_POLICY}' with binding '{ADMISSION_POLICY}' denied"


def name(what: str) -> str:
    return f"ap-{what}-{SUFFIX}"


class OutOfBandPolicy(AllowAll):
    """Allows everything; submit_job needs an out-of-band approval by ``approvers``, four-eyes."""

    rule = "test.oob"

    def __init__(self, approvers: tuple[str, ...]) -> None:
        super().__init__()
        self.approvers = approvers

    def approval_for(self, tool: str) -> Approval:
        return "out_of_band" if tool == "submit_job" else "none"

    def approval_terms(self, *_: Any) -> ApprovalTerms:
        return ApprovalTerms(approvers=self.approvers, four_eyes=True, ttl_seconds=600)


def kubectl(testbed: cluster.TestbedState, who: str, *args: str) -> tuple[int, str]:
    """kubectl as ``who`` (a testbed user, or ``admin``) on gpu-east: (exit code, output)."""
    context = CLUSTER if who == "admin" else f"{who}@{CLUSTER}"
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", testbed.kubeconfig, "--context", context, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout + proc.stderr


def kubectl_patch(testbed: cluster.TestbedState, who: str, rid: str, patch: Any) -> tuple[int, str]:
    """What the issue's reproduction did: a merge patch of the record, by hand."""
    return kubectl(
        testbed, who, "-n", APPROVALS_NS, "patch", "configmap", configmap_name(rid),
        "--type", "merge", "-p", json.dumps(patch),
    )  # fmt: skip


def patch_refused(
    testbed: cluster.TestbedState, who: str, rid: str, patch: Any, *words: str
) -> None:
    """``who``'s merge patch of the record is refused, saying each of ``words``."""
    rc, out = kubectl_patch(testbed, who, rid, patch)
    assert rc != 0, (who, patch)
    for w in words:
        assert w in out, out


def decision(who: str, groups: str, state: str = "approved") -> dict[str, Any]:
    """A decision as `mcp-kube approve` writes it, in ``who``'s name."""
    return {
        "metadata": {"labels": {"mcp-kube.io/approval-state": state}},
        "data": {
            "decision": state,
            "decided-by": who,
            "decided-groups": groups,
            "decided-at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def in_force(admin: client.ApiClient) -> bool:
    """Whether the API server applies the admission policy now: a server-side dry run of a
    record filed already approved is refused by it."""
    body = {
        "metadata": {
            "name": configmap_name("f" * 16),
            "labels": {"mcp-kube.io/approval-state": "approved"},
        },
        "data": {"decision": "approved", "decided-by": "admin"},
    }
    try:
        client.CoreV1Api(admin).create_namespaced_config_map(APPROVALS_NS, body, dry_run="All")
    except ApiException as e:
        if ADMISSION_POLICY in str(e.body):
            return True
        raise
    return False


@pytest.fixture(scope="module")
def admin(testbed: cluster.TestbedState) -> Iterator[client.ApiClient]:
    """Admin API access: the approvals namespace, the approvers' Role, the admission policy."""
    api = config.new_client_from_config(config_file=testbed.kubeconfig, context=CLUSTER)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)

    def create(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except ApiException as e:
            if e.status != 409:
                raise

    create(core.create_namespace, {"metadata": {"name": APPROVALS_NS}})
    # more than approvers need (create): the admission policy, not RBAC, must stop them
    verbs = ["get", "list", "patch", "create"]
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}]
    role = {"metadata": {"name": ROLE}, "rules": rules}
    try:
        rbac.create_namespaced_role(APPROVALS_NS, role)
    except ApiException as e:
        if e.status != 409:
            raise
        rbac.replace_namespaced_role(ROLE, APPROVALS_NS, role)
    binding = {
        "metadata": {"name": ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
        "subjects": [
            {"kind": "Group", "name": g, "apiGroup": "rbac.authorization.k8s.io"}
            for g in ("team-a", "team-b", "auditors")
        ],
    }
    create(rbac.create_namespaced_role_binding, APPROVALS_NS, binding)
    rc, out = kubectl(testbed, "admin", "apply", "-f", str(ADMISSION))
    assert rc == 0, out
    wait_for(lambda: in_force(api), "the admission policy to be in force", timeout=30, every=0.3)
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
        kubectl(testbed, "admin", "delete", "--ignore-not-found", "-f", str(ADMISSION))
        rbac.delete_namespaced_role_binding(ROLE, APPROVALS_NS)
        rbac.delete_namespaced_role(ROLE, APPROVALS_NS)
        api.close()


def approvals_gate(testbed: cluster.TestbedState, approvers: tuple[str, ...]) -> Iterator[Gate]:
    settings = Settings(
        clusters=ClusterSettings(kubeconfig=Path(testbed.kubeconfig), contexts=[CLUSTER]),
        approvals=ApprovalSettings(namespace=APPROVALS_NS, cluster=CLUSTER),
    )
    registry = ClusterRegistry(settings.clusters)
    try:
        policy = OutOfBandPolicy(approvers)
        yield make_gate(source=registry, settings=settings, policy=policy, tools=(SUBMIT_JOB,))
    finally:
        registry.close()


@pytest.fixture(scope="module")
def gate(testbed: cluster.TestbedState, admin: client.ApiClient) -> Iterator[Gate]:
    """Approvers: team-b (not the requester's team)."""
    yield from approvals_gate(testbed, ("team-b",))


@pytest.fixture(scope="module")
def teams_gate(testbed: cluster.TestbedState, admin: client.ApiClient) -> Iterator[Gate]:
    """Approvers: team-a and team-b, so the requester alice is in an approver group herself."""
    yield from approvals_gate(testbed, ("team-a", "team-b"))


def submit(gate: Gate, job: str) -> Any:
    args = {
        "cluster": CLUSTER,
        "namespace": NS,
        "name": job,
        "image": IMAGE,
        "gpus": 0,
        "queue": "team-a-hold",  # held: Kueue keeps it suspended, it holds nothing
    }
    return call(gate, SUBMIT_JOB, args, ALICE)


def refused(gate: Gate, admin: client.ApiClient, job: str, *words: str) -> None:
    """Submitting ``job`` again is refused, saying each of ``words``, and no job was made."""
    code, message = error_of(submit(gate, job))
    assert code == "approval_refused", message
    for w in words:
        assert w in message
    assert jobs_named(admin, job) == []


def pending_id(result: Any) -> str:
    code, message = error_of(result)
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


def record(admin: client.ApiClient, rid: str) -> ApprovalRecord:
    cm = client.CoreV1Api(admin).read_namespaced_config_map(configmap_name(rid), APPROVALS_NS)
    return ApprovalRecord.from_configmap(admin.sanitize_for_serialization(cm))


def wait_for_rbac(testbed: cluster.TestbedState) -> None:
    """The new Role reaches the API server's authorizer a moment after it is created."""
    for who in ("alice", "bob", "auditor"):
        api = config.new_client_from_config(
            config_file=testbed.kubeconfig, context=f"{who}@{CLUSTER}"
        )
        core = client.CoreV1Api(api)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    core.list_namespaced_config_map(APPROVALS_NS, limit=1)
                    break
                except ApiException as e:
                    if e.status != 403 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        finally:
            api.close()


def filed(testbed: cluster.TestbedState, gate: Gate, what: str) -> tuple[str, str]:
    """A new job's approval request, pending, once the approvers' Role is in force:
    (job, request id)."""
    wait_for_rbac(testbed)
    job = name(what)
    return job, pending_id(submit(gate, job))


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
    rec = record(admin, rid)
    assert rec.state == "pending"
    assert rec.requester == "alice"
    assert rec.approvers == ("team-b",)
    assert rec.preview["name"] == job
    assert (rec.decision, rec.decided_by) == ("", "")
    # the same call again (any replica, after a restart) finds the same request
    assert pending_id(submit(gate, job)) == rid
    # nothing a caller can pass counts as approval: an approval argument is refused outright
    args = {"namespace": NS, "name": job, "image": IMAGE, "approved": True}
    assert error_of(call(gate, SUBMIT_JOB, args, ALICE))[0] == "invalid_argument"

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
    assert record(admin, rid).state == "pending"

    # 3. bob approves, as the API server knows him; the decision lands in the audit log
    audit_log = tmp_path / "approvals.jsonl"
    rc, out = cli(testbed, capsys, "bob", "approve", rid, "--audit-log", str(audit_log))
    assert rc == 0, out
    assert f"approved {rid} as bob" in out
    [event] = [json.loads(line) for line in audit_log.read_text().splitlines()[:1]]
    assert (event["kind"], event["request_id"], event["approver"]) == ("approval", rid, "bob")
    assert event["approver_groups"] == ["team-b"]
    rec = record(admin, rid)
    assert rec.state == "approved"
    assert (rec.decision, rec.decided_by, rec.decided_groups) == ("approved", "bob", ("team-b",))
    rc, out = cli(testbed, capsys, "bob", "approve", rid)
    assert rc == 2
    assert "already approved" in out

    # 4. the next call runs the write, once
    result = submit(gate, job)
    assert not result.is_error, result.text
    assert result.structured_content["created"] is True
    assert result.structured_content["approval"] == "out_of_band:bob"
    assert jobs_named(admin, job) == [job]
    rec = record(admin, rid)
    assert rec.state == "used"
    assert rec.used_at
    assert rec.decided_by == "bob"  # the server's check was a dry run: nothing changed

    # 5. the same call again: the tool's idempotency check answers before any approval
    again = submit(gate, job)
    assert not again.is_error, again.text
    assert again.structured_content["created"] is False
    assert record(admin, rid).state == "used"

    # 6. with the job gone, the spent approval does not create it a second time
    batch = client.BatchV1Api(admin)
    batch.delete_namespaced_job(job, NS, propagation_policy="Background")
    wait_for(lambda: not jobs_named(admin, job), "the job to go", timeout=30, every=0.3)
    refused(gate, admin, job, "already used")


def test_the_requester_cannot_approve_by_editing_the_record(
    testbed: cluster.TestbedState,
    teams_gate: Gate,
    admin: client.ApiClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 21, hole 2: alice, whose own team is an approver group and who may patch the
    records, approves her own request by hand. The API server refuses every form of it."""
    job, rid = filed(testbed, teams_gate, "self")
    assert record(admin, rid).approvers == ("team-a", "team-b")

    # the reproduction: `kubectl patch` naming another approver
    why = "decided-by must be the user who makes the change (alice), not"
    patch_refused(testbed, "alice", rid, decision("auditor", "team-a"), DENIED, f"{why} auditor")
    # ... or bob, a real approver, in his group
    patch_refused(testbed, "alice", rid, decision("bob", "team-b"), f"{why} bob")
    # in her own name: she is in an approver group (team-a), but she asked
    four_eyes = "four-eyes: alice requested this write and cannot approve it"
    patch_refused(testbed, "alice", rid, decision("alice", "team-a"), DENIED, four_eyes)
    # the record as it was before this change: an approved_by inside the JSON, or beside it
    data = json.loads(record(admin, rid).stored["request"]) | {"approved_by": "auditor"}
    for patch in (
        {"data": {"request": json.dumps(data)}},
        {"data": {"approved_by": "auditor"}},
        {"data": {"requester": "bob"}},
        {"data": {"four-eyes": "false"}},
        {"data": {"approver-groups": "team-a"}},
    ):
        only = "only the mcp-kube server may change an approval request"
        patch_refused(testbed, "alice", rid, patch, only)
    # the label alone, without a decision
    label = {"metadata": {"labels": {"mcp-kube.io/approval-state": "approved"}}}
    only = "the state of an approval request changes only with a decision"
    patch_refused(testbed, "alice", rid, label, only)
    # nor can she file a record of her own, already approved
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": configmap_name("a" * 16), "namespace": APPROVALS_NS},
        "data": {"requester": "alice"},
    }
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", testbed.kubeconfig, "--context", f"alice@{CLUSTER}",
         "create", "-f", "-"],
        input=json.dumps(body), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert DENIED in proc.stderr, proc.stderr
    assert "approval records are filed by the mcp-kube server only; alice may not" in proc.stderr

    # and `mcp-kube approve` says so before it writes anything
    rc, out = cli(testbed, capsys, "alice", "approve", rid)
    assert rc == 2
    assert "four-eyes" in out
    rec = record(admin, rid)
    assert (rec.state, rec.decision, rec.decided_by) == ("pending", "", "")
    # nothing ran: the request still waits
    code, message = error_of(submit(teams_gate, job))
    assert code == "approval_pending"
    assert "still waiting" in message
    assert jobs_named(admin, job) == []
    # she may withdraw it, in her own name
    rc, out = cli(testbed, capsys, "alice", "approve", rid, "--reject")
    assert rc == 0, out
    assert record(admin, rid).rejected_by == "alice"
    code, message = error_of(submit(teams_gate, job))
    assert (code, "rejected by alice" in message) == ("approval_refused", True)


def test_a_decision_forged_by_anyone_else_is_refused(
    testbed: cluster.TestbedState,
    gate: Gate,
    admin: client.ApiClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job, rid = filed(testbed, gate, "forged")
    # bob, an approver, writes an approval in the auditor's name; the auditor in bob's
    for who, patch, why in (
        ("bob", decision("auditor", "team-b"), "(bob), not auditor"),
        ("auditor", decision("bob", "team-b"), "(auditor), not bob"),
        ("bob", decision("", "team-b"), "(bob), not empty"),
    ):
        decided_by = f"decided-by must be the user who makes the change {why}"
        patch_refused(testbed, who, rid, patch, DENIED, decided_by)
    # in his own name, but claiming a group he is not in; the auditor in none at all
    for who, groups, why in (
        ("bob", "auditors", "bob may not decide this request: approvers are members of team-b"),
        ("auditor", "auditors", "auditor may not decide this request"),
        ("auditor", "", "auditor may not decide this request"),
    ):
        patch_refused(testbed, who, rid, decision(who, groups), why)
    rec = record(admin, rid)
    assert (rec.state, rec.decision) == ("pending", "")

    # the legitimate way still works: bob, as himself
    rc, out = cli(testbed, capsys, "bob", "approve", rid)
    assert rc == 0, out
    # and is final: nobody decides again, not even bob, not by hand
    for who, patch in (
        ("bob", decision("bob", "team-b", "rejected")),
        ("bob", {"data": {"decided-by": "auditor"}}),
        ("alice", {"data": {"decision": ""}, "metadata": {"labels": {
            "mcp-kube.io/approval-state": "pending"}}}),
    ):  # fmt: skip
        patch_refused(testbed, who, rid, patch, DENIED)
    rec = record(admin, rid)
    assert (rec.state, rec.decided_by) == ("approved", "bob")
    # the server runs it once
    result = submit(gate, job)
    assert not result.is_error, result.text
    assert result.structured_content["approval"] == "out_of_band:bob"
    assert jobs_named(admin, job) == [job]
    assert record(admin, rid).state == "used"


def test_expired_request_cannot_be_approved(
    testbed: cluster.TestbedState,
    gate: Gate,
    admin: client.ApiClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job, rid = filed(testbed, gate, "late")
    # let it expire: move expires_at into the past (the admin may: it may manage approvals)
    core = client.CoreV1Api(admin)
    data = json.loads(record(admin, rid).stored["request"])
    data["expires_at"] = "2020-01-01T00:00:00Z"
    core.patch_namespaced_config_map(
        configmap_name(rid), APPROVALS_NS, {"data": {"request": json.dumps(data)}}
    )
    rc, out = cli(testbed, capsys, "bob", "approve", rid)
    assert rc == 2
    assert "expired" in out
    assert record(admin, rid).state == "pending"
    rc, out = cli(testbed, capsys, "bob", "approvals", "list")
    assert rid not in out

    # the requester is told once; the call after that files a fresh request under the same id
    code, message = error_of(submit(gate, job))
    assert code == "approval_refused"
    assert "expired at 2020-01-01T00:00:00Z" in message
    assert record(admin, rid).state == "expired"
    code, message = error_of(submit(gate, job))
    assert code == "approval_pending"
    assert "earlier request expired" in message
    rec = record(admin, rid)
    assert rec.state == "pending"
    assert rec.expires_at.year > 2020
    assert jobs_named(admin, job) == []

    # bob rejects it this time: the write is refused
    rc, out = cli(testbed, capsys, "bob", "approve", rid, "--reject")
    assert rc == 0, out
    refused(gate, admin, job, "rejected by bob")


def test_without_the_admission_policy_the_server_counts_no_approval(
    testbed: cluster.TestbedState,
    teams_gate: Gate,
    admin: client.ApiClient,
) -> None:
    """With the policy's binding removed, alice's hand edits go through; the server still
    refuses them: its own checks catch a self-approval, and its dry run finds nothing that
    vouches for any other. (Runs last here: it takes the policy away for a moment.)"""
    job, rid = filed(testbed, teams_gate, "nopolicy")
    rc, out = kubectl(testbed, "admin", "delete", "validatingadmissionpolicybinding",
                      ADMISSION_POLICY)  # fmt: skip
    assert rc == 0, out
    try:
        wait_for(
            lambda: not in_force(admin), "the admission policy to be lifted", timeout=30, every=0.3
        )
        # her own approval, as the issue's reproduction would write it today
        rc, out = kubectl_patch(testbed, "alice", rid, decision("alice", "team-a"))
        assert rc == 0, out
        refused(teams_gate, admin, job, "four-eyes", "approved by its own requester alice")
        # one that looks right in every field, written by her in bob's name
        as_bob = {"data": {"decided-by": "bob", "decided-groups": "team-b"}}
        rc, out = kubectl_patch(testbed, "alice", rid, as_bob)
        assert rc == 0, out
        refused(
            teams_gate,
            admin,
            job,
            f"ValidatingAdmissionPolicy {ADMISSION_POLICY} is not in force",
            "deploy/base/approvals-admission.yaml",
        )
        rec = record(admin, rid)
        assert (rec.state, rec.decided_by, rec.used_at) == ("approved", "bob", None)
    finally:
        rc, out = kubectl(testbed, "admin", "apply", "-f", str(ADMISSION))
        assert rc == 0, out
        wait_for(
            lambda: in_force(admin),
            "the admission policy to be in force again",
            timeout=30,
            every=0.3,
        )
