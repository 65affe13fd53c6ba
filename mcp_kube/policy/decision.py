"""Policy decisions, and the built-in policy used until policy files are loaded: read-only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mcp_kube.domain import ManifestReview, Principal
from mcp_kube.errors import PolicyDenied

__all__ = ["Decision", "Policy", "ReadOnlyPolicy"]


@dataclass(frozen=True)
class Decision:
    action: Literal["allow", "deny"]
    rule: str
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


class Policy(Protocol):
    def decide(
        self, principal: Principal, tool: str, read_only: bool, args: dict[str, Any]
    ) -> Decision:
        """May this principal call this tool with these (validated) arguments?"""
        ...

    def review(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: dict[str, Any],
        args: Mapping[str, Any] | None = None,
    ) -> ManifestReview:
        """Apply defaults to a write's manifest and decide on the result (PolicyDenied if not)."""
        ...


class ReadOnlyPolicy:
    """Every read tool for everyone; every write refused. Fails closed on anything else."""

    def decide(
        self, principal: Principal, tool: str, read_only: bool, args: dict[str, Any]
    ) -> Decision:
        if read_only is True:
            return Decision("allow", "builtin.read-only")
        return Decision(
            "deny", "builtin.read-only", f"{tool} changes the cluster; this server is read-only"
        )

    def review(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: dict[str, Any],
        args: Mapping[str, Any] | None = None,
    ) -> ManifestReview:
        raise PolicyDenied("denied by policy rule builtin.read-only: this server is read-only")
