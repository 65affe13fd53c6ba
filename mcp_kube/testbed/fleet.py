"""The testbed's GPU fleets: a data file per profile, turned into Kubernetes objects.

A fleet file (``testbed/fleets/<profile>.yaml``) names node groups (GPU vendor, product, count,
MIG partitions, time-slicing, cordoned / NotReady / tainted), namespaces with GPU quotas,
workload pods placed on named nodes, Kueue queues, and the inventory numbers a correct tool must
report (``expected``). This module is pure: it builds manifests as plain dicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mcp_kube.errors import TestbedError
from mcp_kube.testbed.paths import repo_root
from mcp_kube.testbed.telemetry_spec import Telemetry, Utilization

__all__ = [
    "KWOK_ANNOTATION",
    "TESTBED_LABEL",
    "Fleet",
    "load_fleet",
    "node_manifests",
    "workload_manifests",
]

Manifest = dict[str, Any]
KWOK_ANNOTATION = "kwok.x-k8s.io/node"  # nodes with value "fake" are driven by kwok
TESTBED_LABEL = "testbed.mcp-kube.io/fleet"
# CUDA driver and runtime advertised by GPU Feature Discovery on every simulated NVIDIA node.
_CUDA = {"driver": ("580", "95", "05"), "runtime": ("13", "0")}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mig(_Strict):
    strategy: Literal["single", "mixed"]
    profiles: dict[str, int]  # profile (e.g. "1g.10gb") -> instances on the node


class Sharing(_Strict):
    strategy: Literal["time-slicing", "mps"]
    replicas: int = Field(ge=2, le=64)


class Gpu(_Strict):
    vendor: Literal["nvidia", "amd"]
    product: str
    count: int = Field(ge=1, le=16)  # physical devices per node
    memory_mib: int
    family: str
    compute: tuple[int, int] | None = None
    mig: Mig | None = None
    sharing: Sharing | None = None

    @property
    def advertised_product(self) -> str:
        if self.sharing is not None:
            return f"{self.product}-SHARED"
        return self.product

    def resources(self) -> dict[str, int]:
        """Extended resources the device plugin advertises for one node."""
        if self.vendor == "amd":
            return {"amd.com/gpu": self.count}
        if self.mig is not None and self.mig.strategy == "mixed":
            return {f"nvidia.com/mig-{p}": n for p, n in self.mig.profiles.items()}
        if self.sharing is not None:
            return {"nvidia.com/gpu": self.count * self.sharing.replicas}
        return {"nvidia.com/gpu": self.count}


class Taint(_Strict):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodeGroup(_Strict):
    prefix: str
    count: int = Field(ge=1, le=5000)
    zone: str
    gpu: Gpu | None = None
    unschedulable: bool = False
    ready: bool = True
    taints: list[Taint] = []
    cpu: str = "128"
    memory: str = "1Ti"
    pods: int = 110

    def names(self) -> list[str]:
        return [f"{self.prefix}-{i}" for i in range(self.count)]


class Namespace(_Strict):
    name: str
    gpu_quota: int | None = None


class Workload(_Strict):
    name: str
    namespace: str
    node: str
    resource: str | None = None
    count: int = 0
    container: str = "trainer"
    image: str = "registry.internal/ml/trainer:1.4.2"
    utilization: Utilization | None = None  # for the simulated dcgm-exporter (default: idle)


class GeneratedWorkloads(_Strict):
    per_node: int = Field(ge=1, le=110)
    gpu_pods_per_node: int = Field(ge=0)
    namespaces: list[str]


class Flavor(_Strict):
    name: str
    node_labels: dict[str, str]


class ClusterQueue(_Strict):
    name: str
    quotas: dict[str, int]  # flavor -> nominal nvidia.com/gpu
    hold: bool = False  # stopPolicy Hold: Kueue admits nothing from it (jobs stay suspended)


class LocalQueue(_Strict):
    namespace: str
    name: str
    cluster_queue: str


class Kueue(_Strict):
    flavors: list[Flavor]
    cluster_queues: list[ClusterQueue]
    local_queues: list[LocalQueue]


class Totals(_Strict):
    allocatable: int
    allocated: int
    free: int
    nodes: int | None = None


class Expected(_Strict):
    nodes: int
    gpu_nodes: int
    pods: int | None = None
    resources: dict[str, Totals]
    products: dict[str, Totals] = {}
    quota_used: dict[str, int] = {}


class Fleet(_Strict):
    cluster: str
    region: str
    namespaces: list[Namespace]
    node_groups: list[NodeGroup]
    workloads: list[Workload] = []
    generated_workloads: GeneratedWorkloads | None = None
    kueue: Kueue | None = None
    telemetry: Telemetry | None = None  # simulated dcgm-exporter + Prometheus when set
    expected: Expected

    def group_of(self, node: str) -> NodeGroup:
        for group in self.node_groups:
            if node in group.names():
                return group
        raise KeyError(node)


def fleet_path(profile: str) -> Path:
    return repo_root() / "testbed" / "fleets" / f"{profile}.yaml"


def load_fleet(profile: str) -> Fleet:
    path = fleet_path(profile)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise TestbedError(f"unknown fleet profile {profile!r}; known: {', '.join(known)}")
    try:
        return Fleet.model_validate(yaml.safe_load(path.read_text()))
    except (ValidationError, yaml.YAMLError) as e:
        raise TestbedError(f"invalid fleet file {path}: {e}") from e


def _gpu_labels(gpu: Gpu) -> dict[str, str]:
    if gpu.vendor == "amd":
        return {
            "amd.com/gpu.present": "true",
            "amd.com/gpu.product-name": gpu.product,
            "amd.com/gpu.family": gpu.family,
            "amd.com/gpu.vram": f"{gpu.memory_mib // 1024}G",
            "amd.com/gpu.count": str(gpu.count),
        }
    labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": gpu.advertised_product,
        "nvidia.com/gpu.count": str(gpu.count),
        "nvidia.com/gpu.memory": str(gpu.memory_mib),
        "nvidia.com/gpu.family": gpu.family,
        "nvidia.com/gpu.machine": "kwok-simulated",
        "nvidia.com/cuda.driver.major": _CUDA["driver"][0],
        "nvidia.com/cuda.driver.minor": _CUDA["driver"][1],
        "nvidia.com/cuda.driver.rev": _CUDA["driver"][2],
        "nvidia.com/cuda.runtime.major": _CUDA["runtime"][0],
        "nvidia.com/cuda.runtime.minor": _CUDA["runtime"][1],
        "nvidia.com/mig.capable": str(gpu.family in {"ampere", "hopper", "blackwell"}).lower(),
        "nvidia.com/mps.capable": "false",
        "nvidia.com/mig.strategy": gpu.mig.strategy if gpu.mig else "none",
    }
    if gpu.compute:
        labels["nvidia.com/gpu.compute.major"] = str(gpu.compute[0])
        labels["nvidia.com/gpu.compute.minor"] = str(gpu.compute[1])
    if gpu.sharing:
        labels["nvidia.com/gpu.replicas"] = str(gpu.sharing.replicas)
        labels["nvidia.com/gpu.sharing-strategy"] = gpu.sharing.strategy
    if gpu.mig:
        for profile, n in gpu.mig.profiles.items():
            slices, mem = profile.split(".")
            labels[f"nvidia.com/mig-{profile}.count"] = str(n)
            labels[f"nvidia.com/mig-{profile}.slices.gi"] = slices.rstrip("g")
            labels[f"nvidia.com/mig-{profile}.memory"] = str(int(mem.rstrip("gb")) * 1024)
    return labels


def node_manifests(fleet: Fleet) -> list[Manifest]:
    nodes: list[Manifest] = []
    for group in fleet.node_groups:
        resources = group.gpu.resources() if group.gpu else {}
        capacity = {"cpu": group.cpu, "memory": group.memory, "pods": str(group.pods)}
        capacity.update({k: str(v) for k, v in resources.items()})
        for name in group.names():
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/region": fleet.region,
                "topology.kubernetes.io/zone": group.zone,
                "type": "kwok",
                TESTBED_LABEL: fleet.cluster,
            }
            if group.gpu:
                labels.update(_gpu_labels(group.gpu))
            node: Manifest = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": {}},
                "spec": {},
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "addresses": [
                        {"type": "InternalIP", "address": "127.0.0.1"},
                        {"type": "Hostname", "address": name},
                    ],
                },
            }
            if group.ready:
                node["metadata"]["annotations"][KWOK_ANNOTATION] = "fake"
            else:
                # Not driven by kwok: no heartbeat, so the node lifecycle controller keeps it
                # NotReady (and taints it), as for a real node whose kubelet died.
                node["status"]["conditions"] = [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "KubeletNotReady",
                        "message": "container runtime is down",
                    }
                ]
            if group.unschedulable:
                node["spec"]["unschedulable"] = True
            if group.taints:
                node["spec"]["taints"] = [
                    t.model_dump(exclude_defaults=False) for t in group.taints
                ]
            nodes.append(node)
    return nodes


def pod_manifest(w: Workload, fleet_name: str) -> Manifest:
    resources: dict[str, dict[str, str]] = {}
    if w.resource and w.count:
        resources = {"requests": {w.resource: str(w.count)}, "limits": {w.resource: str(w.count)}}
    app = w.name.rsplit("-", 1)[0]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": w.name,
            "namespace": w.namespace,
            "labels": {"app.kubernetes.io/name": app, TESTBED_LABEL: fleet_name},
        },
        "spec": {
            "nodeName": w.node,
            "automountServiceAccountToken": False,
            "containers": [{"name": w.container, "image": w.image, "resources": resources}],
        },
    }


def workload_manifests(fleet: Fleet) -> list[Manifest]:
    pods = [pod_manifest(w, fleet.cluster) for w in fleet.workloads]
    gen = fleet.generated_workloads
    if gen is not None:
        gpu_groups = [g for g in fleet.node_groups if g.gpu and g.ready and not g.unschedulable]
        n = 0
        for group in gpu_groups:
            assert group.gpu is not None
            resource = "nvidia.com/gpu" if group.gpu.vendor == "nvidia" else "amd.com/gpu"
            for node in group.names():
                for i in range(gen.per_node):
                    gpus = 1 if i < gen.gpu_pods_per_node else 0
                    w = Workload(
                        name=f"{node}-w{i}",
                        namespace=gen.namespaces[n % len(gen.namespaces)],
                        node=node,
                        resource=resource if gpus else None,
                        count=gpus,
                        container="trainer" if gpus else "web",
                    )
                    pods.append(pod_manifest(w, fleet.cluster))
                    n += 1
    return pods


def namespace_manifests(fleet: Fleet) -> list[Manifest]:
    out: list[Manifest] = []
    for ns in fleet.namespaces:
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name}})
        if ns.gpu_quota is not None:
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "ResourceQuota",
                    "metadata": {"name": "gpu-quota", "namespace": ns.name},
                    "spec": {"hard": {"requests.nvidia.com/gpu": str(ns.gpu_quota)}},
                }
            )
    return out


# A ClusterQueue must cover every resource its jobs request (Kueue refuses the others): CPU
# and memory are covered with room to spare, so the GPU quota is the one that binds.
_QUEUE_CPU_MEMORY = {"cpu": "1024", "memory": "16Ti"}


def kueue_manifests(fleet: Fleet) -> list[Manifest]:
    if fleet.kueue is None:
        return []
    api = "kueue.x-k8s.io/v1beta2"  # the version Kueue stores and its controller writes
    out: list[Manifest] = [
        {
            "apiVersion": api,
            "kind": "ResourceFlavor",
            "metadata": {"name": f.name},
            "spec": {"nodeLabels": f.node_labels},
        }
        for f in fleet.kueue.flavors
    ]
    for cq in fleet.kueue.cluster_queues:
        flavors = [
            {
                "name": flavor,
                "resources": [
                    *({"name": r, "nominalQuota": q} for r, q in _QUEUE_CPU_MEMORY.items()),
                    {"name": "nvidia.com/gpu", "nominalQuota": str(n)},
                ],
            }
            for flavor, n in cq.quotas.items()
        ]
        covered = [*_QUEUE_CPU_MEMORY, "nvidia.com/gpu"]
        spec: Manifest = {
            "namespaceSelector": {},
            "resourceGroups": [{"coveredResources": covered, "flavors": flavors}],
        }
        if cq.hold:
            spec["stopPolicy"] = "Hold"
        out.append(
            {"apiVersion": api, "kind": "ClusterQueue", "metadata": {"name": cq.name}, "spec": spec}
        )
    out += [
        {
            "apiVersion": api,
            "kind": "LocalQueue",
            "metadata": {"name": lq.name, "namespace": lq.namespace},
            "spec": {"clusterQueue": lq.cluster_queue},
        }
        for lq in fleet.kueue.local_queues
    ]
    return out
