"""A Prometheus stand-in for unit tests: answers the server's PromQL shapes from a fleet's
simulated dcgm-exporter (``mcp_kube.testbed.gpusim``), sampled at the subquery's steps.

Only the shapes ``mcp_kube.metrics.promql`` builds are understood; anything else fails the
test, so a new query shape needs a twin here (and a check against the real Prometheus in the
integration tests).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mcp_kube.metrics.promql import PromQuery
from mcp_kube.metrics.result import Sample
from mcp_kube.testbed import gpusim
from mcp_kube.testbed.fleet import Fleet

_SHAPE = re.compile(
    r"^(?P<fn>\w+)_over_time\((?P<q>0\.95, )?(?P<ts>timestamp\()?(?P<metric>DCGM_\w+)"
    r"\{(?P<sel>[^}]*)\}(?: >= (?P<thr>[\d.]+))?\)?\[(?P<w>\d+)s:(?P<s>\d+)s\]\)$"
)
_MATCHER = re.compile(r'(\w+)(=|!=)"([^"]*)"')


def _matches(labels: dict[str, str], sel: str) -> bool:
    for name, op, value in _MATCHER.findall(sel):
        have = labels.get(name, "")
        if (op == "=" and have != value) or (op == "!=" and have == value):
            return False
    return True


def _reduce(fn: str, values: list[float]) -> float:
    if fn == "avg":
        return sum(values) / len(values)
    if fn == "quantile":
        ordered = sorted(values)
        rank = 0.95 * (len(ordered) - 1)
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    if fn == "count":
        return float(len(values))
    return {"max": max, "min": min, "sum": sum}[fn](values)


def simulated(
    fleet: Fleet, t0: float, history_h: float = 24.0
) -> Callable[[PromQuery], list[Sample]]:
    """``MemoryCluster.metrics`` for ``fleet`` started at ``t0`` (history: ``history_h``)."""
    devs = gpusim.devices(fleet)
    extra = {"job": "dcgm-exporter", "instance": "127.0.0.1:9400"}

    def answer(query: PromQuery) -> list[Sample]:
        m = _SHAPE.match(query.expr)
        assert m, f"the simulated Prometheus does not know this query: {query.expr}"
        window, step = int(m["w"]), int(m["s"])
        last = int(query.at // step * step)
        times = [
            t for t in range(last - window + step, last + 1, step) if t >= t0 - history_h * 3600
        ]
        out = []
        for d in devs:
            labels = {**d.labels(), **extra}
            if not _matches(labels, m["sel"]):
                continue
            points = [(t, gpusim.reading(d, t, t0)[m["metric"]]) for t in times]
            if m["thr"] is not None:
                points = [(t, v) for t, v in points if v >= float(m["thr"])]
            if not points:
                continue
            values = [float(t) for t, _ in points] if m["ts"] else [v for _, v in points]
            out.append(Sample(labels, _reduce(m["fn"], values)))
        return out

    return answer
