"""What the API server does with a request, where an in-memory cluster has to do the same.

``kube.memory`` follows these rules so that tests on plain data see what a real cluster would
answer: which objects a label or field selector picks, what a JSON merge patch makes of an
object, and how a resource is named in the API server's messages (and in RBAC's refusals).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from mcp_kube.domain import Json
from mcp_kube.kube.port import Kind

__all__ = ["matches", "merge_patch", "refused", "resource_name"]

_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_TERM_SPLIT = re.compile(r",(?![^(]*\))")  # commas outside the parentheses of a set term


def resource_name(kind: Kind) -> str:
    """How the API server names a resource in messages: ``jobs.batch``, ``configmaps``."""
    group = kind.prefix.removeprefix("/apis/").rsplit("/", 1)[0] if "/apis/" in kind.prefix else ""
    return f"{kind.plural}.{group}" if group else kind.plural


def refused(kind: Kind, verb: str, user: str, namespace: str | None) -> str:
    """What RBAC says when it refuses a request."""
    group = resource_name(kind).partition(".")[2]
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return (
        f'{resource_name(kind)} is forbidden: User "{user}" cannot {verb} resource '
        f'"{kind.plural}" in API group "{group}" {where}'
    )


def _field(obj: Json, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def _label_term(labels: Mapping[str, str], term: str) -> bool:
    if found := _SET_TERM.match(term):
        key, op, values = found.groups()
        inside = labels.get(key) in {v.strip() for v in values.split(",")}
        return inside if op == "in" else not inside
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (s.strip() for s in term.split(op, 1))
            return (labels.get(key) == value) is (op != "!=")
    term = term.strip()
    return term[1:].strip() not in labels if term.startswith("!") else term in labels


def matches(obj: Json, label_selector: str | None, field_selector: str | None) -> bool:
    """Whether an object passes a label selector and a field selector (API server syntax)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in _TERM_SPLIT.split(label_selector or ""):
        if term.strip() and not _label_term(labels, term):
            return False
    for term in (field_selector or "").split(","):
        if not term.strip():
            continue
        negate = "!=" in term
        key, value = (s.strip() for s in re.split(r"!=|==|=", term, maxsplit=1))
        if (_field(obj, key) == value) is negate:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, ``null`` removes, the rest
    replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
