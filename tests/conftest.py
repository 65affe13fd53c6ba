"""Shared fixtures: the testbed is brought up once per session for integration tests.

Set ``MCP_KUBE_TEST_TESTBED_DIR`` to the run folder of a testbed you started yourself
(``mcp-kube testbed up --clusters 2 --dir ...``) to reuse it; it is then left running.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_kube.testbed import cluster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "unit" in parts:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.TestbedState]:
    given = os.environ.get("MCP_KUBE_TEST_TESTBED_DIR")
    if given:
        state = cluster.load_state(Path(given))
        if state is None:
            pytest.fail(f"MCP_KUBE_TEST_TESTBED_DIR={given} holds no running testbed")
        yield state
        return
    run = tmp_path_factory.mktemp("testbed") / "run"

    def report(msg: str) -> None:
        print(f"[testbed] {msg}", file=sys.stderr, flush=True)

    state = cluster.up(profile="default", clusters=2, run_dir=run, report=report)
    try:
        yield state
    finally:
        cluster.down(run, report=report)
