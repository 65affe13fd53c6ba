"""The tool list is an interface: any change to names, texts, schemas or annotations is reviewed.

After an intended change, regenerate with ``MCP_KUBE_UPDATE_SNAPSHOTS=1 pytest tests/unit`` and
review the diff of ``tests/unit/snapshots/tools.json`` like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
from mcp import Client

from mcp_kube.kube.port import ClusterSource
from mcp_kube.server.app import build_server
from mcp_kube.settings import Settings

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools.json"


class NoClusters(ClusterSource):
    names: tuple[str, ...] = ()

    def resolve(self, name):
        raise AssertionError("listing tools must not touch clusters")

    def get(self, name):
        raise AssertionError("listing tools must not touch clusters")


def current_tools() -> list[dict]:
    server = build_server(Settings(), clusters=NoClusters, audit=lambda: None)

    async def go() -> list[dict]:
        async with Client(server) as client:
            tools = (await client.list_tools()).tools
            return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]

    return anyio.run(go)


def test_tool_list_matches_the_reviewed_snapshot() -> None:
    tools = current_tools()
    text = json.dumps(tools, indent=2, sort_keys=True) + "\n"
    if os.environ.get("MCP_KUBE_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.is_file(), "no snapshot yet: run with MCP_KUBE_UPDATE_SNAPSHOTS=1"
    assert json.loads(SNAPSHOT.read_text()) == json.loads(text), (
        "the tool list changed; review it and regenerate the snapshot (see module docstring)"
    )


WRITES = {"submit_job", "cancel_job", "suspend_job", "resume_job"}


def test_annotations_are_honest_and_schemas_strict() -> None:
    for tool in current_tools():
        writes = tool["name"] in WRITES
        assert tool["annotations"]["readOnlyHint"] is not writes, tool["name"]
        assert tool["annotations"]["destructiveHint"] is writes, tool["name"]
        assert tool["annotations"]["openWorldHint"] is False
        assert tool["inputSchema"]["additionalProperties"] is False
        assert "outputSchema" in tool
        assert len(tool["description"]) < 600


def test_header_checks_get_the_schemas_that_declare_headers_and_only_those() -> None:
    """The transport checks ``Mcp-Param-*`` headers against the schema it is given: a tool that
    declares a header keeps that check; one that declares none has nothing to check."""
    server = build_server(Settings(), clusters=NoClusters, audit=lambda: None)
    lookup = server._lowlevel_server.get_tool_input_schema
    assert lookup is not None
    jobs = lookup("list_jobs")
    assert jobs is not None
    assert '"x-mcp-header"' in json.dumps(jobs)
    assert lookup("list_jobs") is jobs  # decided once per schema
    assert lookup("gpu_inventory") is None
    assert lookup("no_such_tool") is None
