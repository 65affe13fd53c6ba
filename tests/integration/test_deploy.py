"""deploy/ on the testbed: a server-side dry run, then a real apply (the server's two pods run
on one KWOK node under the restricted Pod Security Standard), then the server run here with the
deployed ServiceAccount's token (TokenRequest): every read tool works, what its RBAC does
not grant is forbidden, and the deployed admission policy vouches for out-of-band approvals."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from support.deploy import (
    PER_POD_AUDIT_LOG,
    REPO,
    check_rbac_limits,
    kubectl,
    read_tool_refusals,
    service_account_kubeconfig,
    wait_available,
)

from mcp_kube.cli import main
from mcp_kube.domain import Principal
from mcp_kube.errors import ApprovalPending
from mcp_kube.gate.approval_store import ApprovalStore
from mcp_kube.kube.client import ClusterRegistry
from mcp_kube.policy.approvals import ADMISSION_POLICY, ApprovalTerms
from mcp_kube.settings import ClusterSettings
from mcp_kube.testbed import cluster

OVERLAY = REPO / "deploy" / "overlays" / "testbed"
NS = "mcp-kube-system"
SA = f"system:serviceaccount:{NS}:mcp-kube-server"


@pytest.fixture(scope="module")
def deployed(testbed: cluster.TestbedState, tmp_path_factory) -> Iterator[Path]:
    """The testbed overlay applied to gpu-east; yields a kubeconfig holding the deployed
    ServiceAccount's token (and nothing else of the admin's)."""
    # the platform team creates the namespace; then the whole overlay dry-runs on the server
    kubectl(testbed, "apply", "-f", str(REPO / "deploy" / "base" / "namespace.yaml"))
    try:
        out = kubectl(testbed, "apply", "--dry-run=server", "-k", str(OVERLAY))
        assert "deployment.apps/mcp-kube-server created (server dry run)" in out
        kubectl(testbed, "apply", "-k", str(OVERLAY))
        wait_available(testbed, NS, "mcp-kube-server", "mcp-kube-agent")
        dest = tmp_path_factory.mktemp("deploy") / "kubeconfig"
        yield service_account_kubeconfig(testbed, NS, dest)
    finally:
        kubectl(testbed, "delete", "-k", str(OVERLAY), "--wait=false", check=False)


def test_the_pods_run_restricted_with_probes_policies_and_network_rules(testbed, deployed) -> None:
    pods = json.loads(
        kubectl(testbed, "-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=mcp-kube-server",
                "-o", "json")
    )["items"]  # fmt: skip
    assert len(pods) == 2  # two replicas, each writing its own audit log
    for pod in pods:
        spec, status = pod["spec"], pod["status"]
        assert status["phase"] == "Running"
        assert spec["serviceAccountName"] == "mcp-kube-server"
        container = spec["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert "--impersonate" in container["args"]  # the overlay's patch
        assert PER_POD_AUDIT_LOG in container["args"]
        [name] = [e for e in container["env"] if e["name"] == "POD_NAME"]
        assert name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert len({p["spec"]["nodeName"] for p in pods}) == 1  # one node: the audit volume is RWO
    namespace = json.loads(kubectl(testbed, "get", "namespace", NS, "-o", "json"))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # the restricted standard is enforced: a privileged pod is refused in this namespace
    refused = kubectl(
        testbed, "-n", NS, "run", "probe", "--image=registry.internal/x:1", "--dry-run=server",
        "--overrides", json.dumps({"spec": {"containers": [{"name": "probe",
            "image": "registry.internal/x:1", "securityContext": {"privileged": True}}]}}),
        check=False,
    )  # fmt: skip
    assert "violates PodSecurity" in refused
    agent = json.loads(
        kubectl(testbed, "-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=mcp-kube-agent",
                "-o", "json")
    )["items"][0]  # fmt: skip
    assert agent["status"]["phase"] == "Running"
    assert agent["spec"]["automountServiceAccountToken"] is False  # no Kubernetes API access
    assert agent["spec"]["containers"][0]["args"][:2] == ["agent", "serve"]
    policies = json.loads(kubectl(testbed, "-n", NS, "get", "networkpolicy", "-o", "json"))
    names = {p["metadata"]["name"] for p in policies["items"]}
    assert names == {"default-deny", "mcp-kube-server", "mcp-kube-agent"}
    policy = json.loads(
        kubectl(testbed, "-n", NS, "get", "configmap", "-o", "json")
    )["items"]  # fmt: skip
    site = [c for c in policy if c["metadata"]["name"].startswith("mcp-kube-policies")]
    assert "team-writes" in site[0]["data"]["site.yaml"]  # the overlay's policy replaced the base's


def test_the_service_account_can_do_every_read_tool(deployed: Path) -> None:
    assert read_tool_refusals(deployed) == []


def test_what_its_rbac_does_not_grant_is_forbidden(testbed, deployed: Path) -> None:
    check_rbac_limits(testbed, deployed, NS)


def test_the_admission_policy_vouches_for_approvals(
    testbed: cluster.TestbedState,
    deployed: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The overlay carries the approvals' guarantee: its ServiceAccount files a request; an
    approver's hand-written approval in another's name, or the requester's own, is refused by
    the API server; `mcp-kube approve` by a real approver works, and the deployed identity
    uses it once."""
    denied = f"ValidatingAdmissionPolicy '{ADMISSION_POLICY}' with binding '{ADMISSION_POLICY}'"
    binding = json.loads(
        kubectl(testbed, "get", "validatingadmissionpolicybinding", ADMISSION_POLICY, "-o", "json")
    )
    assert binding["spec"] == {"policyName": ADMISSION_POLICY, "validationActions": ["Deny"]}

    def may_manage(user: str) -> bool:  # the permission the policy asks about (kubectl's
        review = {  # `auth can-i` does not map a resource the API server does not serve)
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "resourceAttributes": {"namespace": NS, "verb": "manage",
                     "group": "mcp-kube.io", "resource": "approvals"}},
        }  # fmt: skip
        out = kubectl(testbed, "create", "-f", "-", "-o", "json", stdin=json.dumps(review))
        return bool(json.loads(out)["status"].get("allowed"))

    assert may_manage(SA)
    assert not may_manage("alice")
    # approvers get what a site grants them: patch on the ConfigMaps here (and, too much, create)
    role = "mcp-kube-deploy-test-approvers"
    kubectl(
        testbed, "-n", NS, "delete", "--ignore-not-found", f"role/{role}", f"rolebinding/{role}"
    )
    kubectl(testbed, "-n", NS, "create", "role", role, "--verb=get,list,patch,create",
            "--resource=configmaps")  # fmt: skip
    kubectl(testbed, "-n", NS, "create", "rolebinding", role, f"--role={role}",
            "--group=team-a", "--group=team-b")  # fmt: skip
    registry = ClusterRegistry(ClusterSettings(kubeconfig=deployed, contexts=["gpu-east"]))
    try:
        store = ApprovalStore(registry.get("gpu-east"), NS)
        alice = Principal("alice", ("team-a",))
        manifest = {"kind": "Job", "metadata": {"name": "deploy-approval", "namespace": "team-a"}}
        terms = ApprovalTerms(approvers=("team-a", "team-b"), four_eyes=True, ttl_seconds=600)

        async def require() -> str:
            return await store.require(
                alice, "submit_job", "gpu-east", "team-a", manifest, {"name": "x"}, terms
            )

        with pytest.raises(ApprovalPending) as pending:  # filed by the deployed identity
            anyio.run(require)
        rid = str(pending.value).split("approval requested: ")[1][:16]
        record = f"configmap/mcpk-approval-{rid}"

        def patch_as(who: str, by: str, groups: str) -> str:
            body = {
                "metadata": {"labels": {"mcp-kube.io/approval-state": "approved"}},
                "data": {"decision": "approved", "decided-by": by, "decided-groups": groups,
                         "decided-at": "2026-01-01T00:00:00Z"},
            }  # fmt: skip
            args = ["-n", NS, "patch", record, "--type", "merge", "-p", json.dumps(body)]
            return kubectl(testbed, *args, context=f"{who}@gpu-east", check=False)

        deadline = time.monotonic() + 30  # until the new Role reaches the authorizer
        while "forbidden" in (out := patch_as("alice", "auditor", "team-a")):
            assert time.monotonic() < deadline, out
            time.sleep(0.5)
        assert denied in out
        assert "decided-by must be the user who makes the change (alice), not auditor" in out
        out = patch_as("alice", "alice", "team-a")
        assert denied in out
        assert "four-eyes" in out
        out = patch_as("bob", "auditor", "team-b")
        assert denied in out
        assert "(bob), not auditor" in out
        forged = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "mcpk-approval-" + "b" * 16, "namespace": NS}}  # fmt: skip
        out = kubectl(testbed, "create", "-f", "-", context="bob@gpu-east",
                      stdin=json.dumps(forged), check=False)  # fmt: skip
        assert "filed by the mcp-kube server only; bob may not" in out

        capsys.readouterr()
        argv = ["approve", rid, "--kubeconfig", testbed.kubeconfig, "--context", "bob@gpu-east",
                "--namespace", NS, "--audit-log", str(tmp_path / "audit.jsonl")]  # fmt: skip
        assert main(argv) == 0, capsys.readouterr()
        assert anyio.run(require) == "out_of_band:bob"
        state = kubectl(testbed, "-n", NS, "get", record, "-o",
                        "jsonpath={.metadata.labels.mcp-kube\\.io/approval-state}")  # fmt: skip
        assert state == "used"
    finally:
        registry.close()
        kubectl(testbed, "-n", NS, "delete", f"role/{role}", f"rolebinding/{role}", check=False)
