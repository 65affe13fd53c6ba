"""One cluster behind the ``ClusterPort``: a reused API client, typed requests and caches.

Each cluster gets one ``ApiClient`` (built at the first request, with the credentials chosen
then, and reused for every call). Requests are typed (``Kind``) and made in worker threads,
bounded per process; nodes and pods are served from list+watch caches when they are on.

Other lists (jobs, events, quotas ...) are read from the API server's watch cache: a list asks
for a version not older than the last list of that kind answered to this server
(``resourceVersionMatch=NotOlderThan``), so answers never go back in time and the API server
does not first wait for its cache to catch up with etcd, as a consistent list does (up to a
tenth of a second, each call). The first list of a kind, and the first after any write made by
this server, is a consistent read: a change made here is always in the next answer.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, TypeVarTuple
from urllib.parse import quote

import anyio
from kubernetes import client as k8s

from mcp_kube.domain import Json
from mcp_kube.errors import InvalidArgument, NotFound, UpstreamError
from mcp_kube.kube.cache import WatchCache, iter_watch_lines
from mcp_kube.kube.credentials import Chosen, Credentials, choose_credentials
from mcp_kube.kube.metrics import MetricsClient
from mcp_kube.kube.objects import NodeInfo, PodInfo
from mcp_kube.kube.port import Kind, LogChunk
from mcp_kube.kube.transport import Query, Transport
from mcp_kube.metrics.promql import PromQuery
from mcp_kube.metrics.result import Sample
from mcp_kube.settings import ClusterSettings

__all__ = ["KubeCluster"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
_LIMITER = anyio.CapacityLimiter(16)  # concurrent blocking API calls per process
WATCH_TIMEOUT_S = 290  # the API server ends a watch after this long; the cache watches again
WATCH_READ_TIMEOUT_S = 330  # no byte (not even a bookmark) for this long: the watch is dead
MAX_DERIVED = 32  # views kept by derived() before they are all dropped
LIST_PAGE = 500  # objects per page of a cache's list (kubectl's chunk size too)


class KubeCluster:
    """One cluster: a reused ApiClient plus list+watch caches of nodes and pods.

    ``credentials`` are tried in order at the first request: with ``choose``, the first whose
    identity may list nodes and pods (what every fleet view reads) is kept, refused ones are
    skipped; without, the first is used as it is. ``contexts`` are every kubeconfig context
    that points at this cluster's API server (shown by ``list_clusters``).
    """

    def __init__(
        self,
        name: str,
        credentials: Sequence[Credentials],
        settings: ClusterSettings,
        *,
        contexts: Sequence[str] = (),
        choose: bool = False,
    ) -> None:
        if not credentials:
            raise ValueError("a cluster needs credentials")
        self.name = name
        self.contexts: tuple[str, ...] = tuple(contexts)
        self._credentials = tuple(credentials)
        self._choose_among = choose and len(credentials) > 1
        self._api: k8s.ApiClient | None = None
        self._in_use: str | None = None
        self._api_lock = threading.Lock()
        self._http = Transport(name, settings.request_timeout_s, settings.impersonate)
        self._timeout = settings.request_timeout_s
        self._use_cache = settings.watch_cache
        self._derived: dict[str, tuple[tuple[int, ...], Any]] = {}  # see derived()
        # the resourceVersion of the last list of each kind (see the module's docstring), and
        # the writes begun and ended: a list that overlapped a write leaves no version behind
        self._seen: dict[Kind, str] = {}
        self._writes = 0
        self._node_cache: WatchCache[NodeInfo] = self._cache(
            Kind.NODES, NodeInfo.from_json, settings
        )
        self._pod_cache: WatchCache[PodInfo] = self._cache(Kind.PODS, PodInfo.from_json, settings)
        self._metrics = MetricsClient(name, settings.metrics.get(name), self._http, self._client)
        self._prices = dict(settings.gpu_prices)

    def _cache(
        self, kind: Kind, parse: Callable[[Json], T], settings: ClusterSettings
    ) -> WatchCache[T]:
        return WatchCache(
            f"{kind.plural} of {self.name}",
            lambda: self._list_pages(kind),
            lambda rv: self._watch_raw(kind, rv),
            parse,
            settings.cache_max_objects,
        )

    # ------------------------------------------------------------------ credentials
    @property
    def context(self) -> str | None:
        """The context whose credentials are in use (None before the first request)."""
        return self._in_use

    def _client(self) -> k8s.ApiClient:
        """The ApiClient of this cluster, its credentials chosen at the first request."""
        with self._api_lock:
            if self._api is None:
                self._api, self._in_use = self._choose()
            return self._api

    def _choose(self) -> Chosen:
        if not self._choose_among:
            first = self._credentials[0]
            return first.load(), first.context
        return choose_credentials(self.name, self._credentials, self._probe)

    def _probe(self, api: k8s.ApiClient) -> None:
        """Whether these credentials (as themselves, never impersonating) may list nodes and
        pods in every namespace; raises Forbidden if not."""
        for kind in (Kind.NODES, Kind.PODS):
            self._http.get_json(api, self._path(kind, None), [("limit", "1")], impersonate=False)

    # ------------------------------------------------------------------ raw requests
    def _path(self, kind: Kind, namespace: str | None, name: str | None = None) -> str:
        path = kind.prefix
        if kind.namespaced and namespace:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{kind.plural}"
        if name:
            path += f"/{quote(name, safe='')}"
        return path

    def _get_json(self, path: str, query: Query | None = None) -> Json:
        return self._http.get_json(self._client(), path, query)

    def _list_pages(self, kind: Kind) -> Iterator[tuple[list[Json], str]]:
        """Every object of a kind, ``LIST_PAGE`` at a time: (items, the list's resourceVersion)
        per page. The next page is asked for while the caller trims this one (the API server
        renders it meanwhile), so at most two raw pages are alive (see ``WatchCache``)."""
        path = self._path(kind, None)
        context = contextvars.copy_context()  # identity and trace of the caller, for each page

        def fetch(token: str | None) -> Json:
            query: Query = [("limit", str(LIST_PAGE))]
            if token:
                query.append(("continue", token))
            return context.copy().run(self._get_json, path, query)

        ahead = ThreadPoolExecutor(1, thread_name_prefix=f"list-{kind.plural}")
        try:
            data = fetch(None)
            while True:
                meta = data.get("metadata") or {}
                items: list[Json] = data.get("items") or []
                del data
                token = meta.get("continue")
                following = ahead.submit(fetch, str(token)) if token else None
                yield items, str(meta.get("resourceVersion") or "")
                del items
                if following is None:
                    return
                data = following.result()
        finally:
            ahead.shutdown(wait=False, cancel_futures=True)

    def _list_trimmed(self, kind: Kind, trim: Callable[[Json], T]) -> list[T]:
        """Every object of a kind, trimmed page by page (no cache)."""
        out: list[T] = []
        for items, _ in self._list_pages(kind):
            out += map(trim, items)
        return out

    def _watch_raw(self, kind: Kind, rv: str) -> Iterator[Json]:
        query: Query = [
            ("watch", "true"),
            ("resourceVersion", rv),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_TIMEOUT_S)),
        ]
        resp = self._http.get(
            self._client(),
            self._path(kind, None),
            query,
            timeout=(self._timeout, WATCH_READ_TIMEOUT_S),
        )
        try:
            yield from iter_watch_lines(resp.stream(64 * 1024, decode_content=True))
        finally:
            resp.release_conn()

    def _read_log(self, path: str, query: Query, limit_bytes: int) -> LogChunk:
        resp = self._http.get(self._client(), path, query)
        buf = bytearray()
        try:
            for chunk in resp.stream(32 * 1024, decode_content=True):
                buf += chunk
                if len(buf) > limit_bytes:  # our own hard cap, whatever the server sent
                    break
        finally:
            resp.release_conn()
        truncated = len(buf) > limit_bytes
        del buf[limit_bytes:]
        return LogChunk(
            text=buf.decode("utf-8", "replace"), bytes_read=len(buf), truncated=truncated
        )

    def _write(self, method: str, path: str, query: Query, body: Json, content_type: str) -> Json:
        return self._http.write(self._client(), method, path, query, body, content_type)

    # ------------------------------------------------------------------ threads
    async def _run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """A blocking read in a worker thread. A cancelled caller (the client went away) stops
        waiting at once; the thread ends by itself within the request timeout."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=_LIMITER, abandon_on_cancel=True)

    async def _run_write(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """A blocking write: a cancelled caller still waits for the answer (bounded by the
        request timeout), so that what reached the cluster is known and audited. The next list
        of every kind is a consistent read; one that ends meanwhile keeps no version."""
        self._writes += 1
        self._seen.clear()
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=_LIMITER)
        finally:
            self._writes += 1
            self._seen.clear()

    # ------------------------------------------------------------------ port: reads
    async def version(self) -> Json:
        return await self._run(self._get_json, "/version", None)

    async def list_objects(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[Json]:
        query: Query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if limit:
            query.append(("limit", str(limit)))
        path, seen, writes = self._path(kind, namespace), self._seen.get(kind), self._writes
        try:
            if seen:
                fresh = [("resourceVersion", seen), ("resourceVersionMatch", "NotOlderThan")]
                try:
                    data = await self._run(self._get_json, path, query + fresh)
                except UpstreamError:  # e.g. 504: an API server whose cache lags: consistent
                    data = await self._run(self._get_json, path, query)
            else:
                data = await self._run(self._get_json, path, query)
        except NotFound:
            if kind.optional:
                return []  # the CRD is not installed here
            raise
        version = (data.get("metadata") or {}).get("resourceVersion")
        if version and writes == self._writes:
            self._seen[kind] = str(version)
        items: list[Json] = data.get("items") or []
        return items

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Json:
        return await self._run(self._get_json, self._path(kind, namespace, name), None)

    async def nodes(self) -> list[NodeInfo]:
        if self._use_cache:
            return await self._run(self._node_cache.snapshot, self._timeout)
        return await self._run(self._list_trimmed, Kind.NODES, NodeInfo.from_json)

    async def pods(self) -> list[PodInfo]:
        if self._use_cache:
            return await self._run(self._pod_cache.snapshot, self._timeout)
        return await self._run(self._list_trimmed, Kind.PODS, PodInfo.from_json)

    async def derived(self, key: str, build: Callable[[list[NodeInfo], list[PodInfo]], T]) -> T:
        """``build(nodes, pods)``, reused while the watch caches have not changed since."""
        caches = (self._node_cache, self._pod_cache)
        version = (
            tuple(c.version for c in caches)
            if self._use_cache and all(c.synced for c in caches)
            else None
        )
        hit = self._derived.get(key)
        if version is not None and hit is not None and hit[0] == version:
            return hit[1]  # type: ignore[no-any-return]
        value = build(await self.nodes(), await self.pods())
        if version is not None:
            if len(self._derived) >= MAX_DERIVED:
                self._derived.clear()
            self._derived[key] = (version, value)
        return value

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
        # one byte more than we return tells a cut log from one that fits exactly
        query: Query = [("limitBytes", str(limit_bytes + 1))]
        if container:
            query.append(("container", container))
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        if since_seconds is not None:
            query.append(("sinceSeconds", str(since_seconds)))
        if previous:
            query.append(("previous", "true"))
        path = self._path(Kind.PODS, namespace, pod) + "/log"
        return await self._run(self._read_log, path, query, limit_bytes)

    async def query_metrics(self, query: PromQuery) -> list[Sample]:
        return await self._run(self._metrics.query, query)

    def gpu_price(self, product: str) -> float | None:
        return self._prices.get(product)

    def cache_sizes(self) -> dict[str, int]:
        return {"nodes": len(self._node_cache), "pods": len(self._pod_cache)}

    # ------------------------------------------------------------------ port: writes
    def _write_path(self, kind: Kind, namespace: str, name: str | None = None) -> str:
        if kind.namespaced and not namespace:
            raise InvalidArgument(f"{kind.plural} are namespaced: a namespace is required")
        return self._path(kind, namespace, name)

    @staticmethod
    def _write_query(dry_run: bool, strict: bool) -> Query:
        query: Query = [("dryRun", "All")] if dry_run else []
        if strict:
            query.append(("fieldValidation", "Strict"))
        return query

    async def create(self, kind: Kind, namespace: str, body: Json, *, dry_run: bool) -> Json:
        path = self._write_path(kind, namespace)
        query = self._write_query(dry_run, True)
        return await self._run_write(self._write, "POST", path, query, body, "application/json")

    async def patch(
        self, kind: Kind, name: str, namespace: str, patch: Json, *, dry_run: bool
    ) -> Json:
        path = self._write_path(kind, namespace, name)
        query = self._write_query(dry_run, True)
        return await self._run_write(
            self._write, "PATCH", path, query, patch, "application/merge-patch+json"
        )

    async def delete(self, kind: Kind, name: str, namespace: str, *, dry_run: bool) -> Json:
        path = self._write_path(kind, namespace, name)
        options: Json = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if dry_run:
            options["dryRun"] = ["All"]
        query = self._write_query(dry_run, False)
        return await self._run_write(
            self._write, "DELETE", path, query, options, "application/json"
        )

    def close(self) -> None:
        self._node_cache.stop()
        self._pod_cache.stop()
        self._metrics.close()
        with self._api_lock:
            if self._api is not None:
                self._api.close()
