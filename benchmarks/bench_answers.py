"""The B1 answer: free GPUs per product, computed by a client from raw nodes and pods, and the
fleet file's expected answer it must equal.

The rules are gpu_inventory's (mcp_kube/tools/gpuview.py), written again here from the raw
objects as any client of kubectl or of a peer server would: whole-GPU resources only
(nvidia.com/gpu, nvidia.com/gpu.shared, amd.com/gpu; MIG slices are not a product's GPUs);
allocated = GPU requests of non-terminal pods bound to the node; free = allocatable -
allocated, on nodes that take new work (Ready, not cordoned, no NoSchedule/NoExecute taint).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import yaml

from mcp_kube.testbed.fleet import load_fleet

WHOLE_GPU = ("nvidia.com/gpu", "nvidia.com/gpu.shared", "amd.com/gpu")
GPU_PREFIXES = ("nvidia.com/", "amd.com/")
Obj = dict[str, Any]

# The same rules in jq, for the kubectl + jq baseline.
JQ = r"""
def num: if . == null then 0 else tonumber end;
def whole: ["nvidia.com/gpu", "nvidia.com/gpu.shared", "amd.com/gpu"] as $w
  | to_entries | map(select(.key as $k | $w | index($k))) | map(.value | num) | add // 0;
def cgpus: (.resources // {}) | ((.requests // {}) + (.limits // {})) | whole;
($p[0].items | map(select(.status.phase != "Succeeded" and .status.phase != "Failed"
                          and (.spec.nodeName // "") != ""))
  | map({node: .spec.nodeName,
         gpus: ([([.spec.containers[] | cgpus] | add // 0),
                 ([(.spec.initContainers // [])[] | cgpus] | max // 0)] | max)})
  | group_by(.node) | map({key: .[0].node, value: (map(.gpus) | add)}) | from_entries) as $used
| $n[0].items
| map({name: .metadata.name,
       product: (.metadata.labels["nvidia.com/gpu.product"]
                 // .metadata.labels["amd.com/gpu.product-name"] // ""),
       alloc: ((.status.allocatable // {}) | whole),
       ok: ((.spec.unschedulable // false) != true
            and ([(.status.conditions // [])[] | select(.type == "Ready" and .status == "True")]
                 | length > 0)
            and ([(.spec.taints // [])[] | select(.effect == "NoSchedule"
                                                  or .effect == "NoExecute")] | length == 0))})
| map(select(.product != ""))
| map(.free = (if .ok then ([.alloc - ($used[.name] // 0), 0] | max) else 0 end))
| group_by(.product) | map({key: .[0].product, value: (map(.free) | add)}) | from_entries
"""


def _qty(v: Any) -> int:
    return int(float(str(v))) if v not in (None, "") else 0


def _whole(resources: dict[str, Any] | None) -> int:
    return sum(_qty(v) for k, v in (resources or {}).items() if k in WHOLE_GPU)


def _pod_gpus(spec: Obj) -> int:
    def one(c: Obj) -> int:
        res = c.get("resources") or {}
        return _whole({**(res.get("requests") or {}), **(res.get("limits") or {})})

    main = sum(one(c) for c in spec.get("containers") or [])
    init = max((one(c) for c in spec.get("initContainers") or []), default=0)
    return max(main, init)


def _node_ok(node: Obj) -> bool:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    taints = [t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
    return ready and not spec.get("unschedulable") and not taints


def free_by_product(nodes: list[Obj], pods: list[Obj]) -> dict[str, int]:
    used: dict[str, int] = defaultdict(int)
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName") or ""
        phase = (pod.get("status") or {}).get("phase")
        if node and phase not in ("Succeeded", "Failed"):
            used[node] += _pod_gpus(pod.get("spec") or {})
    free: dict[str, int] = defaultdict(int)
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        product = labels.get("nvidia.com/gpu.product") or labels.get("amd.com/gpu.product-name")
        if not product:
            continue
        allocatable = _whole((node.get("status") or {}).get("allocatable"))
        spare = allocatable - used[node["metadata"]["name"]]
        free[product] += max(spare, 0) if _node_ok(node) else 0
    return dict(sorted(free.items()))


def items_of(result: Any) -> list[Obj]:
    """The objects of one list tool call: structured content when the server sends it (already
    decoded by the MCP client), else its text parsed as JSON ({items: [...]}) or YAML."""
    structured = getattr(result, "structured_content", None)
    if isinstance(structured, dict):
        for key in ("items", "result"):
            if isinstance(structured.get(key), list):
                return list(structured[key])
    text = "".join(getattr(c, "text", "") for c in result.content)
    if text.lstrip().startswith("{"):
        return list(json.loads(text)["items"])
    loaded = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    return list(loaded["items"] if isinstance(loaded, dict) else loaded or [])


def expected(profile: str) -> dict[str, Any]:
    """The fleet file's answer: free GPUs per product where it lists products, and always the
    free whole GPUs in total."""
    exp = load_fleet(profile).expected
    total = sum(t.free for r, t in exp.resources.items() if r in WHOLE_GPU)
    return {"products": {p: t.free for p, t in sorted(exp.products.items())}, "total": total}


def check(who: str, free: dict[str, int], want: dict[str, Any]) -> None:
    """Raise unless a contender's numbers are the fleet file's."""
    if want["products"] and free != want["products"]:
        raise AssertionError(f"{who}: free GPUs {free} != fleet file's {want['products']}")
    if sum(free.values()) != want["total"]:
        got = sum(free.values())
        raise AssertionError(f"{who}: {got} free GPUs != fleet file's {want['total']}")
