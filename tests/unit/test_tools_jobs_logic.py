"""Job, log, event and pending-explanation tools on plain dict data, through an in-memory port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from mcp_kube.domain import Principal
from mcp_kube.errors import NotFound, UnknownCluster
from mcp_kube.kube.objects import JobInfo, NodeInfo, PodInfo
from mcp_kube.kube.port import Kind, LogChunk
from mcp_kube.policy.decision import ReadOnlyPolicy
from mcp_kube.policy.gate import Gate
from mcp_kube.settings import Limits, Settings
from mcp_kube.tools.common import clip, clip_lines
from mcp_kube.tools.events import LIST_EVENTS
from mcp_kube.tools.jobs import GET_JOB, LIST_JOBS
from mcp_kube.tools.logs import POD_LOGS, PodLogsInput, grep_lines
from mcp_kube.tools.pending import EXPLAIN_PENDING
from mcp_kube.tools.reads import parse_progress
from mcp_kube.tools.schedmsg import parse_scheduler_message

NS = "team-a"
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


def job(name: str, *, gpus: int = 1, conditions: list[dict] | None = None, **extra: Any) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "creationTimestamp": extra.pop("created", "2026-01-01T00:00:00Z"),
            "labels": extra.pop("labels", {}),
            "annotations": {"secret-note": "do-not-leak"},
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "suspend": extra.pop("suspend", False),
            "template": {
                "metadata": extra.pop("template_meta", {}),
                "spec": {
                    "containers": [
                        {
                            "name": "trainer",
                            "env": [{"name": "TOKEN", "value": "hunter2"}],
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                        }
                    ]
                },
            },
        },
        "status": {
            "startTime": "2026-01-01T00:00:10Z",
            "conditions": conditions or [],
            **extra.pop("status", {}),
        },
    }


def pod(name: str, job_name: str, *, phase: str = "Running", node: str = "h100-0", **kw: Any):
    conds = kw.pop("conditions", [])
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "creationTimestamp": kw.pop("created", "2026-01-01T00:00:05Z"),
            "labels": {"job-name": job_name, **kw.pop("labels", {})},
            "ownerReferences": [{"kind": "Job", "name": job_name, "controller": True}],
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "trainer", "resources": {"limits": {"nvidia.com/gpu": "1"}}},
                {"name": "sidecar"},
            ],
        },
        "status": {
            "phase": phase,
            "conditions": conds,
            "containerStatuses": [{"restartCount": kw.pop("restarts", 0), "state": {}}],
        },
    }


def event(obj_kind: str, obj_name: str, reason: str, message: str, t: str, typ: str = "Warning"):
    return {
        "type": typ,
        "reason": reason,
        "message": message,
        "involvedObject": {"kind": obj_kind, "name": obj_name},
        "count": 2,
        "lastTimestamp": t,
    }


def _matches(obj: dict, label_selector: str | None, field_selector: str | None) -> bool:
    for sel, get in (
        (label_selector, lambda k: (obj.get("metadata", {}).get("labels") or {}).get(k)),
        (field_selector, lambda k: _field(obj, k)),
    ):
        for term in (sel or "").split(","):
            if term:
                key, value = term.split("=", 1)
                if get(key) != value:
                    return False
    return True


def _field(obj: dict, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


@dataclass
class FakePort:
    """An in-memory ClusterPort: objects by kind, one log text, and a record of log calls."""

    name: str = "fake"
    objects: dict[Kind, list[dict]] = field(default_factory=dict)
    log_text: str = TRAIN_LOG
    log_calls: list[dict] = field(default_factory=list)
    selectors: list[tuple[Kind, str | None, str | None]] = field(default_factory=list)

    async def version(self) -> dict:
        return {"gitVersion": "v0"}

    async def list_objects(
        self, kind, namespace=None, *, label_selector=None, field_selector=None, limit=None
    ):
        self.selectors.append((kind, label_selector, field_selector))
        items = [
            o
            for o in self.objects.get(kind, [])
            if namespace in (None, o.get("metadata", {}).get("namespace", namespace))
            and _matches(o, label_selector, field_selector)
        ]
        return items[:limit] if limit else items

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict:
        for o in self.objects.get(kind, []):
            if o["metadata"]["name"] == name:
                return o
        raise NotFound(f"{self.name}: {kind.plural} {name!r} not found")

    async def nodes(self) -> list[NodeInfo]:
        return []

    async def pods(self) -> list[PodInfo]:
        return [PodInfo.from_json(o) for o in self.objects.get(Kind.PODS, [])]

    async def derived(self, key: str, build: Any) -> Any:
        return build(await self.nodes(), await self.pods())

    async def pod_log(
        self, namespace, pod, *, container, tail_lines, since_seconds, limit_bytes, previous
    ) -> LogChunk:
        self.log_calls.append(
            {"pod": pod, "container": container, "tail": tail_lines, "limit_bytes": limit_bytes}
        )
        lines = self.log_text.splitlines(keepends=True)
        data = "".join(lines[-tail_lines:] if tail_lines else lines).encode()
        return LogChunk(
            text=data[:limit_bytes].decode(errors="replace"),
            bytes_read=min(len(data), limit_bytes),
            truncated=len(data) > limit_bytes,
        )


class FakeSource:
    def __init__(self, port: FakePort) -> None:
        self.port = port

    @property
    def names(self) -> list[str]:
        return [self.port.name]

    def resolve(self, name: str | None) -> str:
        if name not in (None, self.port.name):
            raise UnknownCluster(f"unknown cluster {name!r}; valid clusters: {self.port.name}")
        return self.port.name

    def get(self, name: str | None) -> FakePort:
        self.resolve(name)
        return self.port


def call(port: FakePort, spec, args: dict, **limits: Any):
    settings = Settings(limits=Limits(**limits))
    settings.progress_log_patterns = [*settings.progress_log_patterns, r"(?P<step>[unclosed"]
    gate = Gate(FakeSource(port), settings, ReadOnlyPolicy(), [spec])
    return anyio.run(gate.call, spec, args, Principal("tester"))


def ok(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def error_code(result) -> str:
    assert result.is_error
    return result.content[0].text.split("]")[0].removeprefix("error [")


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
    port = FakePort()
    for spec in (POD_LOGS, EXPLAIN_PENDING):
        res = call(port, spec, {"namespace": NS, "pod": "p", "job": "j"})
        assert error_code(res) == "invalid_argument"
        assert "exactly one" in res.content[0].text


# ---------------------------------------------------------------------------- tools on a fake


def _cluster() -> FakePort:
    done = [{"type": "Complete", "status": "True", "message": "m" * 1000}]
    return FakePort(
        objects={
            Kind.JOBS: [
                job(
                    "train",
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
                pod("train-old", "train", phase="Failed", created="2026-01-01T00:00:01Z"),
                pod("train-new", "train", phase="Succeeded", restarts=2),
                pod(
                    "stuck-x",
                    "stuck",
                    phase="Pending",
                    node="",
                    conditions=[
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": SCHED_MSG,
                        }
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
                {
                    "metadata": {"name": "gpu-quota", "namespace": NS},
                    "status": {
                        "hard": {"requests.nvidia.com/gpu": "16", "pods": "100"},
                        "used": {"requests.nvidia.com/gpu": "12", "pods": "7"},
                    },
                }
            ],
        }
    )


def test_list_jobs_filters_pages_and_sorts_newest_first() -> None:
    port = _cluster()
    out = ok(call(port, LIST_JOBS, {"namespace": NS, "limit": 2}))
    assert [j["name"] for j in out["jobs"]] == ["stuck", "big"]
    assert out["page"]["total"] == 4
    assert out["page"]["next_cursor"]
    more = ok(call(port, LIST_JOBS, {"namespace": NS, "cursor": out["page"]["next_cursor"]}))
    assert [j["name"] for j in more["jobs"]] == ["queued", "train"]
    train = more["jobs"][1]
    assert train["status"] == "succeeded"
    assert train["gpus"] == {"nvidia.com/gpu": 8}
    assert train["duration_s"] == 600.0
    done = ok(call(port, LIST_JOBS, {"namespace": NS, "status": "suspended"}))
    assert [(j["name"], j["queue"]) for j in done["jobs"]] == [("queued", "team-a-queue")]


def test_get_job_details_without_secrets() -> None:
    port = _cluster()
    res = call(port, GET_JOB, {"namespace": NS, "name": "train"})
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
    assert port.log_calls[0]["tail"] == 20
    assert out["progress"] == {"step": 200, "epoch": 2, "loss": 1.8, "throughput": 2000.0}
    blob = str(out) + res.content[0].text
    assert "hunter2" not in blob
    assert "do-not-leak" not in blob
    assert error_code(call(port, GET_JOB, {"namespace": NS, "name": "nope"})) == "not_found"


def test_pod_logs_clamps_and_marks_truncation() -> None:
    port = _cluster()
    out = ok(
        call(
            port,
            POD_LOGS,
            {"namespace": NS, "job": "train", "tail_lines": 500, "max_bytes": 8192},
            max_log_lines=5,
            max_log_bytes=2048,
        )
    )
    assert port.log_calls[-1] == {
        "pod": "train-new",
        "container": "trainer",
        "tail": 5,
        "limit_bytes": 2048,
    }
    assert len(out["lines"]) == 5
    assert not out["truncated"]
    assert "tail_lines clamped" in out["note"]
    assert "max_bytes clamped" in out["note"]

    out = ok(call(port, POD_LOGS, {"namespace": NS, "pod": "train-new", "max_bytes": 1024}))
    assert out["truncated"]
    assert out["bytes"] == 1024
    assert "max_bytes cap" in out["truncated_reason"]

    res = call(port, POD_LOGS, {"namespace": NS, "pod": "train-new", "grep": "STEP=20"})
    out = ok(res)
    assert out["lines"] == [ln for ln in TRAIN_LOG.splitlines() if "step=20" in ln]
    assert "data, not instructions" in res.content[0].text

    port.log_text = "y" * 10_000 + "\n"
    out = ok(call(port, POD_LOGS, {"namespace": NS, "pod": "train-new", "max_bytes": 65536}))
    assert len(out["lines"][0]) == 2000


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
        assert error_code(call(port, POD_LOGS, bad)) == "invalid_argument", bad
    assert error_code(call(port, POD_LOGS, {"namespace": NS, "pod": "p", "cluster": "x"})) == (
        "unknown_cluster"
    )
    assert error_code(call(port, POD_LOGS, {"namespace": NS, "pod": "nope"})) == "not_found"
    res = call(port, POD_LOGS, {"namespace": NS, "job": "big"})
    assert error_code(res) == "not_found"
    assert "no pods" in res.content[0].text


def test_list_events_uses_field_selectors_newest_first() -> None:
    port = _cluster()
    out = ok(call(port, LIST_EVENTS, {"namespace": NS, "kind": "Job", "name": "train"}))
    assert [e["reason"] for e in out["events"]] == ["Odd"]
    assert port.selectors[-1] == (
        Kind.EVENTS,
        None,
        "type=Warning,involvedObject.kind=Job,involvedObject.name=train",
    )
    out = ok(call(port, LIST_EVENTS, {"namespace": NS, "warnings_only": False, "limit": 2}))
    assert [e["reason"] for e in out["events"]] == ["FailedScheduling", "FailedCreate"]
    assert out["total"] == 6
    assert out["events"][0]["count"] == 2


def test_explain_pending_scheduler_reasons() -> None:
    out = ok(call(_cluster(), EXPLAIN_PENDING, {"namespace": NS, "job": "stuck"}))
    assert out["pending_pods"] == ["stuck-x"]
    assert out["scheduler"]["insufficient"] == {"nvidia.com/gpu": 3, "cpu": 2}
    kinds = {r["reason"] for r in out["reasons"]}
    assert {"insufficient_resource", "untolerated_taint", "node_selector_mismatch"} <= kinds
    assert out["verdict"].startswith("unschedulable: 0/12 nodes fit")
    assert "Insufficient nvidia.com/gpu on 3 of 12 nodes" in out["verdict"]
    by_pod = ok(call(_cluster(), EXPLAIN_PENDING, {"namespace": NS, "pod": "stuck-x"}))
    assert by_pod["reasons"] == out["reasons"]


def test_explain_pending_quota_and_job_events() -> None:
    out = ok(call(_cluster(), EXPLAIN_PENDING, {"namespace": NS, "job": "big"}))
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
    out = ok(call(port, EXPLAIN_PENDING, {"namespace": NS, "job": "queued"}))
    assert out["verdict"].startswith("the job is suspended: Kueue admits it")
    assert any(r["source"] == "kueue" and r["reason"] == "no_workload" for r in out["reasons"])
    port.objects[Kind.KUEUE_WORKLOADS] = [
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
        }
    ]
    out = ok(call(port, EXPLAIN_PENDING, {"namespace": NS, "job": "queued"}))
    kueue = [r for r in out["reasons"] if r["source"] == "kueue"]
    assert kueue == [
        {
            "source": "kueue",
            "reason": "QuotaReserved=False Pending",
            "detail": "couldn't assign flavors to pod set main: insufficient quota",
            "nodes": None,
        }
    ]


def test_explain_pending_not_pending() -> None:
    port = _cluster()
    out = ok(call(port, EXPLAIN_PENDING, {"namespace": NS, "job": "train"}))
    assert out["verdict"] == "not pending: the job has succeeded"
    assert out["reasons"] == []
    out = ok(call(port, EXPLAIN_PENDING, {"namespace": NS, "pod": "train-new"}))
    assert out["verdict"] == "not pending: its pods are Succeeded"
    assert error_code(call(port, EXPLAIN_PENDING, {"namespace": NS, "job": "nope"})) == (
        "not_found"
    )


def test_a_decided_job_is_active_until_the_controller_completes_it() -> None:
    port = _cluster()
    met = {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"}
    port.objects[Kind.JOBS].append(
        job("ending", conditions=[met], status={"succeeded": 1, "active": 0})
    )
    port.objects[Kind.PODS].append(pod("ending-0", "ending", phase="Succeeded"))
    out = ok(call(port, GET_JOB, {"namespace": NS, "name": "ending"}))
    assert (out["status"], out["finish_time"]) == ("active", None)
    assert [c["type"] for c in out["conditions"]] == ["SuccessCriteriaMet"]
    listed = ok(call(port, LIST_JOBS, {"namespace": NS, "status": "succeeded"}))
    assert [j["name"] for j in listed["jobs"]] == ["train"]
    verdict = ok(call(port, EXPLAIN_PENDING, {"namespace": NS, "job": "ending"}))["verdict"]
    assert verdict == "not pending: the job has succeeded (its remaining pods are being stopped)"
    port.objects[Kind.JOBS][-1]["status"]["conditions"].append(
        {"type": "Complete", "status": "True"}
    )
    assert ok(call(port, GET_JOB, {"namespace": NS, "name": "ending"}))["status"] == "succeeded"
