"""Policy decisions, and the built-in policy used until policy files are loaded: read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mcp_kube.domain import Principal

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
    ) -> Decision: ...


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
