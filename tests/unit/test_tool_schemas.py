"""The tools' shipped JSON schemas (mcp_kube/server/tool_schemas.json) are what the models make
now: a model changed without the file rewritten fails here."""

from __future__ import annotations

import json

import pytest

from mcp_kube.server import schemas
from mcp_kube.tools import catalog


def test_the_shipped_schemas_are_the_models_own() -> None:
    shipped = json.loads(schemas.FILE.read_text())
    fresh = json.loads(json.dumps(schemas.generate(list(catalog.TOOLS))))
    stale = sorted(n for n in fresh.keys() | shipped.keys() if fresh.get(n) != shipped.get(n))
    assert not stale, f"stale schemas of {stale}: run `python -m mcp_kube.server.schemas --write`"


def test_a_tool_the_file_lacks_gets_its_schemas_made_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = catalog.by_name()["gpu_quota"]
    monkeypatch.setattr(schemas, "_shipped", lambda: {})
    assert schemas.input_schema(spec) == schemas.generate([spec])["gpu_quota"]["input"]
    assert schemas.output_schema(spec)["type"] == "object"


def test_a_served_schema_is_a_copy() -> None:
    spec = catalog.by_name()["gpu_quota"]
    schemas.input_schema(spec)["properties"].clear()
    assert schemas.input_schema(spec)["properties"]
