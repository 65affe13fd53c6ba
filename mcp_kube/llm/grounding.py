"""Where a tool call's argument values may come from: the words of the conversation.

A name is offered only when the user typed it or a tool result showed it; a count or a window
only when the user wrote it, as digits ("4 GPUs", "8x"), as a word ("four", "a pair", "a dozen")
or as a time ("past 10 minutes", "this week"). A digit inside a name (``llama-7b-ft``, ``x-7b``)
is part of that name, never a count.

Pure functions over plain data; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mcp_kube.llm.route import close, names_subject

__all__ = [
    "COMPOUND_NUMBERS",
    "Grounding",
    "clusters_spelled",
    "is_product",
    "name_like",
    "names_in",
    "numbers_of",
    "quoted",
]

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*[A-Za-z0-9]|[A-Za-z0-9]")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9._:/@'-]*[a-z0-9]|[a-z0-9]")

_NUMBER_WORDS = {
    w: n
    for n, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
} | {"single": 1, "couple": 2, "pair": 2, "dozen": 12, "thirty": 30, "forty": 40, "fifty": 50}
_NUMBER_WORDS |= {"sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "trio": 3}
COMPOUND_NUMBERS = {  # "twenty-four", "seventy-two"
    f"{tens}-{unit}": _NUMBER_WORDS[tens] + _NUMBER_WORDS[unit]
    for tens in ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
    for unit in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
}
_NUMBER_WORDS |= COMPOUND_NUMBERS
# a number with its unit in one word: "8x", "80gib", "15m", "3h", "2d", "12-gpu"
_UNIT_SUFFIX = re.compile(
    r"^([0-9]{1,6})-?(x|gi?b|gpus?|h|hrs?|hours?|m|mins?|minutes?|s|secs?|d|days?|w|weeks?)$"
)
_SECONDS = {
    "second": 1, "sec": 1, "s": 1,
    "minute": 60, "min": 60, "m": 60,
    "hour": 3600, "hr": 3600, "h": 3600,
    "day": 86400, "d": 86400,
    "week": 604800, "w": 604800,
}  # fmt: skip
_UNIT_ALIAS = {"x": "gpu", "gib": "gib", "gb": "gib", "hr": "hour", "h": "hour", "min": "minute"}
_UNIT_ALIAS |= {"m": "minute", "sec": "second", "s": "second", "d": "day", "w": "week"}
_LIMIT_WORDS = frozenset({"top", "first", "latest", "newest", "recent", "biggest", "largest"})
_PRODUCT = re.compile(r"^[A-Za-z]{1,4}[0-9]{1,4}[A-Za-z]{0,4}$")  # H100, A100, MI300X, L4, L40S
_CPU_ONLY = re.compile(
    r"\b(cpu[- ]only|no gpus?|without (a |any )?gpus?|zero gpus?"
    r"|(doesn'?t|does not|won'?t|will not|don'?t|do not) (need|use|require) (a |any )?gpus?)\b"
)
# "this week", "past 10 minutes", "last hour", "over the last 3 days", "today"
_WINDOW = re.compile(
    r"\b(?:(this|past|last|previous|recent)\s+(?:([0-9]+|[a-z]+)\s+)?"
    r"(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?)|(today|yesterday))\b"
)
# after these words comes a name the user typed ("job warmup", "pvc checkpoints", "pause x")
_BEFORE_NAME = frozenset(
    [
        "job",
        "pod",
        "node",
        "pvc",
        "namespace",
        "ns",
        "named",
        "called",
        "cancel",
        "kill",
        "delete",
        "stop",
        "abort",
        "terminate",
        "suspend",
        "pause",
        "freeze",
        "halt",
        "resume",
        "unpause",
        "continue",
        "submit",
        "launch",
    ]
)
_QUOTED = re.compile(r"\"([^\"]{1,200})\"|(?<![A-Za-z])'([^']{1,200})'(?![A-Za-z])")
# words that name an argument without its own name ("search 'x'" for grep)
_ALIASES = {
    "grep": frozenset({"grep", "filter", "search", "containing", "matching", "mention"}),
    "previous": frozenset({"previous", "earlier", "prior", "crashed", "restarted"}),
}
_NOT_NAME = frozenset(
    [
        "events",
        "event",
        "logs",
        "log",
        "status",
        "progress",
        "details",
        "a",
        "an",
        "the",
        "my",
        "our",
        "this",
        "that",
        "it",
        "its",
        "job",
        "jobs",
        "pod",
        "pods",
        "all",
        "every",
        "in",
        "on",
        "of",
        "for",
        "to",
        "and",
        "or",
        "is",
        "please",
        "with",
        "gpu",
        "gpus",
        "node",
        "nodes",
        "cluster",
        "clusters",
        "namespace",
        "namespaces",
    ]
)


def names_in(text: str) -> str:
    """The words of ``text`` that look like names (a digit, ``-`` or ``.``: ``team-a``,
    ``H100``), so that a whole request lends its names to each of its asks, not every word."""
    return " ".join(w for w in _WORD.findall(text) if any(c.isdigit() or c in "-." for c in w))


def clusters_spelled(text: str, clusters: Sequence[str]) -> str:
    """``text`` with a served cluster named by the part of its name that tells it apart from
    the others ("the east cluster", "on west" for gpu-east / gpu-west) written in full; a
    part shared by several clusters ("gpu") or a short one names none."""
    parts: dict[str, list[str]] = {}
    for c in clusters:
        for part in re.split(r"[-_.]", c.lower()):
            if len(part) >= 3 and not part.isdigit() and part != c.lower():
                parts.setdefault(part, []).append(c)
    for part, owners in parts.items():
        if len(owners) != 1:
            continue
        word = rf"(?<![\w-]){re.escape(part)}(?:ern)?(?![\w-])"  # "the eastern cluster"
        where = rf"{word}(?=\s+(?:cluster|context|side|one)\b)|(?<=\bon |\bin |\bto ){word}"
        text = re.sub(rf"{where}|(?<=\bfrom ){word}", owners[0], text, flags=re.IGNORECASE)

    def fix(m: re.Match[str]) -> str:  # "gpu-wset": the one cluster it is a slip of
        word = m.group(0).lower()
        near = [c for c in clusters if close(word, c.lower())]
        if len(near) > 1:  # "gpu-est": a slip keeps each part's first letter (east, not west)
            near = [c for c in near if _initials(c.lower()) == _initials(word)]
        return near[0] if len(near) == 1 else m.group(0)

    return re.sub(r"(?<![\w-])[a-z][\w-]{4,}(?![\w-])", fix, text, flags=re.IGNORECASE)


def _initials(name: str) -> list[str]:
    return [part[:1] for part in re.split(r"[-_.]", name)]


def quoted(request: str) -> list[str]:
    """The texts a request quotes ("filter for 'CUDA error'"), in order."""
    return [a or b for a, b in _QUOTED.findall(request)]


def unquoted(request: str) -> str:
    """``request`` with the texts it quotes blanked: what it looks for is no word of its own."""
    return _QUOTED.sub(" ", request)


def _singular(word: str) -> str:
    return word.removesuffix("s") if len(word) > 3 else word


def is_product(word: str) -> bool:
    """Whether a word looks like a GPU product (``H100``, ``MI300X``), not a name."""
    return bool(_PRODUCT.fullmatch(word))


def _unit(word: str) -> str:
    w = _singular(word.lower())
    return _UNIT_ALIAS.get(w, w)


def _windows(text: str) -> dict[int, set[str]]:
    """Time windows as seconds (``second``) and, when whole, hours (``hour``)."""
    out: dict[int, set[str]] = {}
    for m in _WINDOW.finditer(text):
        _, count, unit, day = m.groups()
        if day:
            seconds = 86400
        else:
            n = int(count) if count and count.isdigit() else _NUMBER_WORDS.get(count or "", 1)
            if count and not count.isdigit() and count not in _NUMBER_WORDS:
                continue
            seconds = max(1, n) * _SECONDS[_unit(unit).removesuffix("s")]
        out.setdefault(seconds, set()).add("second")
        if seconds % 3600 == 0:
            out.setdefault(seconds // 3600, set()).add("hour")
    return out


# "two dozen GPUs", "a two-dozen-GPU job": 24
_DOZENS = re.compile(r"\b(\d+|two|three|four|five|six|seven|eight|nine|ten)[\s-]+dozen\b")


def _count_word(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


def numbers_of(request: str) -> dict[int, frozenset[str]]:
    """The counts and windows a request states, each with the words around it (singular):
    ``{4: {"gpu", ...}}`` for "four GPUs", ``{600: {"second"}}`` for "past 10 minutes"."""
    text = _DOZENS.sub(lambda m: str(12 * _count_word(m.group(1))), request.lower())
    toks = _TOKEN.findall(text)
    numbers: dict[int, set[str]] = {}
    for i, tok in enumerate(toks):
        near = [_unit(w) for w in toks[max(0, i - 1) : i] + toks[i + 1 : i + 3]]
        value: int | None = None
        m = _UNIT_SUFFIX.match(tok)
        if tok.isdigit() and len(tok) < 10:
            value = int(tok)
        elif m:
            value, near = int(m.group(1)), [_unit(m.group(2)), *near]
        elif (
            (word := tok.split("-", 1))[0] in _NUMBER_WORDS
            and len(word) == 2
            and (is_product(word[1]) or _unit(word[1]) in ("gpu", "card"))
        ):  # "single-L4", "two-gpu"
            value, near = _NUMBER_WORDS[word[0]], ["gpu", *near]
        elif tok in _NUMBER_WORDS:
            value = _NUMBER_WORDS[tok]
            after = toks[i + 1] if i + 1 < len(toks) else ""
            if tok in ("pair", "couple", "dozen", "trio") and (
                (not i and after != "of") or (i and toks[i - 1] not in ("a", "one"))
            ):  # "a pair", "a dozen", a request opening "trio of gpus"
                value = None  # only "a pair", "a dozen"
            elif tok == "dozen" and i > 1 and toks[i - 2] == "half":
                value = 6
        if value is None:
            continue
        if any(is_product(w) for w in toks[i + 1 : i + 3]):
            near.append("gpu")  # "four A100s", "8x H100"
        if _LIMIT_WORDS & set(toks[max(0, i - 2) : i + 2]):
            near.append("limit")  # "top ten", "five latest"
        numbers.setdefault(value, set()).update(near)
    for value, units in _windows(text).items():
        numbers.setdefault(value, set()).update(units)
    if _CPU_ONLY.search(text):
        numbers.setdefault(0, set()).add("gpu")
    return {n: frozenset(v) for n, v in numbers.items()}


_SPACE_BEFORE = frozenset({"namespace", "ns"})
_GROUPING = frozenset({"per", "by", "each", "every"})
_SPACE_HINT = frozenset({"in", "to", "for"})  # "in team-a": a namespace, if a name
_OBJECT_ROLES = frozenset({"name", "job", "pod", "node", "near_pvc", "container"})


_SENTENCE = re.compile(r"[?!;]+|\.(?=\s|$)")
# a version ("v1.36.3", "1.36.3"), or a count with its unit ("2-gpu", "4-node", "8-way")
_NO_NAME = re.compile(
    r"v[0-9]+(\.[0-9]+)+|[0-9]+(\.[0-9]+){2,}"
    r"|[0-9]+(\.[0-9]+)?-(gpus?|cards?|nodes?|hours?|hrs?|h|days?|d|minutes?|mins?|m|weeks?"
    r"|way|x|cores?|replicas?)",
    re.IGNORECASE,
)
_NOUNS = frozenset({"job", "pod", "node", "pvc"})


def name_like(word: str) -> bool:
    """Whether a word has a digit or a hyphen, as object names mostly do ("h100-2", "x-1");
    "fleet-wide", "cluster-wide", "gpu-wise" are none."""
    return any(c.isdigit() or c == "-" for c in word) and not word.lower().endswith(
        ("-wide", "-wise")
    )


_PARTICLES = frozenset({"off", "up", "out", "down", "away", "back"})


def _unparticled(toks: list[str]) -> list[str]:
    """The words without a verb's particle ("kill off x", "scale down x"): the name follows."""
    return [
        t
        for i, t in enumerate(toks)
        if not (i and t.lower() in _PARTICLES and toks[i - 1].lower() in _BEFORE_NAME)
    ]


