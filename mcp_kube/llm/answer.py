"""The final answer, held to the tool results it claims to come from.

A small model reads a tool result and sometimes answers past it: a number no result holds, a
node it never saw, "the job is pending because ..." for a job that does not exist, or a tool
call written out as JSON. The model's answer is checked against the results and the question;
one that fails a check is replaced by the facts: the results' own summaries, which the server
computed exactly. The answer then never contradicts the results, at the price of plainer words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Problem", "Result", "facts", "premise_false", "problems", "settle", "tidy"]

_ERROR = re.compile(r"^error \[(?P<code>[a-z_]+)\]: ", re.M)
_NAME = re.compile(r"\b[a-z0-9]+(?:[-.][a-z0-9]+)+\b")  # kebab names: h100-0, team-b, bert-ft-0
_NUMBER = re.compile(r"(?<![\w.-])\d+(?:[.,]\d+)*(?![\w-])")
_NOT_EXIST = re.compile(
    r"\b(not found|does ?n[o']?t exist|no (such )?(job|pod)s?\b|there is no|there's no|"
    r"isn't any|not exist|no longer exists|(could|can)n?(no)?'?t find|cannot find)",
    re.I,
)
_NOT_PENDING = re.compile(r"\b(is ?n[o']?t|not) (pending|waiting|stuck|queued)\b", re.I)
_CLAIMS_PENDING = re.compile(r"\b(is|are) (still )?(pending|waiting|stuck|queued)\b", re.I)
_SETTLED = re.compile(r"\b(running|completed?|succeeded|failed|finished|done)\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
FACT_LINES = 14  # lines of one result's summary in a facts answer


@dataclass(frozen=True)
class Result:
    """One tool result as the answer may use it."""

    tool: str
    text: str
    is_error: bool = False


@dataclass(frozen=True)
class Problem:
    kind: str  # call, empty, question, number, name, premise
    detail: str


def looks_like_call(answer: str) -> bool:
    """A tool call written as the answer (``{"name": ..., "arguments": ...}``)."""
    text = answer.strip().strip("`").removeprefix("json").strip()
    if not text.startswith("{"):
        return False
    if '"name"' in text[:40] or '"arguments"' in text or '"tool"' in text[:40]:
        return True
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def premise_false(results: Sequence[Result]) -> str | None:
    """What a result says against the question's premise: ``missing`` (the object does not
    exist) or ``settled`` (the job asked about is not pending); None when nothing does."""
    for r in results:
        m = _ERROR.match(r.text)
        if r.is_error and m and m["code"] == "not_found":
            return "missing"
        if not r.is_error and r.tool == "explain_pending" and ": not pending" in r.text:
            return "settled"
    return None


def _admits(premise: str, answer: str) -> bool:
    """Whether the answer says what the results say against the premise."""
    if premise == "missing":
        return bool(_NOT_EXIST.search(answer))
    if _NOT_PENDING.search(answer):
        return True
    return not _CLAIMS_PENDING.search(answer) and bool(_SETTLED.search(answer))


def problems(answer: str, question: str, results: Sequence[Result]) -> list[Problem]:
    """Why ``answer`` may not be given as it is (none: it may)."""
    if not answer.strip():
        return [Problem("empty", "no answer text")]
    if looks_like_call(answer):
        return [Problem("call", "the answer is a tool call, not sentences")]
    if answer.rstrip().endswith("?"):
        return [Problem("question", "the answer asks instead of answering")]
    source = question + "\n" + "\n".join(r.text for r in results)
    low_source = source.lower()
    found: list[Problem] = []
    names = set(_NAME.findall(answer.lower()))
    found += [Problem("name", n) for n in sorted(names) if n not in low_source]
    bare = _NAME.sub(" ", answer.lower())
    known = set(_NUMBER.findall(_NAME.sub(" ", low_source))) | set(re.findall(r"\d+", source))
    found += [Problem("number", n) for n in _NUMBER.findall(bare) if n not in known]
    premise = premise_false(results)
    if premise and not _admits(premise, answer):
        found.append(Problem("premise", f"the answer does not say the object is {premise}"))
    return found


def _fact(r: Result) -> str:
    m = _ERROR.match(r.text)
    if r.is_error and m:
        text = r.text[m.end() :]
        return (text[:1].upper() + text[1:]).strip()
    lines = [ln.rstrip() for ln in r.text.strip().splitlines() if ln.strip()]
    more = len(lines) - FACT_LINES
    body = "\n".join(lines[:FACT_LINES]) + (f"\n(... {more} more lines)" if more > 0 else "")
    return f"From {r.tool}:\n{body}"


def facts(results: Sequence[Result]) -> str:
    """The results' own summaries (errors as sentences): exact, if plain."""
    if not results:
        return "I could not get an answer from the tools."
    return "\n\n".join(_fact(r) for r in results)


def tidy(answer: str) -> str:
    """The answer without a sentence said twice (small models loop)."""
    seen: set[str] = set()
    kept: list[str] = []
    for s in _SENTENCE.split(answer.strip()):
        key = " ".join(s.lower().split())
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(s)
    return " ".join(kept)


def settle(answer: str, question: str, results: Sequence[Result]) -> tuple[str, list[Problem]]:
    """The answer to give and why the model's was not kept (empty: it was)."""
    answer = tidy(answer)
    found = problems(answer, question, results)
    if found:
        return facts(results), found
    return answer, []
