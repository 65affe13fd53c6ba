"""The grammars that make every tool call parse, and the grounding that narrows its values.

A turn in which the model acts is constrained in two steps (for many tools, choosing first and
filling in second is both faster and more accurate than one grammar over every tool)::

    {"name": "gpu_inventory"                      <- CHOICE grammar: a tool name or "answer"
    , "arguments": {"product": "H100"}}           <- ARGS grammar: that tool's input schema

Pure functions over plain data (a tool's input schema, the words of the conversation); no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcp_kube.llm.prompt import ANSWER, ARGS_PREFIX, HIDDEN_ARGS

__all__ = ["Grounding", "args_grammar", "choice_grammar"]


def choice_grammar(names: Sequence[str], *, allow_answer: bool = True) -> str:
    """The model's first step of a turn: one of the tool names, or ``answer`` (not offered
    before the first tool call: every question here is answered from the cluster's data)."""
    alts = " | ".join(json.dumps(f'{n}"') for n in [*names, *([ANSWER] if allow_answer else [])])
    return f"root ::= ({alts})\n"


_WS = 'ws ::= " "?\n'
_MAX_STR = 64  # characters the model may write into one string argument
_CLASS = re.compile(r"\[(\^?)((?:\\.|[^\]])+)\]")


def _class_ranges(body: str) -> set[tuple[str, str]]:
    """The character ranges of one regex class body (``a-z0-9_.-`` -> a..z, 0..9, _, ., -)."""
    out: set[tuple[str, str]] = set()
    chars = list(body.replace("\\.", ".").replace("\\-", "-"))
    i = 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "-":
            out.add((chars[i], chars[i + 2]))
            i += 3
        else:
            out.add((chars[i], chars[i]))
            i += 1
    return out


def _string_rule(schema: dict[str, Any]) -> str:
    """A bounded JSON string. A pattern narrows the characters to those its classes allow (the
    server checks the pattern itself); otherwise any printable character but quote and
    backslash."""
    lo = min(int(schema.get("minLength", 0)), _MAX_STR)
    hi = min(int(schema.get("maxLength", _MAX_STR)), _MAX_STR)
    pattern = str(schema.get("pattern", ""))
    classes = [body for neg, body in _CLASS.findall(pattern) if not neg]
    # letters outside the classes (``m`` in ``500m``, ``Gi``) mean the classes are not all
    literals = re.sub(r"\\.|\{[0-9,]*\}", "", _CLASS.sub("", pattern))
    if classes and not re.search(r"[A-Za-z0-9]", literals):
        ranges: set[tuple[str, str]] = set()
        for body in classes:
            ranges |= _class_ranges(body)
        if "\\." in _CLASS.sub("", pattern):  # an escaped dot outside the classes
            ranges.add((".", "."))
        dash = ("-", "-") in ranges
        parts = sorted(f"{a}-{b}" if a != b else a for a, b in ranges - {("-", "-")})
        char = f"[{''.join(parts)}{'-' if dash else ''}]"
    else:
        char = '[^"\\\\\\x00-\\x1f]'
    return f'"\\"" {char}{{{lo},{hi}}} "\\""'


def _value_rule(schema: dict[str, Any]) -> str:
    alts = [a for a in schema.get("anyOf", ()) if a.get("type") != "null"]
    if alts:
        return " | ".join(f"( {_value_rule(a)} )" for a in alts)
    if "enum" in schema:
        return " | ".join(json.dumps(json.dumps(v)) for v in schema["enum"])
    t = schema.get("type")
    if t == "string":
        return _string_rule(schema)
    if t == "integer":
        sign = "" if float(schema.get("minimum", -1)) >= 0 else '"-"? '
        return f"{sign}[0-9]{{1,9}}"
    if t == "number":
        sign = (
            "" if float(schema.get("minimum", schema.get("exclusiveMinimum", -1))) >= 0 else '"-"? '
        )
        return f'{sign}[0-9]{{1,6}} ("." [0-9]{{1,3}})?'
    if t == "boolean":
        return '"true" | "false"'
    if t == "array":
        item = _value_rule(schema.get("items", {}))
        n = max(0, min(int(schema.get("maxItems", 16)), 16) - 1)
        return f'"[" ws ( ( {item} ) ( "," ws ( {item} ) ){{0,{n}}} )? "]"'
    if t == "object":
        key = _string_rule({"pattern": "[A-Za-z0-9_]", "minLength": 1})
        val = _string_rule({"maxLength": 256})
        return f'"{{" ws ( {key} ":" ws {val} ( "," ws {key} ":" ws {val} ){{0,15}} )? "}}"'
    return '"null"'


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*[A-Za-z0-9]|[A-Za-z0-9]")
_TOKEN = re.compile(r"[a-z]+|[0-9]+")


