"""Scripted audit runs (``mcp-kube audit run SCRIPT.yaml``): tool calls as evidence, no LLM.

A script lists tool calls with optional expectations. Each call goes through a real MCP client
to a server (a command on stdio, or a streamable HTTP URL), so it passes the same gate, policy
and audit log as any other caller. The report (JSON and Markdown) lists every call, its
outcome, a SHA-256 digest of its structured result (RFC 8785 canonical JSON, without fields
that change with the clock alone, such as ages) and the id of the server's audit record.
Two runs on an unchanged cluster give the same digests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import anyio
import rfc8785
from mcp import Client, StdioServerParameters
from mcp.types import TextContent
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mcp_kube.errors import InvalidArgument
from mcp_kube.gate import REQUEST_ID_META
from mcp_kube.policy.loader import safe_yaml

__all__ = ["VOLATILE", "digest", "run_script"]

# Fields whose value moves with the clock even when nothing in the cluster changed.
VOLATILE = frozenset({"age_s", "since_s", "latency_ms", "generated_at"})


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    is_error: bool | None = None
    error_code: str | None = None
    contains: str | None = Field(None, description="a substring of the text result")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    tool: str = Field(max_length=100)
    args: dict[str, Any] = Field(default_factory=dict)
    expect: Expect | None = None


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    description: str = ""
    server: str | None = None
    calls: list[Step] = Field(min_length=1, max_length=500)


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def digest(structured: Any) -> str:
    return "sha256:" + hashlib.sha256(rfc8785.dumps(_stable(structured))).hexdigest()


def _target(server: str) -> Any:
    if server.startswith(("http://", "https://")):
        return server
    argv = shlex.split(server)
    if not argv:
        raise InvalidArgument("the server command is empty")
    if argv[0] == "mcp-kube":
        argv[0] = str(Path(sys.executable).parent / "mcp-kube")
    return StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))


def _check(step: Step, is_error: bool, text: str) -> list[str]:
    e = step.expect
    if e is None:
        return []
    failed = []
    if e.is_error is not None and e.is_error != is_error:
        failed.append(f"expected is_error={e.is_error}, got {is_error}")
    if e.error_code is not None and not text.startswith(f"error [{e.error_code}]"):
        failed.append(f"expected error code {e.error_code}")
    if e.contains is not None and e.contains not in text:
        failed.append(f"text lacks {e.contains!r}")
    return failed


async def _run(script: Script, server: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with Client(_target(server)) as client:
        for step in script.calls:
            result = await client.call_tool(step.tool, step.args)
            text = "\n".join(c.text for c in result.content if isinstance(c, TextContent))
            is_error = bool(result.is_error)
            failed = _check(step, is_error, text)
            rows.append(
                {
                    "name": step.name,
                    "tool": step.tool,
                    "args": step.args,
                    "is_error": is_error,
                    "digest": digest(result.structured_content if not is_error else text),
                    "audit_request_id": (result.meta or {}).get(REQUEST_ID_META, ""),
                    "summary": text[:2000],
                    "expectation": "met" if not failed else "; ".join(failed),
                    "ok": not failed,
                }
            )
    return rows


def _markdown(script: Script, report: dict[str, Any]) -> str:
    lines = [
        f"# Audit evidence: {script.name}",
        "",
        script.description,
        "",
        f"- run at: {report['run_at']}",
        f"- server: `{report['server']}`",
        f"- calls: {len(report['calls'])}, expectations met: {report['passed']}",
        "",
        "| # | call | tool | outcome | expectation | digest | audit record |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(report["calls"], 1):
        outcome = "error" if row["is_error"] else "ok"
        lines.append(
            f"| {i} | {row['name']} | `{row['tool']}` | {outcome} | {row['expectation']} "
            f"| `{row['digest'][:23]}` | `{row['audit_request_id']}` |"
        )
    lines += ["", "## Results", ""]
    for i, row in enumerate(report["calls"], 1):
        lines += [f"### {i}. {row['name']}", "", "```", row["summary"], "```", ""]
    return "\n".join(lines)


def run_script(path: Path, server: str | None, out_dir: Path) -> tuple[Path, Path, bool]:
    """Run a script; write ``<name>.evidence.json`` and ``.md`` into ``out_dir``."""
    try:
        script = Script.model_validate(safe_yaml(path.read_text(), str(path)))
    except ValidationError as e:
        err = e.errors()[0]
        raise InvalidArgument(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    chosen = server or script.server or "mcp-kube serve"
    rows = anyio.run(_run, script, chosen)
    report = {
        "script": script.name,
        "server": chosen,
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "calls": rows,
        "passed": sum(1 for r in rows if r["ok"]),
        "ok": all(r["ok"] for r in rows),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    json_path, md_path = out_dir / f"{stem}.evidence.json", out_dir / f"{stem}.evidence.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(_markdown(script, report) + "\n")
    return json_path, md_path, bool(report["ok"])
