"""The simulated dcgm-exporter's data: every GPU (and MIG slice) of a fleet, who holds it, and
what it reads at a given time.

Pure: the exporter process (:mod:`.dcgm`) renders :func:`exposition` at each scrape, and the
start-up backfill (:mod:`.telemetry`) renders :func:`openmetrics_history`, from the same
functions, so the history and the live samples tell one story. Devices are those of the Ready
NVIDIA nodes (a node whose kubelet is down exports nothing; AMD GPUs have their own exporter).
GPUs are handed to a node's workloads in order, as the device plugin would; a time-sliced GPU
is labelled with its first holder; MIG instances are labelled ``GPU_I_PROFILE``/``GPU_I_ID``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from mcp_kube.testbed.fleet import Fleet, Gpu, Workload, workload_manifests
from mcp_kube.testbed.telemetry_spec import Utilization

__all__ = [
    "METRICS",
    "Device",
    "devices",
    "exposition",
    "fleet_workloads",
    "live_workloads",
    "openmetrics_history",
    "reading",
]

METRICS = {
    "DCGM_FI_DEV_GPU_UTIL": "GPU utilization (in %).",
    "DCGM_FI_DEV_FB_USED": "Framebuffer memory used (in MiB).",
    "DCGM_FI_DEV_FB_FREE": "Framebuffer memory free (in MiB).",
    "DCGM_FI_DEV_POWER_USAGE": "Power draw (in W).",
}
_DRIVER = "580.95.05"
_TDP_W = {"H100": 700.0, "H200": 700.0, "A100": 400.0, "L4": 72.0}
_IDLE_W = 0.1  # share of the TDP drawn by an idle GPU
_MIG_SLICES = 7  # compute slices of one MIG-capable GPU


@dataclass(frozen=True)
class Device:
    node: str
    gpu: int
    uuid: str
    model: str  # dcgm's modelName, e.g. "NVIDIA H100 80GB HBM3"
    memory_mib: int
    tdp_w: float
    mig_profile: str = ""
    mig_id: int = -1
    holder: Workload | None = None

    def labels(self) -> dict[str, str]:
        out = {
            "gpu": str(self.gpu),
            "UUID": self.uuid,
            "device": f"nvidia{self.gpu}",
            "modelName": self.model,
            "Hostname": self.node,
            "DCGM_FI_DRIVER_VERSION": _DRIVER,
        }
        if self.mig_profile:
            out["GPU_I_PROFILE"] = self.mig_profile
            out["GPU_I_ID"] = str(self.mig_id)
        if self.holder is not None:
            out.update(
                namespace=self.holder.namespace,
                pod=self.holder.name,
                container=self.holder.container,
            )
        return out


def _tdp(product: str) -> float:
    return next((w for key, w in _TDP_W.items() if key in product), 300.0)


def _physical(cluster: str, node: str, gpu: Gpu) -> list[Device]:
    return [
        Device(
            node=node,
            gpu=i,
            uuid=f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, f'{cluster}/{node}/{i}')}",
            model=gpu.product.replace("-", " "),
            memory_mib=gpu.memory_mib,
            tdp_w=_tdp(gpu.product),
        )
        for i in range(gpu.count)
    ]


def _mig_slices(phys: list[Device], gpu: Gpu) -> list[Device]:
    """MIG instances, each profile filling whole GPUs in turn (7 compute slices a GPU)."""
    assert gpu.mig is not None
    out: list[Device] = []
    next_gpu = 0
    for profile, n in gpu.mig.profiles.items():
        slices, mem = profile.split(".")
        per_gpu = max(_MIG_SLICES // int(slices.rstrip("g")), 1)
        for k in range(n):
            base = phys[min(next_gpu + k // per_gpu, len(phys) - 1)]
            out.append(
                Device(
                    node=base.node,
                    gpu=base.gpu,
                    uuid=base.uuid,
                    model=base.model,
                    memory_mib=int(mem.rstrip("gb")) * 1024,
                    tdp_w=base.tdp_w / per_gpu,
                    mig_profile=profile,
                    mig_id=k % per_gpu,
                )
            )
        next_gpu += -(-n // per_gpu)
    return out


def _assign(devs: list[Device], work: list[Workload], gpu: Gpu) -> list[Device]:
    """Hand the node's devices to its workloads in order (a replica of a time-sliced GPU
    counts as 1/replicas of it)."""
    replicas = gpu.sharing.replicas if gpu.sharing else 1
    out = list(devs)
    for kind in {d.mig_profile for d in devs}:
        resource = f"nvidia.com/mig-{kind}" if kind else "nvidia.com/gpu"
        slots = [i for i, d in enumerate(devs) if d.mig_profile == kind]
        cursor = 0
        for w in work:
            if w.resource != resource:
                continue
            for unit in range(cursor, cursor + w.count):
                idx = unit // replicas
                if idx < len(slots) and out[slots[idx]].holder is None:
                    out[slots[idx]] = replace(out[slots[idx]], holder=w)
            cursor += w.count
    return out


# a pod the fleet file does not declare (a job submitted later): it trains
SUBMITTED = Utilization(pattern="busy", level=80, memory_fraction=0.7)


def workload_of(pod: dict[str, Any], known: dict[str, Workload]) -> Workload:
    """The workload a pod is: the fleet's (by name), else one busy at ``SUBMITTED``."""
    meta, spec = pod["metadata"], pod["spec"]
    if meta["name"] in known and known[meta["name"]].namespace == meta["namespace"]:
        return known[meta["name"]]
    container = spec["containers"][0]
    requests = (container.get("resources") or {}).get("requests") or {}
    gpu = [(r, q) for r, q in requests.items() if r.startswith(("nvidia.com/", "amd.com/"))]
    resource, count = gpu[0] if gpu else (None, "0")
    return Workload(
        name=meta["name"],
        namespace=meta["namespace"],
        node=spec.get("nodeName") or "",
        resource=resource,
        count=int(count),
        container=container["name"],
        utilization=SUBMITTED,
    )


