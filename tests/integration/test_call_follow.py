"""`mcp-kube call submit_job ... --follow` against the live testbed: the job is submitted, then
followed with wait_job to its end, progress on stderr and one JSON document on stdout."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from support.objects import H100, NS

from mcp_kube.testbed import cluster

from .mcp_helpers import MCP_KUBE

REPO = Path(__file__).resolve().parents[2]


def _call(*argv: str, server: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MCP_KUBE, "call", *argv, "--server", server],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_submit_and_follow_until_the_job_succeeds(
    testbed: cluster.TestbedState, tmp_path: Path
) -> None:
    name = f"follow-{uuid.uuid4().hex[:6]}"
    server = (
        f"mcp-kube serve --kubeconfig {testbed.kubeconfig} --context gpu-east"
        f" --policy {REPO / 'tests' / 'data' / 'allow-writes.yaml'}"
        f" --audit-log {tmp_path / 'audit.jsonl'}"
    )
    args = {
        "name": name,
        "namespace": NS,
        "image": "registry.internal/ml/trainer:1.4.2",
        "gpus": 1,
        "gpu_product": H100,
    }
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    try:
        r = _call("submit_job", "--args", json.dumps(args), "--follow", server=server)
        assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
        out = json.loads(r.stdout)
        assert out["structured"]["created"] is True
        followed = out["followed"]
        assert (followed["ended"], followed["status"], followed["is_error"]) == (
            True,
            "succeeded",
            False,
        )
        assert followed["structured"]["job"]["name"] == name
        progress = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
        assert progress, r.stderr
        assert f"] {name} ended (succeeded) after" in progress[-1]
        assert any(f"{name}: succeeded (ended)" in ln for ln in progress), progress
        # --follow on a tool that names no job is a usage error, before any call
        bad = _call("list_jobs", "--args", json.dumps({"namespace": NS}), "--follow", server=server)
        assert bad.returncode == 2, bad.stderr
        assert "--follow needs one of submit_job, wait_job" in bad.stderr
    finally:
        k8s.BatchV1Api(api).delete_namespaced_job(name, NS, propagation_policy="Background")
        api.close()
