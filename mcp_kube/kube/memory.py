"""An in-memory cluster behind the ``ClusterPort``: the twin of ``KubeCluster`` for tests.

As httpx ships ``MockTransport``, mcp-kube ships the double of its one I/O seam, so that unit
tests run the real tools and the real gate on plain data instead of each carrying a fake.
``MemoryCluster`` keeps objects as plain JSON, by kind, and follows the API server's rules that
tools, the gate and approvals rely on:

- names are unique per kind and namespace: a second create is a ``Conflict`` (409);
- every stored change gets a new ``metadata.resourceVersion``; a merge patch (RFC 7386) that
  carries an older one is a ``Conflict``;
- a dry run is checked (admission included) and answered, but changes nothing;
- a delete removes the object's dependents in the background (``ownerReferences``);
- label selectors (equality and set based) and field selectors (``a.b=v``, ``a.b!=v``) filter
  lists, and ``limit`` cuts them; lists come sorted by namespace and name, as etcd keeps them;
- nodes and pods are parsed with ``NodeInfo`` / ``PodInfo`` from the stored objects;
- a missing object is ``NotFound``; what the ``deny`` hook refuses is ``Forbidden``; while
  ``outage`` is set every request is ``ClusterUnavailable``; messages read as the real ones.

Every request is kept in ``requests`` (with the principal it acts for), for tests to check.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio

from mcp_kube.domain import ACTING_FOR, Json, Principal
from mcp_kube.errors import (
    ClusterUnavailable,
    Conflict,
    Forbidden,
    InvalidArgument,
    NoClusters,
    NotFound,
    UnknownCluster,
)
from mcp_kube.kube.apiserver import matches, merge_patch, refused, resource_name
from mcp_kube.kube.memory_metrics import MetricsTwin
from mcp_kube.kube.objects import NodeInfo, PodInfo
from mcp_kube.kube.port import ClusterPort, ClusterSource, Kind, LogChunk

__all__ = ["MemoryCluster", "MemoryClusters", "Request", "Verb"]

T = TypeVar("T")
Verb = Literal["version", "list", "get", "create", "patch", "delete", "log"]
Admit = Callable[[Json | None, Json], None]  # (old or None, new): raise to refuse the change
_REVIEWS = (Kind.SELF_SUBJECT_REVIEWS, Kind.TOKEN_REVIEWS)  # answered, never stored


@dataclass(frozen=True, slots=True)
class Request:
    """One request made of a ``MemoryCluster``."""

    verb: Verb
    kind: Kind | None  # None for version
    namespace: str | None = None
    name: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    body: Json | None = None  # what a create or patch sent
    dry_run: bool = False
    acting_for: Principal | None = None  # whom the call impersonates (None: the server)
    container: str | None = None  # a log request's container and tail
    tail_lines: int | None = None
    limit_bytes: int | None = None


class MemoryCluster(MetricsTwin):
    """A ``ClusterPort`` over objects in memory (see the module docstring for its rules).

    ``objects``: what the cluster holds at the start, by kind. ``namespaces``: when given,
    these Namespace objects exist and a create elsewhere is ``NotFound``; when None, any
    namespace is taken to exist. ``logs``: each pod's log text, by ``namespace/pod`` or
    ``pod``. ``user``: who the credentials are (a SelfSubjectReview's answer); ``tokens``:
    the bearer tokens a TokenReview authenticates, as (user, groups). ``deny``: the cluster's
    RBAC: a request it returns True for is ``Forbidden``. ``admit``: admission, called with
    the old object (None on create) and the new one, also on dry runs; it raises to refuse.
    ``outage``: while set, every request is ``ClusterUnavailable`` for this reason.
    """

    def __init__(
        self,
        name: str = "memory",
        objects: Mapping[Kind, Iterable[Json]] | None = None,
        *,
        namespaces: Iterable[str] | None = None,
        contexts: Sequence[str] = (),
        version: Json | None = None,
        logs: Mapping[str, str] | None = None,
        user: tuple[str, Sequence[str]] = ("memory-admin", ("system:masters",)),
        tokens: Mapping[str, tuple[str, Sequence[str]]] | None = None,
        deny: Callable[[Request], bool] | None = None,
        admit: Admit | None = None,
        outage: str | None = None,
    ) -> None:
        self.name = name
        self.contexts: tuple[str, ...] = tuple(contexts)
        self.server_version: Json = version or {"major": "1", "gitVersion": "v1.36.0"}
        self.logs: dict[str, str] = dict(logs or {})
        self.user = (user[0], tuple(user[1]))
        self.tokens = {t: (u, tuple(g)) for t, (u, g) in (tokens or {}).items()}
        self.deny = deny
        self.admit = admit
        self.outage = outage  # set: every request fails, the cluster unreachable (saying why)
        self.requests: list[Request] = []
        self._store: dict[Kind, dict[tuple[str, str], Json]] = {}
        self._revision = itertools.count(1)
        self._uids = itertools.count(1)
        self._check_namespaces = namespaces is not None
        for ns in namespaces or ():
            self.add(Kind.NAMESPACES, {"metadata": {"name": ns}})
        for kind, items in (objects or {}).items():
            self.add(kind, *items)

    @property
    def context(self) -> str | None:
        """The first context, once a request was made (as the real one chooses at first use)."""
        return self.contexts[0] if self.contexts and self.requests else None

    # ------------------------------------------------------------------ the test's side
    def add(self, kind: Kind, *objects: Json) -> None:
        """Store objects as they are (no admission, no request noted), as a writer the
        server does not see; each gets a new resourceVersion."""
        for obj in objects:
            stored = copy.deepcopy(obj)
            meta = stored.setdefault("metadata", {})
            meta["resourceVersion"] = str(next(self._revision))
            key = self._key(kind, meta.get("namespace"), meta["name"])
            self._store.setdefault(kind, {})[key] = stored

    def stored(self, kind: Kind, name: str, namespace: str | None = None) -> Json:
        """A copy of the stored object (KeyError when there is none)."""
        return copy.deepcopy(self._store.get(kind, {})[self._key(kind, namespace, name)])

    def all(self, kind: Kind) -> list[Json]:
        """Copies of every stored object of a kind, sorted by namespace and name."""
        return [copy.deepcopy(o) for _, o in sorted(self._store.get(kind, {}).items())]

    def remove(self, kind: Kind, name: str, namespace: str | None = None) -> None:
        self._store.get(kind, {}).pop(self._key(kind, namespace, name), None)

    def written(self, verb: Verb, *, dry_run: bool | None = False) -> list[Json]:
        """The bodies of the creates or patches asked for: not dry runs, only dry runs
        (``dry_run=True``) or both (None)."""
        return [
            copy.deepcopy(r.body or {})
            for r in self.requests
            if r.verb == verb and dry_run in (None, r.dry_run)
        ]

    # ------------------------------------------------------------------ rules
    @staticmethod
    def _key(kind: Kind, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if kind.namespaced else "", name)

    async def _request(self, verb: Verb, kind: Kind | None, **fields: Any) -> None:
        await anyio.lowlevel.checkpoint()  # as a real request lets other tasks run meanwhile
        if self.outage is not None:
            raise ClusterUnavailable(f"cluster unavailable: {self.name} ({self.outage})")
        req = Request(verb, kind, acting_for=ACTING_FOR.get(), **fields)
        self.requests.append(req)
        if kind is not None and self.deny is not None and self.deny(req):
            who = req.acting_for.subject if req.acting_for else self.user[0]
            refusal = refused(kind, req.verb, who, req.namespace)
            raise Forbidden(f"{self.name}: forbidden: {refusal}")

    def _find(self, kind: Kind, name: str, namespace: str | None) -> Json:
        if kind.namespaced and not namespace:
            raise InvalidArgument(f"{kind.plural} are namespaced: a namespace is required")
        try:
            return self._store.get(kind, {})[self._key(kind, namespace, name)]
        except KeyError:
            raise NotFound(f'{self.name}: {resource_name(kind)} "{name}" not found') from None

    def _answer(self, obj: Json) -> Json:
        return copy.deepcopy(obj) | {"_audit_id": f"memory-{len(self.requests)}"}

    def _review(self, kind: Kind, body: Json) -> Json:
        if kind is Kind.SELF_SUBJECT_REVIEWS:
            username, groups = self.user
            return body | {"status": {"userInfo": {"username": username, "groups": [*groups]}}}
        spec = body.get("spec") or {}
        found = self.tokens.get(str(spec.get("token") or ""))
        if found is None:
            return body | {"status": {"authenticated": False}}
        user = {"username": found[0], "groups": [*found[1]]}
        audiences = list(spec.get("audiences") or [])
        return body | {"status": {"authenticated": True, "user": user, "audiences": audiences}}

    def _save(self, kind: Kind, obj: Json) -> Json:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(next(self._revision))
        self._store.setdefault(kind, {})[self._key(kind, meta.get("namespace"), meta["name"])] = obj
        return self._answer(obj)

    # ------------------------------------------------------------------ port: reads
    async def version(self) -> Json:
        await self._request("version", None)
        return copy.deepcopy(self.server_version)

    async def list_objects(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[Json]:
        await self._request(
            "list",
            kind,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        items = [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(self._store.get(kind, {}).items())
            if (namespace is None or not kind.namespaced or ns == namespace)
            and matches(obj, label_selector, field_selector)
        ]
        return items[:limit] if limit else items

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Json:
        await self._request("get", kind, namespace=namespace, name=name)
        return copy.deepcopy(self._find(kind, name, namespace))

    async def nodes(self) -> list[NodeInfo]:
        await self._request("list", Kind.NODES)
        return [NodeInfo.from_json(o) for o in self.all(Kind.NODES)]

    async def pods(self) -> list[PodInfo]:
        await self._request("list", Kind.PODS)
        return [PodInfo.from_json(o) for o in self.all(Kind.PODS)]

    async def derived(self, key: str, build: Callable[[list[NodeInfo], list[PodInfo]], T]) -> T:
        return build(await self.nodes(), await self.pods())

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None,
        tail_lines: int | None,
        since_seconds: int | None,
        limit_bytes: int,
        previous: bool,
    ) -> LogChunk:
        await self._request(
            "log",
            Kind.PODS,
            namespace=namespace,
            name=pod,
            container=container,
            tail_lines=tail_lines,
            limit_bytes=limit_bytes,
        )
        text = self.logs.get(f"{namespace}/{pod}", self.logs.get(pod))
        if text is None:
            self._find(Kind.PODS, pod, namespace)  # NotFound without the pod
            text = ""
        lines = text.splitlines(keepends=True)
        data = "".join(lines[-tail_lines:] if tail_lines else lines).encode()
        return LogChunk(
            text=data[:limit_bytes].decode("utf-8", "replace"),
            bytes_read=min(len(data), limit_bytes),
            truncated=len(data) > limit_bytes,
        )

    def cache_sizes(self) -> dict[str, int]:
        return {kind.plural: len(self._store.get(kind, {})) for kind in (Kind.NODES, Kind.PODS)}

    # ------------------------------------------------------------------ port: writes
    def _new(self, kind: Kind, namespace: str, body: Json) -> Json:
        """The object a create would store: in its namespace, named, with a uid."""
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            if not namespace:
                raise InvalidArgument(f"{kind.plural} are namespaced: a namespace is required")
            meta["namespace"] = namespace
            if self._check_namespaces and ("", namespace) not in self._store.get(
                Kind.NAMESPACES, {}
            ):
                raise NotFound(f'{self.name}: namespaces "{namespace}" not found')
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{next(self._uids):05x}"
        name = str(meta.get("name") or "")
        if not name:
            raise InvalidArgument(f"{self.name}: {kind.plural}: metadata.name: Required value")
        if self._key(kind, namespace, name) in self._store.get(kind, {}):
            what = f'{resource_name(kind)} "{name}"'
            raise Conflict(f"{self.name}: conflict: already exists: {what} already exists")
        meta.setdefault("uid", f"memory-uid-{next(self._uids)}")
        meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return obj

    async def create(self, kind: Kind, namespace: str, body: Json, *, dry_run: bool) -> Json:
        await self._request(
            "create", kind, namespace=namespace, body=copy.deepcopy(body), dry_run=dry_run
        )
        if kind in _REVIEWS:
            return self._review(kind, copy.deepcopy(body))
        obj = self._new(kind, namespace, body)
        if self.admit is not None:
            self.admit(None, copy.deepcopy(obj))
        return self._answer(obj) if dry_run else self._save(kind, obj)

    async def patch(
        self, kind: Kind, name: str, namespace: str, patch: Json, *, dry_run: bool
    ) -> Json:
        await self._request(
            "patch",
            kind,
            namespace=namespace,
            name=name,
            body=copy.deepcopy(patch),
            dry_run=dry_run,
        )
        old = self._find(kind, name, namespace)
        want = (patch.get("metadata") or {}).get("resourceVersion")
        if want is not None and str(want) != old["metadata"].get("resourceVersion"):
            what = f'{resource_name(kind)} "{name}"'
            raise Conflict(
                f"{self.name}: conflict: the object changed meanwhile: Operation cannot be "
                f"fulfilled on {what}: the object has been modified; please apply your changes "
                "to the latest version and try again"
            )
        new = merge_patch(old, patch)
        for key in ("name", "namespace", "uid"):  # what a patch cannot change
            if key in old["metadata"]:
                new["metadata"][key] = old["metadata"][key]
        if self.admit is not None:
            self.admit(copy.deepcopy(old), copy.deepcopy(new))
        return self._answer(new) if dry_run else self._save(kind, new)

    async def delete(self, kind: Kind, name: str, namespace: str, *, dry_run: bool) -> Json:
        await self._request("delete", kind, namespace=namespace, name=name, dry_run=dry_run)
        obj = self._find(kind, name, namespace)
        if not dry_run:
            self.remove(kind, name, namespace)
            self._collect_dependents(obj)
        return self._answer(obj)

    def _collect_dependents(self, owner: Json) -> None:
        """Background propagation: what the deleted object owned goes too (same namespace)."""
        meta = owner["metadata"]

        def owned(ref: Json) -> bool:
            if ref.get("uid") and meta.get("uid"):
                return bool(ref["uid"] == meta["uid"])
            return ref.get("name") == meta["name"] and ref.get("kind") in (None, owner.get("kind"))

        for objects in self._store.values():
            for key, obj in list(objects.items()):
                refs = (obj.get("metadata") or {}).get("ownerReferences") or []
                if key[0] == (meta.get("namespace") or "") and any(owned(r) for r in refs):
                    del objects[key]


class MemoryClusters:
    """The registry side of the gate (``names``, ``resolve``, ``get``) over memory clusters;
    the first is the default. Unknown names are refused as the real registry refuses them."""

    def __init__(self, *clusters: MemoryCluster) -> None:
        self.clusters = {c.name: c for c in clusters}
        self.gets = 0  # how often a port was handed out

    @property
    def names(self) -> list[str]:
        return list(self.clusters)

    def resolve(self, name: str | None) -> str:
        if not self.clusters:
            raise NoClusters("no clusters: none in memory")
        chosen = name or next(iter(self.clusters))
        if chosen not in self.clusters:
            valid = ", ".join(self.clusters)
            raise UnknownCluster(f"unknown cluster {chosen!r}; valid clusters: {valid}")
        return chosen

    def get(self, name: str | None) -> MemoryCluster:
        self.gets += 1
        return self.clusters[self.resolve(name)]

    def close(self) -> None:
        return None


if TYPE_CHECKING:  # the type checker holds the twin to the port's whole interface
    _PORT: ClusterPort = MemoryCluster()
    _SOURCE: ClusterSource = MemoryClusters()
