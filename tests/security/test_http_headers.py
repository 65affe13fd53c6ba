"""Routing headers over streamable HTTP (MCP 2026-07-28, SEP-2243) on a real `mcp-kube serve`
with a bearer token: `Mcp-Method`, `Mcp-Name` and `Mcp-Param-Namespace` that disagree with
the JSON-RPC body are refused with 400 (`HEADER_MISMATCH`), on every protocol version; absent
ones are accepted from clients of earlier versions, which send none. Raw HTTP requests."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlsplit

import pytest
from mcp_helpers import INIT, JSON_HEADERS, http_server

MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "prober", "version": "1"},
}
MISMATCH = -32020  # HEADER_MISMATCH


@pytest.fixture(scope="module")
def served(testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(URL, bob's token) of a server that authenticates with a static token file."""
    folder = tmp_path_factory.mktemp("http-headers")
    token = secrets.token_urlsafe(32)
    entry = {"sha256": hashlib.sha256(token.encode()).hexdigest(), "principal": "bob"}
    (folder / "tokens.yaml").write_text(json.dumps({"tokens": [entry]}))
    extra = ["--token-file", str(folder / "tokens.yaml")]
    with http_server(testbed.kubeconfig, ["gpu-east"], extra) as (url, proc):
        yield url, token
        assert proc.poll() is None


def rpc(
    method: str, params: dict[str, Any] | None = None, *, modern: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": method}
    if params is not None or modern:
        body["params"] = dict(params or {}) | ({"_meta": MODERN_META} if modern else {})
    return body


def post(
    url: str, body: dict[str, Any], headers: dict[str, str] | list[tuple[str, str]]
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers (lowercase names) and the JSON-RPC message of a JSON or one-event SSE
    response. Header lines are sent as given: a repeated one stays repeated."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    data = json.dumps(body).encode()
    lines = list(headers.items()) if isinstance(headers, dict) else headers
    try:
        conn.putrequest("POST", parts.path)
        for name, value in [*lines, ("Content-Length", str(len(data)))]:
            conn.putheader(name, value)
        conn.endheaders(data)
        r = conn.getresponse()
        text = r.read().decode(errors="replace")
        got = {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()
    events = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
    message = json.loads(events[-1] if events else text) if (events or text.strip()) else {}
    return r.status, got, message


def refused(reply: tuple[int, dict[str, str], dict[str, Any]]) -> bool:
    status, _, message = reply
    return status == 400 and message.get("error", {}).get("code") == MISMATCH


def test_on_2026_07_28_routing_headers_are_required_and_must_agree(served) -> None:
    """The SDK's per-request path (the conformance suite checks it more thoroughly)."""
    url, token = served
    ok = JSON_HEADERS | {"Authorization": f"Bearer {token}", "MCP-Protocol-Version": MODERN}
    listed = post(url, rpc("tools/list", modern=True), ok | {"Mcp-Method": "tools/list"})
    schemas = {t["name"]: t["inputSchema"] for t in listed[2]["result"]["tools"]}
    assert schemas["list_jobs"]["properties"]["namespace"]["x-mcp-header"] == "Namespace"
    who = rpc("tools/call", {"name": "whoami", "arguments": {}}, modern=True)
    call = ok | {"Mcp-Method": "tools/call"}
    reply = post(url, who, call | {"Mcp-Name": "whoami"})
    assert reply[2]["result"]["structuredContent"]["subject"] == "bob"
    for wrong in (
        call | {"Mcp-Name": "list_jobs"},  # another tool than the body's
        ok | {"Mcp-Method": "tools/list", "Mcp-Name": "whoami"},  # another method
        call,  # Mcp-Name missing
        ok | {"Mcp-Name": "whoami"},  # Mcp-Method missing
    ):
        assert refused(post(url, who, wrong)), wrong
    args = {"name": "list_jobs", "arguments": {"namespace": "team-a"}}
    jobs, call = rpc("tools/call", args, modern=True), call | {"Mcp-Name": "list_jobs"}
    assert "result" in post(url, jobs, call | {"Mcp-Param-Namespace": "team-a"})[2]
    assert refused(post(url, jobs, call | {"Mcp-Param-Namespace": "team-b"}))
    assert refused(post(url, jobs, call))  # the declared header missing


def test_older_clients_send_none_and_disagreeing_ones_are_refused(served) -> None:
    url, token = served
    ok = JSON_HEADERS | {"Authorization": f"Bearer {token}"}
    status, headers, _ = post(url, INIT, ok)  # no routing headers, as every older client
    assert status == 200
    assert post(url, INIT, ok | {"Mcp-Method": "initialize"})[0] == 200
    assert refused(post(url, INIT, ok | {"Mcp-Method": "tools/list"}))
    twice = [("Mcp-Method", "initialize"), ("Mcp-Method", "initialize")]
    assert refused(post(url, INIT, [*ok.items(), *twice]))

    ok |= {"Mcp-Session-Id": headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18"}
    assert post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, ok)[0] == 202
    who = rpc("tools/call", {"name": "whoami", "arguments": {}})
    assert post(url, who, ok)[2]["result"]["structuredContent"]["subject"] == "bob"
    assert "result" in post(url, who, ok | {"Mcp-Method": "tools/call", "Mcp-Name": "whoami"})[2]
    assert refused(post(url, who, ok | {"Mcp-Name": "list_jobs"}))
    assert refused(post(url, who, ok | {"Mcp-Method": "tools/list"}))
    jobs = rpc("tools/call", {"name": "list_jobs", "arguments": {"namespace": "team-a"}})
    assert "result" in post(url, jobs, ok | {"Mcp-Param-Namespace": "team-a"})[2]
    assert refused(post(url, jobs, ok | {"Mcp-Param-Namespace": "team-b"}))


def test_authentication_comes_before_the_header_check(served) -> None:
    url, _ = served
    assert post(url, INIT, JSON_HEADERS | {"Mcp-Method": "tools/list"})[0] == 401
    modern = JSON_HEADERS | {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
    assert post(url, rpc("initialize", modern=True), modern)[0] == 401


def test_every_declared_routing_header_is_one_the_sdk_accepts() -> None:
    """An x-mcp-header the SDK finds invalid would make conforming clients drop the tool."""
    from mcp.shared.inbound import find_invalid_x_mcp_header

    from mcp_kube.server.app import make_tool
    from mcp_kube.tools.catalog import TOOLS

    declared = set()
    for spec in TOOLS:
        schema = make_tool(spec, lambda: None, lambda _c: None).parameters  # type: ignore[arg-type,return-value]
        assert find_invalid_x_mcp_header(schema) is None, spec.name
        if schema["properties"].get("namespace", {}).get("x-mcp-header") == "Namespace":
            declared.add(spec.name)
    assert {"list_jobs", "get_job", "pod_logs", "list_events", "submit_job"} <= declared
