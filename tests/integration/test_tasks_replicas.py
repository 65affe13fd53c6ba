"""Two ``mcp-kube serve --transport http`` replicas behind a round-robin proxy, one MCP client.

The proxy (written here) forwards each HTTP request to the next replica in turn, streaming the
answer back, as a load balancer without session affinity does. Through it, one ``mcp`` SDK
client that declares the Tasks extension reads, submits a job that waits for an out-of-band
approval (a task, ``input_required``), sees bob approve it with `mcp-kube approve`, follows
the task until its job completes, then submits a second one and cancels it once it runs. Both
replicas answer; each writes its own audit log, and each verifies.

The approvals setup (namespace, the approvers' Role, the admission policy) is
``test_approvals``' ``admin`` fixture; the policy is ``tests/data/submit-out-of-band.yaml``:
every submit waits for a member of team-b.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
import uvicorn
from kubernetes import client as k8s
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from starlette.types import Receive, Scope, Send
from support.tasks import CreatedTask, DetailedTask, TasksClient, cancel_task, get_task

from mcp_kube.audit import verify
from mcp_kube.testbed import cluster

from .mcp_helpers import MCP_KUBE, free_port, http_server
from .test_approvals import admin, wait_for_rbac  # noqa: F401 (the approvals fixture)
from .test_tasks_mcp import IMAGE, NS, audit_events

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "tests" / "data" / "submit-out-of-band.yaml"
APPROVALS_NS = "mcp-kube-system"
HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}
HOP_BY_HOP |= {"upgrade", "te", "trailer", "proxy-connection"}
pytestmark = pytest.mark.usefixtures("admin")


class RoundRobin:
    """An ASGI app that forwards every HTTP request to the next upstream in turn and streams
    its answer back; ``served`` counts the requests each upstream got."""

    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = upstreams
        self.served = [0] * len(upstreams)
        self._next = 0
        self._client: httpx2.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if self._client is not None:
                await self._client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(300, connect=10))
        which = self._next
        self._next = (self._next + 1) % len(self.upstreams)
        self.served[which] += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (k.decode(), v.decode())
            for k, v in scope["headers"]
            if k.decode().lower() not in HOP_BY_HOP
        ]
        query = scope.get("query_string", b"").decode()
        url = self.upstreams[which] + scope["path"] + (f"?{query}" if query else "")
        request = self._client.build_request(scope["method"], url, headers=headers, content=body)
        response = await self._client.send(request, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.encode(), v.encode())
                        for k, v in response.headers.multi_items()
                        if k.lower() not in HOP_BY_HOP
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


@contextlib.contextmanager
def proxy(upstreams: list[str]) -> Iterator[tuple[str, RoundRobin]]:
    """The round-robin proxy on a free loopback port, in a thread: (its /mcp URL, the app)."""
    app = RoundRobin(upstreams)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the proxy did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/mcp", app
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def jobs(testbed: cluster.TestbedState) -> Iterator[list[str]]:
    """Two job names; the jobs and their approval requests are deleted afterwards."""
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=testbed.kubeconfig, context="gpu-east")
    made = [f"rr-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    try:
        yield made
    finally:
        batch, core = k8s.BatchV1Api(api), k8s.CoreV1Api(api)
        for name in made:
            with contextlib.suppress(k8s.ApiException):
                batch.delete_namespaced_job(name, NS, propagation_policy="Background")
        for cm in core.list_namespaced_config_map(APPROVALS_NS).items:
            request = json.loads((cm.data or {}).get("request") or "{}")
            if (request.get("preview") or {}).get("name") in made:
                core.delete_namespaced_config_map(cm.metadata.name, APPROVALS_NS)
        api.close()


def test_one_client_through_a_round_robin_proxy_over_two_replicas(
    testbed: cluster.TestbedState, tmp_path: Path, jobs: list[str]
) -> None:
    wait_for_rbac(testbed)
    audits = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    flags = ["--policy", str(POLICY), "--principal", "alice", "--groups", NS]
    with (
        http_server(testbed.kubeconfig, ["gpu-east"], [*flags, "--audit-log", str(audits[0])]) as a,
        http_server(testbed.kubeconfig, ["gpu-east"], [*flags, "--audit-log", str(audits[1])]) as b,
        proxy([a[0].removesuffix("/mcp"), b[0].removesuffix("/mcp")]) as (url, app),
    ):
        anyio.run(_through_the_proxy, url, testbed.kubeconfig, jobs)
    assert min(app.served) >= 5, app.served  # both replicas answered, alternately
    for path in audits:
        report = verify([path])
        assert report.ok, report.to_dict()
    per_replica = [audit_events(path) for path in audits]
    for events in per_replica:  # task polls and submit replays landed on both
        assert {"get_job", "submit_job"} <= {e["tool"] for e in events}, events
    events = per_replica[0] + per_replica[1]
    assert {"gpu_inventory", "list_jobs", "submit_job", "get_job", "cancel_job"} <= {
        e["tool"] for e in events
    }
    assert {e["principal"]["subject"] for e in events} == {"alice"}
    [cancel] = [e for e in events if e["tool"] == "cancel_job"]
    assert (cancel["outcome"], cancel["arguments"]["name"]) == ("ok", jobs[1])
    submits = [e for e in events if e["tool"] == "submit_job"]
    assert {e.get("error_code") for e in submits} >= {"approval_pending"}
    ran = [e for e in submits if e["outcome"] == "ok"]
    assert sorted(e["arguments"]["name"] for e in ran) == sorted(jobs)  # each ran once


async def _through_the_proxy(url: str, kubeconfig: str, jobs: list[str]) -> None:
    async with Client(url, extensions=[TasksClient()]) as c:
        await c.list_tools()  # the tools' schemas: which arguments go in Mcp-Param-* headers
        inventory = await c.call_tool("gpu_inventory", {"cluster": "gpu-east"})
        assert not inventory.is_error, inventory.content
        listed = await c.call_tool("list_jobs", {"cluster": "gpu-east", "namespace": NS})
        assert not listed.is_error, listed.content

        first = await _submit(c, jobs[0])
        waiting = await get_task(c.session, first.task_id)
        assert waiting.status == "input_required", waiting
        assert waiting.input_requests
        await _approve(kubeconfig, _request_id(first))
        states = await _follow(c, first.task_id, until="completed")
        assert "working" in states, states
        done = await get_task(c.session, first.task_id)
        assert done.result is not None
        assert done.result["structuredContent"]["job_status"] == "succeeded"

        second = await _submit(c, jobs[1])
        with pytest.raises(MCPError) as nothing:  # waiting: nothing runs, nothing to cancel
            await cancel_task(c.session, second.task_id)
        assert "nothing to cancel" in str(nothing.value)
        await _approve(kubeconfig, _request_id(second))
        await _follow(c, second.task_id, until="working")
        await cancel_task(c.session, second.task_id)
        with pytest.raises(MCPError) as gone:
            await get_task(c.session, second.task_id)
        assert gone.value.code == INVALID_PARAMS
        after = await c.call_tool("list_jobs", {"cluster": "gpu-east", "namespace": NS})
        assert jobs[1] not in str(after.structured_content)


async def _submit(c: Client, name: str) -> CreatedTask:
    args = {"cluster": "gpu-east", "name": name, "namespace": NS, "image": IMAGE, "gpus": 1}
    created = await c.session.call_tool("submit_job", args, allow_claimed=True)
    assert isinstance(created, CreatedTask), created
    assert created.status == "input_required", created
    assert created.task_id.startswith("submit1.")
    return created


def _request_id(task: CreatedTask) -> str:
    found = re.search(r"approval requested: ([0-9a-f]{16});", task.status_message or "")
    assert found, task.status_message
    return found.group(1)


async def _approve(kubeconfig: str, rid: str) -> None:
    """bob, an approver (team-b), approves with his own kubeconfig context."""
    argv = [MCP_KUBE, "approve", rid, "--kubeconfig", kubeconfig, "--context", "bob@gpu-east"]
    done = await anyio.run_process([*argv, "--namespace", APPROVALS_NS], check=False)
    assert done.returncode == 0, done.stdout + done.stderr


async def _follow(c: Client, task_id: str, until: str) -> list[str]:
    """Poll the task (each poll on the next replica) until its status is ``until``."""
    seen: list[str] = []
    state: DetailedTask | None = None
    for _ in range(90):
        state = await get_task(c.session, task_id)
        seen.append(state.status)
        if state.status == until:
            return seen
        assert state.status in ("input_required", "working"), state
        await anyio.sleep(1)
    raise AssertionError(f"task {task_id} never reached {until}: {seen} (last: {state})")
