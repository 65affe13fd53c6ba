# ruff: noqa: E501  (the corpus is a table: one attack per line)
"""The attack corpus against a real server (stdio, the shipped default + gpu-teams policies, alice
of team-a): each an input and its expected outcome. Inputs that must never reach a cluster are
checked against the kube-apiserver's own audit log: no request from that server process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_helpers import server_agents, stdio_client

from mcp_kube.testbed import cluster

REPO = Path(__file__).resolve().parents[2]
POLICIES = ["--policy", str(REPO / "policies" / "default.yaml")]
POLICIES += ["--policy", str(REPO / "policies" / "examples" / "gpu-teams.yaml")]
ALICE = [*POLICIES, "--principal", "alice", "--groups", "team-a"]
DIGEST = "registry.internal/ml/trainer@sha256:" + "ab" * 32


def job(**extra: Any) -> dict[str, Any]:
    return {"name": "attack-1", "namespace": "team-a", "image": DIGEST, "gpus": 1} | extra


# (case, tool, arguments, expected error code): refused before any API request
BEFORE_ANY_API_CALL: list[tuple[str, str, dict[str, Any], str]] = [
    ("path traversal namespace", "list_jobs", {"namespace": "../../kube-system"}, "invalid_argument"),
    ("flag smuggling", "list_jobs", {"namespace": "default --kubeconfig=/tmp/evil"}, "invalid_argument"),
    ("shell separator", "list_jobs", {"namespace": "prod;kubectl delete ns prod"}, "invalid_argument"),
    ("command substitution", "list_jobs", {"namespace": "$(id)"}, "invalid_argument"),
    ("pod path traversal", "pod_logs", {"namespace": "team-a", "pod": "a/../../secrets"}, "invalid_argument"),
    ("64-character namespace", "list_jobs", {"namespace": "a" * 64}, "invalid_argument"),
    ("1 MB argument", "pod_logs", {"namespace": "team-a", "pod": "p", "grep": "x" * 1_000_000}, "invalid_argument"),
    ("extra argument as", "list_jobs", {"namespace": "team-a", "as": "system:admin"}, "invalid_argument"),
    ("extra argument kubeconfig", "list_jobs", {"namespace": "team-a", "kubeconfig": "/tmp/evil"}, "invalid_argument"),
    ("extra argument server", "gpu_inventory", {"server": "https://evil.example"}, "invalid_argument"),
    ("extra argument token", "gpu_inventory", {"token": "stolen"}, "invalid_argument"),
    ("negative tail", "pod_logs", {"namespace": "team-a", "pod": "p", "tail_lines": -1}, "invalid_argument"),
    ("huge tail", "pod_logs", {"namespace": "team-a", "pod": "p", "tail_lines": 10**12}, "invalid_argument"),
    ("zero byte cap", "pod_logs", {"namespace": "team-a", "pod": "p", "max_bytes": 0}, "invalid_argument"),
    ("unknown cluster", "list_jobs", {"namespace": "team-a", "cluster": "https://evil"}, "invalid_argument"),
    ("hostPath volume", "submit_job", job(volumes=[{"hostPath": {"path": "/"}}]), "invalid_argument"),
    ("privileged", "submit_job", job(securityContext={"privileged": True}), "invalid_argument"),
    ("privileged init container", "submit_job", job(initContainers=[{"name": "i", "image": "x", "securityContext": {"privileged": True}}]), "invalid_argument"),
    ("SYS_ADMIN", "submit_job", job(capabilities={"add": ["SYS_ADMIN"]}), "invalid_argument"),
    ("hostNetwork", "submit_job", job(hostNetwork=True), "invalid_argument"),
    ("hostPID and hostIPC", "submit_job", job(hostPID=True, hostIPC=True), "invalid_argument"),
    ("runAsUser 0", "submit_job", job(runAsUser=0), "invalid_argument"),
    ("Secret in env", "submit_job", job(env={"A": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}}), "invalid_argument"),
    ("Secret volume", "submit_job", job(volumes=[{"secret": {"secretName": "s"}}]), "invalid_argument"),
    ("another kind", "submit_job", job(kind="DaemonSet"), "invalid_argument"),
    ("a manifest URL", "submit_job", job(manifest="https://evil.example/job.yaml"), "invalid_argument"),
    ("64 GPUs, over the policy's limit", "submit_job", job(gpus=64), "policy_denied"),
    ("docker hub image", "submit_job", job(image="docker.io/evil/miner"), "policy_denied"),
    ("implicit registry", "submit_job", job(image="ubuntu"), "policy_denied"),
    ("look-alike registry", "submit_job", job(image="registry.internal.evil.com/x"), "policy_denied"),
    ("registry in the path", "submit_job", job(image="evil.com/registry.internal/x"), "policy_denied"),
    ("another team's namespace", "submit_job", job(namespace="team-b"), "policy_denied"),
    ("a system namespace", "submit_job", job(namespace="kube-system"), "policy_denied"),
]  # fmt: skip


def test_the_corpus_is_refused_before_any_api_request(testbed: cluster.TestbedState) -> None:
    async def go() -> dict[str, tuple[bool, str]]:
        out: dict[str, tuple[bool, str]] = {}
        async with stdio_client(testbed.kubeconfig, ["gpu-east"], ALICE) as c:
            for case, tool, args, _ in BEFORE_ANY_API_CALL:
                r = await c.call_tool(tool, args)
                out[case] = (bool(r.is_error), r.content[0].text if r.content else "")
        return out

    east = next(c for c in testbed.clusters if c.name == "gpu-east")
    agents_before = server_agents(east.audit_log)
    results = anyio.run(go)
    for case, _tool, _args, code in BEFORE_ANY_API_CALL:
        is_error, text = results[case]
        assert is_error, case
        assert text.startswith(f"error [{code}]"), (case, text[:300])
        assert "Traceback" not in text
        assert len(text) < 4000, case  # no echo of a 1 MB argument
    new_agents = server_agents(east.audit_log) - agents_before
    # only the policy's dry runs of the denied writes may have reached the API server, and
    # none of them wrote: a dry run or nothing
    for line in Path(east.audit_log).read_text().splitlines():
        event = json.loads(line)
        if event.get("userAgent") in new_agents and event.get("verb") in ("create", "delete"):
            assert "dryRun=All" in event.get("requestURI", ""), event["requestURI"]


def test_a_digest_pinned_internal_image_is_allowed(testbed: cluster.TestbedState) -> None:
    async def go() -> Any:
        async with stdio_client(testbed.kubeconfig, ["gpu-east"], ALICE) as c:
            r = await c.call_tool("submit_job", job(name="attack-ok", gpus=0))
            if not r.is_error:
                await c.call_tool("cancel_job", {"namespace": "team-a", "name": "attack-ok"})
            return r

    r = anyio.run(go)
    assert not r.is_error, r.content[0].text
    assert r.structured_content["created"] is True


def test_unknown_tools_are_protocol_errors(testbed: cluster.TestbedState) -> None:
    """An unknown tool name is refused by the protocol (-32602); nothing runs or is called."""

    async def go() -> Any:
        async with stdio_client(testbed.kubeconfig, ["gpu-east"], POLICIES) as c:
            try:
                r = await c.call_tool("delete_namespace", {"namespace": "prod"})
            except Exception as e:  # the SDK raises the protocol error
                return e
            return r

    out = anyio.run(go)
    assert isinstance(out, Exception), out  # a JSON-RPC error, not a tool result
    assert "delete_namespace" in str(out)
    assert getattr(getattr(out, "error", None), "code", None) == -32602


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("yaml bomb", "a: &a [" + ",".join(["x"] * 10) + "]\nb: &b [" + ",".join(["*a"] * 10) + "]\n"
         "c: &c [" + ",".join(["*b"] * 10) + "]\nd: [" + ",".join(["*c"] * 10) + "]\n"),
        ("deep nesting", "[" * 100_000 + "]" * 100_000),
    ],
)  # fmt: skip
def test_policy_files_that_attack_the_parser_are_rejected_quickly(
    tmp_path: Path, name: str, body: str
) -> None:
    import os
    import subprocess
    import time

    from mcp_helpers import MCP_KUBE

    path = tmp_path / "evil.yaml"
    path.write_text(body)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [MCP_KUBE, "policy", "check", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory, not all children's
    elapsed = time.monotonic() - t0
    stderr = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    peak_mib = usage.ru_maxrss / 1024
    returncode = proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    assert returncode != 0, name
    assert "Traceback" not in stderr
    assert elapsed < 30, f"{name} took {elapsed:.1f}s"
    assert peak_mib < 1024, f"{name} peaked at {peak_mib:.0f} MiB"
