"""wait_job on an in-memory cluster: waits for the end within its bound, reports progress
through the gate and over an in-process MCP client."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client
from support.gates import TESTER, error_code, make_gate, ok
from support.objects import NS, condition, job, pod

from mcp_kube.kube.memory import MemoryCluster, MemoryClusters
from mcp_kube.kube.objects import JobInfo, PodInfo
from mcp_kube.kube.port import Kind
from mcp_kube.server.app import build_server
from mcp_kube.settings import Limits, Settings
from mcp_kube.tools import follow, progress
from mcp_kube.tools.follow import WAIT_JOB, describe, wait_budget

TRAIN_LOG = "".join(f"epoch=0 step={s} loss={2.0 - s / 100:.2f}\n" for s in (10, 20, 30))


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "POLL_S", 0.05)


def running_cluster() -> MemoryCluster:
    """A job whose one pod runs and logs training steps; it has not ended."""
    return MemoryCluster(
        objects={
            Kind.JOBS: [job("train", status={"active": 1})],
            Kind.PODS: [pod("train-abc", job="train", restarts=1)],
        },
        logs={f"{NS}/train-abc": TRAIN_LOG},
    )


def complete(port: MemoryCluster) -> None:
    """The Job controller's verdict: Complete, its pod Succeeded."""
    port.add(Kind.JOBS, job("train", conditions=[condition("Complete")], status={"succeeded": 1}))
    port.add(Kind.PODS, pod("train-abc", job="train", phase="Succeeded", restarts=1))


def test_the_wait_fits_in_the_call_limit_with_room_for_the_final_read() -> None:
    assert wait_budget(20, 30) == (20.0, None)
    limit, note = wait_budget(60, 30)
    assert limit == 20.0
    assert note is not None
    assert "per-call limit is 30s" in note
    assert wait_budget(300, 600)[0] == 300.0
    assert wait_budget(60, 3)[0] == 2.0  # a third of a short limit is kept for the final read
    assert wait_budget(60, 0.5)[0] == 1.0


def test_a_progress_line_says_state_pods_restarts_and_training_progress() -> None:
    info = JobInfo.from_json(job("train", status={"active": 1}))
    pods = [
        PodInfo.from_json(pod("a", job="train", restarts=2)),
        PodInfo.from_json(pod("b", job="train", phase="Pending", node="")),
    ]
    line = describe(info, pods, "step 30 loss 1.7")
    assert line == "train: active; pods: 1 Pending, 1 Running; 2 restarts; step 30 loss 1.7"
    unschedulable = condition(
        "PodScheduled", "False", reason="Unschedulable", message="0/3 nodes are available"
    )
    held = PodInfo.from_json(
        pod("c", job="train", phase="Pending", node="", conditions=[unschedulable])
    )
    assert describe(info, [held], "") == (
        "train: active; pods: 1 Pending; 0 restarts; "
        "pending: Unschedulable: 0/3 nodes are available"
    )
    assert describe(info, [], "") == "train: active; pods: no pods; 0 restarts"


async def _wait_with_reports(
    port: MemoryCluster, settings: Settings, args: dict[str, Any], end_after: float | None
) -> tuple[Any, list[tuple[float, float | None, str]]]:
    gate = make_gate(port, settings=settings)
    reports: list[tuple[float, float | None, str]] = []

    async def collect(p: float, total: float | None, message: str) -> None:
        reports.append((p, total, message))

    token = progress.REPORTER.set(collect)
    try:
        async with anyio.create_task_group() as tg:
            if end_after is not None:

                async def finish() -> None:
                    await anyio.sleep(end_after)
                    complete(port)

                tg.start_soon(finish)
            outcome = await gate.call(WAIT_JOB, args, TESTER)
    finally:
        progress.REPORTER.reset(token)
    return outcome, reports


def test_waits_until_the_job_ends_and_reports_progress_meanwhile() -> None:
    port = running_cluster()
    args = {"namespace": NS, "name": "train", "timeout_s": 20}
    outcome, reports = anyio.run(_wait_with_reports, port, Settings(), args, 0.4)
    out = ok(outcome)
    assert out["ended"] is True
    assert out["job"]["status"] == "succeeded"
    assert out["job"]["log_lines"][-1] == "epoch=0 step=30 loss=1.70"  # the log tail at the end
    assert out["waited_s"] < 5
    assert len(reports) >= 3
    values = [r[0] for r in reports]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    assert all(total == out["wait_limit_s"] for _, total, _ in reports)
    assert reports[0][2] == "train: active; pods: 1 Running; 1 restarts; step 30 epoch 0 loss 1.7"
    assert reports[-1][2] == "train: succeeded (ended)"
    assert outcome.text.startswith("train ended (succeeded) after")


def test_a_job_that_does_not_end_is_answered_within_the_call_limit() -> None:
    port = running_cluster()
    settings = Settings(limits=Limits(call_timeout_s=3))
    args = {"namespace": NS, "name": "train", "timeout_s": 60}
    outcome, reports = anyio.run(_wait_with_reports, port, settings, args, None)
    out = ok(outcome)  # not an error: the caller may call again
    assert out["ended"] is False
    assert out["wait_limit_s"] == 2.0
    assert "per-call limit is 3s" in out["note"]
    assert 1.5 <= out["waited_s"] <= 3.0
    assert out["job"]["status"] == "active"
    assert "call wait_job again" in outcome.text
    assert reports
    assert not any("(ended)" in r[2] for r in reports)


def test_a_job_that_ended_already_is_answered_at_once() -> None:
    port = running_cluster()
    complete(port)
    outcome, reports = anyio.run(
        _wait_with_reports, port, Settings(), {"namespace": NS, "name": "train"}, None
    )
    out = ok(outcome)
    assert (out["ended"], out["polls"], out["job"]["status"]) == (True, 1, "succeeded")
    assert [r[2] for r in reports] == ["train: succeeded (ended)"]


def test_a_missing_job_is_not_found_and_bounds_are_validated() -> None:
    port = running_cluster()
    missing, _ = anyio.run(
        _wait_with_reports, port, Settings(), {"namespace": NS, "name": "nope"}, None
    )
    assert error_code(missing) == "not_found"
    too_long, _ = anyio.run(
        _wait_with_reports,
        port,
        Settings(),
        {"namespace": NS, "name": "train", "timeout_s": 301},
        None,
    )
    assert error_code(too_long) == "invalid_argument"


def test_progress_notifications_reach_an_mcp_client_that_asked() -> None:
    port = running_cluster()
    server = build_server(Settings(), clusters=lambda: MemoryClusters(port), audit=lambda: None)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        seen.append((p, total, message))

    async def go() -> tuple[Any, Any]:
        async with Client(server) as client, anyio.create_task_group() as tg:

            async def finish() -> None:
                await anyio.sleep(0.4)
                complete(port)

            tg.start_soon(finish)
            args = {"namespace": NS, "name": "train", "timeout_s": 20}
            followed = await client.call_tool("wait_job", args, progress_callback=on_progress)
            count.append(len(seen))
            plain = await client.call_tool("wait_job", args)  # no callback: nothing reported
            return followed, plain

    count: list[int] = []
    followed, plain = anyio.run(go)
    assert not followed.is_error, followed.content
    assert followed.structured_content["ended"] is True
    assert len(seen) >= 3
    assert seen[-1][2] == "train: succeeded (ended)"
    assert "step 30" in (seen[0][2] or "")
    assert not plain.is_error
    assert plain.structured_content["ended"] is True
    assert count == [len(seen)]
