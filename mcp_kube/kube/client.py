"""The one module that talks to Kubernetes: API clients per cluster, errors translated once.

A cluster is an API server, not a kubeconfig context: contexts that point at the same server
(server URL and CA) are one cluster, named after its first context, whose credentials are those
of the current context (when it points there) or else of the first of its contexts that may
list nodes and pods. Each cluster gets one ``ApiClient`` (built at first use, reused for every
call), requests are typed (``Kind``), bodies are decoded as plain JSON rather than model
objects, every request has a timeout and no automatic retries (a struggling API server gets no
retry storm), and every failure becomes one of the project's ``ToolError`` types with a message
safe to show.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import anyio
import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.kube_config import ENV_KUBECONFIG_PATH_SEPARATOR, KubeConfigMerger

from mcp_kube import __version__
from mcp_kube.domain import ACTING_FOR, KUBE_REQUESTS
from mcp_kube.errors import (
    ClusterUnavailable,
    Forbidden,
    InvalidArgument,
    NoClusters,
    NotFound,
    ToolError,
    UnknownCluster,
    UpstreamError,
)
from mcp_kube.kube.cache import WatchCache, iter_watch_lines
from mcp_kube.kube.objects import NodeInfo, PodInfo
from mcp_kube.kube.port import Kind, LogChunk
from mcp_kube.settings import ClusterSettings

__all__ = ["ClusterRegistry", "Credentials", "KubeCluster"]

Json = dict[str, Any]
T = TypeVar("T")
_LIMITER = anyio.CapacityLimiter(16)  # concurrent blocking API calls per process
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    """One way into a cluster: a kubeconfig context (``None``: the pod's service account)."""

    context: str | None
    load: Callable[[], k8s.ApiClient]  # raises ClusterUnavailable on a bad configuration


def _message(body: bytes, reason: str) -> str:
    try:
        return str(json.loads(body).get("message") or reason)[:300]
    except (ValueError, AttributeError):
        return reason[:300]


def _note_request(
    verb: str, path: str, query: list[tuple[str, Any]], status: int, audit_id: object
) -> None:
    """Record a request for the audit trail of the tool call running now (if any)."""
    requests = KUBE_REQUESTS.get()
    if requests is None or len(requests) >= 100:
        return
    parts = path.strip("/").split("/")
    namespace = parts[parts.index("namespaces") + 1] if "namespaces" in parts[:-1] else ""
    dry_run = any(k == "dryRun" for k, _ in query)
    requests.append(
        {
            "verb": verb,
            "path": path[:300],
            "namespace": namespace,
            "dry_run": dry_run,
            "status": status,
            "audit_id": str(audit_id or "")[:64],
        }
    )


def _why(e: BaseException, timeout: object) -> str:
    """What went wrong on the way to the API server, in words (never a traceback)."""
    reason = getattr(e, "reason", None)
    cause = reason if isinstance(reason, BaseException) else e
    if isinstance(cause, (urllib3.exceptions.TimeoutError, TimeoutError)):
        limit = timeout[-1] if isinstance(timeout, tuple) else timeout
        return f"no answer within {limit}s"
    if isinstance(cause, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, urllib3.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(cause, urllib3.exceptions.ProtocolError | ConnectionError):
        return "connection lost"
    if isinstance(e, ApiException):
        return str(e.reason)[:120]
    return type(cause).__name__


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
        self._timeout = settings.request_timeout_s
        self._impersonate = settings.impersonate
        self._use_cache = settings.watch_cache
        self._derived: dict[str, tuple[tuple[int, ...], Any]] = {}  # see derived()
        self._node_cache: WatchCache[NodeInfo] = WatchCache(
            f"nodes of {name}",
            lambda: self._list_raw(Kind.NODES),
            lambda rv: self._watch_raw(Kind.NODES, rv),
            NodeInfo.from_json,
            settings.cache_max_objects,
        )
        self._pod_cache: WatchCache[PodInfo] = WatchCache(
            f"pods of {name}",
            lambda: self._list_raw(Kind.PODS),
            lambda rv: self._watch_raw(Kind.PODS, rv),
            PodInfo.from_json,
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

    def _choose(self) -> tuple[k8s.ApiClient, str | None]:
        first = self._credentials[0]
        if not self._choose_among:
            return first.load(), first.context
        fallback: tuple[k8s.ApiClient, str | None] | None = None
        refused: list[str] = []
        for cred in self._credentials:
            try:
                api = cred.load()
            except ClusterUnavailable:
                refused.append(f"{cred.context}: bad configuration")
                continue
            try:
                self._probe(api)
            except Forbidden as e:  # 401 or 403: these credentials will not do
                refused.append(f"{cred.context}: {str(e).removeprefix(self.name + ': ')}")
                if fallback is None:
                    fallback = (api, cred.context)
                else:
                    api.close()
                continue
            except ToolError:  # unreachable or broken: another context will not fare better
                api.close()
                if fallback is not None:
                    fallback[0].close()
                raise
            if fallback is not None:
                fallback[0].close()
            if refused:
                log.info("%s: using context %s; refused: %s", self.name, cred.context, refused)
            return api, cred.context
        if fallback is not None:  # none may read the fleet: the first that loads, as it is
            log.warning("%s: no context may list nodes and pods: %s", self.name, refused)
            return fallback
        raise ClusterUnavailable(
            f"cluster unavailable: {self.name} (bad configuration of every context: "
            + ", ".join(c.context or "in-cluster" for c in self._credentials)
            + ")"
        )

    def _probe(self, api: k8s.ApiClient) -> None:
        """Whether these credentials (as themselves, never impersonating) may list nodes and
        pods in every namespace; raises Forbidden if not."""
        for kind in (Kind.NODES, Kind.PODS):
            self._get_json(self._path(kind, None), [("limit", "1")], api=api, impersonate=False)

    # ------------------------------------------------------------------ raw requests
    def _path(self, kind: Kind, namespace: str | None, name: str | None = None) -> str:
        path = kind.prefix
        if kind.namespaced and namespace:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{kind.plural}"
        if name:
            path += f"/{quote(name, safe='')}"
        return path

    def _identity(self, headers: dict[str, str], impersonate: bool = True) -> Any:
        """Headers, plus Impersonate-User/Group of the caller when impersonation is on."""
        who = ACTING_FOR.get() if self._impersonate and impersonate else None
        if who is None:
            return headers
        out = urllib3.HTTPHeaderDict(headers)
        out.add("Impersonate-User", who.subject)
        for group in who.groups:
            out.add("Impersonate-Group", group)
        return out

    def _request(
        self,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        *,
        timeout: float | tuple[float, float] | None = None,
        api: k8s.ApiClient | None = None,
        impersonate: bool = True,
    ) -> urllib3.HTTPResponse:
        if api is None:
            api = self._client()
        try:
            method, url, headers, _body, _post = api.param_serialize(
                "GET",
                path,
                query_params=query or [],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            rest = api.call_api(
                method,
                url,
                self._identity(headers, impersonate),
                _request_timeout=timeout or self._timeout,
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            # TLS and request-building failures come as ApiException with status 0
            _note_request("GET", path, query or [], 0, "")
            why = _why(e, timeout or self._timeout)
            raise ClusterUnavailable(f"cluster unavailable: {self.name} ({why})") from e
        resp: urllib3.HTTPResponse = rest.response
        _note_request("GET", path, query or [], int(resp.status), resp.headers.get("Audit-Id"))
        if resp.status < 400:
            return resp
        try:
            body = resp.read(64 * 1024)
        finally:
            resp.release_conn()
        status = int(resp.status)
        msg = _message(body, resp.reason or "")
        if status == 404:
            raise NotFound(f"{self.name}: {msg}")
        if status in (401, 403):
            raise Forbidden(f"{self.name}: forbidden: {msg}")
        if status == 400:
            raise InvalidArgument(f"{self.name}: {msg}")
        if status == 429:
            raise UpstreamError(f"{self.name}: API server is throttling (429): {msg}")
        raise UpstreamError(f"{self.name}: API server error {status}: {msg}")

    def _get_json(
        self,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        *,
        api: k8s.ApiClient | None = None,
        impersonate: bool = True,
    ) -> Json:
        resp = self._request(path, query, api=api, impersonate=impersonate)
        try:
            data: Json = json.loads(resp.data)
        finally:
            resp.release_conn()
        return data

    def _list_raw(self, kind: Kind) -> tuple[list[Json], str]:
        data = self._get_json(self._path(kind, None))
        return data.get("items") or [], data.get("metadata", {}).get("resourceVersion", "")

    def _watch_raw(self, kind: Kind, rv: str) -> Iterator[Json]:
        query = [
            ("watch", "true"),
            ("resourceVersion", rv),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "290"),
        ]
        resp = self._request(self._path(kind, None), query, timeout=(self._timeout, 330))
        try:
            yield from iter_watch_lines(resp.stream(64 * 1024, decode_content=True))
        finally:
            resp.release_conn()

    # ------------------------------------------------------------------ port
    async def _run(self, fn: Any, *args: Any) -> Any:
        """A blocking read in a worker thread. A cancelled caller (the client went away) stops
        waiting at once; the thread ends by itself within the request timeout."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=_LIMITER, abandon_on_cancel=True)

    async def _run_write(self, fn: Any, *args: Any) -> Any:
        """A blocking write: a cancelled caller still waits for the answer (bounded by the
        request timeout), so that what reached the cluster is known and audited."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=_LIMITER)

    async def version(self) -> Json:
        result: Json = await self._run(self._get_json, "/version")
        return result

    async def list_objects(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[Json]:
        query: list[tuple[str, Any]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if limit:
            query.append(("limit", str(limit)))
        try:
            data: Json = await self._run(self._get_json, self._path(kind, namespace), query)
        except NotFound:
            if kind.optional:
                return []  # the CRD is not installed here
            raise
        items: list[Json] = data.get("items") or []
        return items

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Json:
        result: Json = await self._run(self._get_json, self._path(kind, namespace, name))
        return result

    async def nodes(self) -> list[NodeInfo]:
        if self._use_cache:
            return await self._run(self._node_cache.snapshot, self._timeout)  # type: ignore[no-any-return]
        items, _ = await self._run(self._list_raw, Kind.NODES)
        return [NodeInfo.from_json(o) for o in items]

    async def pods(self) -> list[PodInfo]:
        if self._use_cache:
            return await self._run(self._pod_cache.snapshot, self._timeout)  # type: ignore[no-any-return]
        items, _ = await self._run(self._list_raw, Kind.PODS)
        return [PodInfo.from_json(o) for o in items]

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
            if len(self._derived) >= 32:
                self._derived.clear()
            self._derived[key] = (version, value)
        return value

    # ------------------------------------------------------------------ writes
    def _write(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]],
        body: Json,
        content_type: str = "application/json",
    ) -> Json:
        """One write request: no retries; errors mapped like reads, plus 409 and 422.

        The result is the decoded response with the API server's ``Audit-Id`` header added
        under ``_audit_id`` (empty when the server sent none).
        """
        api = self._client()
        try:
            method, url, headers, data, _post = api.param_serialize(
                method,
                path,
                query_params=query,
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            rest = api.call_api(
                method, url, self._identity(headers), data, _request_timeout=self._timeout
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            _note_request(method, path, query, 0, "")
            raise self._unanswered(e, method, query) from e
        resp: urllib3.HTTPResponse = rest.response
        audit_id = str(resp.headers.get("Audit-Id") or "")[:64]
        _note_request(method, path, query, int(resp.status), audit_id)
        try:
            raw = resp.read(1024 * 1024 if resp.status < 400 else 64 * 1024)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise self._unanswered(e, method, query) from e
        finally:
            resp.release_conn()
        status = int(resp.status)
        if status < 400:
            try:
                result: Json = json.loads(raw) if raw else {}
            except ValueError as e:
                raise UpstreamError(f"{self.name}: API server sent an unreadable answer") from e
            if not isinstance(result, dict):
                raise UpstreamError(f"{self.name}: API server sent an unexpected answer")
            result["_audit_id"] = audit_id
            return result
        msg = _message(raw, resp.reason or "")
        if status == 404:
            raise NotFound(f"{self.name}: {msg}")
        if status in (401, 403):
            raise Forbidden(f"{self.name}: forbidden: {msg}")
        if status in (400, 422):
            raise InvalidArgument(f"{self.name}: {msg}")
        if status == 409:
            what = "already exists" if method == "POST" else "the object changed meanwhile"
            raise UpstreamError(f"{self.name}: conflict: {what}: {msg}")
        if status == 429:
            raise UpstreamError(f"{self.name}: API server is throttling (429): {msg}")
        raise UpstreamError(f"{self.name}: API server error {status}: {msg}")

    def _unanswered(
        self, e: BaseException, method: str, query: list[tuple[str, Any]]
    ) -> ClusterUnavailable:
        why = _why(e, self._timeout)
        if any(k == "dryRun" for k, _ in query):
            return ClusterUnavailable(f"cluster unavailable: {self.name} ({why})")
        return ClusterUnavailable(
            f"cluster unavailable: {self.name} ({why}); the {method} may or may not have "
            "been applied: read the object before trying again"
        )

    def _write_path(self, kind: Kind, namespace: str, name: str | None = None) -> str:
        if kind.namespaced and not namespace:
            raise InvalidArgument(f"{kind.plural} are namespaced: a namespace is required")
        return self._path(kind, namespace, name)

    @staticmethod
    def _write_query(dry_run: bool, strict: bool) -> list[tuple[str, Any]]:
        query: list[tuple[str, Any]] = [("dryRun", "All")] if dry_run else []
        if strict:
            query.append(("fieldValidation", "Strict"))
        return query

    async def create(self, kind: Kind, namespace: str, body: Json, *, dry_run: bool) -> Json:
        path = self._write_path(kind, namespace)
        result: Json = await self._run_write(
            self._write, "POST", path, self._write_query(dry_run, True), body
        )
        return result

    async def patch(
        self, kind: Kind, name: str, namespace: str, patch: Json, *, dry_run: bool
    ) -> Json:
        path = self._write_path(kind, namespace, name)
        query = self._write_query(dry_run, True)
        result: Json = await self._run_write(
            self._write, "PATCH", path, query, patch, "application/merge-patch+json"
        )
        return result

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
        result: Json = await self._run_write(self._write, "DELETE", path, query, options)
        return result

    def cache_sizes(self) -> dict[str, int]:
        return {"nodes": len(self._node_cache), "pods": len(self._pod_cache)}

    def _read_log(self, path: str, query: list[tuple[str, Any]], limit_bytes: int) -> LogChunk:
        resp = self._request(path, query)
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
        query: list[tuple[str, Any]] = [("limitBytes", str(limit_bytes + 1))]
        if container:
            query.append(("container", container))
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        if since_seconds is not None:
            query.append(("sinceSeconds", str(since_seconds)))
        if previous:
            query.append(("previous", "true"))
        path = self._path(Kind.PODS, namespace, pod) + "/log"
        chunk: LogChunk = await self._run(self._read_log, path, query, limit_bytes)
        return chunk

    def close(self) -> None:
        self._node_cache.stop()
        self._pod_cache.stop()
        with self._api_lock:
            if self._api is not None:
                self._api.close()


@dataclass(frozen=True)
class _Served:
    """One served cluster: its name, its contexts and whose credentials it uses."""

    name: str
    contexts: tuple[str, ...]  # every served context pointing at this API server
    candidates: tuple[str, ...]  # contexts whose credentials may be used, preferred first
    choose: bool  # try the candidates in turn (else the first, as it is)
    in_cluster: bool = False


def _kubeconfig_source(given: Path | None) -> tuple[str, str]:
    """(what the kubernetes loader reads, the same in words for messages)."""
    if given is not None:
        return str(given), f"kubeconfig {given}"
    env = os.environ.get("KUBECONFIG")
    if env:
        return env, f"kubeconfig {env} (from $KUBECONFIG)"
    default = os.path.expanduser("~/.kube/config")
    return default, f"kubeconfig {default} (the default: $KUBECONFIG is not set)"


def _node_value(node: Any) -> Any:
    """A kubeconfig entry, whether the merger wrapped it (ConfigNode) or not."""
    return getattr(node, "value", node)


def _ca_bytes(cluster: dict[str, Any], base: str | None) -> bytes:
    data = cluster.get("certificate-authority-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=False)
        except (binascii.Error, ValueError):
            return str(data).encode()
    path = cluster.get("certificate-authority")
    if path:
        full = Path(os.path.expanduser(str(path)))
        if not full.is_absolute() and base:
            full = Path(base).parent / full
        try:
            return full.read_bytes()
        except OSError:
            return f"file:{full}".encode()
    return b""


def _server_of(cluster: dict[str, Any]) -> str:
    """The API server URL, normalised: scheme and host in lower case, default port explicit."""
    raw = str(cluster.get("server") or "").strip().rstrip("/")
    try:
        url = urlsplit(raw)
        port = url.port
    except ValueError:
        return raw
    if not url.hostname:
        return raw
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    port = port or {"https": 443, "http": 80}.get(url.scheme.lower())
    return f"{url.scheme.lower()}://{host}:{port}{url.path}"


def _server_key(context: str, entry: Any, clusters: dict[str, Any]) -> tuple[str, str]:
    """What makes two contexts one cluster: the same API server URL and the same CA."""
    ctx = _node_value(entry).get("context") or {}
    ctx = _node_value(ctx)
    name = ctx.get("cluster") if isinstance(ctx, dict) else None
    node = clusters.get(str(name)) if name is not None else None
    cluster = _node_value(_node_value(node).get("cluster")) if node is not None else None
    if not isinstance(cluster, dict) or not cluster.get("server"):
        return ("context", context)  # no usable cluster entry: a cluster of its own
    ca = _ca_bytes(cluster, getattr(node, "path", None))
    return (_server_of(cluster), hashlib.sha256(ca).hexdigest())


class ClusterRegistry:
    """The clusters this server serves: kubeconfig contexts grouped by API server, and the
    cluster the server runs in.

    Contexts that point at the same API server (server URL and CA) are one cluster, named
    after its first context (in file order, or in the order of the ``contexts`` allowlist).
    Its credentials are the current context's when the current context points at it (and no
    allowlist is given); otherwise the first of its contexts whose credentials may list nodes
    and pods. Another context of a cluster is not a cluster name: naming one is refused with
    the cluster to use instead, so a policy that names a cluster cannot be sidestepped.
    """

    def __init__(self, settings: ClusterSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._clusters: dict[str, KubeCluster] = {}
        self._served: dict[str, _Served] = {}
        self._alias: dict[str, str] = {}  # served context -> its cluster's name
        self.default: str | None = None
        self._kubeconfig, self.source = _kubeconfig_source(settings.kubeconfig)
        self.problem = ""  # why the kubeconfig gave no context, in words
        contexts, current = self._read()
        names = list(contexts)
        if settings.contexts:
            missing = [c for c in settings.contexts if c not in contexts]
            if missing:
                where = f"{self.source}" + (f", which {self.problem}" if self.problem else "")
                raise UnknownCluster(
                    f"configured contexts not in the {where}: {', '.join(missing)}"
                )
            names = list(dict.fromkeys(settings.contexts))
        groups: dict[tuple[str, str], list[str]] = {}
        for ctx in names:
            groups.setdefault(contexts[ctx], []).append(ctx)
        for members in groups.values():
            if not settings.contexts and current in members:
                served = _Served(members[0], tuple(members), (current,), False)  # you are you
            else:
                served = _Served(members[0], tuple(members), tuple(members), True)
            self._served[served.name] = served
            for ctx in members:
                self._alias[ctx] = served.name
        if current is not None and current in self._alias:
            self.default = self._alias[current]
        elif self._served:
            self.default = next(iter(self._served))
        if settings.in_cluster:
            name = settings.in_cluster_name
            self._served[name] = _Served(name, (), (), False, in_cluster=True)
            self.default = self.default or name

    def _read(self) -> tuple[dict[str, tuple[str, str]], str | None]:
        """Every context of the kubeconfig (merged like kubectl) -> its API server key, and
        the current context; sets ``problem`` when there are none."""
        paths = [p for p in self._kubeconfig.split(ENV_KUBECONFIG_PATH_SEPARATOR) if p]
        if not any(os.path.exists(os.path.expanduser(p)) for p in paths):
            self.problem = "does not exist" if len(paths) <= 1 else "holds no existing file"
            return {}, None
        try:
            merged = KubeConfigMerger(self._kubeconfig).config
            value = _node_value(merged) if merged is not None else {}
            clusters: dict[str, Any] = {}
            for node in value.get("clusters") or []:
                clusters.setdefault(str(_node_value(node).get("name")), node)
            out: dict[str, tuple[str, str]] = {}
            for node in value.get("contexts") or []:
                name = str(_node_value(node).get("name"))
                out.setdefault(name, _server_key(name, node, clusters))
            current = value.get("current-context")
        except (ConfigException, OSError, yaml.YAMLError, AttributeError, KeyError) as e:
            self.problem = f"cannot be read ({str(e)[:200] or type(e).__name__})"
            return {}, None
        if not out:
            self.problem = "has no contexts"
        return out, str(current) if current in out else None

    @property
    def names(self) -> list[str]:
        return list(self._served)

    def contexts_of(self, name: str) -> list[str]:
        """The served kubeconfig contexts of a cluster (empty for the in-cluster one)."""
        return list(self._served[self.resolve(name)].contexts)

    def describe(self) -> str:
        """What was read and what is served, for the server's start line."""
        if not self._served:
            problem = f" {self.problem}" if self.problem else ""
            return (
                f"read {self.source}:{problem}; found no context: no cluster to serve "
                "(every cluster tool answers no_clusters)"
            )
        parts = []
        for s in self._served.values():
            if s.in_cluster:
                parts.append(f"{s.name} (the cluster this pod runs in)")
                continue
            creds = s.candidates[0] if not s.choose else "the first that may list nodes and pods"
            parts.append(f"{s.name} (contexts: {', '.join(s.contexts)}; credentials: {creds})")
        return f"read {self.source}: clusters " + "; ".join(parts)

    def _no_clusters(self) -> NoClusters:
        problem = f" {self.problem}" if self.problem else ""
        return NoClusters(
            f"no clusters: {self.source}{problem}, so no context was found. Point --kubeconfig "
            "or $KUBECONFIG at a kubeconfig with contexts (or serve --in-cluster)"
        )

    def resolve(self, name: str | None) -> str:
        if not self._served:
            raise self._no_clusters()
        chosen = name or self.default
        if chosen is None:  # unreachable: a served cluster is always the default
            raise self._no_clusters()
        if chosen in self._served:
            return chosen
        valid = ", ".join(self._served)
        owner = self._alias.get(chosen)
        if owner is not None:
            raise UnknownCluster(
                f"unknown cluster {chosen!r}: it is a kubeconfig context of cluster {owner!r} "
                f"(the same API server); use cluster {owner!r}; valid clusters: {valid}"
            )
        raise UnknownCluster(f"unknown cluster {chosen!r}; valid clusters: {valid}")

    def get(self, name: str | None) -> KubeCluster:
        chosen = self.resolve(name)
        with self._lock:
            cluster = self._clusters.get(chosen)
            if cluster is None:
                served = self._served[chosen]
                creds = [
                    Credentials(ctx, self._loader(chosen, ctx))
                    for ctx in served.candidates or (None,)
                ]
                cluster = KubeCluster(
                    chosen,
                    creds,
                    self._settings,
                    contexts=served.contexts,
                    choose=served.choose,
                )
                self._clusters[chosen] = cluster
            return cluster

    def _loader(self, name: str, context: str | None) -> Callable[[], k8s.ApiClient]:
        return lambda: self._api_client(name, context)

    def _api_client(self, name: str, context: str | None) -> k8s.ApiClient:
        cfg = k8s.Configuration()
        try:
            if context is None:
                k8s_config.load_incluster_config(client_configuration=cfg)
            else:
                k8s_config.load_kube_config(
                    config_file=self._kubeconfig, context=context, client_configuration=cfg
                )
        except (ConfigException, OSError) as e:
            raise ClusterUnavailable(f"cluster unavailable: {name} (bad configuration)") from e
        cfg.retries = 0  # fail fast; the caller decides whether to try again
        api = k8s.ApiClient(cfg)
        # Names this server (and process) in the API server's audit log.
        api.user_agent = f"mcp-kube/{__version__} (pid {os.getpid()})"
        return api

    def close(self) -> None:
        with self._lock:
            for cluster in self._clusters.values():
                cluster.close()
            self._clusters.clear()
