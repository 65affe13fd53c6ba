"""How a long tool call tells its caller how far it has come, without knowing the protocol.

The transport (``mcp_kube.server``) sets ``REPORTER`` around a call; a tool calls ``report``.
MCP sends a report only to a client that asked for progress (a ``progressToken``). With no
reporter, or when the client has gone, a report is a no-op: progress is a courtesy, never a
reason to fail a call.
A context variable, like ``domain.ACTING_FOR``, so that the gate in between stays as it is.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

__all__ = ["REPORTER", "Reporter", "report"]

log = logging.getLogger("mcp_kube.tools.progress")

Reporter = Callable[[float, float | None, str], Awaitable[None]]
"""(progress, total or None, message): progress must grow with every report (MCP's rule)."""

REPORTER: ContextVar[Reporter | None] = ContextVar("mcp_kube_progress_reporter", default=None)


async def report(progress: float, total: float | None, message: str) -> bool:
    """Hand one progress report to the transport, if there is one; True when handed over."""
    reporter = REPORTER.get()
    if reporter is None:
        return False
    try:
        await reporter(progress, total, message[:500])
    except Exception:  # a closed stream or a slow client must not end the call
        with contextlib.suppress(Exception):
            log.debug("progress report not delivered", exc_info=True)
        return False
    return True
