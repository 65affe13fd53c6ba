"""`mcp-kube call ... --follow`: which results name a job, how wait_job calls are chained, and
the exit code, with a scripted stand-in for the MCP client's call_tool."""

from __future__ import annotations

import io
import time
from typing import Any

import anyio
from mcp.types import CallToolResult, TextContent

from mcp_kube.cli import follow


def result(ended: bool, status: str, *, error: bool = False) -> CallToolResult:
    job = {"cluster": "gpu-east", "namespace": "team-a", "name": "train", "status": status}
    return CallToolResult(
        content=[TextContent(type="text", text=f"train {status}\nmore")],
        structured_content=None if error else {"ended": ended, "job": job},
        is_error=error,
    )


class Script:
    """Answers wait_job calls in order, sending one progress report each."""

    def __init__(self, *answers: CallToolResult) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, tool: str, args: dict[str, Any], **kw: Any) -> CallToolResult:
        assert tool == "wait_job"
        self.calls.append(args)
        await kw["progress_callback"](1.0, 20.0, f"report {len(self.calls)}")
        return self.answers.pop(0)


def test_the_job_a_result_names() -> None:
    submitted = {"cluster": "gpu-east", "namespace": "team-a", "name": "x", "created": True}
    assert follow.target_of("submit_job", submitted) == ("gpu-east", "team-a", "x")
    waited = {"ended": False, "job": {"cluster": "c", "namespace": "n", "name": "j"}}
    assert follow.target_of("wait_job", waited) == ("c", "n", "j")
    assert follow.target_of("list_jobs", submitted) is None
    assert follow.target_of("submit_job", None) is None
    assert follow.target_of("submit_job", {"namespace": "team-a"}) is None


def test_wait_job_is_called_again_until_the_job_ends() -> None:
    script = Script(result(False, "active"), result(False, "active"), result(True, "succeeded"))
    out = io.StringIO()
    got = anyio.run(follow.follow_job, script, ("gpu-east", "team-a", "train"), 600.0, out)
    assert (got["ended"], got["status"], got["calls"], got["is_error"]) == (
        True,
        "succeeded",
        3,
        False,
    )
    assert script.calls[0] == {
        "namespace": "team-a",
        "name": "train",
        "cluster": "gpu-east",
        "timeout_s": follow.WAIT_CALL_S,
    }
    lines = out.getvalue().splitlines()
    assert [ln.split("] ", 1)[1] for ln in lines] == [
        "report 1",
        "report 2",
        "report 3",
        "train succeeded",
    ]
    assert follow.exit_code(got) == 0


def test_a_failed_job_a_failed_call_and_a_job_still_running_have_their_exit_codes() -> None:
    target = ("", "team-a", "train")
    failed = anyio.run(
        follow.follow_job, Script(result(True, "failed")), target, 60.0, io.StringIO()
    )
    assert follow.exit_code(failed) == 1
    script = Script(result(False, "active", error=True), result(True, "succeeded"))
    broken = anyio.run(follow.follow_job, script, target, 60.0, io.StringIO())
    assert (broken["is_error"], broken["calls"], follow.exit_code(broken)) == (True, 1, 1)
    assert "cluster" not in script.calls[0]  # the server's default cluster
    # the follow limit has (nearly) run out: one short call, then the answer as it stands
    script = Script(result(False, "active"))
    running = anyio.run(follow.follow_job, script, target, 0.5, io.StringIO())
    assert (running["ended"], running["calls"], script.calls[0]["timeout_s"]) == (False, 1, 1)
    assert follow.exit_code(running) == follow.EXIT_NOT_ENDED


def test_answers_that_come_back_at_once_are_not_a_busy_loop() -> None:
    script = Script(result(False, "active"), result(False, "active"))
    started = time.monotonic()
    got = anyio.run(follow.follow_job, script, ("", "team-a", "train"), 1.8, io.StringIO())
    assert got["calls"] == 2  # a pause of MIN_CALL_S after the first, then the limit is near
    assert time.monotonic() - started >= follow.MIN_CALL_S
