"""Output hygiene on plain strings: what is removed, what is kept."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_kube.hygiene import DEFAULT_IGNORABLE, clean, clean_tree, plain_json


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("\x1b[31mred\x1b[0m", "red"),  # SGR colour
        ("a\x1b[2Jb", "ab"),  # clear screen
        ("\x1b]0;evil title\x07ok", "ok"),  # OSC window title
        ("\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink
        ("pay\u202eyapxe.exe", "payyapxe.exe"),  # right-to-left override
        ("zero\u200bwidth\u200djoin", "zerowidthjoin"),
        ("bom\ufeff", "bom"),
        ("tag\U000e0041\U000e0042", "tag"),  # invisible tag characters
        ("bell\x07 nul\x00 c1\x9b", "bell nul c1"),
        ("soft\u00adhyphen", "softhyphen"),
    ],
)
def test_escapes_and_invisible_characters_are_removed(raw: str, kept: str) -> None:
    out, removed = clean(raw)
    assert out == kept
    assert removed > 0


@pytest.mark.parametrize(
    "text",
    ["plain ascii", "tab\tand\nnewline", "héllo wörld", "日本語のログ", "emoji 🚀", "loss=0.12"],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert clean(text) == (text, 0)


def test_trees_are_cleaned_everywhere_and_counted() -> None:
    data = {"lines": ["\x1b[1mbold\x1b[0m", "ok"], "meta": {"k\u200b": "v\u202e"}, "n": 3}
    out, removed = clean_tree(data)
    assert out == {"lines": ["bold", "ok"], "meta": {"k": "v"}, "n": 3}
    assert removed == 4


# Default_Ignorable_Code_Point as DerivedCoreProperties.txt lists it, transcribed here on its
# own (not read from the module under test), so a wrong table there fails here.
DI_RANGES = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
]  # fmt: skip
IGNORABLE = [chr(c) for lo, hi in DI_RANGES for c in range(lo, hi + 1)]
IGNORABLE_SET = frozenset(IGNORABLE)
# emoji whose presentation selector (U+FE0F) or tag sequence is removed; the glyph stays
EMOJI = [
    ("\u2764\ufe0f", "\u2764"),  # red heart
    ("\u26a0\ufe0f", "\u26a0"),  # warning sign
    ("\u2714\ufe0f", "\u2714"),  # check mark
    ("1\ufe0f\u20e3", "1\u20e3"),  # keycap one: the enclosing keycap stays
    ("\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", "\U0001f3f4"),
    ("\U0001f468\u200d\U0001f4bb", "\U0001f468\U0001f4bb"),  # ZWJ sequence: the joiner goes
]


def _visible(c: str) -> bool:
    return c not in IGNORABLE_SET and unicodedata.category(c) not in ("Cc", "Cs")


VISIBLE = st.characters(codec="utf-8").filter(_visible)
# a piece of workload text: (as written, as it must come back, how many removed)
PIECE = st.one_of(
    st.text(VISIBLE, min_size=1, max_size=12).map(lambda t: (t, t, 0)),
    # a range first, then a code point in it: the small ranges are drawn as often as the tags
    st.sampled_from(DI_RANGES).flatmap(lambda r: st.integers(*r)).map(lambda c: (chr(c), "", 1)),
    st.sampled_from(EMOJI).map(lambda e: (e[0], e[1], len(e[0]) - len(e[1]))),
)


def test_the_table_is_the_whole_default_ignorable_property() -> None:
    assert len(IGNORABLE) == 4174  # the property's size since Unicode 14
    assert sum(hi - lo + 1 for lo, hi in DEFAULT_IGNORABLE) == 4174
    assert clean("".join(IGNORABLE)) == ("", 4174)  # every one of them, at once
    for c in IGNORABLE:
        assert clean(f"a{c}b") == ("ab", 1), f"U+{ord(c):04X}"


@pytest.mark.parametrize(("raw", "kept"), [(e, k) for e, k in EMOJI])
def test_an_emoji_keeps_its_glyph_and_loses_its_selectors(raw: str, kept: str) -> None:
    assert clean(f"done {raw}") == (f"done {kept}", len(raw) - len(kept))


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECE, min_size=1, max_size=30), st.lists(PIECE, max_size=8))
def test_no_default_ignorable_survives_and_each_is_counted(
    message: list[tuple[str, str, int]], label: list[tuple[str, str, int]]
) -> None:
    raw = "".join(p[0] for p in message)
    expected = "".join(p[1] for p in message)
    count = sum(p[2] for p in message)
    out, removed = clean(raw)
    assert out == expected
    assert removed == count
    assert not IGNORABLE_SET & set(out)
    key = "team/" + "".join(p[0] for p in label)
    event = {"message": raw, "reason": raw[:5], "labels": {key: raw}, "count": 3}
    tree, total = clean_tree(event)
    assert not IGNORABLE_SET & set(json.dumps(tree, ensure_ascii=False))
    assert tree["message"] == expected
    assert tree["labels"] == {"team/" + "".join(p[1] for p in label): expected}
    reason_removed = clean(raw[:5])[1]
    assert total == 2 * count + reason_removed + sum(p[2] for p in label)


_TREES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500)
@given(_TREES)
def test_a_tree_read_as_plain_json_is_one_clean_tree_leaves_alone(tree: object) -> None:
    """The gate skips clean_tree when the JSON text is plain: never when it would change."""
    if plain_json(json.dumps(tree)):
        assert clean_tree(tree) == (tree, 0)


@pytest.mark.parametrize("bad", ["\x1b[31m", "\r", "\x7f", "\x85", "\u200b", "\b", "\x0c", "é"])
def test_anything_clean_could_remove_is_not_plain(bad: str) -> None:
    assert not plain_json(json.dumps({"k": [f"a{bad}b"]}))
    assert not plain_json(json.dumps({f"a{bad}": 1}))
    assert plain_json(json.dumps({"k": ["a\tb\nc", 1, None]}))
