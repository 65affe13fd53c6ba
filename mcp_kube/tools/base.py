"""What a tool is: a typed input, a typed output, and a function of the two given a context.

Tools are plain async functions over a ``ToolContext`` handed to them by the gate. They never
hold an API client: ``ctx.cluster(name)`` gives them the cluster port, after the gate has
validated the arguments and asked the policy.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from mcp_kube.domain import ClusterName, ManifestReview, Principal
from mcp_kube.errors import InvalidArgument
from mcp_kube.kube.port import ClusterPort
from mcp_kube.settings import Limits

__all__ = [
    "ManifestReview",
    "Page",
    "StrictInput",
    "ToolContext",
    "ToolOutput",
    "ToolSpec",
    "paginate",
]

InT = TypeVar("InT", bound="StrictInput")
OutT = TypeVar("OutT", bound="ToolOutput")
T = TypeVar("T")


class StrictInput(BaseModel):
    """Tool arguments: unknown fields are refused, strings are bounded."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096, frozen=True, defer_build=True)


class ClusterInput(StrictInput):
    cluster: ClusterName | None = Field(
        None, description="kubeconfig context / cluster name; default: the current one"
    )


class ToolOutput(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class ToolContext(Protocol):
    principal: Principal
    limits: Limits

    def cluster(self, name: str | None) -> ClusterPort: ...

    def clusters(self, name: str | None) -> list[ClusterPort]:
        """The named cluster, or every served cluster when ``name`` is None."""
        ...

    def cluster_names(self) -> list[str]: ...

    def permissions(self) -> list[tuple[str, bool, str]]:
        """(tool, allowed, rule) for every tool, as the policy decides for this caller now."""
        ...

    @property
    def progress_patterns(self) -> Sequence[str]: ...

    def review_manifest(
        self, cluster: str, namespace: str, manifest: dict[str, Any]
    ) -> ManifestReview:
        """Apply the policy's defaults to a write's manifest, then decide on the result.

        Raises ``PolicyDenied`` (with the rule id and message) when the policy refuses it.
        """
        ...

    async def require_approval(self, review: ManifestReview, preview: dict[str, Any]) -> str:
        """Obtain the approval the policy asks for; returns how it was given.

        Raises ``ApprovalRefused`` unless a human said yes (or the policy needs no approval).
        Nothing a caller passes as an argument counts as approval.
        """
        ...


@dataclass(frozen=True)
class ToolSpec(Generic[InT, OutT]):
    name: str
    title: str
    description: str
    input: type[InT]
    output: type[OutT]
    run: Callable[[ToolContext, InT], Awaitable[OutT]]
    summary: Callable[[OutT], str]
    read_only: bool = True
    # which cluster(s) a call touches, for validation and policy; from the validated input
    clusters_of: Callable[[InT], list[str | None]] | None = None
    # (request as a user would phrase it, the arguments that answer it): shown to clients in
    # the tool's _meta so that small local models pick tools by example; validated by tests
    examples: tuple[tuple[str, dict[str, Any]], ...] = ()


class Page(BaseModel):
    model_config = ConfigDict(frozen=True)
    total: int = Field(description="items before pagination")
    returned: int
    next_cursor: str | None = Field(None, description="pass as `cursor` to get the next page")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidArgument("invalid cursor: pass back the next_cursor of a previous call") from e
    if value < 0:
        raise InvalidArgument("invalid cursor")
    return value


def paginate(items: Sequence[T], cursor: str | None, limit: int) -> tuple[list[T], Page]:
    start = _decode_cursor(cursor)
    page = list(items[start : start + limit])
    end = start + len(page)
    nxt = (
        base64.urlsafe_b64encode(str(end).encode()).decode().rstrip("=")
        if end < len(items)
        else None
    )
    return page, Page(total=len(items), returned=len(page), next_cursor=nxt)


def clamp_limit(requested: int | None, limits: Limits) -> int:
    if requested is None:
        return limits.default_page
    return min(requested, limits.max_page)