def fleet_workloads(fleet: Fleet) -> dict[str, Workload]:
    """Every workload pod of the fleet by name, the generated ones too (idle: they declare
    nothing)."""
    named = {w.name: w for w in fleet.workloads}
    out = {}
    for pod in workload_manifests(fleet):
        w = workload_of(pod, named)
        out[w.name] = w if w.name in named else w.model_copy(update={"utilization": None})
    return out


def live_workloads(fleet: Fleet, pods: list[dict[str, Any]]) -> list[Workload]:
    """The workloads of the running ``pods``: the fleet's first, in its order (so that they
    hold the devices the history gave them), then the others oldest first."""
    known = fleet_workloads(fleet)
    mine = [workload_of(p, known) for p in pods if p["spec"].get("nodeName")]
    order = {name: i for i, name in enumerate(known)}
    ordered = [w for w in mine if known.get(w.name) is w]
    ordered.sort(key=lambda w: order[w.name])
    created = {p["metadata"]["name"]: p["metadata"].get("creationTimestamp", "") for p in pods}
    others = sorted((w for w in mine if known.get(w.name) is not w), key=lambda w: created[w.name])
    return ordered + others


def devices(fleet: Fleet, live: list[Workload] | None = None) -> list[Device]:
    """Every device the exporter reports for ``fleet``, in a stable order, held by the
    ``live`` workloads (None: the fleet file's, as at the start). A fleet workload keeps the
    devices it had at the start; the others take free ones, as the device plugin would."""
    out: list[Device] = []
    replicas: dict[str, int] = {}
    by_node: dict[str, list[Workload]] = {}
    for w in fleet_workloads(fleet).values():
        by_node.setdefault(w.node, []).append(w)
    for group in fleet.node_groups:
        gpu = group.gpu
        if gpu is None or gpu.vendor != "nvidia" or not group.ready:
            continue
        for node in group.names():
            phys = _physical(fleet.cluster, node, gpu)
            devs = _mig_slices(phys, gpu) if gpu.mig else phys
            out += _assign(devs, by_node.get(node, []), gpu)
            replicas[node] = gpu.sharing.replicas if gpu.sharing else 1
    return out if live is None else _follow(out, live, replicas)


