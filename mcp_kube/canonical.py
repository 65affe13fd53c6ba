"""Canonical JSON: the one text form hashed or compared wherever JSON identifies something.

Keys sorted, no spaces, non-ASCII kept as UTF-8: manifest hashes of approvals, approval
bindings and idempotency keys are all taken over this form, so the same object always hashes
the same. (The audit chain uses RFC 8785 instead, ``audit.chain.canonical``: its lines must be
checkable by tools in other languages.) Pure; imports nothing of the package.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical_json"]


def canonical_json(value: Any, *, ensure_ascii: bool = False) -> str:
    """``value`` as canonical JSON text. ``ensure_ascii=True`` escapes non-ASCII characters:
    only for hashes first taken that way and stored since (idempotency labels on Jobs)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii)
