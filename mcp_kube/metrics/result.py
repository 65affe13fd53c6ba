"""Prometheus answers read into typed samples, bounded, and joined per GPU device.

A device is a GPU or a MIG slice as dcgm-exporter labels it (node, GPU index, MIG instance);
its holder is the pod the exporter names (none when the GPU is free). Answers larger than the
configured bounds are refused rather than cut, so that a sum is never silently partial.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from mcp_kube.errors import MetricsUnavailable

__all__ = ["DeviceKey", "Sample", "device_key", "parse_vector"]


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


DeviceKey = tuple[str, str, str, str, str]  # node, gpu, MIG instance, namespace, pod


def device_key(labels: dict[str, str]) -> DeviceKey:
    return (
        labels.get("Hostname", ""),
        labels.get("gpu", ""),
        labels.get("GPU_I_ID", ""),
        labels.get("namespace", ""),
        labels.get("pod", ""),
    )


def parse_vector(cluster: str, raw: bytes, max_series: int) -> list[Sample]:
    """The samples of an instant query's answer (``resultType: vector``)."""
    try:
        doc: Any = json.loads(raw)
    except ValueError as e:
        raise MetricsUnavailable(f"metrics unavailable for cluster {cluster}: bad answer") from e
    if not isinstance(doc, dict) or doc.get("status") != "success":
        why = str(doc.get("error", "query failed"))[:200] if isinstance(doc, dict) else ""
        raise MetricsUnavailable(f"metrics unavailable for cluster {cluster}: {why}")
    data = doc.get("data") or {}
    if data.get("resultType") != "vector":
        raise MetricsUnavailable(f"metrics unavailable for cluster {cluster}: not a vector")
    result = data.get("result") or []
    if len(result) > max_series:
        raise MetricsUnavailable(
            f"metrics for cluster {cluster}: {len(result)} series exceed the bound of "
            f"{max_series}; narrow the query (a namespace or node)"
        )
    out: list[Sample] = []
    for item in result:
        try:
            value = float(item["value"][1])
            labels = {str(k): str(v)[:256] for k, v in dict(item["metric"]).items()}
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if math.isfinite(value):
            out.append(Sample(labels, value))
    return out
