"""Near matches for a named Job or pod that does not exist, so that a reader (often a small
model) can recover from ``not_found`` instead of guessing.

A lookup by name that ends in 404 is retried against what exists: the pods of a job of that
name (``bert-ft`` -> ``bert-ft-0``), the job that owns a pod of that name, the same name in
another namespace or another cluster, and names a character or two away. Everything here reads
through the cluster ports (the pod watch cache where there is one); each search is bounded and a
failure of the search never hides the original ``not_found``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from mcp_kube.domain import Json
from mcp_kube.errors import NotFound, ToolError
from mcp_kube.kube.port import ClusterPort, Kind
from mcp_kube.tools.base import ToolContext

__all__ = ["get_named", "missing", "near_matches"]

MAX_MATCHES = 5
_INDEX = re.compile(r"-(\d+|[a-z0-9]{5})$")  # a Job's pod index or a generated suffix
LIST_LIMIT = 500  # jobs listed per cluster when looking for a similar name


def _close(name: str, names: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(name, list(names), n=MAX_MATCHES, cutoff=0.8)


def _pod_line(cluster: str, namespace: str, name: str, phase: str, node: str) -> str:
    where = f" on {node}" if node else ""
    return f"pod {name} in {namespace} on cluster {cluster} ({phase or 'Unknown'}{where})"


def _pod_matches(
    kind: Kind, name: str, namespace: str, pod_name: str, pod_ns: str, owner: str
) -> bool:
    if kind is Kind.JOBS:  # the pods of a job of that name (any namespace) or a close one
        if owner == name or pod_name.startswith(name + "-"):
            return True
        base = _INDEX.sub("", pod_name)
        return pod_ns == namespace and bool(_close(name, [owner or base]))
    if pod_name == name:  # the same pod name in another namespace
        return pod_ns != namespace
    return pod_ns == namespace and bool(_close(name, [pod_name]))


async def _from_pods(port: ClusterPort, kind: Kind, name: str, namespace: str) -> list[str]:
    """Pods of that job, the same pod name elsewhere, or pods with a close name."""
    found: list[str] = []
    for p in await port.pods():
        if _pod_matches(kind, name, namespace, p.name, p.namespace, p.owner_name):
            found.append(_pod_line(port.name, p.namespace, p.name, p.phase, p.node))
            if len(found) >= MAX_MATCHES:
                break
    return found


async def _from_jobs(port: ClusterPort, kind: Kind, name: str, namespace: str) -> list[str]:
    """A job of that name elsewhere, or a close name in the same namespace."""
    jobs = await port.list_objects(Kind.JOBS, None, limit=LIST_LIMIT)
    found: list[str] = []
    for j in jobs:
        meta = j.get("metadata") or {}
        jname, jns = str(meta.get("name", "")), str(meta.get("namespace", ""))
        elsewhere = jname == name and (jns != namespace)
        close = jns == namespace and jname != name and _close(name, [jname])
        prefix = kind is Kind.PODS and name.startswith(jname + "-") and jns == namespace
        if elsewhere or close or prefix:
            found.append(f"job {jname} in {jns} on cluster {port.name}")
    return found[:MAX_MATCHES]


async def near_matches(
    ctx: ToolContext, port: ClusterPort, kind: Kind, name: str, namespace: str
) -> list[str]:
    """What exists that the caller may have meant, nearest first: this cluster, then others."""
    found: list[str] = []
    ports = [port, *_others(ctx, port.name)]
    for p in ports:
        # in another cluster the same name in any namespace (the same one included) is near
        ns = namespace if p is port else ""
        for search in (_from_pods, _from_jobs):
            try:
                found += await search(p, kind, name, ns)
            except ToolError:  # forbidden or unreachable: that place simply offers nothing
                continue
        if len(found) >= MAX_MATCHES:
            break
    return list(dict.fromkeys(found))[:MAX_MATCHES]


def _others(ctx: ToolContext, current: str) -> list[ClusterPort]:
    try:
        return [ctx.cluster(n) for n in ctx.cluster_names() if n != current]
    except ToolError:
        return []


async def missing(
    ctx: ToolContext, port: ClusterPort, kind: Kind, name: str, namespace: str, err: NotFound
) -> NotFound:
    """The ``not_found`` to raise for ``name``: it names what exists nearby, when anything does."""
    what = "job" if kind is Kind.JOBS else "pod" if kind is Kind.PODS else kind.plural
    msg = f"no {what} {name} in namespace {namespace} on cluster {port.name}"
    matches = await near_matches(ctx, port, kind, name, namespace)
    if matches:
        return NotFound(msg + ". Near matches: " + "; ".join(matches) + ".")
    return NotFound(f"{msg} ({err})")


async def get_named(
    ctx: ToolContext, port: ClusterPort, kind: Kind, name: str, namespace: str
) -> Json:
    """``port.get``; a ``not_found`` names what exists nearby."""
    try:
        return await port.get(kind, name, namespace)
    except NotFound as e:
        raise await missing(ctx, port, kind, name, namespace, e) from e