def _follow(static: list[Device], live: list[Workload], replicas: dict[str, int]) -> list[Device]:
    alive = {(w.namespace, w.name): w for w in live}
    out = [
        d
        if d.holder is None or (d.holder.namespace, d.holder.name) in alive
        else replace(d, holder=None)
        for d in static
    ]
    held = {(d.holder.namespace, d.holder.name) for d in out if d.holder is not None}
    for w in live:
        if (w.namespace, w.name) in held or not w.resource or not w.count:
            continue
        kind = w.resource.removeprefix("nvidia.com/mig-") if "/mig-" in w.resource else ""
        if not kind and w.resource != "nvidia.com/gpu":
            continue
        need = -(-w.count // replicas.get(w.node, 1))  # a time-sliced GPU serves several
        for i, d in enumerate(out):
            if need and d.node == w.node and d.mig_profile == kind and d.holder is None:
                out[i] = replace(d, holder=w)
                need -= 1
    return out


_IDLE = Utilization(pattern="idle", memory_fraction=0.0)


def utilization(u: Utilization, t: float, t0: float) -> float:
    """Percent busy at time ``t`` (epoch seconds) for a testbed started at ``t0``."""
    if u.pattern == "busy":
        return u.level
    if u.pattern == "bursty":
        return u.level if (int(t) // 60) % u.period_min < u.burst_min else 0.0
    if u.pattern == "stalled":
        return u.level if t < t0 + u.stalled_at_h * 3600 else 0.0
    return 0.0


def reading(d: Device, t: float, t0: float) -> dict[str, float]:
    """The four metrics of ``d`` at ``t``."""
    u = _IDLE
    if d.holder is not None:
        u = d.holder.utilization or Utilization(pattern="idle")
    util = utilization(u, t, t0)
    used = round(d.memory_mib * u.memory_fraction)
    return {
        "DCGM_FI_DEV_GPU_UTIL": util,
        "DCGM_FI_DEV_FB_USED": float(used),
        "DCGM_FI_DEV_FB_FREE": float(d.memory_mib - used),
        "DCGM_FI_DEV_POWER_USAGE": round(d.tdp_w * (_IDLE_W + (1 - _IDLE_W) * util / 100), 3),
    }


def _label_text(labels: dict[str, str]) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


def exposition(devs: list[Device], t: float, t0: float) -> str:
    """The Prometheus text format a scrape at ``t`` answers."""
    lines: list[str] = []
    values = [(d, _label_text(d.labels()), reading(d, t, t0)) for d in devs]
    for metric, help_text in METRICS.items():
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        lines += [f"{metric}{labels} {vals[metric]:g}" for _, labels, vals in values]
    return "\n".join(lines) + "\n"


def openmetrics_history(
    devs: list[Device], t0: float, hours: float, step_s: int, extra: dict[str, str]
) -> Iterator[str]:
    """OpenMetrics lines (for ``promtool tsdb create-blocks-from openmetrics``) covering
    ``hours`` before ``t0`` at ``step_s``, ending one step before ``t0``; ``extra``: the
    labels the scrape adds (job, instance), so that history and live samples are one series."""
    first = int(t0 - hours * 3600)
    times = list(range(first, int(t0) - step_s + 1, step_s))
    labels = [_label_text({**d.labels(), **extra}) for d in devs]
    values = [[reading(d, t, t0) for t in times] for d in devs]
    for metric, help_text in METRICS.items():
        yield f"# HELP {metric} {help_text}\n# TYPE {metric} gauge\n"
        for lab, vals in zip(labels, values, strict=True):
            yield "".join(
                f"{metric}{lab} {v[metric]:g} {t}\n" for t, v in zip(times, vals, strict=True)
            )
    yield "# EOF\n"
