"""Every tool the server offers, in the order clients see them (part of the interface)."""

from __future__ import annotations

from typing import Any

from mcp_kube.tools.base import ToolSpec
from mcp_kube.tools.identity import WHOAMI
from mcp_kube.tools.inventory import GPU_INVENTORY, LIST_CLUSTERS

__all__ = ["TOOLS", "by_name"]

TOOLS: tuple[ToolSpec[Any, Any], ...] = (
    LIST_CLUSTERS,
    GPU_INVENTORY,
    WHOAMI,
)


def by_name() -> dict[str, ToolSpec[Any, Any]]:
    return {t.name: t for t in TOOLS}
