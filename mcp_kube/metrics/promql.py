"""PromQL built by the server from typed arguments: the model never writes a query.

Every query here reads one dcgm-exporter metric through a fixed function over a window
(subqueries at a fixed step, so history backfilled at one resolution and live scrapes at
another weigh alike), with label matchers whose names come from a fixed set and whose values
are checked against a narrow alphabet before they are quoted. A window and its step bound the
points a query touches; the series an answer may hold are bounded where it is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from mcp_kube.errors import InvalidArgument

__all__ = [
    "LABELS",
    "MAX_POINTS",
    "Function",
    "Matcher",
    "Metric",
    "PromQuery",
    "first_seen",
    "last_above",
    "over_window",
    "step_for",
]

Metric = Literal[
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_POWER_USAGE",
]
Label = Literal["namespace", "pod", "container", "Hostname", "modelName", "gpu", "UUID"]
LABELS: tuple[str, ...] = ("namespace", "pod", "container", "Hostname", "modelName", "gpu", "UUID")
Function = Literal["avg", "max", "min", "sum", "count", "p95"]
MAX_POINTS = 2000  # subquery steps of one window (Prometheus itself refuses above 11,000)
MIN_STEP_S = 60
# label values we ever need: Kubernetes names, node names, GPU model names and UUIDs
_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/ -]{0,252}$")


@dataclass(frozen=True)
class Matcher:
    label: Label
    value: str  # "" with op "!=": the label is set
    op: Literal["=", "!="] = "="

    def render(self) -> str:
        if self.label not in LABELS:
            raise InvalidArgument(f"unknown metrics label {self.label!r}")
        if self.value and not _VALUE.match(self.value):
            raise InvalidArgument(f"invalid value for {self.label}: {self.value[:80]!r}")
        return f'{self.label}{self.op}"{self.value}"'


@dataclass(frozen=True)
class PromQuery:
    """One instant query: its PromQL and the evaluation time (epoch seconds)."""

    expr: str
    at: float
    what: str  # a few words for messages and the audit record


def step_for(window_s: int) -> int:
    """The subquery step for a window: one minute, coarser for long windows."""
    return max(MIN_STEP_S, -(-window_s // MAX_POINTS))


def _selector(metric: Metric, matchers: tuple[Matcher, ...]) -> str:
    inner = ",".join(m.render() for m in matchers)
    return f"{metric}{{{inner}}}"


def _window(window_s: int) -> str:
    if not 60 <= window_s <= 90 * 86400:
        raise InvalidArgument("the window must be between 1 minute and 90 days")
    return f"[{window_s}s:{step_for(window_s)}s]"


def over_window(
    fn: Function, metric: Metric, window_s: int, matchers: tuple[Matcher, ...], at: float
) -> PromQuery:
    """``fn`` of each series of ``metric`` over the window ending at ``at``."""
    inner = f"{_selector(metric, matchers)}{_window(window_s)}"
    expr = f"quantile_over_time(0.95, {inner})" if fn == "p95" else f"{fn}_over_time({inner})"
    return PromQuery(expr, at, f"{fn} of {metric} over {window_s}s")


def last_above(
    threshold: float, window_s: int, matchers: tuple[Matcher, ...], at: float
) -> PromQuery:
    """When each GPU's utilization was last at or above ``threshold`` within the window."""
    if not 0 <= threshold <= 100:
        raise InvalidArgument("the utilization threshold is a percent, 0 to 100")
    sel = _selector("DCGM_FI_DEV_GPU_UTIL", matchers)
    expr = f"max_over_time(timestamp({sel} >= {threshold:g}){_window(window_s)})"
    return PromQuery(expr, at, f"last time at or above {threshold:g}% over {window_s}s")


def first_seen(window_s: int, matchers: tuple[Matcher, ...], at: float) -> PromQuery:
    """When each GPU series first reported within the window."""
    sel = _selector("DCGM_FI_DEV_GPU_UTIL", matchers)
    expr = f"min_over_time(timestamp({sel}){_window(window_s)})"
    return PromQuery(expr, at, f"first sample over {window_s}s")
