"""Output hygiene on plain strings: what is removed, what is kept."""

from __future__ import annotations

import pytest

from mcp_kube.hygiene import clean, clean_tree


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
