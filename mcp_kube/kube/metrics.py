"""One cluster's Prometheus queries: the only place the server asks a metrics source anything.

Two routes, chosen per cluster in settings (``MetricsSource``): a Prometheus URL (its CA, a
bearer token read per query), or an in-cluster Prometheus Service reached through the API
server's service proxy with the cluster's own credentials, so its RBAC, impersonation and
audit apply. Either way a query is one bounded GET (time limit, bytes read, series kept),
noted with its PromQL in the tool call's audit record, and any failure becomes
``MetricsUnavailable`` naming the cluster, never a failure of the cluster's other answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s

from mcp_kube.domain import KUBE_REQUESTS
from mcp_kube.errors import McpKubeError, MetricsUnavailable
from mcp_kube.kube.transport import MAX_NOTED, Transport
from mcp_kube.metrics.promql import PromQuery
from mcp_kube.metrics.result import Sample, parse_vector
from mcp_kube.settings import MetricsSource

__all__ = ["MetricsClient"]

API_PATH = "/api/v1/query"


def _note(route: str, path: str, query: PromQuery, status: int, elapsed: float) -> None:
    requests = KUBE_REQUESTS.get()
    if requests is None:
        return
    last = requests[-1] if requests else {}
    if route == "service-proxy" and last.get("path") == path[:300] and "promql" not in last:
        last.update(metrics=route, promql=query.expr[:1000])  # the transport noted it
        return
    if len(requests) >= MAX_NOTED:
        return
    requests.append(
        {
            "verb": "GET",
            "path": path[:300],
            "metrics": route,
            "promql": query.expr[:1000],
            "status": status,
            "elapsed_ms": round(elapsed * 1000),
        }
    )


class MetricsClient:
    """Instant queries against one cluster's metrics source (None: not configured)."""

    def __init__(
        self,
        cluster: str,
        source: MetricsSource | None,
        http: Transport,
        api: Callable[[], k8s.ApiClient],
    ) -> None:
        self.cluster = cluster
        self.source = source
        self._http = http
        self._api = api
        self._pool: urllib3.PoolManager | None = None

    def _unavailable(self, why: str) -> MetricsUnavailable:
        return MetricsUnavailable(f"metrics unavailable for cluster {self.cluster}: {why}")

    def query(self, query: PromQuery) -> list[Sample]:
        """Blocking: run ``query`` and return its samples (bounded)."""
        src = self.source
        if src is None:
            raise self._unavailable("no metrics source is configured for it")
        params = {
            "query": query.expr,
            "time": f"{query.at:.3f}",
            "timeout": f"{round(src.timeout_s * 1000)}ms",
        }
        started = time.monotonic()
        if src.url:
            raw = self._direct(src, query, params, started)
        else:
            raw = self._proxied(src, query, params, started)
        return parse_vector(self.cluster, raw, src.max_series)

    def _direct(
        self, src: MetricsSource, query: PromQuery, params: dict[str, str], started: float
    ) -> bytes:
        assert src.url is not None
        url = src.url.rstrip("/") + API_PATH
        headers = {"Accept": "application/json"}
        try:
            if src.token_file is not None:
                headers["Authorization"] = f"Bearer {src.token_file.read_text().strip()}"
            if self._pool is None:
                ca = str(src.ca_file) if src.ca_file else None
                self._pool = urllib3.PoolManager(ca_certs=ca, retries=False, maxsize=4)
            resp = self._pool.request(
                "GET",
                url,
                fields=params,
                headers=headers,
                timeout=urllib3.Timeout(total=src.timeout_s),
                preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as e:
            _note("url", API_PATH, query, 0, time.monotonic() - started)
            why = "no answer in time" if "timed out" in str(e).lower() else "no answer"
            raise self._unavailable(f"{why} from {url}") from e
        return self._read(resp, "url", API_PATH, query, src, started)

    def _proxied(
        self, src: MetricsSource, query: PromQuery, params: dict[str, str], started: float
    ) -> bytes:
        assert src.service is not None
        namespace, rest = src.service.split("/", 1)
        name, port = rest.split(":", 1)
        path = (
            f"/api/v1/namespaces/{quote(namespace, safe='')}/services/"
            f"{quote(name, safe='')}:{quote(port, safe='')}/proxy{API_PATH}"
        )
        try:
            resp = self._http.get(self._api(), path, list(params.items()), timeout=src.timeout_s)
        except McpKubeError as e:
            _note("service-proxy", path, query, 0, time.monotonic() - started)
            raise self._unavailable(str(e)[:200]) from e
        return self._read(resp, "service-proxy", path, query, src, started)

    def _read(
        self,
        resp: urllib3.BaseHTTPResponse,
        route: str,
        path: str,
        query: PromQuery,
        src: MetricsSource,
        started: float,
    ) -> bytes:
        try:
            raw = resp.read(src.max_bytes + 1)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise self._unavailable("the answer was cut off") from e
        finally:
            resp.release_conn()
        _note(route, path, query, int(resp.status), time.monotonic() - started)
        if len(raw) > src.max_bytes:
            raise self._unavailable(f"the answer exceeds {src.max_bytes} bytes; narrow it")
        if resp.status >= 400 and resp.status not in (400, 422):  # those say why in the body
            raise self._unavailable(f"Prometheus answered {resp.status}")
        return bytes(raw)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.clear()