def _named(request: str) -> tuple[set[str], set[str]]:
    """Words the request puts where a name goes: objects after ``job``, ``pod``, ``pvc`` or a
    verb of change ("pause warmup", "pvc checkpoints"); namespaces after ``namespace`` (or after
    ``in``/``to``/``for`` when the word looks like a name: "in team-a")."""
    objects: set[str] = set()
    spaces: set[str] = set()
    weak: set[str] = set()  # after "to"/"for": a namespace only if none follows "in"
    pairs = [  # within a sentence: "how do I cancel a job? tell me ...": no job "tell"
        pair
        for sentence in _SENTENCE.split(request)
        for toks in [_unparticled(_WORD.findall(sentence))]
        for pair in zip(["", *toks], toks, toks[1:], strict=False)
    ]
    for before, prev, word in pairs:
        low, named = prev.lower(), word.lower() not in _NOT_NAME | _BEFORE_NAME
        if before.lower() in _GROUPING and low not in _SPACE_HINT:  # "per namespace over ..."
            continue
        if low in _NOUNS and name_like(before) and not name_like(word):
            continue  # "the t5-3b job over in team-a": the job's name came before "job"
        if low in _SPACE_BEFORE and named:
            spaces.add(word)
        elif low in _BEFORE_NAME and named and word.lower() not in _VAGUE and not _adverb(word):
            objects.add(word)  # "continue running", "suspend temporarily": no job
        elif low in _SPACE_HINT and "-" in word and not any(c.isupper() for c in word):
            (spaces if low == "in" else weak).add(word)
    if not any(s not in objects for s in spaces):  # "wait for x-1 in team-a": x-1 is no namespace
        spaces |= weak
    spaces |= set(_IN_PARENS.findall(request))  # "x-1 (team-a) is obsolete": x-1's place
    return objects, spaces - objects


