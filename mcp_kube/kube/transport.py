"""One cluster's HTTP requests through a kubernetes ``ApiClient``: every request passes here.

Requests have a timeout and no automatic retries (a struggling API server gets no retry
storm); bodies are decoded as plain JSON rather than model objects; the caller's identity is
sent as ``Impersonate-*`` headers when impersonation is on; a request made on behalf of a tool
call carries that call's W3C ``traceparent`` (and ``tracestate``); each request is noted for the
audit record of the tool call running now; and each failure becomes one of the project's
errors (``mcp_kube.kube.errors``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from mcp_kube.domain import ACTING_FOR, KUBE_REQUESTS, TRACE_HEADERS, Json
from mcp_kube.errors import UpstreamError
from mcp_kube.kube.errors import Timeout, error_for_status, no_answer

__all__ = ["Query", "Transport"]

Query = list[tuple[str, Any]]  # query parameters, in order, repeated keys allowed
MAX_NOTED = 100  # requests noted per tool call; a call that makes more is cut off in the record
MAX_ERROR_BODY = 64 * 1024  # bytes of an error answer read (its message is all we keep)
MAX_WRITE_ANSWER = 1024 * 1024  # bytes of a write's answer read
_NO_ANSWER = (ApiException, urllib3.exceptions.HTTPError, OSError)


def is_dry_run(query: Query) -> bool:
    return any(k == "dryRun" for k, _ in query)


def note_request(verb: str, path: str, query: Query, status: int, audit_id: object) -> None:
    """Record a request for the audit trail of the tool call running now (if any)."""
    requests = KUBE_REQUESTS.get()
    if requests is None or len(requests) >= MAX_NOTED:
        return
    parts = path.strip("/").split("/")
    namespace = parts[parts.index("namespaces") + 1] if "namespaces" in parts[:-1] else ""
    requests.append(
        {
            "verb": verb,
            "path": path[:300],
            "namespace": namespace,
            "dry_run": is_dry_run(query),
            "status": status,
            "audit_id": str(audit_id or "")[:64],
            # the W3C traceparent header the request carried (see Transport._headers)
            "traceparent": dict(TRACE_HEADERS.get()).get("traceparent", ""),
        }
    )


@dataclass(frozen=True)
class Transport:
    """How requests to one cluster are made: its name (for messages), the request timeout in
    seconds, and whether the caller is impersonated."""

    cluster: str
    timeout: float
    impersonate: bool

    def _headers(self, headers: dict[str, str], impersonate: bool) -> Any:
        """Headers, plus the tool call's trace headers, plus Impersonate-User/Group of the
        caller when impersonation is on."""
        who = ACTING_FOR.get() if self.impersonate and impersonate else None
        trace = TRACE_HEADERS.get()
        if who is None and not trace:
            return headers
        out = urllib3.HTTPHeaderDict(headers)
        for name, value in trace:
            out[name] = value
        if who is None:
            return out
        out.add("Impersonate-User", who.subject)
        for group in who.groups:
            out.add("Impersonate-Group", group)
        return out

    def get(
        self,
        api: k8s.ApiClient,
        path: str,
        query: Query | None = None,
        *,
        timeout: Timeout | None = None,
        impersonate: bool = True,
    ) -> urllib3.HTTPResponse:
        """A GET whose answer is < 400, unread: the caller reads (or streams) and releases."""
        query = query or []
        timeout = timeout or self.timeout
        try:
            method, url, headers, _body, _post = api.param_serialize(
                "GET",
                path,
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            rest = api.call_api(
                method, url, self._headers(headers, impersonate), _request_timeout=timeout
            )
        except _NO_ANSWER as e:
            note_request("GET", path, query, 0, "")
            raise no_answer(self.cluster, e, timeout) from e
        resp: urllib3.HTTPResponse = rest.response
        note_request("GET", path, query, int(resp.status), resp.headers.get("Audit-Id"))
        if resp.status < 400:
            return resp
        try:
            body = resp.read(MAX_ERROR_BODY)
        finally:
            resp.release_conn()
        raise error_for_status(self.cluster, "GET", int(resp.status), body, resp.reason or "")

    def get_json(
        self,
        api: k8s.ApiClient,
        path: str,
        query: Query | None = None,
        *,
        impersonate: bool = True,
    ) -> Json:
        resp = self.get(api, path, query, impersonate=impersonate)
        try:
            data: Json = json.loads(resp.data)
        finally:
            resp.release_conn()
        return data

    def write(
        self,
        api: k8s.ApiClient,
        method: str,
        path: str,
        query: Query,
        body: Json,
        content_type: str = "application/json",
    ) -> Json:
        """One write request: no retries; errors translated like reads.

        The result is the decoded response with the API server's ``Audit-Id`` header added
        under ``_audit_id`` (empty when the server sent none).
        """
        unsure = None if is_dry_run(query) else method  # a write that may have been applied
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
                method, url, self._headers(headers, True), data, _request_timeout=self.timeout
            )
        except _NO_ANSWER as e:
            note_request(method, path, query, 0, "")
            raise no_answer(self.cluster, e, self.timeout, write=unsure) from e
        resp: urllib3.HTTPResponse = rest.response
        audit_id = str(resp.headers.get("Audit-Id") or "")[:64]
        status = int(resp.status)
        note_request(method, path, query, status, audit_id)
        try:
            raw = resp.read(MAX_WRITE_ANSWER if status < 400 else MAX_ERROR_BODY)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise no_answer(self.cluster, e, self.timeout, write=unsure) from e
        finally:
            resp.release_conn()
        if status >= 400:
            raise error_for_status(self.cluster, method, status, raw, resp.reason or "")
        return self._answer(raw, audit_id)

    def _answer(self, raw: bytes, audit_id: str) -> Json:
        try:
            result: Json = json.loads(raw) if raw else {}
        except ValueError as e:
            raise UpstreamError(f"{self.cluster}: API server sent an unreadable answer") from e
        if not isinstance(result, dict):
            raise UpstreamError(f"{self.cluster}: API server sent an unexpected answer")
        result["_audit_id"] = audit_id
        return result
