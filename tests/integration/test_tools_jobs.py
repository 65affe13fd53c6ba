"""Job, log, event and pending tools through the gate, against the live testbed (no MCP)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from support.gates import call, error_code, error_of, ok
from support.objects import H100, KWOK_COMPLETE, NS, job
from support.waiting import wait_for

from mcp_kube.gate import Gate
from mcp_kube.testbed import cluster
from mcp_kube.tools.events import LIST_EVENTS
from mcp_kube.tools.jobs import GET_JOB, LIST_JOBS
from mcp_kube.tools.logs import POD_LOGS
from mcp_kube.tools.pending import EXPLAIN_PENDING

SECRET = "s3cr3t-value"
SUFFIX = uuid.uuid4().hex[:6]
DONE, BIG, STUCK = f"jt-done-{SUFFIX}", f"jt-big-{SUFFIX}", f"jt-stuck-{SUFFIX}"


def _job(name: str, gpus: int, selector: dict[str, str], complete: bool) -> dict:
    """A job whose pod (on a node ``selector`` picks) ends two seconds after it starts, or
    never; its env holds a value no tool may show."""
    meta = {"annotations": {KWOK_COMPLETE: "2s"}} if complete else {}
    return job(
        name, gpus=gpus, node_selector=selector, template_meta=meta, env={"WANDB_API_KEY": SECRET}
    )


@pytest.fixture(scope="module")
def jobs(testbed: cluster.TestbedState) -> Iterator[list[str]]:
    """One job that completes, one over the GPU quota, one that no node can take."""
    api = config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    batch = client.BatchV1Api(api)
    made = []
    try:
        for name, gpus, selector, complete in (
            (DONE, 1, {"nvidia.com/gpu.product": H100}, True),
            (BIG, 16, {"nvidia.com/gpu.product": H100}, False),
            (STUCK, 1, {"kubernetes.io/hostname": "h100-0"}, False),  # h100-0 is full
        ):
            batch.create_namespaced_job(NS, _job(name, gpus, selector, complete))
            made.append(name)
        yield made
    finally:
        for name in made:
            batch.delete_namespaced_job(name, NS, propagation_policy="Background")
        api.close()


def trainer_log(testbed: cluster.TestbedState) -> list[str]:
    path = Path(testbed.clusters[0].pod_logs["trainer"])
    return [ln.split(" ", 3)[3] for ln in path.read_text().splitlines()]


def test_completed_job_details_and_progress(
    gate: Gate, jobs: list[str], testbed: cluster.TestbedState
) -> None:
    def done() -> dict | None:
        """The job as get_job shows it once the Job controller has finished it: Complete is
        set (SuccessCriteriaMet comes first, while the controller is still winding it up; the
        job is active until then) and its pod has Succeeded."""
        out = ok(call(gate, GET_JOB, {"namespace": NS, "name": DONE}))
        complete = {"type": "Complete", "status": "True"} in [
            {"type": c["type"], "status": c["status"]} for c in out["conditions"]
        ]
        pod_done = bool(out["pods"]) and out["pods"][0]["phase"] == "Succeeded"
        return out if complete and pod_done and out["succeeded"] == 1 else None

    out = wait_for(done, f"{DONE} to complete", timeout=90)
    assert out["status"] == "succeeded"
    assert out["finish_time"] is not None
    assert out["gpus"] == {"nvidia.com/gpu": 1}
    assert out["succeeded"] == 1
    assert out["pods"][0]["phase"] == "Succeeded"
    assert out["pods"][0]["node"].startswith("h100-")
    expected = trainer_log(testbed)
    assert out["log_container"] == "trainer"
    assert out["log_lines"] == expected[-20:]
    last_loss = float(next(ln for ln in reversed(expected) if "loss=" in ln).split("loss=")[1][:6])
    assert out["progress"]["step"] == 200
    assert out["progress"]["loss"] == pytest.approx(last_loss)
    assert "s3cr3t-value" not in str(out)
    assert "annotations" not in str(out)

    listed = ok(call(gate, LIST_JOBS, {"namespace": NS, "status": "succeeded", "limit": 500}))
    mine = next(j for j in listed["jobs"] if j["name"] == DONE)
    assert mine["gpus"] == {"nvidia.com/gpu": 1}
    assert mine["duration_s"] >= 0
    verdict = ok(call(gate, EXPLAIN_PENDING, {"namespace": NS, "job": DONE}))["verdict"]
    assert verdict == "not pending: the job has succeeded"


def test_pod_logs_by_pod_and_job(
    gate: Gate, jobs: list[str], testbed: cluster.TestbedState
) -> None:
    expected = trainer_log(testbed)
    wait_for(
        lambda: ok(call(gate, GET_JOB, {"namespace": NS, "name": DONE}))["status"] == "succeeded",
        f"{DONE} to complete",
        timeout=90,
    )
    by_job = ok(call(gate, POD_LOGS, {"namespace": NS, "job": DONE}))
    assert by_job["text"].split("\n") == expected
    assert by_job["line_count"] == len(expected)
    assert by_job["truncated"] is False
    assert by_job["container"] == "trainer"
    pod = by_job["pod"]
    tail = ok(call(gate, POD_LOGS, {"namespace": NS, "pod": pod, "tail_lines": 2}))
    assert tail["text"].split("\n") == expected[-2:]
    grep = call(gate, POD_LOGS, {"namespace": NS, "pod": pod, "grep": "CHECKPOINT saved"})
    assert ok(grep)["text"] == "checkpoint saved step=200"
    assert "data, not instructions" in grep.text
    cut = ok(call(gate, POD_LOGS, {"namespace": NS, "job": DONE, "max_bytes": 1024}))
    assert cut["truncated"] is True
    assert cut["bytes"] == 1024
    assert "max_bytes cap" in cut["truncated_reason"]
    assert cut["text"].split("\n")[:3] == expected[:3]
    assert cut["line_count"] < len(expected)
    huge = ok(call(gate, POD_LOGS, {"namespace": NS, "pod": pod, "tail_lines": 100_000}))
    assert "tail_lines clamped" in huge["note"]


def test_pending_job_over_quota(gate: Gate, jobs: list[str]) -> None:
    def explained() -> dict | None:
        out = ok(call(gate, EXPLAIN_PENDING, {"namespace": NS, "job": BIG}))
        return (
            out
            if any(r["source"] == "job" and r["reason"] == "FailedCreate" for r in out["reasons"])
            else None
        )

    out = wait_for(explained, f"a FailedCreate event for {BIG}", timeout=90)
    assert out["pending_pods"] == []
    assert out["gpus"] == 16  # what each of its pods would request
    quota = [q for q in out["quotas"] if q["resource"] == "requests.nvidia.com/gpu"]
    assert quota[0]["hard"] == 16
    text = " ".join(r["detail"] for r in out["reasons"])
    assert "quota" in text
    assert "quota" in out["verdict"]

    events = ok(call(gate, LIST_EVENTS, {"namespace": NS, "kind": "Job", "name": BIG}))
    assert events["events"]
    assert {e["object_name"] for e in events["events"]} == {BIG}
    assert all(e["type"] == "Warning" for e in events["events"])
    assert any("exceeded quota" in e["message"] for e in events["events"])
    assert all(len(e["message"]) <= 300 for e in events["events"])


def test_pending_job_no_node_fits(gate: Gate, jobs: list[str]) -> None:
    def explained() -> dict | None:
        out = ok(call(gate, EXPLAIN_PENDING, {"namespace": NS, "job": STUCK}))
        return out if out["scheduler"] else None

    out = wait_for(explained, f"the scheduler's verdict on {STUCK}", timeout=90)
    assert out["scheduler"]["insufficient"].get("nvidia.com/gpu") == 1
    assert out["scheduler"]["selector_mismatch"] >= 1
    assert "Insufficient nvidia.com/gpu" in out["verdict"]
    assert out["verdict"].startswith("unschedulable")
    pod = out["pending_pods"][0]
    by_pod = ok(call(gate, EXPLAIN_PENDING, {"namespace": NS, "pod": pod}))
    assert by_pod["scheduler"] == out["scheduler"]
    assert out["gpus"] == by_pod["gpus"] == 1

    detail = ok(call(gate, GET_JOB, {"namespace": NS, "name": STUCK}))
    assert detail["status"] == "active"
    assert detail["pods"][0]["phase"] == "Pending"
    assert detail["log_lines"] == []
    assert "not scheduled" in detail["log_note"]
    logs = ok(call(gate, POD_LOGS, {"namespace": NS, "job": STUCK}))
    assert (logs["text"], logs["line_count"]) == ("", 0)
    assert "not scheduled" in logs["note"]

    warnings = ok(call(gate, LIST_EVENTS, {"namespace": NS, "kind": "Pod", "name": pod}))
    assert any(e["reason"] == "FailedScheduling" for e in warnings["events"])


@pytest.mark.parametrize(
    ("spec", "args", "expected"),
    [
        (LIST_JOBS, {"namespace": "Team_A"}, "invalid_argument"),
        (POD_LOGS, {"namespace": "../x", "pod": "p"}, "invalid_argument"),
        (POD_LOGS, {"namespace": NS, "pod": "p", "job": "j"}, "invalid_argument"),
        (EXPLAIN_PENDING, {"namespace": NS}, "invalid_argument"),
        (LIST_EVENTS, {"namespace": NS, "kind": "Secret"}, "invalid_argument"),
        (GET_JOB, {"namespace": NS, "name": "x", "cluster": "gpu-north"}, "unknown_cluster"),
        (GET_JOB, {"namespace": NS, "name": "jt-missing"}, "not_found"),
        (POD_LOGS, {"namespace": NS, "pod": "jt-missing"}, "not_found"),
        (POD_LOGS, {"namespace": NS, "job": "jt-missing"}, "not_found"),
        (EXPLAIN_PENDING, {"namespace": NS, "job": "jt-missing"}, "not_found"),
    ],
)
def test_bad_input_and_missing_objects(gate: Gate, spec: Any, args: dict, expected: str) -> None:
    assert error_code(call(gate, spec, args)) == expected


def test_other_cluster_and_empty_namespace(gate: Gate) -> None:
    out = ok(call(gate, LIST_JOBS, {"namespace": "team-b", "cluster": "gpu-west"}))
    assert out["cluster"] == "gpu-west"
    assert all(not j["name"].startswith("jt-") for j in out["jobs"])


@pytest.mark.parametrize(
    ("spec", "args", "near"),
    [
        # a job named after a bare pod: the pod is what exists
        (EXPLAIN_PENDING, {"namespace": "team-b", "job": "bert-ft"}, "pod bert-ft-0 in team-b"),
        (GET_JOB, {"namespace": "team-b", "name": "bert-fx"}, "pod bert-ft-0 in team-b"),
        # the right pod name in the wrong namespace
        (POD_LOGS, {"namespace": "team-a", "pod": "bert-ft-0"}, "pod bert-ft-0 in team-b"),
        # a pod that exists only in the other cluster
        (EXPLAIN_PENDING, {"namespace": "team-b", "pod": "vlm-train-0"}, "cluster gpu-west"),
    ],
)
def test_not_found_names_near_matches(gate: Gate, spec: Any, args: dict, near: str) -> None:
    code, message = error_of(call(gate, spec, args))
    assert code == "not_found"
    assert "Near matches:" in message, message
    assert near in message, message


def test_not_found_without_anything_near_says_so_plainly(gate: Gate) -> None:
    code, message = error_of(call(gate, GET_JOB, {"namespace": "team-a", "name": "zzqq-nothing"}))
    assert code == "not_found"
    assert "Near matches" not in message
    assert "no job zzqq-nothing in namespace team-a on cluster gpu-east" in message
