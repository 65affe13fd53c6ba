"""Output hygiene: text that comes from workloads (logs, events, labels, annotations, status
messages) reaches a client as data with nothing that could steer a terminal or hide text from a
human reviewer: terminal escape sequences, control characters and invisible or
direction-changing Unicode are removed (and counted, so the removal can be flagged). Nothing is
decoded or interpreted. Pure functions."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["DEFAULT_IGNORABLE", "clean", "clean_tree", "plain_json"]

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and two-character escapes
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")

# Unicode's Default_Ignorable_Code_Point property, whole (DerivedCoreProperties.txt; the same
# 4,174 code points from Unicode 14 through 16, checked against Perl's \p{DI}): characters a
# renderer shows as nothing, so a human reviewer cannot see them while a model still reads
# them. Variation selectors are among them: an emoji keeps its glyph and loses only its
# presentation selector (U+FE0F), a tag sequence flag keeps its black flag.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors, vowel separator
    (0x200B, 0x200F),  # zero width space, non-joiner, joiner; LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated formats
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors 1-16
    (0xFEFF, 0xFEFF),  # zero width no-break space (BOM)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # unassigned, reserved as ignorable
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tag characters, variation selectors 17-256, reserved
)
# Besides those: C0 controls but tab and newline, DEL, C1 controls, and the interlinear
# annotation characters (format controls that hide the annotated text's meaning).
_CONTROLS = ((0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F), (0xFFF9, 0xFFFB))


def _char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
        for lo, hi in ranges
    )


_INVISIBLE = re.compile(f"[{_char_class(_CONTROLS + DEFAULT_IGNORABLE)}]")


def clean(text: str) -> tuple[str, int]:
    """``text`` without escape sequences and invisible characters; how many were removed."""
    if text.isascii() and text.isprintable():
        return text, 0
    out, n1 = _ANSI.subn("", text)
    out, n2 = _INVISIBLE.subn("", out)
    return out, n1 + n2


def clean_tree(data: Any) -> tuple[Any, int]:
    """Every string of a JSON-like tree cleaned (keys too); the total removed."""
    if isinstance(data, str):
        return clean(data)
    if isinstance(data, list):
        total = 0
        items = []
        for item in data:
            c, n = clean_tree(item)
            items.append(c)
            total += n
        return items, total
    if isinstance(data, dict):
        total = 0
        out = {}
        for k, v in data.items():
            ck, nk = clean(k) if isinstance(k, str) else (k, 0)
            cv, nv = clean_tree(v)
            out[ck] = cv
            total += nk + nv
        return out, total
    return data, 0


# What json.dumps (ensure_ascii, the default) writes for any character clean() could remove:
# every non-ASCII character and control but tab and newline is escaped as \uXXXX, \b, \f or
# \r; DEL is the one it leaves as it is.
_NOT_PLAIN = ("\\u", "\\b", "\\f", "\\r", "\x7f")


def plain_json(text: str) -> bool:
    """Whether ``text``, a tree's ``json.dumps`` with ``ensure_ascii``, shows that
    ``clean_tree`` would change nothing in it: only printable ASCII, tabs and newlines. A
    string that holds a backslash before u, b, f or r reads as not plain (the slow path)."""
    return not any(bad in text for bad in _NOT_PLAIN)
