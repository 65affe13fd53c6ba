"""What the command groups share: the parser types, the settings overrides, two argument readers.

Kept free of heavy imports (no pydantic, no SDK at import time) so that building the parser,
and so ``mcp-kube --help``, stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from mcp_kube.errors import InvalidArgument

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Handler", "SubParsers", "json_arg", "overrides", "policy_paths"]

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers`` returns; each command group adds its parsers to it."""

Handler: TypeAlias = Callable[[argparse.Namespace], int]
"""Runs one parsed command and returns its exit status; set as the parser's ``handler``."""

M = TypeVar("M", bound="BaseModel")


def overrides(model: M, **given: object) -> M:
    """A copy of a settings model with the fields the command line gave (those not None).

    An option left out stays ``None`` and so keeps the value from the environment or the
    default; a flag that is only ever switched on is passed as ``flag or None``.
    """
    return model.model_copy(update={k: v for k, v in given.items() if v is not None})


def policy_paths(given: list[Path] | None) -> list[Path]:
    """The policy files: as given, else ``$MCP_KUBE_POLICY``, else policies/default.yaml."""
    if given:
        return given
    env = os.environ.get("MCP_KUBE_POLICY")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    default = Path("policies") / "default.yaml"
    return [default] if default.is_file() else []


def json_arg(text: str) -> Any:
    """The value of an ``--args`` option, or a usage error saying why it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"--args is not JSON: {e}") from None
