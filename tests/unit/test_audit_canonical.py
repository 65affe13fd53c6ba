"""The audit chain's canonical form: its fast path (the C JSON encoder) writes exactly the bytes
of the rfc8785 library, or hands the value to it; records hash the same either way."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_kube.audit import chain
from mcp_kube.audit.chain import canonical

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=16,
)


def _either(fn: Callable[[object], bytes], value: object) -> bytes | str:
    try:
        return fn(value)
    except (ValueError, TypeError) as e:  # rfc8785's errors are ValueErrors
        return type(e).__name__


@settings(max_examples=1500)
@given(_VALUES)
def test_canonical_is_rfc8785_byte_for_byte(value: object) -> None:
    assert _either(canonical, value) == _either(rfc8785.dumps, value)


@pytest.mark.parametrize(
    "number",
    [
        0.0,
        -0.0,
        1.0,
        -3.0,
        0.5,
        1.25,
        123.456,
        1e-6,
        1e-7,
        1e-5,
        0.0001,
        1e15,
        1e16,
        1e21,
        2.0**53 - 1,
        2.0**53,
        2.0**53 + 2,
        5e-324,
        1.7976931348623157e308,
        0.1 + 0.2,
    ],
)
def test_floats_at_the_edges(number: float) -> None:
    for v in (number, -number, {"n": number}, [number]):
        assert canonical(v) == rfc8785.dumps(v)


@pytest.mark.parametrize(
    "text", ["a\x00b", "\x1f\x7f", 'q"\\', "\b\f\n\r\t", "\u2028\u2029", "é😀", "\ufeff"]
)
def test_strings_and_keys(text: str) -> None:
    value = {text: text, "z": [text], "\ue000": 1, "😀": 2}  # keys that sort apart in UTF-16
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical({"k": text}) == rfc8785.dumps({"k": text})


def test_the_fast_path_is_taken_for_an_ordinary_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_value: object) -> bytes:
        raise AssertionError("rfc8785 used for a plain record")

    monkeypatch.setattr(chain.rfc8785, "dumps", refuse)
    record = {"kind": "tool_call", "seq": 3, "latency_ms": 1.234, "ok": True, "x": None}
    assert json.loads(canonical(record)) == record
    assert canonical({"f": 2.0, "g": -0.0}) == b'{"f":2,"g":0}'
