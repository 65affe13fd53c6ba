"""The metrics side of the in-memory cluster: a test sets what its Prometheus answers.

``metrics``: a function from a query to its samples (None: the cluster has no metrics
source); it may raise ``MetricsUnavailable`` to play a Prometheus that is down or slow.
Every query asked is kept in ``metrics_queries``; ``prices`` are the GPU-hour prices.
"""

from __future__ import annotations

from collections.abc import Callable

from mcp_kube.errors import MetricsUnavailable
from mcp_kube.metrics.promql import PromQuery
from mcp_kube.metrics.result import Sample

__all__ = ["MetricsTwin"]


class MetricsTwin:
    name: str
    metrics: Callable[[PromQuery], list[Sample]] | None = None
    prices: dict[str, float] | None = None

    @property
    def metrics_queries(self) -> list[PromQuery]:
        asked: list[PromQuery] | None = getattr(self, "_metrics_asked", None)
        if asked is None:
            asked = []
            self._metrics_asked = asked
        return asked

    async def query_metrics(self, query: PromQuery) -> list[Sample]:
        self.metrics_queries.append(query)
        if self.metrics is None:
            raise MetricsUnavailable(
                f"metrics unavailable for cluster {self.name}: no metrics source is configured"
            )
        return self.metrics(query)

    def gpu_price(self, product: str) -> float | None:
        return (self.prices or {}).get(product)
