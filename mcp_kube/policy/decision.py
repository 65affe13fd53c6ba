"""Policy decisions, and the built-in policy used until policy files are loaded: read-only.

``Policy`` is everything the gate asks of a policy. Its optional capabilities have defaults
(no rate limit, the default approval terms), so an implementation that subclasses it states
only what it decides; the gate never probes a policy for what it offers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mcp_kube.domain import ManifestReview, Principal
from mcp_kube.errors import PolicyDenied
from mcp_kube.policy.approvals import ApprovalTerms

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

    def calls_per_minute(self, tool: str) -> int | None:
        """The most calls of ``tool`` one principal may make a minute (None: no limit)."""
        return None

    def approval_terms(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: Mapping[str, Any],
        args: Mapping[str, Any] | None = None,
    ) -> ApprovalTerms | None:
        """Who may approve a write this policy sends out of band (None: the defaults)."""
        return None


class ReadOnlyPolicy(Policy):
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
