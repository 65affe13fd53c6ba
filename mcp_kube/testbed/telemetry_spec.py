"""What a fleet file says about GPU telemetry: each workload's utilization pattern, the
simulated exporter's settings, and the answers a correct metrics tool must give.

Why in the fleet file: the simulated dcgm-exporter, the 24 h history backfilled at start and
the tests all read the same patterns, so the expected idle GPUs, efficiency and cost are
declared next to the workloads that cause them (and cross-checked by a unit test).
Times are hours relative to the moment the testbed starts (negative: before it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IdleGpu", "Telemetry", "TelemetryExpected", "Utilization"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Utilization(BaseModel):
    """How busy a workload's GPUs are.

    - ``busy``: ``level`` percent all the time;
    - ``idle``: 0 all the time;
    - ``bursty``: ``level`` for ``burst_min`` minutes of every ``period_min``, else 0;
    - ``stalled``: ``level`` until ``stalled_at_h`` (hours from the start), then 0.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    pattern: Literal["busy", "idle", "bursty", "stalled"]
    level: float = Field(0.0, ge=0, le=100, description="utilization percent when working")
    memory_fraction: float = Field(0.5, ge=0, le=1, description="framebuffer share in use")
    burst_min: int = Field(10, ge=1, le=1440)
    period_min: int = Field(30, ge=2, le=1440)
    stalled_at_h: float = Field(0.0, ge=-24, le=24)


class IdleGpu(_Strict):
    namespace: str
    pod: str
    node: str
    gpus: int = Field(ge=1)
    idle_since_h: float = Field(le=0, description="hours from the start; -24: the whole history")


class TelemetryExpected(_Strict):
    """Answers for a window ending shortly after the start (values within ``tolerance``)."""

    window_h: float = Field(gt=0, le=24)
    idle_threshold: float = Field(ge=0, le=100)
    idle_gpus: list[IdleGpu]
    utilization_by_namespace: dict[str, float] = Field(description="mean percent, window_h")
    efficiency_by_namespace: dict[str, float] = Field(description="used / allocated GPU-hours")
    cost_by_namespace: dict[str, float] = Field(description="allocated GPU-hours x price")
    tolerance: float = Field(0.03, gt=0, le=0.5, description="relative, for drifting windows")


class Telemetry(_Strict):
    scrape_interval_s: int = Field(15, ge=5, le=300)
    history_h: float = Field(24.0, ge=0, le=48, description="backfilled before the start")
    history_step_s: int = Field(60, ge=15, le=3600, description="resolution of the backfill")
    prices: dict[str, float] = Field(
        default_factory=dict, description="price per GPU-hour by GPU product (settings twin)"
    )
    expected: TelemetryExpected | None = None
