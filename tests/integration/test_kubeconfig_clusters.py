"""The testbed's own kubeconfig, as a new user has it: five contexts per cluster, no --context.

One cluster is one cluster: the fleet view equals the fleet files exactly, no context shows as
an unavailable cluster. And with no kubeconfig at all, the server says so at start and every
cluster tool answers `no_clusters` naming it (never "0 of 0 GPUs").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client as stdio_transport
from support.gates import CLUSTER_CALLS

from mcp_kube.testbed import fleet, identities

from .mcp_helpers import MCP_KUBE, serve_args, stdio_client

REPO = Path(__file__).resolve().parents[2]
PROFILES = {"gpu-east": "default", "gpu-west": "west"}


def test_the_testbed_kubeconfig_without_context_gives_the_fleet_files(
    testbed, settled_fleet
) -> None:
    contexts = [c["name"] for c in yaml.safe_load(Path(testbed.kubeconfig).read_text())["contexts"]]
    assert len(contexts) == len(identities.USER_IDENTITIES) * len(PROFILES)  # 10, 2 clusters

    async def go() -> tuple[Any, Any, Any]:
        async with stdio_client(testbed.kubeconfig, []) as c:  # no --context: every context
            inv = await c.call_tool("gpu_inventory", {"include_nodes": False})
            listed = await c.call_tool("list_clusters", {})
            placed = await c.call_tool("recommend_placement", {"gpus": 1})
            return inv, listed, placed

    inv, listed, placed = anyio.run(go)
    assert not inv.is_error, inv.content
    out = inv.structured_content
    # One row per cluster, every one reachable: no context of a cluster is a cluster of its own.
    assert [(c["cluster"], c["reachable"]) for c in out["clusters"]] == [
        ("gpu-east", True),
        ("gpu-west", True),
    ]
    by_cluster = {c["cluster"]: c for c in out["clusters"]}
    fleet_totals: dict[str, list[int]] = {}
    product_totals: dict[str, list[int]] = {}
    for name, profile in PROFILES.items():
        expected = fleet.load_fleet(profile).expected
        assert by_cluster[name]["gpu_nodes"] == expected.gpu_nodes
        rows = {r["resource"]: r for r in by_cluster[name]["resources"]}
        assert set(rows) == set(expected.resources), name
        for res, t in expected.resources.items():
            got = rows[res]
            assert [got["allocatable"], got["allocated"], got["free"]] == [
                t.allocatable,
                t.allocated,
                t.free,
            ], (name, res)
            acc = fleet_totals.setdefault(res, [0, 0, 0])
            for i, v in enumerate((t.allocatable, t.allocated, t.free)):
                acc[i] += v
        for product, t in expected.products.items():
            acc = product_totals.setdefault(product, [0, 0, 0, 0])
            for i, v in enumerate((t.nodes or 0, t.allocatable, t.allocated, t.free)):
                acc[i] += v
    # The fleet rows are the sums of the fleet files, each cluster counted once.
    assert {r["resource"]: [r["allocatable"], r["allocated"], r["free"]] for r in out["fleet"]} == (
        fleet_totals
    )
    got_products = {
        p["product"]: [p["nodes"], p["allocatable"], p["allocated"], p["free"]]
        for p in out["fleet_products"]
    }
    for product, acc in product_totals.items():
        assert got_products[product] == acc, product
    # The summary a model reads quotes the same totals.
    free = sum(p["free"] for p in out["fleet_products"])
    total = sum(p["allocatable"] for p in out["fleet_products"])
    assert inv.content[0].text.startswith(f"Free now: {free} of {total} GPUs")
    assert "unavailable" not in inv.content[0].text

    # list_clusters: which contexts map to each cluster, and whose credentials are used.
    assert not listed.is_error, listed.content
    rows = {c["name"]: c for c in listed.structured_content["clusters"]}
    assert list(rows) == ["gpu-east", "gpu-west"]
    for name, row in rows.items():
        assert row["reachable"] is True
        assert row["contexts"] == [name] + [
            f"{i.user}@{name}" for i in identities.USER_IDENTITIES if i.user != "admin"
        ]
        assert row["context"] == name  # the current context (east), the first that works (west)
    assert rows["gpu-east"]["default"] is True

    # Placement weighs each cluster once, and no context of one as a cluster of its own.
    assert not placed.is_error, placed.content
    status = placed.structured_content["clusters"]
    assert [(c["cluster"], c["reachable"]) for c in status] == [
        ("gpu-east", True),
        ("gpu-west", True),
    ]
    assert {o["cluster"] for o in placed.structured_content["options"]} == set(PROFILES)


def test_no_kubeconfig_is_said_at_start_and_every_cluster_tool_answers_no_clusters(
    tmp_path: Path,
) -> None:
    """KUBECONFIG names a missing file: `serve` starts, says so on stderr, and no tool answers
    an empty or zero fleet."""
    missing = tmp_path / "no-such" / "kubeconfig"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_KUBE_")}
    env["KUBECONFIG"] = str(missing)
    args = serve_args(str(missing), [], ["--policy", str(REPO / "tests/data/allow-writes.yaml")])
    args = args[:1] + args[3:]  # no --kubeconfig: the server reads $KUBECONFIG
    assert "--kubeconfig" not in args
    stderr_path = tmp_path / "stderr.log"

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        with stderr_path.open("w") as errlog:
            params = StdioServerParameters(command=MCP_KUBE, args=args, env=env)
            async with Client(stdio_transport(params, errlog=errlog)) as c:
                tools = {t.name for t in (await c.list_tools()).tools}
                assert set(CLUSTER_CALLS) | {"whoami"} == tools
                for tool, call in CLUSTER_CALLS.items():
                    out[tool] = await c.call_tool(tool, call)
                out["named"] = await c.call_tool("gpu_inventory", {"cluster": "gpu-east"})
                out["whoami"] = await c.call_tool("whoami", {})
        return out

    results = anyio.run(go)
    said = stderr_path.read_text()
    assert f"read kubeconfig {missing} (from $KUBECONFIG): does not exist; found no context" in (
        said
    ), said
    assert not results.pop("whoami").is_error  # touches no cluster
    for tool, r in results.items():
        text = r.content[0].text
        assert r.is_error, (tool, text)
        assert text.startswith("error [no_clusters]: no clusters: "), (tool, text)
        assert f"kubeconfig {missing} (from $KUBECONFIG) does not exist" in text, (tool, text)
        assert "Free now" not in text
        assert "0 of 0" not in text
