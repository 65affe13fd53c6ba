"""deploy/ on the testbed: a server-side dry run, then a real apply (the server's pod runs on a
KWOK node under the restricted Pod Security Standard), then the server run here with the
deployed ServiceAccount's token (TokenRequest): every read tool works, and what its RBAC does
not grant is forbidden."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from mcp_kube.testbed import cluster
from mcp_kube.testbed.paths import COMPONENTS, binary_path
from mcp_kube.tools.catalog import TOOLS

from .mcp_helpers import stdio_client

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "deploy" / "overlays" / "testbed"
NS = "mcp-kube-system"
SA = f"system:serviceaccount:{NS}:mcp-kube-server"
KUBECTL = str(binary_path(next(c for c in COMPONENTS if c.name == "kubectl")))


def kubectl(testbed: cluster.TestbedState, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", testbed.kubeconfig, "--context", "gpu-east", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr or proc.stdout}")
    return proc.stdout + proc.stderr


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
        for name in ("mcp-kube-server", "mcp-kube-agent"):
            kubectl(testbed, "-n", NS, "rollout", "status", f"deployment/{name}", "--timeout=120s")
        token = kubectl(testbed, "-n", NS, "create", "token", "mcp-kube-server").strip()
        admin = yaml.safe_load(Path(testbed.kubeconfig).read_text())
        east = next(c for c in admin["clusters"] if c["name"] == "gpu-east")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [east],
            "users": [{"name": "mcp-kube-server", "user": {"token": token}}],
            "contexts": [
                {"name": "gpu-east", "context": {"cluster": "gpu-east", "user": "mcp-kube-server"}}
            ],
            "current-context": "gpu-east",
        }
        path = tmp_path_factory.mktemp("deploy") / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        yield path
    finally:
        kubectl(testbed, "delete", "-k", str(OVERLAY), "--wait=false", check=False)


def test_the_pods_run_restricted_with_probes_policies_and_network_rules(testbed, deployed) -> None:
    pods = json.loads(
        kubectl(testbed, "-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=mcp-kube-server",
                "-o", "json")
    )["items"]  # fmt: skip
    assert len(pods) == 1
    spec, status = pods[0]["spec"], pods[0]["status"]
    assert status["phase"] == "Running"
    assert spec["serviceAccountName"] == "mcp-kube-server"
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "--impersonate" in container["args"]  # the overlay's patch
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
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
    reads = [spec for spec in TOOLS if spec.read_only]
    assert len(reads) >= 10

    async def go() -> list[tuple[str, dict[str, Any], str]]:
        problems = []
        async with stdio_client(str(deployed), ["gpu-east"]) as client:
            for spec in reads:
                for _question, args in spec.examples or (("", {}),):
                    args = json.loads(json.dumps(args).replace("team-x", "team-a"))
                    args.pop("cluster", None)
                    result = await client.call_tool(spec.name, args)
                    text = result.content[0].text if result.content else ""
                    if result.is_error and (
                        "[forbidden]" in text or "[cluster_unavailable]" in text
                    ):
                        problems.append((spec.name, args, text[:200]))
        return problems

    assert anyio.run(go) == []


def test_what_its_rbac_does_not_grant_is_forbidden(testbed, deployed: Path) -> None:
    allow_writes = str(REPO / "tests" / "data" / "allow-writes.yaml")

    async def go() -> list[tuple[bool, str]]:
        out = []
        async with stdio_client(str(deployed), ["gpu-east"], ["--policy", allow_writes]) as c:
            job = {"name": "deploy-rbac", "image": "registry.internal/x:1"}  # no GPU
            for tool, args in (
                ("submit_job", job | {"namespace": "ml-platform"}),  # no binding there
                ("submit_job", job | {"namespace": "team-a"}),  # bound by the overlay
                ("cancel_job", {"namespace": "team-a", "name": "deploy-rbac"}),
            ):
                result = await c.call_tool(tool, args)
                out.append((bool(result.is_error), result.content[0].text))
        return out

    (refused, elsewhere), (failed, submitted), (not_cancelled, cancelled) = anyio.run(go)
    # the policy allowed all three; the cluster's RBAC refused the first
    assert refused
    assert elsewhere.startswith("error [forbidden]: gpu-east: forbidden"), elsewhere
    assert "ml-platform" in elsewhere
    assert not failed, submitted
    assert not not_cancelled, cancelled
    # Secrets are not readable at all
    config = yaml.safe_load(deployed.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    token = config["users"][0]["user"]["token"]
    ctx = ssl.create_default_context(cadata=ca.decode())
    req = urllib.request.Request(
        f"{server}/api/v1/namespaces/team-a/secrets", headers={"Authorization": f"Bearer {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    e.value.close()  # its TLS connection
    assert e.value.code == 403
    # impersonation: the served groups only, never system:masters
    can = ["auth", "can-i", "impersonate", "--as", SA]
    assert kubectl(testbed, *can, "groups/team-a", check=False).strip() == "yes"
    assert kubectl(testbed, *can, "groups/system:masters", check=False).strip() == "no"
