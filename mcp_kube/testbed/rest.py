"""A small, thread-safe HTTPS client for loading the testbed (raw JSON, client certificates).

The testbed creates thousands of objects at start; plain dicts over a pooled connection are
much faster than model objects, and keep this package free of the server's access layer.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3

from mcp_kube.errors import TestbedError

__all__ = ["Rest", "object_path"]

Manifest = dict[str, Any]


def object_path(manifest: Manifest, *, named: bool = False) -> str:
    """The collection URL of a manifest's kind (or the object's URL when ``named``)."""
    api = manifest["apiVersion"]
    prefix = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    ns = manifest.get("metadata", {}).get("namespace")
    plural = manifest["kind"].lower() + "s"
    path = f"{prefix}/namespaces/{ns}/{plural}" if ns else f"{prefix}/{plural}"
    return f"{path}/{manifest['metadata']['name']}" if named else path


class Rest:
    def __init__(self, server: str, ca: Path, cert: Path, key: Path, pool: int = 16) -> None:
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.load_cert_chain(str(cert), str(key))
        self.server = server.rstrip("/")
        self._http = urllib3.PoolManager(
            maxsize=pool,
            ssl_context=ctx,
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=False,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Manifest | None = None,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        ok: Iterable[int] = (200, 201),
    ) -> tuple[int, Any]:
        url = self.server + path + (("?" + urlencode(params)) if params else "")
        hdrs = {"Accept": "application/json"}
        hdrs.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            resp = self._http.request(method, url, body=data, headers=hdrs)
        except urllib3.exceptions.HTTPError as e:
            raise TestbedError(f"{method} {path}: {e}") from e
        payload: Any = None
        if resp.data:
            try:
                payload = json.loads(resp.data)
            except ValueError:
                payload = resp.data.decode(errors="replace")
        if resp.status not in tuple(ok):
            msg = payload.get("message") if isinstance(payload, dict) else payload
            raise TestbedError(f"{method} {path} -> HTTP {resp.status}: {msg}")
        return resp.status, payload

    def get(self, path: str, **params: str) -> Any:
        return self.request("GET", path, params=params or None)[1]

    def create(self, manifest: Manifest) -> None:
        """Create an object; one that already exists is left as it is."""
        self.request("POST", object_path(manifest), manifest, ok=(200, 201, 409))

    def create_many(self, manifests: list[Manifest], workers: int = 12) -> None:
        if len(manifests) < 8:
            for m in manifests:
                self.create(m)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(self.create, manifests):
                pass

    def count(self, path: str, **params: str) -> int:
        """How many objects a list returns, fetching metadata only."""
        accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        _, payload = self.request(
            "GET", path, params=params or None, headers={"Accept": accept + ",application/json"}
        )
        return len(payload.get("items") or [])
