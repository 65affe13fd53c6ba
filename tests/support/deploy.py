"""Deploying mcp-kube on the testbed, shared by the kustomize (test_deploy.py) and Helm
(test_helm.py) tests: the testbed's kubectl, waiting for the Deployments, a kubeconfig holding
only the deployed ServiceAccount's token, and the ServiceAccount test itself (every read tool
works; what its RBAC does not grant is forbidden)."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp_helpers import stdio_client

from mcp_kube.testbed import cluster
from mcp_kube.testbed.paths import COMPONENTS, binary_path
from mcp_kube.tools.catalog import TOOLS

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(binary_path(next(c for c in COMPONENTS if c.name == "kubectl")))
SERVER_SA = "mcp-kube-server"
# The server's audit log with more than one replica (deploy/base, and the chart's default):
# each pod its own file under the audit volume, named by the downward API's POD_NAME.
PER_POD_AUDIT_LOG = "--audit-log=/var/lib/mcp-kube/audit/$(POD_NAME)/audit.jsonl"


def kubectl(
    testbed: cluster.TestbedState,
    *args: str,
    check: bool = True,
    context: str = "gpu-east",
    stdin: str | None = None,
    timeout: float = 120,
) -> str:
    """The testbed's kubectl with its kubeconfig; stdout and stderr together."""
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", testbed.kubeconfig, "--context", context, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr or proc.stdout}")
    return proc.stdout + proc.stderr


def wait_available(testbed: cluster.TestbedState, namespace: str, *deployments: str) -> None:
    """Every replica of each Deployment rolled out (Available), or AssertionError."""
    for name in deployments:
        kubectl(testbed, "-n", namespace, "rollout", "status", f"deployment/{name}",
                "--timeout=120s", timeout=150)  # fmt: skip
        kubectl(testbed, "-n", namespace, "wait", "--for=condition=Available",
                f"deployment/{name}", "--timeout=60s", timeout=90)  # fmt: skip


def service_account_kubeconfig(testbed: cluster.TestbedState, namespace: str, dest: Path) -> Path:
    """A kubeconfig for gpu-east holding the deployed server ServiceAccount's token (and
    nothing else of the admin's), written to ``dest``."""
    token = kubectl(testbed, "-n", namespace, "create", "token", SERVER_SA).strip()
    admin = yaml.safe_load(Path(testbed.kubeconfig).read_text())
    east = next(c for c in admin["clusters"] if c["name"] == "gpu-east")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [east],
        "users": [{"name": SERVER_SA, "user": {"token": token}}],
        "contexts": [{"name": "gpu-east", "context": {"cluster": "gpu-east", "user": SERVER_SA}}],
        "current-context": "gpu-east",
    }
    dest.write_text(yaml.safe_dump(config))
    return dest


def read_tool_refusals(kubeconfig: Path) -> list[tuple[str, dict[str, Any], str]]:
    """Every read tool's examples called as the deployed identity: those refused by the
    cluster (forbidden, or the cluster unusable). Empty when its RBAC grants every read."""
    reads = [spec for spec in TOOLS if spec.read_only]
    assert len(reads) >= 10

    async def go() -> list[tuple[str, dict[str, Any], str]]:
        problems = []
        async with stdio_client(str(kubeconfig), ["gpu-east"]) as client:
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

    return anyio.run(go)


def check_rbac_limits(testbed: cluster.TestbedState, kubeconfig: Path, namespace: str) -> None:
    """With a policy that allows every write, the deployed identity's RBAC still refuses a job
    where no RoleBinding grants it (team-a is bound, ml-platform not), Secrets are unreadable,
    and it impersonates the served groups only, never system:masters."""
    allow_writes = str(REPO / "tests" / "data" / "allow-writes.yaml")

    async def go() -> list[tuple[bool, str]]:
        out = []
        async with stdio_client(str(kubeconfig), ["gpu-east"], ["--policy", allow_writes]) as c:
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
    _check_secrets_unreadable(kubeconfig)
    sa = f"system:serviceaccount:{namespace}:{SERVER_SA}"
    can = ["auth", "can-i", "impersonate", "--as", sa]
    assert kubectl(testbed, *can, "groups/team-a", check=False).strip() == "yes"
    assert kubectl(testbed, *can, "groups/system:masters", check=False).strip() == "no"


def _check_secrets_unreadable(kubeconfig: Path) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
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
