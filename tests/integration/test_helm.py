"""deploy/helm/mcp-kube on the testbed: the chart linted and rendered by the pinned helm binary
(built from its Go module like the testbed's), checked against the kustomize base where the two
must agree, then the rendering with values-testbed.yaml applied with the testbed's kubectl to a
namespace of its own; both Deployments become Available (two server replicas) and the same
ServiceAccount test as the kustomize one passes. Everything applied is deleted again, so
test_deploy.py (mcp-kube-system, the same cluster-wide names) runs before or after it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.deploy import (
    PER_POD_AUDIT_LOG,
    REPO,
    check_rbac_limits,
    kubectl,
    read_tool_refusals,
    service_account_kubeconfig,
    wait_available,
)

from mcp_kube.policy.approvals import ADMISSION_POLICY
from mcp_kube.testbed import cluster
from mcp_kube.testbed.paths import COMPONENTS, binary_path

CHART = REPO / "deploy" / "helm" / "mcp-kube"
TESTBED_VALUES = CHART / "values-testbed.yaml"
NS = "mcp-kube-helm"  # not mcp-kube-system, which test_deploy.py creates and deletes
HELM = binary_path(next(c for c in COMPONENTS if c.name == "helm"))


def helm(*args: str) -> str:
    if not HELM.is_file():
        pytest.fail(f"no helm binary at {HELM}: run `mcp-kube testbed build`")
    proc = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr or proc.stdout}"
    return proc.stdout


def render(*args: str) -> str:
    return helm("template", "mcp-kube", str(CHART), "--namespace", NS, *args)


def objects(manifest: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(kind, namespace, name) -> object, for every document of a rendering."""
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}


def base(file: str) -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((REPO / "deploy" / "base" / file).read_text())
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs if d}


