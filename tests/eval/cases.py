"""The evaluation sets (dev.yaml, test.yaml) and how one planned call is scored against a case.

A case: ``request``, ``tool`` and ``args`` (the first call and its key arguments), ``category``,
optional ``also`` (equally correct tools) and ``calls`` (the later calls of a two-call request).
An argument the model omits counts at its schema default. A write is compared on every argument.
"""

from __future__ import annotations

import difflib
import re
import string
from pathlib import Path
from typing import Any

import yaml

from mcp_kube.tools.catalog import by_name

HERE = Path(__file__).parent
SETS = {"dev": HERE / "dev.yaml", "test": HERE / "test.yaml"}
CATEGORIES = (
    "plain",
    "terse",
    "chatty",
    "typo",
    "number-word",
    "relative-time",
    "quoted",
    "clusters",
    "digit-name",
    "two-call",
    "no-write",
)
# Arguments that name an object: one the model fills that the case does not expect is a miss.
ROLE_ARGS = ("cluster", "namespace", "node", "name", "job", "pod", "product", "gpu_product")
SUBSTRING_ARGS = ("product", "gpu_product")  # "H100" matches NVIDIA-H100-80GB-HBM3
_NAME = re.compile(r"[a-z0-9_]+(?:[-.:/][a-z0-9_]+)+")
_PUNCT = re.compile(f"[{re.escape(string.punctuation.replace('<', '').replace('>', ''))}]")


def load(path: Path) -> list[dict[str, Any]]:
    cases = yaml.safe_load(path.read_text())
    assert isinstance(cases, list)
    return cases


def is_write(tool: str) -> bool:
    spec = by_name().get(tool)
    return bool(spec and not spec.read_only)


def default(tool: str, arg: str) -> Any:
    spec = by_name().get(tool)
    field = spec.input.model_fields.get(arg) if spec else None
    return field.get_default(call_default_factory=True) if field else None


def _current_cluster_default(tool: str) -> bool:
    """Whether ``cluster`` left out means the current cluster (not every cluster)."""
    spec = by_name().get(tool)
    field = spec.input.model_fields.get("cluster") if spec else None
    return bool(field and "current one" in (field.description or ""))


def same(key: str, want: Any, got: Any) -> bool:
    if isinstance(want, str) and isinstance(got, str):
        if key in SUBSTRING_ARGS:
            return want.lower() in got.lower()
        return want.lower() == got.lower()
    if isinstance(want, bool) or isinstance(got, bool):  # True is no 1 here, and no 1.0
        return want is got
    if isinstance(want, int | float) and isinstance(got, int | float):
        return not isinstance(want, bool) and not isinstance(got, bool) and want == got
    return bool(want == got)


def arg_ok(tool: str, key: str, want: Any, got: Any, home: str | None) -> bool:
    if key == "cluster" and home and _current_cluster_default(tool):
        want, got = want or home, got or home
    return same(key, want, got)


def _expected(tool: str, case: dict[str, Any], name: str) -> Any:
    args = case.get("args") or {}
    return args[name] if name in args else default(tool, name)


def write_wrong(case: dict[str, Any], call: dict[str, Any] | None, home: str | None) -> bool:
    """A write planned where none is expected, or with any argument unlike the expected one."""
    if call is None or not is_write(call["tool"]):
        return False
    if call["tool"] != case["tool"]:
        return True
    got = call["arguments"]
    keys = set(case.get("args") or {}) | set(got)
    tool = call["tool"]
    return not all(
        arg_ok(tool, k, _expected(tool, case, k), got.get(k, default(tool, k)), home) for k in keys
    )


def score(
    case: dict[str, Any], call: dict[str, Any] | None, home: str | None = None
) -> tuple[bool, bool]:
    """(right tool, right tool and key arguments) for one planned first call."""
    if call is None or call["tool"] not in {case["tool"], *case.get("also", [])}:
        return False, False
    tool, got = call["tool"], call["arguments"]
    if is_write(tool):
        return True, not write_wrong(case, call, home)
    fields = by_name()[tool].input.model_fields
    want = {k: v for k, v in (case.get("args") or {}).items() if k in fields}
    ok = all(arg_ok(tool, k, v, got.get(k, default(tool, k)), home) for k, v in want.items())
    extra = [
        k
        for k in ROLE_ARGS
        if k in got and k not in want and not arg_ok(tool, k, default(tool, k), got[k], home)
    ]
    return True, ok and not extra


def normalize(text: str) -> str:
    """Lowercase; names (anything with - . : /) and digits as placeholders; no punctuation."""
    text = _NAME.sub(" <name> ", text.lower())
    text = re.sub(r"\d+", " <n> ", text)
    return " ".join(_PUNCT.sub(" ", text).split())


def similarity(a: str, b: str) -> float:
    """The larger of the character and the token similarity of the normalized texts."""
    na, nb = normalize(a), normalize(b)
    chars = difflib.SequenceMatcher(None, na, nb).ratio()
    tokens = difflib.SequenceMatcher(None, na.split(), nb.split()).ratio()
    return max(chars, tokens)


def tool_examples() -> list[tuple[str, str]]:
    """(tool, example request) for every example shown to the model."""
    return [(t.name, q) for t in by_name().values() for q, _ in t.examples]
