"""What :func:`mcp_kube.audit.verify.verify` returns: the problems found, in log order.

Why its own module: the report is the verifier's public face (the ``audit verify`` command
prints it, tests and benchmarks read it), while the checks that fill it change on their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Problem", "VerifyReport"]


@dataclass(frozen=True)
class Problem:
    kind: str  # edited | deleted | reordered | truncated | torn_line | bad_signature | gap
    file: str
    line: int  # 1-based line in ``file``
    seq: int | None  # the seq that belongs at that place
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        seq = f" (seq {self.seq})" if self.seq is not None else ""
        return f"{self.file}:{self.line}{seq}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    ok: bool
    records: int
    files: list[str]
    problems: list[Problem] = field(default_factory=list)
    checkpoints: int = 0
    signed_count: int | None = None  # records covered by the newest good signed checkpoint
    notes: list[str] = field(default_factory=list)

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["problems"] = [p.to_dict() for p in self.problems]
        return out
