"""The client's task follower (``mcp_kube.llm.tasks``) over a scripted stand-in for the MCP
session: the poll interval, the end of a follow, its time bound, and cancelling."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp.client.extension import ClaimContext
from mcp.shared.exceptions import MCPError

from mcp_kube.llm import tasks as T

TID = "job1.abc"
SUBMIT = {"cluster": "gpu-east", "namespace": "team-a", "name": "train", "created": True}


def state(status: str, message: str, *, poll_ms: int | None = 3000, **kw: Any) -> T.DetailedTask:
    return T.DetailedTask(
        task_id=TID, status=status, status_message=message, poll_interval_ms=poll_ms, **kw
    )


def done(job_status: str = "succeeded") -> T.DetailedTask:
    structured = {
        **SUBMIT,
        "status": "completed",
        "job_status": job_status,
        "job": {
            "status": job_status,
            "restarts": 0,
            "progress": {"step": 1000, "loss": 0.12},
            "gpu_use": {"stats": {"utilization_mean": 91.5}},
        },
    }
    result = {
        "content": [{"type": "text", "text": f"task completed: train: {job_status}"}],
        "structuredContent": structured,
        "isError": job_status == "failed",
    }
    return state("completed", f"train: {job_status} after 9s", result=result)


class Channel:
    """Answers tasks/get from a script; records every poll and cancel; a fake clock."""

    def __init__(self, *states: T.DetailedTask | Exception) -> None:
        self.states = list(states)
        self.polls = 0
        self.cancels: list[str] = []
        self.now = 0.0
        self.slept: list[float] = []

    async def get(self, task_id: str) -> T.DetailedTask:
        assert task_id == TID
        self.polls += 1
        nxt = self.states.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        return nxt

    async def cancel(self, task_id: str) -> None:
        self.cancels.append(task_id)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def run_follow(
    ch: Channel, first: T.DetailedTask, **kw: Any
) -> tuple[T.Followed, list[T.TaskView]]:
    seen: list[T.TaskView] = []

    async def go() -> T.Followed:
        return await T.follow(ch, first, seen.append, sleep=ch.sleep, clock=ch.clock, **kw)

    return anyio.run(go), seen


def test_polls_at_the_interval_the_task_names_until_it_completes() -> None:
    running = "train: running; pods: 1 Running; 0 restarts; step 10 loss 0.9"
    ch = Channel(
        state("working", running),
        state("working", running, poll_ms=5000),
        state("working", "train: running; pods: 1 Running; 0 restarts; step 500 loss 0.4; "
              "GPU utilization 88.5%"),
        done(),
    )  # fmt: skip
    first = state("working", "job submitted; train: pending: waiting for quota", poll_ms=2000)
    followed, seen = run_follow(ch, first, total=1000)
    assert followed.reason == "ended"
    assert ch.polls == 4
    assert ch.slept == [2.0, 3.0, 5.0, 3.0]  # each state's own pollIntervalMs
    # each change of state once: the repeated one is not reported again
    assert [v.state for v in seen] == ["pending", "running", "running", "succeeded"]
    assert (seen[1].step, seen[1].loss, seen[1].gpu_util, seen[1].restarts) == (10, 0.9, None, 0)
    assert (seen[2].step, seen[2].total, seen[2].gpu_util) == (500, 1000, 88.5)
    assert seen[2].fraction == 0.5
    last = seen[-1]
    assert (last.status, last.step, last.loss, last.gpu_util, last.fraction) == (
        "completed", 1000, 0.12, 91.5, 1.0,
    )  # fmt: skip
    assert "step 500/1000" in seen[2].line()
    assert "GPU 88.5%" in seen[2].line()


def test_an_interval_out_of_bounds_is_brought_inside() -> None:
    ch = Channel(state("working", "a", poll_ms=10), state("working", "b", poll_ms=10**9), done())
    run_follow(ch, state("working", "first", poll_ms=None))
    assert ch.slept == [T.DEFAULT_POLL_MS / 1000, T.MIN_POLL_MS / 1000, T.MAX_POLL_MS / 1000]


def test_the_follow_stops_at_its_time_bound_and_says_how_to_go_on() -> None:
    ch = Channel(*[state("working", f"train: running; step {i}") for i in range(100)])
    first = state("working", "job submitted")
    followed, _ = run_follow(ch, first, limit_s=10)
    assert followed.reason == "limit"
    assert sum(ch.slept) <= 10
    assert ch.polls == 3  # at 3, 6 and 9 s; a poll at 12 s would be past the bound
    created = T.CreatedTask(task_id=TID, status="working", _meta={T.SUBMIT_META: SUBMIT})
    out = T.final_result(created, followed)
    assert not out.is_error
    assert out.structured_content == SUBMIT
    text = out.content[0].text  # type: ignore[union-attr]
    assert TID in text
    assert "wait_job" in text
    assert '"name": "train"' in text


def test_a_failed_job_and_a_lost_task() -> None:
    followed, _ = run_follow(Channel(done("failed")), state("working", "x"))
    created = T.CreatedTask(task_id=TID, status="working", _meta={T.SUBMIT_META: SUBMIT})
    final = T.final_result(created, followed)
    assert final.is_error
    assert final.structured_content["job_status"] == "failed"  # type: ignore[index]
    lost, _ = run_follow(
        Channel(MCPError(code=-32602, message="task not found")), state("working", "x")
    )
    assert lost.reason == "lost"
    assert "task not found" in lost.error
    assert TID in T.final_result(created, lost).content[0].text  # type: ignore[union-attr]


def test_a_task_gone_after_a_cancel_is_cancelled() -> None:
    ch = Channel(MCPError(code=-32602, message="task not found"))
    followed, seen = run_follow(ch, state("working", "x"), cancel_sent=lambda: True)
    assert followed.reason == "ended"
    assert seen[-1].status == seen[-1].state == "cancelled"


def test_the_follower_cancels_only_the_task_it_follows_and_wakes_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ch = Channel(state("cancelled", "train: cancelled (the job is being deleted)"))
    monkeypatch.setattr(T, "SessionChannel", lambda _session: ch)
    seen: list[T.TaskView] = []
    follower = T.TaskFollower(seen.append, limit_s=600)
    created = T.CreatedTask(
        task_id=TID, status="working", status_message="job submitted", poll_interval_ms=60_000,
        _meta={T.SUBMIT_META: SUBMIT},
    )  # fmt: skip
    ctx = ClaimContext(session=None, tool_name="submit_job", read_timeout_seconds=None)  # type: ignore[arg-type]

    async def go() -> Any:
        async with anyio.create_task_group() as tg:
            results: list[Any] = []

            async def resolve() -> None:
                results.append(await follower._resolve(created, ctx))

            tg.start_soon(resolve)
            await anyio.wait_all_tasks_blocked()
            assert await follower.cancel("job1.other") is False
            assert await follower.cancel(TID) is True
            with anyio.fail_after(5):  # woken by the cancel, not after the 60 s interval
                while TID in follower.watching:
                    await anyio.sleep(0.01)
        return results[0]

    out = anyio.run(go)
    assert ch.cancels == [TID]
    assert seen[-1].status == "cancelled"
    assert "cancelled" in out.content[0].text
    assert TID not in follower.watching


@pytest.mark.parametrize(
    ("arguments", "total"),
    [
        ({"env": {"TOTAL_STEPS": "1000"}}, 1000),
        ({"env": {"MAX_STEPS": "x"}}, None),
        ({"args": ["--max-steps=250"]}, 250),
        ({"command": ["python", "train.py", "--num_steps", "40"]}, 40),
        ({"args": ["--lr", "3"]}, None),
        ({}, None),
    ],
)
def test_a_submit_names_its_number_of_steps(arguments: dict[str, Any], total: int | None) -> None:
    assert T.total_steps(arguments) == total


def test_a_submit_still_waiting_for_its_approval_says_so_when_the_follow_stops() -> None:
    waiting = "approval_pending: request r-1 waits for an approver in group gpu-approvers"
    ch = Channel(*[state("input_required", waiting, poll_ms=5000) for _ in range(10)])
    followed, seen = run_follow(ch, state("input_required", waiting, poll_ms=5000), limit_s=12)
    assert followed.reason == "limit"
    assert ch.polls == 2
    assert {v.state for v in seen} == {"waiting for approval"}
    out = T.final_result(T.CreatedTask(task_id=TID, status="input_required"), followed)
    assert out.is_error  # no job yet: the submit has not been done
    text = out.content[0].text  # type: ignore[union-attr]
    assert TID in text
    assert "waiting" in text


def test_the_terminal_shows_one_progress_line_a_state() -> None:
    import io

    from rich.console import Console

    from mcp_kube.llm.console import _Terminal
    from mcp_kube.settings import LlmSettings

    buf = io.StringIO()
    term = _Terminal(LlmSettings(), None, Console(file=buf, width=200))  # type: ignore[arg-type]
    message = "train: running; pods: 1 Running; 0 restarts; step 30 loss 0.5; GPU utilization 70%"
    term.task_line(T.read_view(state("working", message), 120, 12.0))
    term.task_line(T.read_view(done(), 120, 30.0))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    assert "task running" in lines[0]
    assert "step 30/120 · loss 0.5 · GPU 70%" in lines[0]
    assert "task succeeded" in lines[1]
    assert "[bold]" not in buf.getvalue()  # markup is rendered, the message escaped
