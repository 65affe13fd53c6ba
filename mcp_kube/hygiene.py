"""Output hygiene: text that comes from workloads (logs, events, labels, annotations, status
messages) reaches a client as data with nothing that could steer a terminal or hide text from a
human reviewer: terminal escape sequences, control characters and invisible or
direction-changing Unicode are removed (and counted, so the removal can be flagged). Nothing is
decoded or interpreted. Pure functions."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["clean", "clean_tree"]

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and two-character escapes
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
# C0 controls but tab and newline, DEL, C1 controls, zero-width and joiners, bidi embeddings,
# overrides and isolates, word joiner and invisible operators, BOM, interlinear annotations,
# tag characters (invisible ASCII look-alikes)
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)


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
