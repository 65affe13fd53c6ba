"""A read call's counts, windows and thresholds, taken from the request's own words.

A small model often leaves out a number the user wrote ("idle for two hours", "ten most recent
warnings") or keeps the default instead. Numbers are not a matter of judgement: each one comes
with its unit, and the unit says which argument it fills. After the call is decoded, for a read
tool only, every numeric argument whose unit the request states exactly once is set to that
value; one whose unit the request does not state goes back to its default (the grammar already
lets the model write only numbers the user wrote, but not always in the right place). A required
count the request leaves unsaid is kept as the model wrote it.

Units: a duration ("past 10 minutes", "3h", "this week", "half an hour") fills the tool's
window in seconds or hours; "N%"/"N percent" a threshold; "N lines" a log tail; "N GiB" a
memory floor; "N GPUs"/"8x H100"/"a pair of A100s" a GPU count; "top N", "N most recent" a limit.
A digit inside a name (``t5-xl``, ``resnet50-bench``) is part of the name, never a number.

Pure functions over plain data; no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from mcp_kube.llm.grounding import COMPOUND_NUMBERS, numbers_of

__all__ = ["durations", "is_quantity", "settle_numbers", "windows_in"]

_WORDS = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50,
    "sixty": 60, "ninety": 90, "hundred": 100, "couple of": 2, "few": 3,
}  # fmt: skip
_WORDS |= {"seventy": 70, "eighty": 80, **COMPOUND_NUMBERS}  # "twenty-four hours"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "f": 1209600}
_NUM = r"[0-9]+(?:\.[0-9]+)?"
_COUNT_WORDS = "|".join(sorted(map(re.escape, _WORDS), key=len, reverse=True))
_COUNT = rf"{_NUM}|half(?:\s+an?)?|quarter(?:\s+of)?(?:\s+an?)?|{_COUNT_WORDS}"
# "10 minutes", "two hours", "an hour", "half an hour", "a quarter of an hour", "3h", "1.5 hours"
_SPAN = re.compile(
    rf"(?<![\w.-])({_COUNT})\s*-?\s*(?:(?:whole|full|entire)\s+)?"  # "a whole day"
    r"(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?"
    r"|fortnights?)\b"
    rf"|(?<![\w.-])({_NUM})(s|m|h|d|w)\b",
    re.IGNORECASE,
)
# a unit with no count: "past hour", "this week", "last day", "today", "yesterday"
_BARE = re.compile(
    r"\b(?:this|past|last|previous|the)\s+(second|minute|hour|day|week|fortnight)\b"
    r"|\b(today|yesterday)\b",
    re.IGNORECASE,
)
_PERCENT = re.compile(rf"(?<![\w.-])({_NUM})\s*(?:%|percent\b|pct\b)", re.IGNORECASE)
_QUANTITY = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:[smhdw]|%|x|gi?b|gpus?|h(?:ou)?rs?|mins?)?$")

# argument -> what fills it
_SECONDS_ARGS = frozenset({"since_seconds", "timeout_s"})
_HOURS_ARGS = frozenset({"since_hours", "window_hours", "idle_hours"})
_UNIT_ARGS = {"tail_lines": "line", "min_gpu_memory_gib": "gib", "gpus": "gpu", "limit": "limit"}
_LINES = re.compile(rf"\b(?:{_COUNT})\s+(?:log\s+)?lines?\b", re.IGNORECASE)
_LIMIT_AFTER = re.compile(
    r"\b(?:top|first|latest|newest|last|biggest|largest|leading)\s+([0-9]+|[a-z]+)\b"
    r"|\b([0-9]+|[a-z]+)\s+(?:most recent|latest|newest|biggest|largest|recent)\b"
    r"|\b(?!(?:a|an|few|single)\b)([0-9]+|[a-z]+)\s+(?:of\s+(?:the\s+|its\s+|their\s+|[\w-]+'s\s+)?)?"
    r"(?:jobs|events|namespaces|teams)\b",
    re.IGNORECASE,
)


def _count(text: str) -> float | None:
    low = text.lower()
    if low.startswith("half"):
        return 0.5
    if low.startswith("quarter"):
        return 0.25
    if re.fullmatch(_NUM, low):
        return float(low)
    return float(_WORDS[low]) if low in _WORDS else None


def durations(request: str) -> list[float]:
    """The time spans a request states, in seconds, in the order written (no repeats)."""
    out: list[float] = []
    for m in _SPAN.finditer(request):
        count, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        n = _count(count)
        if n is not None and n > 0:
            out.append(n * _UNIT_SECONDS[unit[0].lower()])
    for m in _BARE.finditer(request):
        if m.group(1):
            out.append(float(_UNIT_SECONDS[m.group(1)[0].lower()]))
        else:
            out.append(86400.0)  # today, yesterday: a day
    return list(dict.fromkeys(out))


def windows_in(text: str) -> list[str]:
    """The time spans a text states, as written ("past 2 hours", "3h", "yesterday")."""
    found = sorted([*_SPAN.finditer(text), *_BARE.finditer(text)], key=lambda m: m.start())
    return [m.group(0) for m in found]


def is_quantity(word: str) -> bool:
    """Whether a word is a number with its unit ("3h", "8x", "80GB", "10%"), never a name."""
    return bool(_QUANTITY.fullmatch(word.lower()))


def _limits(request: str) -> list[float]:
    out: list[float] = []
    text = _SPAN.sub(" ", _LINES.sub(" ", request))  # "last 30 minutes", "last 20 lines"
    for m in _LIMIT_AFTER.finditer(text):
        n = _count(m.group(1) or m.group(2) or m.group(3))
        if n is not None and n >= 1 and n == int(n):
            out.append(n)
    return list(dict.fromkeys(out))


def _stated(arg: str, request: str) -> list[float]:
    """The values the request states in ``arg``'s unit."""
    if arg in _SECONDS_ARGS:
        return durations(request)
    if arg in _HOURS_ARGS:
        return [round(s / 3600, 4) for s in durations(request)]
    if arg == "threshold_percent":
        return list(dict.fromkeys(float(m.group(1)) for m in _PERCENT.finditer(request)))
    if arg == "limit":
        return _limits(request)
    unit = _UNIT_ARGS.get(arg)
    if unit is None:
        return []
    return [float(n) for n, near in sorted(numbers_of(request).items()) if unit in near]