def test_the_chart_lints_and_renders_like_the_kustomize_base() -> None:
    assert "v3." in helm("version", "--short")
    for values in ([], ["--values", str(TESTBED_VALUES)]):
        out = helm("lint", "--strict", str(CHART), "--namespace", NS, *values)
        assert "0 chart(s) failed" in out, out
    rendered = objects(render())
    server = rendered[("Deployment", NS, "mcp-kube-server")]
    assert server["spec"]["replicas"] == 2
    pod = server["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.internal/mcp-kube/server:0.1.0"
    assert "--impersonate" not in pod["containers"][0]["args"]
    assert ("Namespace", "", NS) not in rendered  # created beforehand, like the kustomize flow
    # what must not drift from deploy/base: the admission policy, the server's grants
    admission = base("approvals-admission.yaml")
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        chart = rendered[(kind, "", ADMISSION_POLICY)]
        assert chart["spec"] == admission[f"{kind}/{ADMISSION_POLICY}"]["spec"]
    rbac = base("rbac.yaml")
    for kind, name, ns in (
        ("ClusterRole", "mcp-kube-read", ""),
        ("ClusterRole", "mcp-kube-submit", ""),
        ("Role", "mcp-kube-approvals", NS),
    ):
        assert rendered[(kind, ns, name)]["rules"] == rbac[f"{kind}/{name}"]["rules"]
    names = {name for kind, _ns, name in rendered if kind == "NetworkPolicy"}
    assert names == {"default-deny", "mcp-kube-server", "mcp-kube-agent"}
    # two replicas, each writing its own audit log, as deploy/base runs them
    kustomized = base("server.yaml")
    ours = kustomized["Deployment/mcp-kube-server"]["spec"]
    for key in ("replicas", "strategy"):
        assert server["spec"][key] == ours[key], key
    ours_pod = ours["template"]["spec"]
    assert pod["affinity"] == ours_pod["affinity"]
    assert pod["containers"][0]["env"] == ours_pod["containers"][0]["env"]
    audit_args = [a for a in pod["containers"][0]["args"] if a.startswith("--audit-log=")]
    assert audit_args == [PER_POD_AUDIT_LOG]
    assert PER_POD_AUDIT_LOG in ours_pod["containers"][0]["args"]
    service = rendered[("Service", NS, "mcp-kube-server")]["spec"]
    assert (
        service["sessionAffinity"]
        == kustomized["Service/mcp-kube-server"]["spec"]["sessionAffinity"]
    )


def test_an_in_site_registry_and_pull_secret() -> None:
    rendered = objects(render(
        "--set", "image.registry=harbor.site.example:5000", "--set", "image.repository=ai/mcp-kube",
        "--set", "image.tag=0.1.0-site", "--set", "imagePullSecrets[0].name=site-registry",
        "--set", "replicaCount=1",
    ))  # fmt: skip
    for name in ("mcp-kube-server", "mcp-kube-agent"):
        pod = rendered[("Deployment", NS, name)]["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == "harbor.site.example:5000/ai/mcp-kube:0.1.0-site"
        assert pod["imagePullSecrets"] == [{"name": "site-registry"}]
    server = rendered[("Deployment", NS, "mcp-kube-server")]["spec"]
    assert server["strategy"]["type"] == "Recreate"  # one replica, one audit writer
    assert (
        "--audit-log=/var/lib/mcp-kube/audit/audit.jsonl"
        in (server["template"]["spec"]["containers"][0]["args"])
    )


@pytest.fixture(scope="module")
def released(testbed: cluster.TestbedState, tmp_path_factory) -> Iterator[Path]:
    """The chart with values-testbed.yaml rendered, applied to gpu-east in NS; yields a
    kubeconfig holding the deployed ServiceAccount's token."""
    folder = tmp_path_factory.mktemp("helm")
    manifest = folder / "mcp-kube.yaml"
    manifest.write_text(render("--values", str(TESTBED_VALUES)))
    namespace = folder / "namespace.yaml"
    namespace.write_text(
        yaml.safe_dump(
            next(
                d
                for d in yaml.safe_load_all(manifest.read_text())
                if d and d["kind"] == "Namespace"
            )
        )
    )
    try:
        kubectl(testbed, "apply", "-f", str(namespace))
        out = kubectl(testbed, "apply", "--dry-run=server", "-f", str(manifest))
        assert "deployment.apps/mcp-kube-server created (server dry run)" in out
        kubectl(testbed, "apply", "-f", str(manifest))
        wait_available(testbed, NS, "mcp-kube-server", "mcp-kube-agent")
        yield service_account_kubeconfig(testbed, NS, folder / "kubeconfig")
    finally:  # waits: the cluster-wide objects share names with the kustomize base
        kubectl(testbed, "delete", "-f", str(manifest), "--ignore-not-found", "--wait=true",
                "--timeout=120s", check=False, timeout=180)  # fmt: skip


def test_the_release_runs_two_restricted_server_replicas(testbed, released: Path) -> None:
    pods = json.loads(
        kubectl(testbed, "-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=mcp-kube-server",
                "-o", "json")
    )["items"]  # fmt: skip
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        container = pod["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "--impersonate" in container["args"]  # values-testbed.yaml
        assert PER_POD_AUDIT_LOG in container["args"]
    namespace = json.loads(kubectl(testbed, "get", "namespace", NS, "-o", "json"))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    agent = json.loads(
        kubectl(testbed, "-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=mcp-kube-agent",
                "-o", "json")
    )["items"][0]  # fmt: skip
    assert agent["spec"]["automountServiceAccountToken"] is False
    site = kubectl(testbed, "-n", NS, "get", "configmap", "mcp-kube-policies", "-o", "json")
    assert "team-writes" in json.loads(site)["data"]["site.yaml"]
    binding = kubectl(testbed, "get", "validatingadmissionpolicybinding", ADMISSION_POLICY)
    assert ADMISSION_POLICY in binding


def test_the_service_account_can_do_every_read_tool(released: Path) -> None:
    assert read_tool_refusals(released) == []


def test_what_its_rbac_does_not_grant_is_forbidden(testbed, released: Path) -> None:
    check_rbac_limits(testbed, released, NS)
