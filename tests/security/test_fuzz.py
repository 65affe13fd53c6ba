"""Fuzzing every tool over both transports: arguments generated from each tool's inputSchema
(hypothesis-jsonschema), plus arbitrary JSON objects. Every call must end as a result or a clean
tool error: no unhandled exception, no traceback, no internal path in any response.

FUZZ_CALLS is split evenly over the transports and the tools: 2,000 in `make test` (about a
minute per transport on two cores), 10,000 in `make soak`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp import Client
from mcp_helpers import http_server, stdio_client

from mcp_kube.tools import catalog

TOTAL = int(os.environ.get("FUZZ_CALLS", "2000"))
# a traceback, a source location, or a path of this checkout or of the user's home
_PLACES = (Path(__file__).resolve().parents[2], Path.home())
LEAKS = re.compile(
    r"Traceback|File \"/|site-packages|\.py\", line|" + "|".join(re.escape(str(p)) for p in _PLACES)
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _schemas() -> dict[str, dict[str, Any]]:
    from mcp_kube.server.app import _strict_schema

    return {spec.name: _strict_schema(spec) for spec in catalog.TOOLS}


def examples(schema: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """n argument objects: about 3/4 valid under the schema, 1/4 arbitrary JSON objects."""
    out: list[dict[str, Any]] = []
    strategy = st.one_of(
        from_schema(schema),
        from_schema(schema),
        from_schema(schema),
        st.dictionaries(st.text(max_size=16), JSON, max_size=6),
    )

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(args: dict[str, Any]) -> None:
        out.append(args)

    collect()
    return out[:n]


async def _run(client: Client, cases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    problems: list[str] = []
    async with client:
        for name, args in cases:
            try:
                r = await client.call_tool(name, args)
            except Exception as e:  # a protocol-level error must still be clean
                text = str(e)
                if LEAKS.search(text):
                    problems.append(f"{name} {json.dumps(args)[:200]}: {text[:300]}")
                continue
            text = " ".join(getattr(c, "text", "") for c in r.content)
            blob = text + json.dumps(r.structured_content or {})
            if LEAKS.search(blob):
                problems.append(f"{name} {json.dumps(args)[:200]}: {blob[:300]}")
            if r.is_error and not re.match(r"error \[[a-z_]+\]: ", text):
                problems.append(f"{name} {json.dumps(args)[:200]}: unclassified error {text[:200]}")
    return problems


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_generated_arguments_never_break_the_server(testbed, transport: str) -> None:
    schemas = _schemas()
    per_tool = max(1, TOTAL // 2 // len(schemas))
    cases = [
        (name, args) for name, schema in schemas.items() for args in examples(schema, per_tool)
    ]
    contexts = ["gpu-east", "gpu-west"]
    if transport == "stdio":
        problems = anyio.run(_run, stdio_client(testbed.kubeconfig, contexts), cases)
    else:
        with http_server(testbed.kubeconfig, contexts) as (url, proc):
            problems = anyio.run(_run, Client(url), cases)
            assert proc.poll() is None  # still serving
    print(f"{transport}: {len(cases)} fuzzed calls, {len(problems)} problems")
    assert problems == []