_IN_PARENS = re.compile(r"(?<=[\w-] )\(([a-z][a-z0-9]*-[a-z0-9-]+)\)")  # "x-1 (team-a)"
_PLACED = re.compile(r"(?<![\w.-])([a-z][a-z]{2,})\s+(?:in|on|from)\s+[a-z][a-z0-9]*-[a-z0-9-]+")
_VAGUE = frozenset({
    "anything", "something", "everything", "nothing", "stuff", "thing", "things", "work",
    "training", "what", "who", "why", "how", "where", "when", "which", "running", "happening",
    "going", "else", "left", "there", "here", "now", "much", "many", "over", "out", "down",
    "up", "just", "only", "still", "also", "back", "again", "later", "today", "tonight",
    "tomorrow", "asap", "please", "pls", "all", "both", "ones", "them", "those", "these",
})  # fmt: skip


def _adverb(word: str) -> bool:
    """A plain word like "temporarily", "immediately": how, not what."""
    return word.isalpha() and word.lower().endswith("ly") and len(word) > 4


def _placed(request: str) -> set[str]:
    """Plain words placed in a namespace ("warmup in team-a") that name no subject."""
    words = {m.group(1) for m in _PLACED.finditer(request.lower())}
    return {w for w in words - _NOT_NAME - _BEFORE_NAME - _VAGUE if not names_subject(w)}


