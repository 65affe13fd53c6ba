"""GPU telemetry as the metric tools see it: per-device statistics over a window, grouped.

Not a tool module: ``gpu_utilization``, ``idle_gpus``, ``gpu_usage_report`` and ``get_job``
read their numbers here. A device is a GPU or a MIG slice as dcgm-exporter labels it, with the
pod that holds it (none when free). Queries are built from typed arguments
(:mod:`mcp_kube.metrics.promql`) and go through the cluster port, which bounds and audits them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import anyio
from pydantic import Field

from mcp_kube.errors import MetricsUnavailable
from mcp_kube.kube.port import ClusterPort
from mcp_kube.metrics.promql import Function, Matcher, Metric, PromQuery, over_window, step_for
from mcp_kube.metrics.result import DeviceKey, Sample, device_key
from mcp_kube.tools.base import ToolOutput

__all__ = [
    "DeviceStats",
    "GroupStats",
    "Metered",
    "PodsGpuUse",
    "cost_of",
    "device_stats",
    "group_stats",
    "holder_matchers",
    "metered",
    "mig_share",
    "pods_gpu_use",
    "product_of",
]

MIG_SLICES = 7


@dataclass
class DeviceStats:
    """One device over a window: utilization percent, memory MiB and power W (means)."""

    cluster: str
    labels: dict[str, str]
    util_mean: float = 0.0
    util_p95: float = 0.0
    fb_used: float = 0.0
    fb_free: float = 0.0
    power: float = 0.0
    hours: float = 0.0  # how long it reported within the window

    @property
    def node(self) -> str:
        return self.labels.get("Hostname", "")

    @property
    def namespace(self) -> str:
        return self.labels.get("namespace", "")

    @property
    def pod(self) -> str:
        return self.labels.get("pod", "")

    @property
    def device(self) -> str:
        """``gpu 3`` or ``gpu 0 / MIG 1g.10gb #2``."""
        text = f"gpu {self.labels.get('gpu', '?')}"
        if self.labels.get("GPU_I_PROFILE"):
            text += f" / MIG {self.labels['GPU_I_PROFILE']} #{self.labels.get('GPU_I_ID', '?')}"
        return text


def holder_matchers(namespace: str | None, node: str | None, held: bool) -> tuple[Matcher, ...]:
    out: list[Matcher] = []
    if namespace:
        out.append(Matcher("namespace", namespace))
    if node:
        out.append(Matcher("Hostname", node))
    if held and not namespace:
        out.append(Matcher("pod", "", "!="))
    return tuple(out)


_COLUMNS: tuple[tuple[str, Function, Metric], ...] = (
    ("util_mean", "avg", "DCGM_FI_DEV_GPU_UTIL"),
    ("util_p95", "p95", "DCGM_FI_DEV_GPU_UTIL"),
    ("fb_used", "avg", "DCGM_FI_DEV_FB_USED"),
    ("fb_free", "avg", "DCGM_FI_DEV_FB_FREE"),
    ("power", "avg", "DCGM_FI_DEV_POWER_USAGE"),
    ("hours", "count", "DCGM_FI_DEV_GPU_UTIL"),
)


async def device_stats(
    port: ClusterPort,
    window_s: int,
    matchers: tuple[Matcher, ...],
    at: float | None = None,
    columns: Iterable[str] = ("util_mean", "util_p95", "fb_used", "fb_free", "power", "hours"),
) -> list[DeviceStats]:
    """Each device's statistics over the window ending ``at`` (default now), one query per
    column; a device is kept when its utilization was reported."""
    at = time.time() if at is None else at
    asked = [(c, over_window(fn, m, window_s, matchers, at)) for c, fn, m in _COLUMNS]
    answers: dict[str, list[Sample]] = {}

    async def one(column: str, query: PromQuery) -> None:
        answers[column] = await port.query_metrics(query)

    # at once: a slow source costs one query's time limit, not one per column
    try:
        async with anyio.create_task_group() as tg:
            for column, query in asked:
                if column in set(columns):
                    tg.start_soon(one, column, query)
    except BaseExceptionGroup as group:
        failed = [e for e in group.exceptions if isinstance(e, MetricsUnavailable)]
        if len(failed) == len(group.exceptions):
            raise failed[0] from None  # the same source failed: one message says it
        raise
    by_key = {device_key(s.labels): DeviceStats(port.name, s.labels) for s in answers["util_mean"]}
    step_h = step_for(window_s) / 3600  # a count of subquery steps, in hours
    for column, samples in answers.items():
        for s in samples:
            stats = by_key.get(device_key(s.labels))
            if stats is not None:
                setattr(stats, column, s.value * step_h if column == "hours" else s.value)
    return list(by_key.values())


def samples_by_device(samples: list[Sample]) -> dict[DeviceKey, float]:
    return {device_key(s.labels): s.value for s in samples}


def product_of(labels: dict[str, str]) -> str:
    """The GPU product as the nvidia.com/gpu.product label spells it."""
    return labels.get("modelName", "").strip().replace(" ", "-")


