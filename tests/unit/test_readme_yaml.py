"""Every YAML example in the README is valid: policies load with the policy loader (and their
CEL compiles), every other YAML block at least parses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_kube.policy.engine import PolicyError
from mcp_kube.policy.loader import load_engine

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def yaml_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every ```yaml block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def looks_like_policy(doc: Any) -> bool:
    """A policy file, or something written to be one (e.g. bare `rules:`)."""
    if not isinstance(doc, dict):
        return False
    if doc.get("kind") == "ToolPolicy" or str(doc.get("apiVersion", "")).startswith("mcp-kube.io"):
        return True
    spec = doc.get("spec")
    return "rules" in doc or (isinstance(spec, dict) and "rules" in spec)


BLOCKS = yaml_blocks(README.read_text())


def test_the_readme_has_a_policy_example() -> None:
    policies = [b for b in BLOCKS if any(looks_like_policy(d) for d in yaml.safe_load_all(b[1]))]
    assert policies, "no policy example found in README.md (did the extraction break?)"


@pytest.mark.parametrize(("line", "text"), BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_readme_yaml_block_is_valid(line: int, text: str, tmp_path: Path) -> None:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        pytest.fail(f"README.md:{line}: invalid YAML: {e}")
    for i, doc in enumerate(docs):
        if not looks_like_policy(doc):
            continue
        path = tmp_path / f"readme-{line}-{i}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        try:
            load_engine([path])
        except PolicyError as e:
            pytest.fail(f"README.md:{line}: not a valid policy: {e}")


def test_the_old_bare_rules_example_would_be_caught(tmp_path: Path) -> None:
    """The check is not vacuous: the README's former example (bare `rules:`) is refused."""
    old = "```yaml\nrules:\n  - id: teams-write\n    match: {tools: [submit_job]}\n```\n"
    ((_line, text),) = yaml_blocks(old)
    (doc,) = yaml.safe_load_all(text)
    assert looks_like_policy(doc)
    path = tmp_path / "old.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match="apiVersion: Field required"):
        load_engine([path])