@dataclass(frozen=True)
class Grounding:
    """Where argument values may come from: the words of the conversation that look like
    names, the numbers the user wrote with the words around them, and the only values some
    arguments can take (``known``: the served clusters)."""

    words: frozenset[str]
    numbers: dict[int, frozenset[str]]
    known: dict[str, tuple[str, ...]]
    mentions: frozenset[str] = frozenset()  # the request's words, lower case, singular
    quoted: frozenset[str] = frozenset()  # text the request quotes (a grep pattern)
    objects: frozenset[str] = frozenset()  # words where a job, pod or node name goes
    spaces: frozenset[str] = frozenset()  # words where a namespace goes
    # a plain word right before "in team-a" ("is warmup in team-a done?"): a required job or
    # pod name when nothing else is one
    fallback: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        request: str,
        results: Sequence[str] = (),
        known: dict[str, Sequence[str]] | None = None,
        *,
        counts_from: Sequence[str] = (),
    ) -> Grounding:
        """From the request, the words with a digit, ``-`` or ``.`` (``team-a``, ``H100``)
        and plain words where a name goes (``job warmup``); from tool results, every word.
        ``counts_from``: texts whose counts stand too, where the request's own do not ("where
        else could it run?" after a result saying it requests 4 GPUs)."""
        objects, spaces = _named(request)
        numbers = numbers_of(request)
        for text in counts_from:
            for n, near in numbers_of(text).items():
                numbers.setdefault(n, near)
        words: set[str] = objects | spaces
        for i, text in enumerate([request, *results]):
            for w in _WORD.findall(text):
                if i == 0 and not any(c.isdigit() or c in "-." for c in w):
                    continue
                # a result's "nodes" is no node's name, nor a version ("v1.36.3") or a count
                # with its unit ("2-gpu job") any name
                if w.lower() in _NOT_NAME or _NO_NAME.fullmatch(w):
                    continue
                if w.endswith("s") and any(c.isdigit() for c in w):
                    words.add(w[:-1])  # "H100s", "l4s" name the product H100, L4
                    if w[-2:-1].isdigit() and is_product(w[:-1]):
                        continue  # and the plural itself is no value
                words.add(w)
                if len(words) >= 2000:
                    break
        return cls(
            frozenset(words),
            numbers,
            {k: tuple(v) for k, v in (known or {}).items()},
            frozenset(_singular(t) for t in re.findall(r"[a-z]+", request.lower())),
            frozenset(quoted(request)),
            frozenset(objects),
            frozenset(spaces),
            frozenset(_placed(request)),
        )

    def mentioned(self, name: str) -> bool:
        """Whether the request names the argument (``pod``, ``previous``), or states a value in
        its unit (a window for ``since_seconds``, "top ten" for ``limit``)."""
        unit = _singular(name.split("_")[-1])
        if any(unit in near for near in self.numbers.values()):
            return True
        if _ALIASES.get(name, frozenset()) & self.mentions:
            return True
        return any(_singular(p) in self.mentions for p in name.split("_") if len(p) > 2)

    def counts(self, name: str, lo: float, hi: float, required: bool) -> list[int]:
        """The numbers the request wrote in ``name``'s unit (any, for a required argument that
        no number names), within bounds."""
        unit = _singular(name.split("_")[-1])  # tail_lines -> line, since_hours -> hour
        fit = sorted(n for n, near in self.numbers.items() if lo <= n <= hi and unit in near)
        if fit or not required:
            return fit
        return sorted(n for n in self.numbers if lo <= n <= hi)

    def in_role(self, name: str, values: list[str]) -> list[str]:
        """Of the names that fit an argument, those the request puts in its role (a namespace
        after ``in``, a job after ``job``), or else those it puts in no other role: a namespace
        is never a job name."""
        if name == "namespace":
            mine, other = self.spaces, self.objects
        elif name in _OBJECT_ROLES:
            mine, other = self.objects, self.spaces
        else:
            return values
        return [v for v in values if v in mine] or [v for v in values if v not in other]