def mig_share(labels: dict[str, str]) -> float:
    """The share of a GPU a device is: 1, or a MIG slice's compute slices out of 7."""
    profile = labels.get("GPU_I_PROFILE", "")
    if not profile:
        return 1.0
    try:
        return int(profile.split("g.", 1)[0]) / MIG_SLICES
    except ValueError:
        return 1.0


class GroupStats(ToolOutput):
    cluster: str
    group: str
    gpus: int = Field(description="devices (GPUs or MIG slices) seen in the window")
    gpu_hours: float = Field(description="device-hours they reported")
    utilization_mean: float = Field(description="percent, weighted by time")
    utilization_p95: float = Field(description="each device's p95 over time, time-weighted")
    memory_used_mib: float = Field(description="in use together, on average over the window")
    memory_total_mib: float
    power_w: float = Field(description="drawn together, on average over the window")


def _weighted(ds: list[DeviceStats], value: Callable[[DeviceStats], float]) -> float:
    hours = sum(d.hours for d in ds)
    if hours <= 0:
        return sum(value(d) for d in ds) / len(ds)
    return sum(value(d) * d.hours for d in ds) / hours


def group_stats(
    devs: list[DeviceStats], key_of: dict[int, str], window_h: float
) -> list[GroupStats]:
    """Devices grouped by ``key_of[index]`` (devices without a key are left out).
    Utilization is weighted by the time each device reported (a pod that held a GPU for a
    minute weighs a minute); memory and power are the group's totals averaged over the window."""
    groups: dict[tuple[str, str], list[DeviceStats]] = defaultdict(list)
    for i, d in enumerate(devs):
        if i in key_of:
            groups[d.cluster, key_of[i]].append(d)

    def total(ds: list[DeviceStats], value: Callable[[DeviceStats], float]) -> float:
        if all(d.hours <= 0 for d in ds):
            return sum(value(d) for d in ds)
        return sum(value(d) * min(d.hours, window_h) for d in ds) / window_h

    out = [
        GroupStats(
            cluster=cluster,
            group=group,
            gpus=len(ds),
            gpu_hours=round(sum(d.hours for d in ds), 3),
            utilization_mean=round(_weighted(ds, lambda d: d.util_mean), 2),
            utilization_p95=round(_weighted(ds, lambda d: d.util_p95), 2),
            memory_used_mib=round(total(ds, lambda d: d.fb_used)),
            memory_total_mib=round(total(ds, lambda d: d.fb_used + d.fb_free)),
            power_w=round(total(ds, lambda d: d.power), 1),
        )
        for (cluster, group), ds in groups.items()
    ]
    out.sort(key=lambda g: (g.cluster, g.group))
    return out


@dataclass(frozen=True)
class Metered:
    """One held device over a window: hours held, and busy hours (utilization x time)."""

    cluster: str
    labels: dict[str, str]
    held_hours: float
    used_hours: float


async def metered(port: ClusterPort, window_s: int, at: float | None = None) -> list[Metered]:
    """Per held device: GPU-hours held and used over the window (from fixed-step samples)."""
    at = time.time() if at is None else at
    step = step_for(window_s)
    held = (Matcher("pod", "", "!="),)
    counts = await port.query_metrics(
        over_window("count", "DCGM_FI_DEV_GPU_UTIL", window_s, held, at)
    )
    sums = samples_by_device(
        await port.query_metrics(over_window("sum", "DCGM_FI_DEV_GPU_UTIL", window_s, held, at))
    )
    return [
        Metered(
            cluster=port.name,
            labels=s.labels,
            held_hours=s.value * step / 3600,
            used_hours=sums.get(device_key(s.labels), 0.0) * step / 100 / 3600,
        )
        for s in counts
    ]


def cost_of(m: Metered, price: float | None) -> float | None:
    """What holding the device cost: GPU share x hours held x price per GPU-hour."""
    if price is None:
        return None
    return mig_share(m.labels) * m.held_hours * price


class PodsGpuUse(ToolOutput):
    """How busy the GPUs of a set of pods (a Job's) were over the last window."""

    window_hours: float
    stats: GroupStats | None = None
    note: str | None = Field(None, description="why there are no numbers, when there are none")


async def pods_gpu_use(
    port: ClusterPort, namespace: str, pods: set[str], started: dt.datetime | None
) -> PodsGpuUse:
    """Utilization of the GPUs ``pods`` hold over the last hour, or since ``started`` when
    that is more recent; a metrics failure is a note, not an error."""
    age = (dt.datetime.now(dt.UTC) - started).total_seconds() if started else 3600.0
    window_s = round(min(max(age, 60.0), 3600.0))
    hours = round(window_s / 3600, 3)
    try:
        devs = await device_stats(port, window_s, (Matcher("namespace", namespace),))
    except MetricsUnavailable as e:
        return PodsGpuUse(window_hours=hours, note=str(e)[:300])
    mine = [d for d in devs if d.pod in pods]
    if not mine:
        return PodsGpuUse(window_hours=hours, note="no GPU metrics for its pods in the window")
    stats = group_stats(mine, dict.fromkeys(range(len(mine)), "pods"), window_s / 3600)
    return PodsGpuUse(window_hours=hours, stats=stats[0])
