"""The kube-scheduler's FailedScheduling message, structured: pure text parsing, no I/O.

"0/12 nodes are available: 3 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint
{dedicated: inference}, ... preemption: ..." becomes counts of nodes per reason: insufficient
resources, untolerated taints, selector/affinity mismatches, cordoned nodes and the rest. The
preemption part is dropped: it says what preemption could not do, not why the pod waits.
"""

from __future__ import annotations

import re
from collections import defaultdict

from pydantic import Field

from mcp_kube.tools.base import ToolOutput
from mcp_kube.tools.common import clip

__all__ = ["SchedulerFindings", "parse_scheduler_message"]


class SchedulerFindings(ToolOutput):
    available: int
    total: int
    insufficient: dict[str, int] = Field(default_factory=dict, description="resource -> nodes")
    untolerated_taints: dict[str, int] = Field(default_factory=dict, description="taint -> nodes")
    selector_mismatch: int = Field(0, description="nodes failing nodeSelector / affinity")
    unschedulable: int = Field(0, description="cordoned nodes")
    other: dict[str, int] = Field(default_factory=dict, description="other reason -> nodes")


_AVAILABLE = re.compile(r"(\d+)/(\d+) nodes are available:?\s*(.*)", re.S)
_ITEM = re.compile(r"(\d+)\s+(.+)", re.S)
_SPLIT = re.compile(r",\s*(?![^{]*\})")  # commas outside {taint} braces


def parse_scheduler_message(message: str) -> SchedulerFindings | None:
    """Structure a kube-scheduler FailedScheduling message ("0/12 nodes are available: ...")."""
    m = _AVAILABLE.search(message)
    if not m:
        return None
    body = re.split(r"\.?\s*preemption:", m.group(3))[0].strip().rstrip(".")
    insufficient: dict[str, int] = defaultdict(int)
    taints: dict[str, int] = defaultdict(int)
    other: dict[str, int] = defaultdict(int)
    selector = unschedulable = 0
    for raw in _SPLIT.split(body):
        im = _ITEM.match(raw.strip())
        if not im:
            continue
        n, text = int(im.group(1)), im.group(2).strip()
        if text.startswith("Insufficient "):
            insufficient[clip(text.removeprefix("Insufficient ").strip(), 128)] += n
        elif "untolerated taint" in text:
            t = re.search(r"\{(.*)\}", text)
            taints[clip(t.group(1).strip() if t else text, 200)] += n
        elif "affinity/selector" in text or "node selector" in text:
            selector += n
        elif "unschedulable" in text:
            unschedulable += n
        elif len(other) < 20:
            other[clip(text, 200)] += n
    return SchedulerFindings(
        available=int(m.group(1)),
        total=int(m.group(2)),
        insufficient=dict(insufficient),
        untolerated_taints=dict(taints),
        selector_mismatch=selector,
        unschedulable=unschedulable,
        other=dict(other),
    )
