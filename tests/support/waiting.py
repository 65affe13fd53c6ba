"""Polling a live testbed until what a test asserts holds (controllers act a moment later)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout: float = 60, every: float = 1) -> T:
    """The first truthy answer of ``check``, asked every ``every`` seconds; fails the test,
    naming ``what``, when none came within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)
