"""``mcp-kube call submit_job ... --follow``: after the submit, follow the job to its end.

The job is followed with ``wait_job`` calls, each bounded by the server, one after the other
until the Job has ended or ``--follow-timeout`` has passed. Every progress notification the
server sends is shown on stderr as one line; stdout keeps the one JSON document of ``call``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import anyio

__all__ = ["EXIT_NOT_ENDED", "FOLLOWABLE", "exit_code", "follow_job", "target_of"]

FOLLOWABLE = ("submit_job", "wait_job")  # tools whose result names a job to follow
WAIT_CALL_S = 60  # wait_job's timeout_s per call; the server may cap it lower
EXIT_NOT_ENDED = 3  # --follow ran out before the job ended
MIN_CALL_S = 1.0  # a wait_job call that came back sooner is followed by a pause this long

CallTool = Callable[..., Awaitable[Any]]


def target_of(tool: str, structured: dict[str, Any] | None) -> tuple[str, str, str] | None:
    """(cluster, namespace, name) of the job a call's result names, or None."""
    if tool not in FOLLOWABLE or not structured:
        return None
    job = structured.get("job") if tool == "wait_job" else structured
    if not isinstance(job, dict) or not all(job.get(k) for k in ("namespace", "name")):
        return None
    return (str(job.get("cluster") or ""), str(job["namespace"]), str(job["name"]))


def _printer(out: TextIO, started: float) -> Callable[[float, float | None, str | None], Any]:
    async def show(_progress: float, _total: float | None, message: str | None) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {message or ''}", file=out, flush=True)

    return show


async def follow_job(
    call_tool: CallTool,
    target: tuple[str, str, str],
    limit_s: float,
    out: TextIO = sys.stderr,
) -> dict[str, Any]:
    """Call wait_job until the job ends, a call fails, or ``limit_s`` has passed.

    Returns ``{"ended", "status", "is_error", "calls", "structured", "text"}`` of the last
    wait_job call (``status``: the job's, or None after an error)."""
    cluster, namespace, name = target
    args: dict[str, Any] = {"namespace": namespace, "name": name}
    if cluster:
        args["cluster"] = cluster
    started = time.monotonic()
    show = _printer(out, started)
    calls = 0
    while True:
        left = limit_s - (time.monotonic() - started)
        wait = max(1, min(WAIT_CALL_S, int(left)))
        before = time.monotonic()
        result = await call_tool(
            "wait_job", {**args, "timeout_s": wait}, read_timeout_seconds=wait + 120,
            progress_callback=show,
        )  # fmt: skip
        calls += 1
        structured = result.structured_content or {}
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        ended = bool(structured.get("ended"))
        status = (structured.get("job") or {}).get("status")
        if result.is_error or ended or time.monotonic() - started >= limit_s - 1:
            break
        if time.monotonic() - before < MIN_CALL_S:  # a server that answers at once: not a spin
            await anyio.sleep(MIN_CALL_S)
    print(f"[{time.monotonic() - started:6.0f}s] {text.splitlines()[0] if text else ''}", file=out)
    return {
        "ended": ended,
        "status": status,
        "is_error": bool(result.is_error),
        "calls": calls,
        "structured": structured or None,
        "text": text,
    }


def exit_code(followed: dict[str, Any]) -> int:
    """0: the job succeeded; 1: it failed or a call failed; ``EXIT_NOT_ENDED``: still going."""
    if followed["is_error"] or followed["status"] == "failed":
        return 1
    return 0 if followed["ended"] else EXIT_NOT_ENDED
