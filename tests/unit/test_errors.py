"""One exception tree: every error the project defines is under one root and drawn in
``mcp_kube/errors.py``; the API server's answers become errors through one table."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re

import pytest
import urllib3

import mcp_kube
from mcp_kube import errors
from mcp_kube.errors import (
    ClusterUnavailable,
    Conflict,
    Forbidden,
    InvalidArgument,
    McpKubeError,
    NotFound,
    ToolError,
    UpstreamError,
)
from mcp_kube.kube.errors import error_for_status, no_answer

# "    │   ├── Name        (mcp_kube.module) what it means": the column of the name is its depth
_TREE_LINE = re.compile(r"^ {4}(?P<lead>[ │]*[├└]── )(?P<name>\w+)(?P<rest>.*)$")


def _exception_classes() -> list[type[Exception]]:
    """Every Exception subclass defined in a module of mcp_kube."""
    found: dict[str, type[Exception]] = {}
    for info in pkgutil.walk_packages(mcp_kube.__path__, "mcp_kube."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # runs the command line when imported
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Exception)
                and obj.__module__ == module.__name__
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


def _tree() -> dict[str, tuple[str | None, str]]:
    """The drawn tree: each name -> (its parent's name, the rest of its line)."""
    doc = errors.__doc__ or ""
    drawing = doc[doc.index("    McpKubeError") :].split("\n\n", 1)[0]
    root, *lines = drawing.splitlines()
    parents = [root.strip()]  # the names on the path to the current line
    out: dict[str, tuple[str | None, str]] = {parents[0]: (None, "")}
    for line in lines:
        m = _TREE_LINE.match(line)
        if m is None:
            continue  # a line that continues the description above it
        depth = len(m["lead"]) // 4
        del parents[depth:]
        out[m["name"]] = (parents[-1], m["rest"])
        parents.append(m["name"])
    return out


CLASSES = _exception_classes()
PUBLIC = [c for c in CLASSES if not c.__name__.startswith("_")]


def test_the_walk_finds_the_errors_of_every_layer() -> None:
    modules = {c.__module__ for c in CLASSES}
    assert {"mcp_kube.errors", "mcp_kube.policy.engine", "mcp_kube.llm.manifest"} <= modules
    assert len(PUBLIC) >= 30


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_exception_the_project_defines_is_under_the_root(cls: type[Exception]) -> None:
    assert issubclass(cls, McpKubeError), f"{cls.__module__}.{cls.__name__} is outside the root"


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_public_exception_is_drawn_where_it_lives_under_its_parent(
    cls: type[Exception],
) -> None:
    tree = _tree()
    assert cls.__name__ in tree, f"{cls.__name__} is missing from the tree in mcp_kube/errors.py"
    parent, rest = tree[cls.__name__]
    if cls is McpKubeError:
        assert parent is None
        return
    base = next(b for b in cls.__mro__[1:] if issubclass(b, McpKubeError))
    assert parent == base.__name__, f"{cls.__name__} is drawn under {parent}, not {base.__name__}"
    if cls.__module__ != "mcp_kube.errors":
        assert f"({cls.__module__})" in rest, f"the tree does not say {cls.__name__} lives there"


def test_the_tree_draws_no_class_that_does_not_exist() -> None:
    assert set(_tree()) == {c.__name__ for c in PUBLIC}


def test_every_tool_error_has_its_own_stable_code() -> None:
    tool_errors = [c for c in PUBLIC if issubclass(c, ToolError)]
    codes = [c.__dict__.get("code") for c in tool_errors]
    assert None not in codes, [c.__name__ for c in tool_errors if "code" not in c.__dict__]
    assert len(set(codes)) == len(codes)
    assert Conflict.code == "conflict"


def _status(message: str) -> bytes:
    return json.dumps({"kind": "Status", "message": message}).encode()


@pytest.mark.parametrize(
    ("status", "method", "error", "words"),
    [
        (400, "GET", InvalidArgument, "c1: bad selector"),
        (401, "GET", Forbidden, "c1: forbidden: bad selector"),
        (403, "PATCH", Forbidden, "c1: forbidden: bad selector"),
        (404, "GET", NotFound, "c1: bad selector"),
        (409, "POST", Conflict, "c1: conflict: already exists: bad selector"),
        (409, "PATCH", Conflict, "c1: conflict: the object changed meanwhile: bad selector"),
        (422, "POST", InvalidArgument, "c1: bad selector"),
        (429, "GET", UpstreamError, "c1: API server is throttling (429): bad selector"),
        (500, "GET", UpstreamError, "c1: API server error 500: bad selector"),
        (503, "DELETE", UpstreamError, "c1: API server error 503: bad selector"),
    ],
)
def test_an_http_status_becomes_one_error_class(
    status: int, method: str, error: type[ToolError], words: str
) -> None:
    e = error_for_status("c1", method, status, _status("bad selector"), "Reason")
    assert type(e) is error
    assert str(e) == words


def test_an_error_without_a_status_body_says_the_reason_and_a_long_message_is_cut() -> None:
    assert str(error_for_status("c1", "GET", 404, b"<html>", "Not Found")) == "c1: Not Found"
    long = error_for_status("c1", "GET", 400, _status("x" * 5000), "Bad Request")
    assert str(long) == "c1: " + "x" * 300


def test_no_answer_says_why_in_words_and_whether_a_write_may_have_landed() -> None:
    refused = urllib3.exceptions.MaxRetryError(
        None, "/api", urllib3.exceptions.NewConnectionError(None, "refused")
    )
    e = no_answer("c1", refused, 5.0)
    assert isinstance(e, ClusterUnavailable)
    assert str(e) == "cluster unavailable: c1 (connection refused)"
    slow = no_answer("c1", urllib3.exceptions.ReadTimeoutError(None, "/", "slow"), (5.0, 30.0))
    assert str(slow) == "cluster unavailable: c1 (no answer within 30.0s)"
    write = no_answer("c1", ConnectionResetError(), 5.0, write="PATCH")
    assert str(write) == (
        "cluster unavailable: c1 (connection lost); the PATCH may or may not have been "
        "applied: read the object before trying again"
    )
