"""The API server's answers, and its silences, translated into the project's errors, once.

An HTTP status becomes an error class through one table (``STATUS_ERRORS``), so a caller above
the access layer catches ``Conflict`` or ``NotFound`` and never reads a status or an error's
text. A request that got no answer becomes ``ClusterUnavailable``, saying why in words (never a
traceback). Messages carry the API server's own ``message``, cut to a safe length.
"""

from __future__ import annotations

import json

import urllib3
from kubernetes.client.exceptions import ApiException

from mcp_kube.errors import (
    ClusterUnavailable,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    ToolError,
    UpstreamError,
)

__all__ = ["STATUS_ERRORS", "Timeout", "error_for_status", "no_answer"]

Timeout = float | tuple[float, float]  # seconds: total, or (connect, read)

# HTTP status -> (error class, message template); any other status >= 400 is OTHER_STATUS.
# Templates name {cluster}, {message} (the API server's), {status} and {conflict} (what a 409
# means for the method: a create found the name taken, a change found the object changed).
STATUS_ERRORS: dict[int, tuple[type[ToolError], str]] = {
    400: (InvalidArgument, "{cluster}: {message}"),
    401: (Forbidden, "{cluster}: forbidden: {message}"),
    403: (Forbidden, "{cluster}: forbidden: {message}"),
    404: (NotFound, "{cluster}: {message}"),
    409: (Conflict, "{cluster}: conflict: {conflict}: {message}"),
    422: (InvalidArgument, "{cluster}: {message}"),
    429: (UpstreamError, "{cluster}: API server is throttling (429): {message}"),
}
OTHER_STATUS: tuple[type[ToolError], str] = (
    UpstreamError,
    "{cluster}: API server error {status}: {message}",
)
MAX_MESSAGE = 300  # characters of the API server's message kept in an error


def _api_message(body: bytes, reason: str) -> str:
    """The ``message`` of a Kubernetes Status body, else the HTTP reason phrase."""
    try:
        return str(json.loads(body).get("message") or reason)[:MAX_MESSAGE]
    except (ValueError, AttributeError):
        return reason[:MAX_MESSAGE]


def error_for_status(cluster: str, method: str, status: int, body: bytes, reason: str) -> ToolError:
    """The error for an answer with ``status`` >= 400 to a ``method`` request."""
    error, template = STATUS_ERRORS.get(status, OTHER_STATUS)
    conflict = "already exists" if method == "POST" else "the object changed meanwhile"
    return error(
        template.format(
            cluster=cluster,
            message=_api_message(body, reason),
            status=status,
            conflict=conflict,
        )
    )


def _why(e: BaseException, timeout: Timeout) -> str:
    """What went wrong on the way to the API server, in words."""
    cause: BaseException = e
    if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
        cause = e.reason  # with retries off, urllib3 wraps the first failure
    # before timeouts: urllib3 2 makes NewConnectionError a ConnectTimeoutError for old callers
    if isinstance(cause, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, (urllib3.exceptions.TimeoutError, TimeoutError)):
        limit = timeout[-1] if isinstance(timeout, tuple) else timeout
        return f"no answer within {limit}s"
    if isinstance(cause, urllib3.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(cause, urllib3.exceptions.ProtocolError | ConnectionError):
        return "connection lost"
    if isinstance(e, ApiException):  # TLS and request-building failures come with status 0
        return str(e.reason)[:120]
    return type(cause).__name__


def no_answer(
    cluster: str, e: BaseException, timeout: Timeout, *, write: str | None = None
) -> ClusterUnavailable:
    """The error for a request that got no answer. ``write`` names the method of a write that
    may have reached the cluster all the same (never a dry run), so the caller reads first."""
    error = f"cluster unavailable: {cluster} ({_why(e, timeout)})"
    if write is None:
        return ClusterUnavailable(error)
    return ClusterUnavailable(
        f"{error}; the {write} may or may not have been applied: read the object before "
        "trying again"
    )
