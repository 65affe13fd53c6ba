"""How a tool call ends, free of any protocol's types: ``mcp_kube.server`` makes the SDK result.

A result is shaped here: workload text cleaned of control, escape and invisible characters
(and the count said), a size cap on the structured content, and a short text summary. A
failure is a tool error the model can read and correct: ``error [code]: message``, with a
stable code and nothing internal in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from mcp_kube.hygiene import clean, clean_tree, plain_json
from mcp_kube.tools.base import ToolOutput, ToolSpec

__all__ = [
    "REQUEST_ID_META",
    "SANITIZED_META",
    "SPAN_ID_META",
    "TRACE_ID_META",
    "InputNeeded",
    "Outcome",
    "shape",
]

REQUEST_ID_META = "mcp-kube.io/request-id"  # joins what a client saw with the audit record
SANITIZED_META = "mcp-kube.io/sanitized"  # characters removed from workload text
TRACE_ID_META = "mcp-kube.io/trace-id"  # the W3C trace the call ran in (the caller's or new)
SPAN_ID_META = "mcp-kube.io/span-id"  # the call's own span in it


@dataclass(frozen=True)
class Outcome:
    """What one call gives back: one text block, structured content, and metadata."""

    text: str  # the summary, or "error [code]: message"
    structured_content: dict[str, Any] | None = None
    is_error: bool = False
    error_code: str = ""  # set when is_error
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def error(cls, code: str, message: str) -> Outcome:
        return cls(text=f"error [{code}]: {message}", is_error=True, error_code=code)

    def with_meta(self, key: str, value: Any) -> Outcome:
        return replace(self, meta={**self.meta, key: value})

    def with_metas(self, items: dict[str, Any]) -> Outcome:
        """``with_meta`` of each item, in one copy."""
        return replace(self, meta={**self.meta, **items})


class InputNeeded(BaseException):
    """The transport must ask the client for input and have the call retried (2026-07-28).

    Raised by the transport's elicitation (``payload``: what to send the client, in the
    transport's own types); the gate records the call and lets it pass. A BaseException so
    that no ``except Exception`` on the way turns it into a failure.
    """

    def __init__(self, payload: Any) -> None:
        super().__init__("input required")
        self.payload = payload


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps(..., separators=...)


def _plain(text: str) -> bool:
    """``plain_json``; without a backslash in ``text`` only DEL can make it not plain."""
    return "\x7f" not in text if "\\" not in text else plain_json(text)


def shape(spec: ToolSpec[Any, Any], output: ToolOutput, max_bytes: int) -> Outcome:
    """A tool's output as a result: cleaned, size-capped, summarised."""
    data = output.model_dump(mode="json")
    text = _COMPACT.encode(data)
    removed = 0
    if not _plain(text):  # else nothing to clean: no copy of the tree walked
        data, removed = clean_tree(data)
        text = _COMPACT.encode(data)
    size = len(text)
    if size > max_bytes:
        return Outcome.error(
            "response_too_large",
            f"the result ({size} bytes) exceeds the {max_bytes}-byte cap; narrow the query "
            "(namespace, cluster, filters) or lower `limit`",
        )
    summary, _ = clean(spec.summary(output))
    if not removed:
        return Outcome(summary, data)
    note = f"[{removed} control, escape or invisible characters removed from workload text]"
    return Outcome(f"{summary}\n{note}", data, meta={SANITIZED_META: removed})
