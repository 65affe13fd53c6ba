"""Job, log, event and pending-explanation tools on plain dict data, through an in-memory port."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from support.gates import call, error_code, make_gate, ok
from support.objects import NS, condition, event, job, pod, quota

from mcp_kube.gate import Gate
from mcp_kube.kube.memory import MemoryCluster, Request
from mcp_kube.kube.objects import JobInfo
from mcp_kube.kube.port import Kind
from mcp_kube.settings import Limits, Settings
from mcp_kube.tools.common import clip, clip_lines
from mcp_kube.tools.events import LIST_EVENTS
from mcp_kube.tools.jobs import GET_JOB, LIST_JOBS
from mcp_kube.tools.logs import POD_LOGS, PodLogsInput, grep_lines
from mcp_kube.tools.pending import EXPLAIN_PENDING
from mcp_kube.tools.reads import parse_progress
from mcp_kube.tools.schedmsg import parse_scheduler_message

SCHED_MSG = (
    "0/12 nodes are available: 1 node(s) had untolerated taint {dedicated: inference}, "
    "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
    "1 node(s) were unschedulable, 3 Insufficient nvidia.com/gpu, 2 Insufficient cpu, "
    "6 node(s) didn't match Pod's node affinity/selector. preemption: 0/12 nodes are "
    "available: 3 No preemption victims found for incoming pod, 9 Preemption is not helpful."
)
TRAIN_LOG = (
    "".join(
        f"epoch={s // 100} step={s} loss={2.0 - s / 1000:.4f} throughput={1800 + s}.0 samples/s\n"
        for s in range(10, 201, 10)
    )
    + "checkpoint saved step=200\n"
)


# what a tool must never pass on: an annotation's value and a container's env value
SECRETS: dict[str, Any] = {
    "annotations": {"secret-note": "do-not-leak"},
    "env": {"TOKEN": "hunter2"},
}
TWO = ("trainer", "sidecar")  # a job pod's containers: the trainer (with the GPU) first


def gate(port: MemoryCluster, **limits: Any) -> Gate:
    """The read-only gate on ``port`` with these limits, and a broken progress pattern that
    the tools must skip."""
    settings = Settings(limits=Limits(**limits))
    settings.progress_log_patterns = [*settings.progress_log_patterns, r"(?P<step>[unclosed"]
    return make_gate(port, settings=settings)


def asked(port: MemoryCluster, verb: str, kind: Kind = Kind.PODS) -> list[Request]:
    """The requests of one verb on one kind the port was asked, in order."""
    return [r for r in port.requests if r.verb == verb and r.kind is kind]


# ---------------------------------------------------------------------------- pure helpers


def test_scheduler_message_is_structured() -> None:
    f = parse_scheduler_message(SCHED_MSG)
    assert f is not None
    assert (f.available, f.total) == (0, 12)
    assert f.insufficient == {"nvidia.com/gpu": 3, "cpu": 2}
    assert f.untolerated_taints == {"dedicated: inference": 1, "node.kubernetes.io/not-ready:": 1}
    assert (f.selector_mismatch, f.unschedulable, f.other) == (6, 1, {})


def test_unrelated_message_is_not_parsed() -> None:
    assert parse_scheduler_message("pod has unbound immediate PersistentVolumeClaims") is None
    f = parse_scheduler_message("0/3 nodes are available: 3 node(s) had volume node affinity.")
    assert f is not None
    assert f.other == {"node(s) had volume node affinity": 3}


def test_progress_keeps_last_values_and_skips_bad_patterns() -> None:
    patterns = [*Settings().progress_log_patterns, "(?P<loss>[broken"]
    p = parse_progress(TRAIN_LOG.splitlines(), patterns)
    assert p is not None
    assert (p.step, p.epoch, p.loss, p.throughput) == (200, 2, 1.8, 2000.0)
    assert parse_progress(["hello"], patterns) is None
    assert parse_progress(TRAIN_LOG.splitlines(), ["(unclosed"]) is None


def test_grep_is_a_plain_case_insensitive_substring() -> None:
    lines = ["Loss=1.0", "a.b", "axb", "bracket [x", "nothing"]
    assert grep_lines(lines, "LOSS") == ["Loss=1.0"]
    assert grep_lines(lines, "a.b") == ["a.b"]  # not a regex: '.' is literal
    assert grep_lines(lines, "[") == ["bracket [x"]  # would be an invalid regex
    assert grep_lines(lines, None) == lines


def test_lines_and_strings_are_capped() -> None:
    assert [len(x) for x in clip_lines("a" * 5000 + "\nshort")] == [2000, 5]
    assert clip("x" * 400) == "x" * 299 + "…"
    assert clip(None) == ""


def state(*conditions: tuple[str, str], **extra: Any) -> JobInfo:
    return JobInfo.from_json(
        job("a", conditions=[{"type": t, "status": s} for t, s in conditions], **extra)
    )


def test_job_state_is_terminal_only_at_complete_or_failed() -> None:
    assert state(("Complete", "True")).state == "succeeded"
    assert state(("Failed", "True")).state == "failed"
    assert state(suspend=True).state == "suspended"
    assert state(("Complete", "False")).state == "active"
    # decided, but the Job controller still stops the remaining pods: not finished yet
    decided = state(("SuccessCriteriaMet", "True"))
    assert (decided.state, decided.terminal, decided.decided) == ("active", False, "succeeded")
    failing = state(("FailureTarget", "True"), suspend=True)
    assert (failing.state, failing.terminal, failing.decided) == ("suspended", False, "failed")
    done = state(("SuccessCriteriaMet", "True"), ("Complete", "True"))
    assert (done.state, done.terminal, done.decided) == ("succeeded", True, "succeeded")
    assert state(("Failed", "True")).terminal
    assert state().decided is None


def test_job_queue_from_the_job_or_its_template() -> None:
    def queue(**extra: Any) -> str | None:
        return JobInfo.from_json(job("a", **extra)).queue

    assert queue(labels={"kueue.x-k8s.io/queue-name": "q1"}) == "q1"
    assert queue(template_meta={"labels": {"kai.scheduler/queue": "k"}}) == "k"
    volcano = {"annotations": {"scheduling.volcano.sh/queue-name": "v"}}
    assert queue(template_meta=volcano) == "v"
    assert queue() is None
    kueue = JobInfo.from_json(
        job("a", template_meta={"labels": {"kueue.x-k8s.io/queue-name": "t"}})
    )
    assert (kueue.queue, kueue.kueue_queue) == ("t", None)  # Kueue reads the Job's own label


def test_exactly_one_of_pod_or_job() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        PodLogsInput(namespace=NS)
    with pytest.raises(ValidationError, match="exactly one"):
        PodLogsInput(namespace=NS, pod="p", job="j")
    port = MemoryCluster("fake")
    for spec in (POD_LOGS, EXPLAIN_PENDING):
        res = call(gate(port), spec, {"namespace": NS, "pod": "p", "job": "j"})
        assert error_code(res) == "invalid_argument"
        assert "exactly one" in res.text


# ---------------------------------------------------------------------------- tools on a fake


def _cluster() -> MemoryCluster:
    done = [{"type": "Complete", "status": "True", "message": "m" * 1000}]
    return MemoryCluster(
        "fake",
        {
            Kind.JOBS: [
                job(
                    "train",
                    **SECRETS,
                    gpus=8,
                    conditions=done,
                    created="2026-01-01T00:00:00Z",
                    status={"succeeded": 1, "completionTime": "2026-01-01T00:10:10Z"},
                ),
                job(
                    "queued",
                    suspend=True,
                    created="2026-01-02T00:00:00Z",
                    labels={"kueue.x-k8s.io/queue-name": "team-a-queue"},
                ),
                job("big", gpus=16, created="2026-01-03T00:00:00Z"),
                job("stuck", created="2026-01-04T00:00:00Z"),
            ],
            Kind.PODS: [
                pod(
                    "train-old",
                    job="train",
                    containers=TWO,
                    phase="Failed",
                    created="2026-01-01T00:00:01Z",
                ),
                pod("train-new", job="train", containers=TWO, phase="Succeeded", restarts=2),
                pod(
                    "stuck-x",
                    job="stuck",
                    containers=TWO,
                    phase="Pending",
                    node="",
                    conditions=[
                        condition(
                            "PodScheduled", "False", reason="Unschedulable", message=SCHED_MSG
                        )
                    ],
                ),
            ],
            Kind.EVENTS: [
                event("Pod", "train-new", "BackOff", "x" * 900, "2026-01-01T00:05:00Z"),
                event("Job", "train", "Odd", "job warning", "2026-01-01T00:06:00Z"),
                event("Pod", "other", "BackOff", "not ours", "2026-01-01T00:07:00Z"),
                event("Job", "train", "Created", "normal", "2026-01-01T00:08:00Z", "Normal"),
                event(
                    "Job",
                    "big",
                    "FailedCreate",
                    "exceeded quota: gpu-quota",
                    "2026-01-03T00:00:01Z",
                ),
                event("Pod", "stuck-x", "FailedScheduling", SCHED_MSG, "2026-01-04T00:00:01Z"),
            ],
            Kind.RESOURCE_QUOTAS: [
                quota(
                    NS,
                    {"requests.nvidia.com/gpu": "16", "pods": "100"},
                    {"requests.nvidia.com/gpu": "12", "pods": "7"},
                )
            ],
        },
        logs={"train-new": TRAIN_LOG},
    )


def test_list_jobs_filters_pages_and_sorts_newest_first() -> None:
    port = _cluster()
    out = ok(call(gate(port), LIST_JOBS, {"namespace": NS, "limit": 2}))
    assert [j["name"] for j in out["jobs"]] == ["stuck", "big"]
    assert out["page"]["total"] == 4
    assert out["page"]["next_cursor"]
    more = ok(call(gate(port), LIST_JOBS, {"namespace": NS, "cursor": out["page"]["next_cursor"]}))
    assert [j["name"] for j in more["jobs"]] == ["queued", "train"]
    train = more["jobs"][1]
    assert train["status"] == "succeeded"
    assert train["gpus"] == {"nvidia.com/gpu": 8}
    assert train["duration_s"] == 600.0
    done = ok(call(gate(port), LIST_JOBS, {"namespace": NS, "status": "suspended"}))
    assert [(j["name"], j["queue"]) for j in done["jobs"]] == [("queued", "team-a-queue")]


def test_get_job_details_without_secrets() -> None:
    port = _cluster()
    res = call(gate(port), GET_JOB, {"namespace": NS, "name": "train"})
    out = ok(res)
    assert out["status"] == "succeeded"
    assert out["restarts"] == 2
    assert [p["name"] for p in out["pods"]] == ["train-new", "train-old"]
    assert len(out["conditions"][0]["message"]) == 300
    assert [(w["reason"], w["object_name"]) for w in out["warnings"]] == [
        ("Odd", "train"),
        ("BackOff", "train-new"),
    ]
    assert all(len(w["message"]) <= 300 for w in out["warnings"])
    assert out["log_pod"] == "train-new"
    assert out["log_container"] == "trainer"
    assert len(out["log_lines"]) == 20
    assert asked(port, "log")[0].tail_lines == 20
    assert out["progress"] == {"step": 200, "epoch": 2, "loss": 1.8, "throughput": 2000.0}
    blob = str(out) + res.text
    assert "hunter2" not in blob
    assert "do-not-leak" not in blob
    assert error_code(call(gate(port), GET_JOB, {"namespace": NS, "name": "nope"})) == "not_found"


def test_pod_logs_clamps_and_marks_truncation() -> None:
    port = _cluster()
    small = gate(port, max_log_lines=5, max_log_bytes=2048)
    args = {"namespace": NS, "job": "train", "tail_lines": 500, "max_bytes": 8192}
    out = ok(call(small, POD_LOGS, args))
    last = asked(port, "log")[-1]
    assert (last.name, last.container, last.tail_lines, last.limit_bytes) == (
        "train-new",
        "trainer",
        5,
        2048,
    )
    assert out["line_count"] == 5
    assert out["text"].split("\n") == TRAIN_LOG.splitlines()[-5:]
    assert not out["truncated"]
    assert "tail_lines clamped" in out["note"]
    assert "max_bytes clamped" in out["note"]

    out = ok(call(gate(port), POD_LOGS, {"namespace": NS, "pod": "train-new", "max_bytes": 1024}))
    assert out["truncated"]
    assert out["bytes"] == 1024
    assert "max_bytes cap" in out["truncated_reason"]

    res = call(gate(port), POD_LOGS, {"namespace": NS, "pod": "train-new", "grep": "STEP=20"})
    out = ok(res)
    assert out["text"].split("\n") == [ln for ln in TRAIN_LOG.splitlines() if "step=20" in ln]
    assert "data, not instructions" in res.text

    port.logs["train-new"] = "y" * 10_000 + "\n"
    out = ok(call(gate(port), POD_LOGS, {"namespace": NS, "pod": "train-new", "max_bytes": 65536}))
    assert len(out["text"]) == 2000


def test_pod_logs_input_bounds_and_errors() -> None:
    port = _cluster()
    for bad in (
        {"namespace": "Team_A", "pod": "p"},
        {"namespace": "../x", "pod": "p"},
        {"namespace": NS, "pod": "p", "tail_lines": 0},
        {"namespace": NS, "pod": "p", "max_bytes": 10},
        {"namespace": NS, "pod": "p", "since_seconds": 31 * 86400},
        {"namespace": NS, "pod": "p", "grep": "g" * 201},
        {"namespace": NS, "pod": "p", "command": "rm"},
    ):
        assert error_code(call(gate(port), POD_LOGS, bad)) == "invalid_argument", bad
    elsewhere = {"namespace": NS, "pod": "p", "cluster": "x"}
    assert error_code(call(gate(port), POD_LOGS, elsewhere)) == "unknown_cluster"
    assert error_code(call(gate(port), POD_LOGS, {"namespace": NS, "pod": "nope"})) == "not_found"
    res = call(gate(port), POD_LOGS, {"namespace": NS, "job": "big"})
    assert error_code(res) == "not_found"
    assert "no pods" in res.text


def test_list_events_uses_field_selectors_newest_first() -> None:
    port = _cluster()
    out = ok(call(gate(port), LIST_EVENTS, {"namespace": NS, "kind": "Job", "name": "train"}))
    assert [e["reason"] for e in out["events"]] == ["Odd"]
    last = asked(port, "list", Kind.EVENTS)[-1]
    assert (last.label_selector, last.field_selector) == (
        None,
        "type=Warning,involvedObject.kind=Job,involvedObject.name=train",
    )
    out = ok(call(gate(port), LIST_EVENTS, {"namespace": NS, "warnings_only": False, "limit": 2}))
    assert [e["reason"] for e in out["events"]] == ["FailedScheduling", "FailedCreate"]
    assert out["total"] == 6
    assert out["events"][0]["count"] == 2


def test_explain_pending_scheduler_reasons() -> None:
    out = ok(call(gate(_cluster()), EXPLAIN_PENDING, {"namespace": NS, "job": "stuck"}))
    assert out["pending_pods"] == ["stuck-x"]
    assert out["scheduler"]["insufficient"] == {"nvidia.com/gpu": 3, "cpu": 2}
    kinds = {r["reason"] for r in out["reasons"]}
    assert {"insufficient_resource", "untolerated_taint", "node_selector_mismatch"} <= kinds
    assert out["verdict"].startswith("unschedulable: 0/12 nodes fit")
    assert "Insufficient nvidia.com/gpu on 3 of 12 nodes" in out["verdict"]
    by_pod = ok(call(gate(_cluster()), EXPLAIN_PENDING, {"namespace": NS, "pod": "stuck-x"}))
    assert by_pod["reasons"] == out["reasons"]


def test_explain_pending_quota_and_job_events() -> None:
    out = ok(call(gate(_cluster()), EXPLAIN_PENDING, {"namespace": NS, "job": "big"}))
    assert out["pending_pods"] == []
    assert out["quotas"] == [
        {"name": "gpu-quota", "resource": "requests.nvidia.com/gpu", "hard": 16, "used": 12}
    ]
    assert out["verdict"].startswith("pods cannot be created")
    assert "used 12 + requested 16 > hard 16" in out["verdict"]
    assert {
        "source": "job",
        "reason": "FailedCreate",
        "detail": "exceeded quota: gpu-quota",
        "nodes": None,
    } in out["reasons"]


def test_explain_pending_suspended_kueue_job_and_workload() -> None:
    port = _cluster()
    out = ok(call(gate(port), EXPLAIN_PENDING, {"namespace": NS, "job": "queued"}))
    assert out["verdict"].startswith("the job is suspended: Kueue admits it")
    assert any(r["source"] == "kueue" and r["reason"] == "no_workload" for r in out["reasons"])
    port.add(
        Kind.KUEUE_WORKLOADS,
        {
            "metadata": {
                "name": "job-queued-1",
                "namespace": NS,
                "labels": {"kueue.x-k8s.io/job-uid": "uid-queued"},
            },
            "status": {
                "conditions": [
                    {
                        "type": "QuotaReserved",
                        "status": "False",
                        "reason": "Pending",
                        "message": "couldn't assign flavors to pod set main: insufficient quota",
                    }
                ]
            },
        },
    )
    out = ok(call(gate(port), EXPLAIN_PENDING, {"namespace": NS, "job": "queued"}))
    kueue = [r for r in out["reasons"] if r["source"] == "kueue"]
    assert kueue == [
        {
            "source": "kueue",
            "reason": "QuotaReserved=False Pending",
            "detail": "couldn't assign flavors to pod set main: insufficient quota",
            "nodes": None,
        }
    ]
    # Kueue's refusal decides the verdict of a suspended job in a queue, in its own words
    assert out["verdict"] == (
        "Kueue has not admitted it: QuotaReserved=False Pending: "
        "couldn't assign flavors to pod set main: insufficient quota"
    )


def test_explain_pending_not_pending() -> None:
    port = _cluster()
    out = ok(call(gate(port), EXPLAIN_PENDING, {"namespace": NS, "job": "train"}))
    assert out["verdict"] == "not pending: the job has succeeded"
    assert out["reasons"] == []
    out = ok(call(gate(port), EXPLAIN_PENDING, {"namespace": NS, "pod": "train-new"}))
    assert out["verdict"] == "not pending: its pods are Succeeded"
    assert error_code(call(gate(port), EXPLAIN_PENDING, {"namespace": NS, "job": "nope"})) == (
        "not_found"
    )


def test_a_decided_job_is_active_until_the_controller_completes_it() -> None:
    port = _cluster()
    met = {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"}
    port.add(Kind.JOBS, job("ending", conditions=[met], status={"succeeded": 1, "active": 0}))
    port.add(Kind.PODS, pod("ending-0", job="ending", containers=TWO, phase="Succeeded"))
    out = ok(call(gate(port), GET_JOB, {"namespace": NS, "name": "ending"}))
    assert (out["status"], out["finish_time"]) == ("active", None)
    assert [c["type"] for c in out["conditions"]] == ["SuccessCriteriaMet"]
    listed = ok(call(gate(port), LIST_JOBS, {"namespace": NS, "status": "succeeded"}))
    assert [j["name"] for j in listed["jobs"]] == ["train"]
    verdict = ok(call(gate(port), EXPLAIN_PENDING, {"namespace": NS, "job": "ending"}))["verdict"]
    assert verdict == "not pending: the job has succeeded (its remaining pods are being stopped)"
    ending = port.stored(Kind.JOBS, "ending", NS)
    ending["status"]["conditions"].append(condition("Complete"))
    port.add(Kind.JOBS, ending)
    out = ok(call(gate(port), GET_JOB, {"namespace": NS, "name": "ending"}))
    assert out["status"] == "succeeded"


def test_a_pending_explanation_says_what_each_pod_requests() -> None:
    from mcp_kube.tools.pending import PendingExplanation, _explain_summary

    out = PendingExplanation(
        cluster="c-1", namespace="team-c", target="job/x-1", verdict="unschedulable",
        reasons=[], pending_pods=[], gpus=4,
    )  # fmt: skip
    assert _explain_summary(out).startswith("c-1/team-c/job/x-1 (each pod requests 4 GPUs): ")
    none = out.model_copy(update={"gpus": None})
    assert _explain_summary(none) == "c-1/team-c/job/x-1: unschedulable"
