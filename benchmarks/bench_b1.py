"""B1: time until the client holds the free GPUs per product, checked against the fleet file.

Every contender's clock stops once a dict {product: free GPUs} exists in the client, so the
peers' figures include decoding and reducing their output. Cold: the first call of a freshly
started server (one server per run); repeat: the same call again on that server (mcp-kube
answers it from its watch caches, the others list again). kubectl + jq is always cold.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import anyio
from bench_answers import JQ, check, expected, free_by_product, items_of
from bench_common import Setup, stats
from mcp import Client

PEER_CALLS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "kms": [
        ("resources_list", {"apiVersion": "v1", "kind": "Node"}),
        ("resources_list", {"apiVersion": "v1", "kind": "Pod"}),
    ],
    "msk": [
        ("kubectl_generic", {"command": "get", "resourceType": "nodes", "outputFormat": "json"}),
        (
            "kubectl_generic",
            {
                "command": "get",
                "resourceType": "pods",
                "allNamespaces": True,
                "outputFormat": "json",
            },
        ),
    ],
}


async def _ours_free(c: Client) -> dict[str, int]:
    r = await c.call_tool("gpu_inventory", {"include_nodes": False})
    assert not r.is_error, r.content
    assert r.structured_content is not None
    return {p["product"]: p["free"] for p in r.structured_content["fleet_products"]}


async def _peer_free(c: Client, who: str) -> tuple[dict[str, int], int]:
    lists, size = [], 0
    for name, args in PEER_CALLS[who]:
        r = await c.call_tool(name, args)
        assert not r.is_error, (who, name, str(r.content)[:300])
        size += sum(len(getattr(x, "text", "")) for x in r.content)
        lists.append(items_of(r))
    return free_by_product(lists[0], lists[1]), size


async def _one_server(s: Setup, who: str, repeats: int) -> tuple[float, list[float], Any]:
    """A fresh server: the cold call, then `repeats` repeat calls; the last answer."""
    async with Client(s.stdio(who)) as c:
        t0 = time.perf_counter()
        got = await (_ours_free(c) if who == "ours" else _peer_free(c, who))
        cold = (time.perf_counter() - t0) * 1000
        warm = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            got = await (_ours_free(c) if who == "ours" else _peer_free(c, who))
            warm.append((time.perf_counter() - t0) * 1000)
    return cold, warm, got


async def b1_server(s: Setup, who: str) -> dict[str, Any]:
    want = expected(s.profile)
    cold: list[float] = []
    warm: list[float] = []
    out: dict[str, Any] = {}
    repeats = 4 if who == "ours" else 1
    for _ in range(s.runs):
        c, w, got = await _one_server(s, who, repeats)
        cold.append(c)
        warm += w
        free = got if who == "ours" else got[0]
        check(who, free, want)
        out = {"free_by_product": free}
        if who != "ours":
            out["result_bytes"] = got[1]
    return {"cold": stats(cold), "warm": stats(warm), "checked": True, **out}


def b1_kubectl_jq(s: Setup) -> dict[str, Any]:
    want = expected(s.profile)
    samples, result = [], {}
    nodes, pods = s.work / "nodes.json", s.work / "pods.json"
    k = s.kubectl_args()
    for _ in range(s.runs):
        t0 = time.perf_counter()
        with nodes.open("wb") as f:
            subprocess.run([*k, "get", "nodes", "-o", "json"], stdout=f, check=True)
        with pods.open("wb") as f:
            subprocess.run([*k, "get", "pods", "-A", "-o", "json"], stdout=f, check=True)
        out = subprocess.run(
            [s.jq, "-n", "--slurpfile", "n", str(nodes), "--slurpfile", "p", str(pods), JQ],
            capture_output=True,
            check=True,
        )
        result = {k: int(v) for k, v in sorted(json.loads(out.stdout).items())}
        samples.append((time.perf_counter() - t0) * 1000)
        check("kubectl+jq", result, want)
    return stats(samples) | {"free_by_product": result, "checked": True}


def b1(s: Setup) -> dict[str, Any]:
    out = {"ours": anyio.run(b1_server, s, "ours"), "kubectl_jq": b1_kubectl_jq(s)}
    for who in s.peers:
        out[who] = anyio.run(b1_server, s, who)
    out["expected"] = expected(s.profile)
    out["profile"] = s.profile
    return out
