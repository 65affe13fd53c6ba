"""The tamper-evident audit trail: one chained, signed JSON line per tool call and approval.

Why a package of its own: the gate writes here and the ``audit verify`` command reads here,
and neither side may depend on the Kubernetes client, the MCP SDK or the server - a copy of
the log must be checkable anywhere. :mod:`.chain` holds the rules both sides share,
:mod:`.redact` keeps secrets out, :mod:`.sink` writes, :mod:`.verify` checks.

Beside them: :mod:`.keys` (the checkpoint key files), :mod:`.files` (a chain's files and what
a crash left at their end), and the verifier's parts - :mod:`.reading` (strict parse of every
line), :mod:`.checks` (one check per kind of problem) and :mod:`.report` (what it returns).
"""

from __future__ import annotations

from mcp_kube.audit.chain import GENESIS
from mcp_kube.audit.redact import redact
from mcp_kube.audit.sink import DEFAULT_MAX_BYTES, AuditLog, AuditUnavailable
from mcp_kube.audit.verify import Problem, VerifyReport, discover, verify

__all__ = [
    "DEFAULT_MAX_BYTES",
    "GENESIS",
    "AuditLog",
    "AuditUnavailable",
    "Problem",
    "VerifyReport",
    "discover",
    "redact",
    "verify",
]
