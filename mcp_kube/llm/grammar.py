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
from typing import Any

from mcp_kube.llm.grounding import Grounding, is_product, names_in
from mcp_kube.llm.prompt import ANSWER, ARGS_PREFIX, HIDDEN_ARGS

__all__ = [
    "Grounding",
    "args_grammar",
    "choice_grammar",
    "for_write",
    "missing",
    "names_in",
    "question_for",
]


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


def _grounded(
    name: str, schema: dict[str, Any], g: Grounding, required: bool, *, last_resort: bool = False
) -> dict[str, Any] | None:
    """Narrow an argument to values the conversation contains: a name the user typed or a
    result showed, a number the user wrote next to the last word of the argument's name
    (``50 lines`` for tail_lines, ``48 hours`` for since_hours). None: nothing fits, leave it
    out. A required argument that nothing fits keeps its schema. ``last_resort``: a required
    job or pod name that nothing else fills may be a plain word placed in a namespace
    (``Grounding.fallback``: "is warmup in team-a done?")."""
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
            and (name != "image" or "/" in w or ":" in w)  # an image looks like one
            # a product (H100) only where it looks like one; other free text only with a digit
            and (
                is_product(w)
                if name.endswith("product")
                else pattern or any(c.isdigit() for c in w)
            )
        )
        values = g.in_role(name, values)
        if not values and last_resort and name in ("name", "job", "pod"):
            values = sorted(w for w in g.fallback if rx.fullmatch(w))  # "is warmup in x done"
        if name == "node":  # an H100 or an l4 is a product, not a node
            values = [v for v in values if not is_product(v)]
        if not pattern and not name.endswith("product"):
            values = sorted({*values, *(q for q in g.quoted if len(q) <= limit)})
    elif base.get("type") in ("integer", "number"):
        lo = base.get("minimum", base.get("exclusiveMinimum", -(2**31)))
        hi = base.get("maximum", base.get("exclusiveMaximum", 2**31))
        values = list(g.counts(name, lo, hi, required))
    else:
        return schema
    if values:
        return {"enum": values}
    return schema if required else None


def args_grammar(
    schema: dict[str, Any],
    ground: Grounding | None = None,
    common: frozenset[str] | None = None,
    *,
    last_resort: bool = True,
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
        narrowed = {
            k: _grounded(k, v, ground, k in must, last_resort=last_resort and k in must)
            for k, v in props.items()
        }
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


_ALSO_REQUIRED = ("gpus",)  # a write never assumes a GPU count: "CPU-only" or a number
_LABELS = {"gpus": "GPU count", "name": "job name", "image": "container image"}


def missing(schema: dict[str, Any], ground: Grounding, *, write: bool = True) -> list[str]:
    """The arguments a call needs that the conversation does not state (its required ones and,
    for a write, a GPU count): the agent asks for them instead of letting the model guess."""
    props = schema.get("properties", {})
    need = [*schema.get("required", ()), *(k for k in _ALSO_REQUIRED if k in props and write)]
    return [
        k
        for k in need
        if k in props and _grounded(k, props[k], ground, False, last_resort=not write) is None
    ]


def question_for(tool: str, args: list[str]) -> str:
    """A short question to the human naming what a write still needs."""
    labels = [_LABELS.get(a, a.replace("_", " ")) for a in args]
    which = ", ".join(labels[:-1]) + " and " + labels[-1] if len(labels) > 1 else labels[0]
    it = "it" if len(args) == 1 else "them"
    return f"Which {which} should I use? I need {it} for {tool} and will not guess."


def for_write(schema: dict[str, Any], ground: Grounding) -> dict[str, Any]:
    """A write's schema in which a cluster the user named is required, and a GPU product and
    count: a change happens where and as the user said, never by omission (the GPU count is
    stated: ``missing`` asks otherwise)."""
    named = [
        k
        for k in ground.known
        if _grounded(k, schema.get("properties", {}).get(k, {}), ground, False)
    ]
    extra = [k for k in named if k in schema.get("properties", {})]
    extra += [k for k in _ALSO_REQUIRED if k in schema.get("properties", {})]  # stated: written
    if "gpu_product" in schema.get("properties", {}) and any(map(is_product, ground.words)):
        extra.append("gpu_product")  # "eight A100s": on those GPUs, not on any
    if not extra:
        return schema
    return {**schema, "required": [*schema.get("required", ()), *extra]}
