"""The API server misbehaves: it hangs, throttles (429), conflicts (409), fails (500) or goes
away. Each call ends in bounded time with a clear error, makes one request (no retry storm)
and is audited; when the API server is back, the same process serves again. A client that
goes away mid-call cancels it, and the audit log says so.

The faults come from a TLS proxy in front of gpu-east's real API server (``faultproxy``);
gpu-west is reached directly and must not notice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from faultproxy import FaultProxy, Rule
from mcp import Client
from mcp_helpers import http_server
from support.gates import call

from mcp_kube.audit import AuditLog, verify
from mcp_kube.domain import Principal
from mcp_kube.gate import Gate
from mcp_kube.kube.client import ClusterRegistry
from mcp_kube.policy.loader import ReloadablePolicy
from mcp_kube.settings import AuditSettings, ClusterSettings, Limits, Settings
from mcp_kube.testbed import cluster
from mcp_kube.tools.catalog import TOOLS

REPO = Path(__file__).resolve().parents[2]
ALLOW_WRITES = REPO / "tests" / "data" / "allow-writes.yaml"
ALICE = Principal("alice", ("team-a",), "test")
JOBS = r"/apis/batch/v1/namespaces/team-a/jobs"
TIMEOUT = 2.0  # request_timeout_s of the gate under test
UNAVAILABLE = "cluster unavailable: gpu-east"
LIST = {"namespace": "team-a", "cluster": "gpu-east"}


@pytest.fixture(scope="module")
def proxied(
    testbed: cluster.TestbedState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FaultProxy, Path]]:
    """The fault proxy in front of gpu-east, and a kubeconfig whose gpu-east points at it."""
    east = testbed.clusters[0]
    pki = Path(east.folder) / "pki"
    host, port = east.server.removeprefix("https://").rsplit(":", 1)
    proxy = FaultProxy(
        upstream=(host, int(port)),
        serving=(pki / "apiserver.crt", pki / "apiserver.key"),
        client=(pki / "admin.crt", pki / "admin.key"),  # the gpu-east context's user
        ca=pki / "ca.crt",
    ).start()
    config = yaml.safe_load(Path(testbed.kubeconfig).read_text())
    for entry in config["clusters"]:
        if entry["name"] == east.name:
            entry["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path = tmp_path_factory.mktemp("faults") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    try:
        yield proxy, path
    finally:
        proxy.stop()


@pytest.fixture
def faulty(proxied, tmp_path: Path) -> Iterator[tuple[Gate, FaultProxy, Path]]:
    proxy, kubeconfig = proxied
    proxy.set()
    settings = Settings(
        clusters=ClusterSettings(
            kubeconfig=kubeconfig, contexts=["gpu-east", "gpu-west"], request_timeout_s=TIMEOUT
        ),
        audit=AuditSettings(path=tmp_path / "audit.jsonl", fsync=False),
    )
    registry = ClusterRegistry(settings.clusters)
    log = AuditLog(settings.audit.path, fsync=False)
    try:
        yield (
            Gate(registry, settings, ReloadablePolicy([ALLOW_WRITES]), TOOLS, log),
            proxy,
            tmp_path,
        )
    finally:
        proxy.set()
        log.close()
        registry.close()


def timed(gate: Gate, tool: str, args: dict[str, Any]) -> tuple[str, bool, float]:
    """(text, is_error, seconds) of one call as alice."""
    t0 = time.monotonic()
    result = call(gate, tool, args, ALICE)
    return result.text, result.is_error, time.monotonic() - t0


def records(folder: Path) -> list[dict[str, Any]]:
    path = folder / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("status", "words"),
    [(429, "API server is throttling (429): injected 429"), (500, "API server error 500")],
)
def test_an_error_status_is_one_request_a_clear_error_and_an_audited_outcome(
    faulty, status: int, words: str
) -> None:
    gate, proxy, folder = faulty
    proxy.set(Rule("GET", JOBS, "status", status))
    text, is_error, seconds = timed(gate, "list_jobs", LIST)
    assert is_error
    assert text.startswith("error [upstream_error]: gpu-east: ")
    assert words in text
    assert seconds < TIMEOUT  # answered at once, not retried until a deadline
    assert proxy.count("GET", JOBS) == 1  # no retry, even with Retry-After
    record = records(folder)[-1]
    assert (record["tool"], record["outcome"], record["error_code"]) == (
        "list_jobs",
        "error",
        "upstream_error",
    )
    assert [r["status"] for r in record["kube_requests"]] == [status]


def test_a_conflict_on_submit_is_one_request_and_both_records_are_written(faulty) -> None:
    gate, proxy, folder = faulty
    proxy.set(Rule("POST", JOBS, "status", 409))
    job = {"name": "fault-409", "namespace": "team-a", "image": "registry.internal/x:1"}
    text, is_error, _ = timed(gate, "submit_job", job | {"cluster": "gpu-east"})
    assert is_error
    assert "conflict: already exists: injected 409" in text
    assert proxy.count("POST", JOBS) == 1
    kinds = [(r["kind"], r["outcome"]) for r in records(folder)]
    assert kinds == [("tool_call.intent", "pending"), ("tool_call", "error")]
    assert verify([folder / "audit.jsonl"]).ok


def test_a_hung_api_server_fails_the_call_within_the_request_timeout(faulty) -> None:
    gate, proxy, folder = faulty
    proxy.set(Rule("GET", JOBS, "hang"))
    text, is_error, seconds = timed(gate, "list_jobs", LIST)
    assert is_error
    assert text == f"error [cluster_unavailable]: {UNAVAILABLE} (no answer within {TIMEOUT}s)"
    assert TIMEOUT <= seconds < TIMEOUT + 3
    assert proxy.count("GET", JOBS) == 1
    record = records(folder)[-1]
    assert (record["outcome"], record["error_code"]) == ("error", "cluster_unavailable")
    assert [r["status"] for r in record["kube_requests"]] == [0]  # sent, never answered


def test_the_call_timeout_ends_a_call_even_when_the_request_timeout_is_longer(
    proxied, tmp_path: Path
) -> None:
    proxy, kubeconfig = proxied
    settings = Settings(
        clusters=ClusterSettings(
            kubeconfig=kubeconfig, contexts=["gpu-east"], request_timeout_s=60
        ),
        limits=Limits(call_timeout_s=1.5),
        audit=AuditSettings(path=tmp_path / "audit.jsonl", fsync=False),
    )
    registry = ClusterRegistry(settings.clusters)
    log = AuditLog(settings.audit.path, fsync=False)
    try:
        proxy.set(Rule("GET", JOBS, "hang"))
        gate = Gate(registry, settings, ReloadablePolicy([ALLOW_WRITES]), TOOLS, log)
        text, is_error, seconds = timed(gate, "list_jobs", LIST)
    finally:
        proxy.set()
        log.close()
        registry.close()
    assert is_error
    assert text == "error [timeout]: list_jobs did not finish within 1.5s"
    assert 1.5 <= seconds < 3  # not the 60 s the hung request itself may take
    record = [r for r in records(tmp_path) if r["kind"] == "tool_call"][-1]
    assert (record["outcome"], record["error_code"]) == ("error", "timeout")


def test_an_outage_fails_cleanly_spares_the_other_cluster_and_heals_without_restart(
    faulty,
) -> None:
    gate, proxy, folder = faulty
    text, is_error, _ = timed(gate, "gpu_inventory", {"cluster": "gpu-east"})
    assert not is_error, text  # the watch caches are filled through the proxy
    proxy.set(Rule("*", ".*", "refuse"))  # and now every connection is dropped
    time.sleep(3)
    for tool, args in (("list_jobs", LIST), ("gpu_inventory", {"cluster": "gpu-east"})):
        text, is_error, seconds = timed(gate, tool, args)
        assert is_error, (tool, text)
        assert text.startswith("error [cluster_unavailable]"), text
        assert UNAVAILABLE in text
        assert "Traceback" not in text
        assert seconds < TIMEOUT + 1
    text, is_error, _ = timed(gate, "list_jobs", LIST | {"cluster": "gpu-west"})
    assert not is_error, text
    # the caches' relists back off (0.5 s, 1 s, 2 s, ...): a handful of tries, not a storm
    assert len(proxy.seen) <= 12, proxy.seen
    proxy.set()  # the API server is reachable again
    deadline = time.monotonic() + 30
    while True:
        text, is_error, _ = timed(gate, "gpu_inventory", {"cluster": "gpu-east"})
        if not is_error or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not is_error, text
    assert "Free now:" in text
    assert not timed(gate, "list_jobs", LIST)[1]
    outcomes = [r["outcome"] for r in records(folder)]
    assert outcomes.count("error") >= 2
    assert outcomes[-1] == "ok"


def test_a_client_that_goes_away_cancels_its_call_and_the_audit_log_says_so(
    testbed, proxied, tmp_path: Path
) -> None:
    proxy, kubeconfig = proxied
    proxy.set(Rule("GET", JOBS, "hang"))
    audit = tmp_path / "audit.jsonl"
    extra = ["--audit-log", str(audit)]
    try:
        with http_server(str(kubeconfig), ["gpu-east", "gpu-west"], extra) as (url, proc):

            async def go() -> tuple[float, bool]:
                async with Client(url) as client:
                    with anyio.move_on_after(1.5):
                        await client.call_tool("list_jobs", LIST)
                    t0 = time.monotonic()
                    while not audit.exists() or '"cancelled"' not in audit.read_text():
                        assert time.monotonic() - t0 < 10, "no record of the cancelled call"
                        await anyio.sleep(0.1)
                    seen = time.monotonic() - t0
                    later = await client.call_tool("whoami", {})  # the server carries on
                    return seen, bool(later.is_error)

            seen, later_failed = anyio.run(go)
            assert proc.poll() is None
    finally:
        proxy.set()
    assert not later_failed
    assert seen < 5
    rows = [json.loads(line) for line in audit.read_text().splitlines()]
    cancelled = [r for r in rows if r.get("outcome") == "cancelled"]
    assert len(cancelled) == 1
    assert (cancelled[0]["tool"], cancelled[0]["error_code"]) == ("list_jobs", "cancelled")
    assert verify([audit]).ok
