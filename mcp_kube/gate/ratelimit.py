"""The policy's calls per minute, per principal and tool, over a sliding 60-second window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["RateLimiter"]

WINDOW_S = 60.0


class RateLimiter:
    """Counts the calls each (principal, tool) made in the last minute; in memory, per gate."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calls: dict[tuple[str, str], deque[float]] = {}

    def refusal(self, subject: str, tool: str, limit: int | None) -> str | None:
        """A refusal message when this call would exceed ``limit``; else counts it, None."""
        if not limit:
            return None
        now = self._clock()
        window = self._calls.setdefault((subject, tool), deque())
        while window and now - window[0] > WINDOW_S:
            window.popleft()
        if len(window) >= limit:
            return f"rate limit: at most {limit} {tool} calls per minute for {subject}"
        window.append(now)
        return None
