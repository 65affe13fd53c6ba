"""What of a decision's variables the policy's CEL expressions can read, found from their text.

Why: converting the variables into CEL values is most of a write's review (each value costs
about a microsecond, and a Job manifest has a hundred), and a field selection copies the map
it selects from. The expressions of a policy read few parts of a manifest, so only those are
converted: ``manifest.spec.activeDeadlineSeconds`` needs that one field, and
``manifest.spec.template.spec.containers.all(c, c.image.startsWith(...))`` needs the image of
each container; ``has(c.resources.limits)`` needs only to know whether ``limits`` is there (it
is kept, as far as the rest reads it). Every other use of a variable (alone, indexed, compared,
passed to a function or a method) keeps the whole value at that point, so an expression sees
exactly the values it would see in the whole variable: a field present there is present here,
with the same value where it is read.

The text is read by a small CEL tokenizer (strings and comments are skipped); anything it does
not follow (an unterminated string, a backquoted field, ``.?``) keeps the whole variable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp_kube.errors import McpKubeError

__all__ = ["Need", "needs_of", "prune", "prune_all"]

# the comprehension macros whose result holds no element itself: X.all(v, p), X.exists(v, p),
# X.exists_one(v, p), X.map(v, [p,] e); v ranges over the elements of X (of a list; a map's
# keys when X is a map, which is then kept whole)
_MACROS = frozenset({"all", "exists", "exists_one", "map"})
_IDENT_START = frozenset("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''
        |"(?:\\[\s\S]|[^"\\\n])*"|'(?:\\[\s\S]|[^'\\\n])*'))
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<number>\d[\w.]*)
  | (?P<other>[\s\S])
    """,
    re.VERBOSE,
)
_RAW = re.compile(r"[rR][bB]?|[bB][rR]")


class _Unreadable(McpKubeError):
    """The text is not tokenized with confidence: keep every variable whole (never escapes)."""


@dataclass
class Need:
    """What of one value may be read: all of it, some fields, or (a list's) each element."""

    whole: bool = False
    fields: dict[str, Need] = field(default_factory=dict)
    items: Need | None = None

    def at(self, path: Iterable[str]) -> Need:
        node = self
        for name in path:
            node = node.fields.setdefault(name, Need())
        return node

    def add_items(self, need: Need) -> None:
        if self.items is None:
            self.items = Need()
        self.items.merge(need)

    def merge(self, other: Need) -> None:
        self.whole = self.whole or other.whole
        for name, sub in other.fields.items():
            self.fields.setdefault(name, Need()).merge(sub)
        if other.items is not None:
            self.add_items(other.items)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        kind, value = m.lastgroup, m.group()
        if kind == "space":
            continue
        if kind == "string" and _RAW.match(value) and "\\" in value:
            raise _Unreadable(value)  # a raw string with a backslash: where it ends is unclear
        if kind == "other" and value in "\"'`":
            raise _Unreadable(value)  # an unterminated string, or a backquoted field name
        out.append("#" if kind in ("string", "number") else value)
    return out


def _closing(tokens: list[str], start: int) -> int:
    """The index of the ``)`` that closes the ``(`` at ``start``."""
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i] in "([{":
            depth += 1
        elif tokens[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i
    raise _Unreadable("unbalanced parentheses")


def _ident(token: str) -> bool:
    return token[0] in _IDENT_START


def _presence(tokens: list[str], i: int) -> bool:
    """Whether the token at ``i`` opens the argument of the ``has()`` macro (not a method)."""
    return i >= 2 and tokens[i - 2 : i] == ["has", "("] and (i < 3 or tokens[i - 3] != ".")


def _scan(tokens: list[str], start: int, end: int, var: str) -> Need:
    """What of ``var`` the tokens ``start:end`` read."""
    need = Need()
    for i in range(start, end):
        if tokens[i] != var:
            continue
        path: list[str] = []
        j = i + 1
        while j + 1 < end and tokens[j] == "." and _ident(tokens[j + 1]):
            path.append(tokens[j + 1])
            j += 2
        if path and j < end and tokens[j] == ")" and _presence(tokens, i):
            need.at(path)  # has(X.f): whether X has f; X itself is kept, f as far as needed
            continue
        if j < end and tokens[j] == "(" and path:  # the last name is a method or a macro
            name = path.pop()
            close = _closing(tokens, j)
            # X.m(v, ...): v is each element of X, read as the rest says; not for filter,
            # whose elements flow out, nor for the two-variable form X.m(i, v, ...)
            bound = _ident(tokens[j + 1]) and tokens[j + 2] == "," and j + 3 < close
            if bound and name in _MACROS and not (_ident(tokens[j + 3]) and tokens[j + 4] == ","):
                need.at(path).add_items(_scan(tokens, j + 3, close, tokens[j + 1]))
                continue
        need.at(path).whole = True
    return need


def needs_of(expressions: Iterable[str], variables: Iterable[str]) -> dict[str, Need]:
    """What each of ``variables`` the expressions may read; a variable none names is left out."""
    texts = list(expressions)
    try:
        tokens = [_tokens(text) for text in texts]
        out: dict[str, Need] = {}
        for var in variables:
            need = Need()
            named = False
            for toks in tokens:
                if var in toks:
                    named = True
                    need.merge(_scan(toks, 0, len(toks), var))
            if named:
                out[var] = need
    except _Unreadable:
        return {var: Need(whole=True) for var in variables}
    return out


def prune(value: Any, need: Need) -> Any:
    """The parts of ``value`` that ``need`` names (a new container; the values are shared)."""
    if need.whole:
        return value
    if type(value) is dict and need.items is None:
        return {k: prune(value[k], sub) for k, sub in need.fields.items() if k in value}
    if type(value) is list and not need.fields and need.items is not None:
        return [prune(v, need.items) for v in value]
    return value  # a map iterated over, a select on a list (an error either way), a scalar


def prune_all(values: Mapping[str, Any], needs: Mapping[str, Need]) -> dict[str, Any]:
    """The variables ``needs`` names, each pruned to what may be read of it."""
    return {name: prune(values[name], need) for name, need in needs.items() if name in values}