@dataclass(frozen=True)
class Grounding:
    """Where argument values may come from: the words of the conversation that look like
    names, the numbers the user wrote with the words around them, and the only values some
    arguments can take (``known``: the served clusters)."""

    words: frozenset[str]
    numbers: dict[int, frozenset[str]]
    known: dict[str, tuple[str, ...]]
    mentions: frozenset[str] = frozenset()  # the request's words, lower case, singular

    @classmethod
    def of(
        cls,
        request: str,
        results: Sequence[str] = (),
        known: dict[str, Sequence[str]] | None = None,
    ) -> Grounding:
        """From the request, the words with a digit, ``-`` or ``.`` (``team-a``, ``H100``);
        from tool results, every word."""
        words: set[str] = set()
        for i, text in enumerate([request, *results]):
            for w in _WORD.findall(text):
                if i == 0 and not any(c.isdigit() or c in "-." for c in w):
                    continue
                words.add(w)
                if w.endswith("s") and any(c.isdigit() for c in w):
                    words.add(w[:-1])  # "H100s" names the product H100
                if len(words) >= 2000:
                    break
        toks = _TOKEN.findall(request.lower())
        numbers: dict[int, set[str]] = {}
        for i, t in enumerate(toks):
            if t.isdigit() and len(t) < 10:
                near = toks[max(0, i - 1) : i] + toks[i + 1 : i + 3]
                numbers.setdefault(int(t), set()).update(w.removesuffix("s") for w in near)
        return cls(
            frozenset(words),
            {n: frozenset(v) for n, v in numbers.items()},
            {k: tuple(v) for k, v in (known or {}).items()},
            frozenset(t.removesuffix("s") for t in toks if not t.isdigit()),
        )

    def mentioned(self, name: str) -> bool:
        """Whether the request names the argument (``pod``, ``previous``, ``since``)."""
        return any(p.removesuffix("s") in self.mentions for p in name.split("_") if len(p) > 2)


def _grounded(
    name: str, schema: dict[str, Any], g: Grounding, required: bool
) -> dict[str, Any] | None:
    """Narrow an argument to values the conversation contains: a name the user typed or a
    result showed, a number the user wrote next to the last word of the argument's name
    (``50 lines`` for tail_lines, ``48 hours`` for since_hours). None: nothing fits, leave it
    out. A required argument that nothing fits keeps its schema."""
    alts = [a for a in schema.get("anyOf", ()) if a.get("type") != "null"]
    base = alts[0] if len(alts) == 1 else schema
    if name in g.known:
        values: list[Any] = [v for v in g.known[name] if v in g.words]
    elif "enum" in base:
        return schema
    elif base.get("type") == "string":
        pattern = base.get("pattern")
        try:
            rx = re.compile(str(pattern or ".*"))
        except re.error:
            return schema
        limit = int(base.get("maxLength", 253))
        reserved = {v for vals in g.known.values() for v in vals}
        values = sorted(
            w
            for w in g.words - reserved
            if len(w) <= limit
            and not w.isdigit()
            and rx.fullmatch(w)
            # free text (a product such as H100) is taken only from words with a digit
            and (pattern or any(c.isdigit() for c in w))
        )
    elif base.get("type") in ("integer", "number"):
        lo = base.get("minimum", base.get("exclusiveMinimum", -(2**31)))
        hi = base.get("maximum", base.get("exclusiveMaximum", 2**31))
        unit = name.split("_")[-1].removesuffix("s")  # tail_lines -> line, since_hours -> hour
        values = sorted(
            n for n, near in g.numbers.items() if lo <= n <= hi and (required or unit in near)
        )
    else:
        return schema
    if values:
        return {"enum": values}
    return schema if required else None


def args_grammar(
    schema: dict[str, Any],
    ground: Grounding | None = None,
    common: frozenset[str] | None = None,
) -> str:
    """GBNF for the rest of a tool call once its name is chosen: the arguments object, then
    the end of the call. Required arguments come first; then any optional ones, each at most
    once, in schema order. Hidden arguments are not offered; the server validates the rest.

    With ``ground`` names and counts are grounded (see ``Grounding``); with ``common`` too
    (the arguments the tool's examples use), any other optional argument is offered only when
    the request names it (a ``previous`` flag, a ``container``): small models otherwise fill
    every argument they are offered."""
    props = {k: v for k, v in schema.get("properties", {}).items() if k not in HIDDEN_ARGS}
    if ground is not None:
        must = set(schema.get("required", ()))
        if common is not None:
            props = {
                k: v
                for k, v in props.items()
                if k in must or k in common or k in ground.known or ground.mentioned(k)
            }
        narrowed = {k: _grounded(k, v, ground, k in must) for k, v in props.items()}
        props = {k: v for k, v in narrowed.items() if v is not None}
    required = [k for k in schema.get("required", ()) if k in props]
    optional = [k for k in props if k not in required]
    rules = [f'root ::= {json.dumps(ARGS_PREFIX)} args "}}"', _WS.strip()]
    kv = {name: f"kv{i}" for i, name in enumerate(props)}
    for name, rule in kv.items():
        rules.append(
            f'{rule} ::= {json.dumps(json.dumps(name))} ":" ws ( {_value_rule(props[name])} )'
        )
    # opt{i}: optional arguments i.. in order, each preceded by a comma (or not, if first)
    n = len(optional)
    for i in range(n):
        later = f" opt{i + 1}" if i + 1 < n else ""
        rules.append(
            f'opt{i} ::= ( "," ws {kv[optional[i]]}{later} ) | opt{i + 1}'
            if later
            else f'opt{i} ::= ( "," ws {kv[optional[i]]} )?'
        )
        rules.append(
            f"first{i} ::= {kv[optional[i]]}{later} | " + (f"first{i + 1}" if later else '""')
        )
    body = ' "," ws '.join(kv[k] for k in required)
    if n:
        body = f"{body} opt0" if body else "first0"
    rules.insert(1, f'args ::= "{{" ws {body} "}}"')
    return "\n".join(rules) + "\n"
