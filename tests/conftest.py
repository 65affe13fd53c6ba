"""Shared fixtures: the testbed is brought up once per session for integration tests.

Set ``MCP_KUBE_TEST_TESTBED_DIR`` to the run folder of a testbed you started yourself
(``mcp-kube testbed up --clusters 2 --dir ...``) to reuse it; it is then left running.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_kube.testbed import cluster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts or "security" in parts:
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


@pytest.fixture(scope="session")
def gate(testbed: cluster.TestbedState) -> Iterator[Any]:
    """The real gate over the testbed's two clusters, every tool, read-only policy (no MCP)."""
    from mcp_kube.gate import Gate
    from mcp_kube.kube.client import ClusterRegistry
    from mcp_kube.policy.decision import ReadOnlyPolicy
    from mcp_kube.settings import ClusterSettings, Settings
    from mcp_kube.tools.catalog import TOOLS

    settings = Settings(
        clusters=ClusterSettings(
            kubeconfig=Path(testbed.kubeconfig), contexts=["gpu-east", "gpu-west"]
        )
    )
    registry = ClusterRegistry(settings.clusters)
    try:
        yield Gate(registry, settings, ReadOnlyPolicy(), TOOLS)
    finally:
        registry.close()


@pytest.fixture
def settled_fleet(testbed: cluster.TestbedState) -> None:
    """Wait (up to two minutes) until only the fleet file's GPU pods hold GPUs and quota.

    Tests that compare numbers with the fleet file use this: other tests' Jobs, and pods
    still terminating after their Job was deleted, would otherwise shift the counts.
    """
    from kubernetes import client, config

    from mcp_kube.testbed import fleet

    deadline = time.monotonic() + 120
    for cl in testbed.clusters:
        cfg = client.Configuration()
        config.load_kube_config(
            config_file=testbed.kubeconfig, context=cl.context, client_configuration=cfg
        )
        core = client.CoreV1Api(client.ApiClient(cfg))
        expected = fleet.load_fleet(cl.profile).expected.quota_used
        while True:
            foreign = [
                f"{p.metadata.namespace}/{p.metadata.name}"
                for p in core.list_pod_for_all_namespaces().items
                if fleet.TESTBED_LABEL not in (p.metadata.labels or {})
                and p.status.phase not in ("Succeeded", "Failed")
                and any(
                    "gpu" in r
                    for c in p.spec.containers
                    for r in ((c.resources and c.resources.requests) or {})
                )
            ]
            used = {
                ns: core.read_namespaced_resource_quota("gpu-quota", ns).status.used.get(
                    "requests.nvidia.com/gpu"
                )
                for ns in expected
            }
            if not foreign and used == {ns: str(n) for ns, n in expected.items()}:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"{cl.name} does not settle to the fleet file: {foreign[:5]} {used}")
            time.sleep(0.5)
