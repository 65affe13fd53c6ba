"""Reading one chain's files for the verifier: every line parsed strictly, indexed by seq.

Why strict: the verifier answers "is this exactly what was written?", so a line counts as a
record only if it parses, its hash matches, and its bytes are the canonical form of what it
parses to. Damaged lines that a restarted writer named in an ``audit.recovered`` record are
crash debris and are left out here (the verifier notes them); every other damaged line stays
in, as an entry without a record, for the checks to report.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_kube.audit.chain import RECOVERED, seal
from mcp_kube.audit.report import Problem, VerifyReport

__all__ = ["Chain", "Entry", "parse", "read_chain"]


@dataclass
class Entry:
    file_index: int
    line: int
    record: dict[str, Any] | None  # None: not an intact record
    why: str = ""  # why not
    torn: bool = False  # the last line of a file, without its newline
    sha256: str = ""

    @property
    def seq(self) -> int:
        assert self.record is not None
        seq: int = self.record["seq"]
        return seq


@dataclass
class Chain:
    """What was read of one chain: its entries in log order, and the first record per seq."""

    names: list[str]
    entries: list[Entry] = field(default_factory=list)
    line_counts: list[int] = field(default_factory=list)
    hashes: dict[int, str] = field(default_factory=dict)
    where: dict[int, Entry] = field(default_factory=dict)

    def index(self) -> None:
        for e in self.entries:
            if e.record is not None and e.seq not in self.hashes:
                self.hashes[e.seq] = e.record["hash"]
                self.where[e.seq] = e

    def name(self, e: Entry) -> str:
        return self.names[e.file_index]

    def at(self, e: Entry) -> str:
        return f"{self.names[e.file_index]}:{e.line}"


def parse(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The record a line holds, or None and why it is not an intact record."""
    try:
        record = json.loads(raw)
    except ValueError as exc:
        return None, f"not JSON ({exc.__class__.__name__})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    seq, digest, prev = record.get("seq"), record.get("hash"), record.get("prev_hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return None, "no valid seq"
    if not isinstance(digest, str) or not isinstance(prev, str):
        return None, "no hash or prev_hash"
    try:
        expected, line = seal({k: v for k, v in record.items() if k != "hash"})
    except Exception as exc:  # rfc8785 refuses the value
        return None, f"not canonical JSON data ({exc})"
    if expected != digest:
        return None, "its hash does not match its content"
    if line[:-1] != raw:
        return None, "not in canonical form (bytes changed)"
    return record, ""


def read_chain(paths: list[Path], report: VerifyReport) -> Chain:
    """Read the files in order; unreadable ones and crash debris go into ``report``."""
    chain = Chain(names=[str(p) for p in paths])
    for i, path in enumerate(paths):
        name = chain.names[i]
        try:
            file_entries, total = _read_file(i, path)
        except OSError as exc:
            report.problems.append(Problem("gap", name, 0, None, f"cannot read: {exc}"))
            chain.line_counts.append(0)
            continue
        chain.entries.extend(file_entries)
        chain.line_counts.append(total)
        excused = total - len(file_entries)
        if excused > 0:
            report.notes.append(
                f"{name}: {excused} line(s) damaged by a crash, named by audit.recovered"
            )
    chain.index()
    return chain


def _read_file(index: int, path: Path) -> tuple[list[Entry], int]:
    """The entries of a file (crash debris named by the writer left out) and its line count."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    entries = []
    for n, raw in enumerate(lines, 1):
        record, why = parse(raw)
        sha = "" if record is not None else hashlib.sha256(raw).hexdigest()
        entries.append(Entry(index, n, record, why, sha256=sha))
    if tail:
        whole = parse(tail)[0] is not None
        entries.append(
            Entry(
                index,
                len(lines) + 1,
                None,
                "the last line has no newline: the writer stopped mid-record"
                + (" (after writing all of it; a restarted writer keeps it)" if whole else ""),
                torn=True,
                sha256=hashlib.sha256(tail).hexdigest(),
            )
        )
    return _excuse(entries), len(lines) + (1 if tail else 0)


def _excuse(entries: list[Entry]) -> list[Entry]:
    """Drop the damaged lines that a later ``audit.recovered`` record in the file names."""
    named: dict[int, str] = {}
    for e in entries:
        if e.record is not None and e.record.get("kind") == RECOVERED:
            for t in e.record.get("torn") or []:
                line = t.get("line") if isinstance(t, dict) else None
                if isinstance(line, int) and line < e.line:
                    named[line] = str(t.get("sha256"))
    if not named:
        return entries
    return [
        e
        for e in entries
        if not (e.record is None and e.line in named and named[e.line] == e.sha256)
    ]
