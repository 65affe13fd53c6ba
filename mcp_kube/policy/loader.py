"""Load policy files (and policy test files) safely.

YAML from disk is untrusted input too: documents are size-capped, anchors and aliases are
refused (no "billion laughs"), nesting is bounded, a key given twice in one mapping (at any
depth) is refused rather than letting the last one win, and every file is validated by its
pydantic model with unknown fields rejected. Errors name the file, the rule and the position.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mcp_kube.domain import ManifestReview, Principal
from mcp_kube.policy.approvals import ApprovalTerms
from mcp_kube.policy.cel import CelBackend
from mcp_kube.policy.decision import Decision, Policy
from mcp_kube.policy.engine import PolicyEngine, PolicyError
from mcp_kube.policy.model import PolicyFile

__all__ = ["MAX_BYTES", "ReloadablePolicy", "load_engine", "policy_paths", "safe_yaml"]

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32


class _DuplicateKey(PolicyError):
    """Raised while parsing, before the file's name is known; ``safe_yaml`` adds it."""


class _NoAliasLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self._refuse_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _refuse_duplicates(self, node: yaml.MappingNode) -> None:
        """A key twice in one mapping would silently keep the last value (``effect: Allow``
        then ``effect: Deny``): refused, naming both lines. Keys compare as loaded, so ``1``
        and ``01`` or ``true`` and ``yes`` are one key too. Merge keys (``<<``) would bring
        the same ambiguity in: refused like the anchors they usually come with."""
        first: dict[Any, tuple[int, int]] = {}
        for key_node, _ in node.value:
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.YAMLError(f"merge keys (<<) are not allowed (line {line})")
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.get(key)
            except TypeError:  # an unhashable key: the constructor refuses it next
                continue
            if seen is not None:
                shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
                here, there = f"line {line}", f"line {seen[0]}"
                if seen[0] == line:  # a flow mapping on one line
                    here, there = f"{here}, column {column}", f"{there}, column {seen[1]}"
                raise _DuplicateKey(f"duplicate key {shown} at {here} (first at {there})")
            first[key] = (line, column)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.AliasEvent):
            raise yaml.YAMLError(f"aliases are not allowed (line {line})")
        if getattr(event, "anchor", None):
            raise yaml.YAMLError(f"anchors are not allowed (line {line})")
        # bound the composer's recursion while parsing, not after (a 100,000-deep flow list
        # would otherwise exhaust the stack before any check of the result could run)
        self._nesting = getattr(self, "_nesting", 0) + 1
        try:
            if self._nesting > MAX_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels (line {line})")
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if d > limit:
            return d
        if isinstance(item, dict):
            stack += [(v, d + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, d + 1) for v in item]
    return deepest


def safe_yaml(text: str, source: str) -> Any:
    if len(text.encode()) > MAX_BYTES:
        raise PolicyError(f"{source}: larger than {MAX_BYTES} bytes")
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as e:
        raise PolicyError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        raise PolicyError(f"{source}: invalid YAML: {e}") from None
    except RecursionError:
        raise PolicyError(f"{source}: nested too deeply") from None
    if _depth(data) > MAX_DEPTH:
        raise PolicyError(f"{source}: nested deeper than {MAX_DEPTH} levels")
    return data


def policy_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a folder contributes its *.yaml files (not sub-folders such as tests/)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.glob("*.yaml") if q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise PolicyError(f"{p}: no such policy file or folder")
    if not out:
        raise PolicyError(f"no policy files in {', '.join(str(p) for p in paths)}")
    return out


def _location(e: ValidationError, data: Any) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = err["loc"]
        rule = ""
        if len(loc) > 3 and loc[:2] == ("spec", "rules") and isinstance(loc[2], int):
            try:
                rule = f"rule {data['spec']['rules'][loc[2]].get('id', loc[2])}: "
            except (KeyError, IndexError, TypeError, AttributeError):
                rule = f"rule #{loc[2]}: "
        field = ".".join(str(p) for p in loc)
        parts.append(f"{rule}{field}: {err['msg']}")
    return "; ".join(parts)


def load_file(path: Path) -> PolicyFile:
    data = safe_yaml(path.read_text(), str(path))
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as e:
        raise PolicyError(f"{path}: {_location(e, data)}") from None


def load_engine(paths: list[Path], backend: CelBackend | None = None) -> PolicyEngine:
    files = [(str(p), load_file(p)) for p in policy_paths(paths)]
    return PolicyEngine(files, backend)


class ReloadablePolicy(Policy):
    """The policy a server runs with: the files it was started with, reloadable in place.

    ``reload`` swaps in the new files only if they all load and compile; otherwise the running
    policy stays and the error is returned, so a bad edit never leaves the server open.
    """

    def __init__(self, paths: list[Path], backend: CelBackend | None = None) -> None:
        self.paths = list(paths)
        self._backend = backend
        self.engine = load_engine(self.paths, backend)

    def reload(self) -> str | None:
        try:
            self.engine = load_engine(self.paths, self._backend)
        except PolicyError as e:
            return str(e)
        return None

    def decide(
        self, principal: Principal, tool: str, read_only: bool, args: dict[str, Any]
    ) -> Decision:
        return self.engine.decide(principal, tool, read_only, args)

    def review(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: dict[str, Any],
        args: Mapping[str, Any] | None = None,
    ) -> ManifestReview:
        return self.engine.review(principal, tool, cluster, namespace, manifest, args)

    def calls_per_minute(self, tool: str) -> int | None:
        return self.engine.calls_per_minute(tool)

    def approval_terms(
        self,
        principal: Principal,
        tool: str,
        cluster: str,
        namespace: str,
        manifest: Mapping[str, Any],
        args: Mapping[str, Any] | None = None,
    ) -> ApprovalTerms | None:
        return self.engine.approval_terms(principal, tool, cluster, namespace, manifest, args)