def _number(value: float, integer: bool) -> int | float:
    return int(value) if integer or value == int(value) else value


def _numeric(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The integer or number branch of a property's schema (``anyOf`` with null included)."""
    branches: list[dict[str, Any]] = [spec, *spec.get("anyOf", [])]
    return next((b for b in branches if b.get("type") in ("integer", "number")), None)


def _fits(branch: dict[str, Any], value: float) -> bool:
    low = float(branch.get("minimum", float("-inf")))
    above = float(branch.get("exclusiveMinimum", float("-inf")))
    return low <= value <= float(branch.get("maximum", float("inf"))) and value > above


def settle_numbers(args: dict[str, Any], schema: dict[str, Any], request: str) -> dict[str, Any]:
    """``args`` with each count, window or threshold of the tool (``schema``: its input JSON
    schema) set from the request as above (a new dict)."""
    out = dict(args)
    required = set(schema.get("required", []))
    known = _SECONDS_ARGS | _HOURS_ARGS | {"threshold_percent", *_UNIT_ARGS}
    for arg, spec in schema.get("properties", {}).items():
        branch = _numeric(spec)
        if arg not in known or branch is None:
            continue
        integer = branch.get("type") == "integer"
        stated = [v for v in _stated(arg, request) if _fits(branch, v)]
        stated = [v for v in stated if v == int(v)] if integer else stated
        got = out.get(arg)
        if len(stated) == 1:
            out[arg] = _number(stated[0], integer)
        elif stated and isinstance(got, int | float) and float(got) in stated:
            continue  # several stated: the model's choice among them stands
        elif arg not in required:
            out.pop(arg, None)  # not stated in its unit: the default
    return out
