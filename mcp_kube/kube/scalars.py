"""Scalars of the Kubernetes API as numbers and times: quantities ("8", "500m", "16Gi") and
RFC 3339 timestamps. Pure functions."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

__all__ = ["parse_count", "parse_quantity", "parse_time"]

# quantity suffix -> factor, two-letter ones first so that "Mi" is not read as "M"
_SUFFIXES = (
    *((s, 2.0 ** (10 * i)) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)),
    *((s, 10.0 ** (3 * i)) for i, s in enumerate(("k", "M", "G", "T", "P", "E"), 1)),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
)


def parse_quantity(value: str | int | float) -> float:
    """Kubernetes quantity -> number (GPU counts are integers; cpu/memory use suffixes)."""
    if isinstance(value, int | float):
        return float(value)
    s = value.strip()
    for suffix, factor in _SUFFIXES:
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * factor
    return float(s)


def parse_count(value: Any) -> int | None:
    """A quantity as a whole count (GPUs, workloads); None when absent or unparsable."""
    if value is None:
        return None
    try:
        return int(parse_quantity(str(value)))
    except ValueError:
        return None


def parse_time(value: str | None) -> dt.datetime | None:
    """An RFC 3339 time; the same text gives the same (immutable) object, so that thousands of
    cached pods created or started in the same second share one."""
    if not value:
        return None
    return _parse_time(value)


@functools.lru_cache(maxsize=4096)
def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
