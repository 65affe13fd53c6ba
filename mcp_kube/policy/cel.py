"""CEL behind a small interface, with two implementations that must agree.

The engine uses ``common-expression-language`` (Rust, tens of microseconds per evaluation);
``cel-python`` is the second implementation the shipped policy corpus is checked against.
Only an exact boolean ``true`` counts as true; the callers treat anything else as a refusal.
"""

from __future__ import annotations

from typing import Any, Protocol

from mcp_kube.errors import McpKubeError

__all__ = ["CelBackend", "CelError", "CelPy", "CommonCel", "Compiled", "backend"]


class CelError(McpKubeError):
    """An expression failed to compile or to evaluate."""

    code = "policy.cel"


class Compiled(Protocol):
    def run(self, bound: object) -> object:
        """Evaluate against an activation prepared by the backend's ``bind``."""
        ...


class CelBackend(Protocol):
    name: str

    def compile(self, expression: str) -> Compiled: ...

    def bind(self, activation: dict[str, Any]) -> object:
        """Convert the variables once, for every expression of one decision."""
        ...


class _CommonProgram:
    def __init__(self, program: Any) -> None:
        self._program = program

    def run(self, bound: object) -> object:
        try:
            return self._program.execute(bound)
        except Exception as e:  # missing fields, type errors, overflow ...
            raise CelError(f"{type(e).__name__}: {e}") from None


class CommonCel:
    name = "common-expression-language"

    def bind(self, activation: dict[str, Any]) -> object:
        import cel

        try:
            return cel.Context(activation)
        except Exception as e:
            raise CelError(f"cannot bind variables: {e}") from None

    def compile(self, expression: str) -> Compiled:
        import cel

        try:
            return _CommonProgram(cel.compile(expression))
        except (ValueError, RuntimeError) as e:
            raise CelError(str(e)) from None


class _CelPyProgram:
    def __init__(self, program: Any) -> None:
        self._program = program

    def run(self, bound: object) -> object:
        from celpy import celtypes

        try:
            result = self._program.evaluate(bound)
        except Exception as e:
            raise CelError(f"{type(e).__name__}: {e}") from None
        if isinstance(result, celtypes.BoolType):
            return bool(result)
        if isinstance(result, Exception):  # celpy returns some errors as values
            raise CelError(str(result))
        return result


class CelPy:
    name = "cel-python"

    def __init__(self) -> None:
        import celpy

        self._env = celpy.Environment()

    def bind(self, activation: dict[str, Any]) -> object:
        from celpy.adapter import json_to_cel

        return {k: json_to_cel(v) for k, v in activation.items()}

    def compile(self, expression: str) -> Compiled:
        try:
            return _CelPyProgram(self._env.program(self._env.compile(expression)))
        except Exception as e:
            raise CelError(str(e)) from None


def backend(name: str = "common-expression-language") -> CelBackend:
    if name == CommonCel.name:
        return CommonCel()
    if name == CelPy.name:
        return CelPy()
    raise ValueError(f"unknown CEL implementation {name!r}")
