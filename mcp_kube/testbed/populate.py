"""Load a started cluster with its fleet: namespaces, RBAC, Kueue queues, nodes, pods.

Why waits between the steps: each step needs the one before to have taken effect in the
cluster, not only to be accepted - pods need Ready nodes and the namespaces' default service
accounts, queues need their CRDs established. Every wait fails at once, naming the log, if a
component of the cluster exits meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import yaml

from mcp_kube.testbed import build, fleet, identities
from mcp_kube.testbed.build import Report
from mcp_kube.testbed.processes import Proc, wait
from mcp_kube.testbed.rest import Rest
from mcp_kube.testbed.state import ComponentState

__all__ = ["load_fleet"]

Procs = list[tuple[Proc, ComponentState]]


def load_fleet(
    rest: Rest,
    fl: fleet.Fleet,
    procs: Procs,
    report: Report,
    queues_ready: Callable[[], None] | None = None,
) -> None:
    """Create the fleet's objects in order, waiting until each step has taken effect.
    ``queues_ready`` is called once the Kueue CRDs and queues exist (so the Kueue controller
    starts while the nodes come up)."""
    started = time.monotonic()
    rest.create_many(fleet.namespace_manifests(fl))
    teams = [ns.name for ns in fl.namespaces]
    rest.create_many(identities.rbac_manifests(teams))
    crds = _kueue_crds(rest, fl, report) if fl.kueue is not None else []

    nodes = fleet.node_manifests(fl)
    rest.create_many(nodes)
    if crds:  # established while the nodes were created
        wait("Kueue CRDs to be established", lambda: _established(rest, crds), procs, 60)
        rest.create_many(fleet.kueue_manifests(fl))
        if queues_ready is not None:
            queues_ready()
    managed = sum(1 for n in nodes if fleet.KWOK_ANNOTATION in n["metadata"]["annotations"])
    report(f"[{fl.cluster}] created {len(nodes)} nodes; waiting for {managed} to be Ready")
    wait(f"{managed} Ready nodes", lambda: _ready_nodes(rest) >= managed, procs, 600, 2)

    def service_accounts() -> bool:
        return all(
            rest.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default", ok=(200,))
            for ns in teams
        )

    wait("default service accounts", service_accounts, procs, 60)
    _load_pods(rest, fl, procs, report)
    report(f"[{fl.cluster}] fleet loaded in {time.monotonic() - started:.1f}s")


def _kueue_crds(rest: Rest, fl: fleet.Fleet, report: Report) -> list[dict[str, Any]]:
    """Create the Kueue CRDs (every one: the controller needs them all); [] if not built."""
    crd_dir = build.kueue_crd_dir()
    if not crd_dir.is_dir():
        report(f"[{fl.cluster}] Kueue CRDs not built; queues skipped")
        return []
    crds = [yaml.safe_load(p.read_text()) for p in sorted(crd_dir.glob("*.yaml"))]
    rest.create_many(crds)
    return crds


def _established(rest: Rest, crds: list[dict[str, Any]]) -> bool:
    for crd in crds:
        name = crd["metadata"]["name"]
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        conds = rest.get(path).get("status", {}).get("conditions") or []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
            return False
    return True


def _ready_nodes(rest: Rest) -> int:
    nodes = rest.get("/api/v1/nodes").get("items") or []
    n = 0
    for node in nodes:
        for cond in node.get("status", {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                n += 1
    return n


def _load_pods(rest: Rest, fl: fleet.Fleet, procs: Procs, report: Report) -> None:
    pods = fleet.workload_manifests(fl)
    rest.create_many(pods)
    report(f"[{fl.cluster}] created {len(pods)} workload pods; waiting for them to run")

    last = [0.0]

    def running() -> bool:
        n = rest.count("/api/v1/pods", fieldSelector="status.phase=Running")
        if len(pods) > 500 and time.monotonic() - last[0] > 15:
            last[0] = time.monotonic()
            report(f"[{fl.cluster}] {n}/{len(pods)} pods running")
        return n >= len(pods)

    # Counting 10,000 pods is itself load on the API server: poll big fleets less often.
    wait(f"{len(pods)} running pods", running, procs, 1800, 2 if len(pods) < 1000 else 10)
