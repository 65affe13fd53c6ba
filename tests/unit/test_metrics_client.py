"""The metrics client of the kube access layer against a local HTTP stand-in for Prometheus:
the token it sends, the bounds it keeps, the time limit, and what the audit record notes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from mcp_kube.domain import KUBE_REQUESTS
from mcp_kube.errors import MetricsUnavailable
from mcp_kube.kube.metrics import MetricsClient
from mcp_kube.kube.transport import Transport
from mcp_kube.metrics.promql import Matcher, over_window
from mcp_kube.settings import MetricsSource

QUERY = over_window("avg", "DCGM_FI_DEV_GPU_UTIL", 3600, (Matcher("namespace", "team-a"),), 1e9)


class _Prometheus(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []
    delay = 0.0
    series = 2

    def do_GET(self) -> None:
        url = urlparse(self.path)
        type(self).seen.append(
            {"path": url.path, "query": parse_qs(url.query), "auth": self.headers["Authorization"]}
        )
        time.sleep(type(self).delay)
        result = [
            {"metric": {"gpu": str(i), "namespace": "team-a"}, "value": [1e9, "42"]}
            for i in range(type(self).series)
        ]
        body = json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        ).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the time-limit test)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def prometheus() -> Iterator[str]:
    _Prometheus.seen, _Prometheus.delay, _Prometheus.series = [], 0.0, 2
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _client(**source: Any) -> MetricsClient:
    def no_api() -> Any:
        raise AssertionError("a direct source never uses the API server")

    return MetricsClient(
        "gpu-east", MetricsSource(**source), Transport("gpu-east", 5, False), no_api
    )


def test_a_direct_query_sends_the_token_and_is_audited(prometheus: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    noted: list[dict[str, object]] = []
    reset = KUBE_REQUESTS.set(noted)
    try:
        samples = _client(url=prometheus, token_file=token).query(QUERY)
    finally:
        KUBE_REQUESTS.reset(reset)
    assert [s.value for s in samples] == [42.0, 42.0]
    seen = _Prometheus.seen[0]
    assert seen["path"] == "/api/v1/query"
    assert seen["auth"] == "Bearer s3cret"
    assert seen["query"]["query"] == [QUERY.expr]
    assert seen["query"]["timeout"] == ["10000ms"]  # Prometheus takes no decimal durations
    assert noted[0]["promql"] == QUERY.expr
    assert noted[0]["status"] == 200
    assert "s3cret" not in json.dumps(noted)


def test_bounds_and_time_limit_make_it_unavailable(prometheus: str) -> None:
    _Prometheus.series = 50
    with pytest.raises(MetricsUnavailable, match="50 series exceed the bound of 10"):
        _client(url=prometheus, max_series=10).query(QUERY)
    with pytest.raises(MetricsUnavailable, match="exceeds 4096 bytes"):
        _client(url=prometheus, max_bytes=4096).query(QUERY)
    _Prometheus.delay, _Prometheus.series = 3.0, 1
    started = time.monotonic()
    with pytest.raises(MetricsUnavailable, match="metrics unavailable for cluster gpu-east"):
        _client(url=prometheus, timeout_s=0.5).query(QUERY)
    assert time.monotonic() - started < 2.5


def test_no_source_and_nothing_listening_are_said_plainly() -> None:
    client = MetricsClient("gpu-west", None, Transport("gpu-west", 5, False), lambda: None)
    with pytest.raises(MetricsUnavailable, match="gpu-west: no metrics source is configured"):
        client.query(QUERY)
    with pytest.raises(MetricsUnavailable, match=r"no answer from http://127\.0\.0\.1:9"):
        _client(url="http://127.0.0.1:9", timeout_s=1).query(QUERY)


def test_the_service_proxy_route_goes_through_the_api_client(prometheus: str) -> None:
    """An in-cluster Prometheus: the query is a GET on the API server's service proxy, made
    with the cluster's own client (so its RBAC applies), and noted once with its PromQL."""
    from kubernetes import client as k8s

    cfg = k8s.Configuration()
    cfg.host = prometheus  # the stand-in plays the API server here
    api = k8s.ApiClient(cfg)
    client = MetricsClient(
        "gpu-east",
        MetricsSource(service="monitoring/prometheus:9090"),
        Transport("gpu-east", 5, False),
        lambda: api,
    )
    noted: list[dict[str, object]] = []
    reset = KUBE_REQUESTS.set(noted)
    try:
        assert len(client.query(QUERY)) == 2
    finally:
        KUBE_REQUESTS.reset(reset)
        api.close()
    path = "/api/v1/namespaces/monitoring/services/prometheus:9090/proxy/api/v1/query"
    assert _Prometheus.seen[0]["path"] == path
    assert _Prometheus.seen[0]["query"]["query"] == [QUERY.expr]
    assert len(noted) == 1
    assert noted[0]["path"] == path
    assert noted[0]["promql"] == QUERY.expr
