"""wait_job over real MCP clients (stdio and streamable HTTP) against the live testbed: a
short KWOK job is followed to its end, with progress notifications on the way."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from mcp import Client
from support.objects import H100, KWOK_COMPLETE, NS, job

from mcp_kube.testbed import cluster

from .mcp_helpers import http_server, stdio_client

CONTEXTS = ["gpu-east", "gpu-west"]
RUN_S = "8s"  # the pod runs this long: several polls (every 2 s) before the Job ends
# The call limit is raised so that the wait bound (limit less the final read) outlasts the job
# on a loaded machine; the default limit caps a wait at 20 s.
LIMIT_ENV = {"MCP_KUBE_LIMITS__CALL_TIMEOUT_S": "120"}


@pytest.fixture
def short_job(testbed: cluster.TestbedState) -> Iterator[str]:
    """A 1-GPU Job on an H100 whose pod runs for ``RUN_S``, then completes."""
    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    batch = k8s.BatchV1Api(api)
    name = f"wait-{uuid.uuid4().hex[:6]}"
    body = job(
        name,
        node_selector={"nvidia.com/gpu.product": H100},
        template_meta={"annotations": {KWOK_COMPLETE: RUN_S}},
    )
    batch.create_namespaced_job(NS, body)
    try:
        yield name
    finally:
        batch.delete_namespaced_job(name, NS, propagation_policy="Background")
        api.close()


async def _follow(client: Client, name: str) -> tuple[Any, list[tuple[float, Any, Any]]]:
    seen: list[tuple[float, Any, Any]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        seen.append((p, total, message))

    async with client:
        args = {"cluster": "gpu-east", "namespace": NS, "name": name, "timeout_s": 90}
        result = await client.call_tool(
            "wait_job", args, read_timeout_seconds=150, progress_callback=on_progress
        )
    return result, seen


def _check(result: Any, seen: list[tuple[float, Any, Any]], name: str) -> None:
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["ended"] is True, out
    assert out["job"]["status"] == "succeeded"
    assert out["job"]["succeeded"] == 1
    assert out["polls"] >= 3
    assert len(seen) >= 3, seen
    values = [p for p, _, _ in seen]
    assert all(a < b for a, b in itertools.pairwise(values)), values
    assert all(total == out["wait_limit_s"] for _, total, _ in seen)
    messages = [m or "" for _, _, m in seen]
    assert any("Running" in m for m in messages), messages
    assert any("step " in m and "loss " in m for m in messages), messages  # from the log
    assert messages[-1] == f"{name}: succeeded (ended)"
    assert result.content[0].text.startswith(f"{name} ended (succeeded)")


def test_wait_job_over_stdio_reports_progress_until_the_job_ends(testbed, short_job) -> None:
    c = stdio_client(testbed.kubeconfig, CONTEXTS, env=LIMIT_ENV)
    result, seen = anyio.run(_follow, c, short_job)
    _check(result, seen, short_job)


def test_wait_job_over_http_reports_progress_until_the_job_ends(
    testbed, short_job, monkeypatch
) -> None:
    for key, value in LIMIT_ENV.items():
        monkeypatch.setenv(key, value)  # the server process inherits the environment
    with http_server(testbed.kubeconfig, CONTEXTS) as (url, _proc):
        result, seen = anyio.run(_follow, Client(url), short_job)
    _check(result, seen, short_job)
