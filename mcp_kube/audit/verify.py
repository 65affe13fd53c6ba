"""Offline verification of an audit log: is it whole, and if not, where was it changed?

Why a verifier separate from the writer: the log is evidence, so it must be checkable on
another machine, from a copy, without the server. :func:`verify` reads the files of one chain
(rotated files oldest first, then the live one), and reports problems in log order so that
the first one names the first place the log differs from what was written:

``edited``
    a line is not an intact record (it does not parse, its hash does not match its content,
    it is not in canonical form), or a record's hash differs from the next one's ``prev_hash``
    (it was rewritten and re-hashed);
``deleted``
    records are missing inside a file (the seq jumps and the missing ones are nowhere);
``reordered``
    a record is out of place (the record expected there comes later, or a seq repeats);
``truncated``
    the log ends before the newest signed checkpoint (``<name>.checkpoint``, written by the
    sink beside the log) or a rotated file ends early;
``gap``
    the chain does not start at seq 1 (older files or records are missing), or a file is;
``torn_line``
    the last line was cut short (the writer died mid-write); everything before it stands;
``bad_signature``
    a checkpoint's signature, count or head hash is wrong, or it was signed by another key.

Damaged lines that a restarted writer named in an ``audit.recovered`` record are crash
debris, not tampering: they are listed in ``notes``, not in ``problems``.

What it cannot see: records after the newest signed checkpoint can be cut off without trace
if the checkpoint file goes with them, and a log rewritten from scratch verifies unless the
public key is pinned (``public_key``) - without it, signatures are checked against the key the
log itself carries.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mcp_kube.audit.chain import (
    CHECKPOINT,
    GENESIS,
    RECOVERED,
    seal,
    verify_checkpoint_signature,
)
from mcp_kube.audit.sink import rotated_siblings

__all__ = ["Problem", "VerifyReport", "discover", "load_public_key", "verify"]

_ROTATED = re.compile(r".+\.\d+")


@dataclass(frozen=True)
class Problem:
    kind: str  # edited | deleted | reordered | truncated | torn_line | bad_signature | gap
    file: str
    line: int  # 1-based line in ``file``
    seq: int | None  # the seq that belongs at that place
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        seq = f" (seq {self.seq})" if self.seq is not None else ""
        return f"{self.file}:{self.line}{seq}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    ok: bool
    records: int
    files: list[str]
    problems: list[Problem] = field(default_factory=list)
    checkpoints: int = 0
    signed_count: int | None = None  # records covered by the newest good signed checkpoint
    notes: list[str] = field(default_factory=list)

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["problems"] = [p.to_dict() for p in self.problems]
        return out


@dataclass
class _Entry:
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


def discover(path: Path) -> list[Path]:
    """The files of the chain whose live file is ``path``: rotated ones first, oldest first."""
    files = [p for _, p in rotated_siblings(path)]
    if path.exists():
        files.append(path)
    return files


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (the sink writes ``<key>.pub``)."""
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, str]:
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


def _read_file(index: int, path: Path) -> tuple[list[_Entry], int]:
    """The entries of a file (crash debris named by the writer left out) and its line count."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    entries = []
    for n, raw in enumerate(lines, 1):
        record, why = _parse(raw)
        sha = "" if record is not None else hashlib.sha256(raw).hexdigest()
        entries.append(_Entry(index, n, record, why, sha256=sha))
    if tail:
        whole = _parse(tail)[0] is not None
        entries.append(
            _Entry(
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


def _excuse(entries: list[_Entry]) -> list[_Entry]:
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


def verify(
    paths: list[Path],
    public_key: Path | None = None,
    *,
    checkpoint: Path | None = None,
) -> VerifyReport:
    """Verify one chain. A single live path also brings its rotated files (``<name>.<n>``).

    ``public_key`` pins the checkpoint key (a PEM file); ``checkpoint`` is the newest signed
    checkpoint, by default ``<live file>.checkpoint`` when it exists.
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and not _ROTATED.fullmatch(paths[0].name):
        found = discover(paths[0])
        paths = found or paths
    pinned = load_public_key(public_key) if public_key is not None else None
    names = [str(p) for p in paths]
    report = VerifyReport(ok=False, records=0, files=names)
    entries: list[_Entry] = []
    line_counts: list[int] = []
    for i, path in enumerate(paths):
        try:
            file_entries, total = _read_file(i, path)
        except OSError as exc:
            report.problems.append(Problem("gap", names[i], 0, None, f"cannot read: {exc}"))
            line_counts.append(0)
            continue
        entries.extend(file_entries)
        line_counts.append(total)
        excused = total - len(file_entries)
        if excused > 0:
            report.notes.append(
                f"{names[i]}: {excused} line(s) damaged by a crash, named by audit.recovered"
            )

    hashes: dict[int, str] = {}
    where: dict[int, _Entry] = {}
    for e in entries:
        if e.record is not None and e.seq not in hashes:
            hashes[e.seq] = e.record["hash"]
            where[e.seq] = e
    report.records = sum(1 for e in entries if e.record is not None)

    _check_order(entries, names, line_counts, where, report)
    _check_links(entries, names, hashes, where, report)
    last_checkpoint = _check_checkpoints(entries, names, pinned, report)
    if pinned is None and report.checkpoints:
        report.notes.append(
            "signatures checked against the key the log carries; pin it with --public-key"
        )

    cp_path = checkpoint
    if cp_path is None and paths:
        candidate = paths[-1].with_name(paths[-1].name + ".checkpoint")
        cp_path = candidate if candidate.exists() else None
    if cp_path is not None:
        _check_signed_head(
            cp_path, names, line_counts, hashes, where, last_checkpoint, pinned, report
        )
    else:
        report.notes.append(
            "no checkpoint file: records after the last checkpoint could be cut off unseen"
        )

    order = {n: i for i, n in enumerate(names)}
    report.problems.sort(key=lambda p: (order.get(p.file, len(names)), p.line))
    report.ok = not report.problems
    return report


def _check_order(
    entries: list[_Entry],
    names: list[str],
    line_counts: list[int],
    where: dict[int, _Entry],
    report: VerifyReport,
) -> None:
    present = set(where)
    seen: set[int] = set()
    pending: set[int] = set()  # seqs passed over that appear later (out of place)
    max_seq = 0
    previous: _Entry | None = None
    for e in entries:
        name = names[e.file_index]
        if e.record is None:  # a damaged line stands in for the record expected there
            max_seq += 1
            seen.add(max_seq)
            kind = "torn_line" if e.torn and e is entries[-1] else "edited"
            report.problems.append(Problem(kind, name, e.line, max_seq, e.why))
            previous = e
            continue
        s = e.seq
        if s in seen:
            if s in pending:
                pending.discard(s)
            else:
                first = where[s]
                report.problems.append(
                    Problem(
                        "reordered",
                        name,
                        e.line,
                        s,
                        f"seq {s} again (first at {names[first.file_index]}:{first.line})",
                    )
                )
            previous = e
            continue
        expected = max_seq + 1
        if s > expected:
            missing = range(expected, s)
            later = [x for x in missing if x in present and x not in seen]
            absent = [x for x in missing if x not in present]
            if later and not pending:
                at = where[later[0]]
                report.problems.append(
                    Problem(
                        "reordered",
                        name,
                        e.line,
                        expected,
                        f"seq {s} where seq {expected} belongs; seq {later[0]} is at "
                        f"{names[at.file_index]}:{at.line}",
                    )
                )
            pending.update(later)
            if absent:
                span = f"{absent[0]}..{absent[-1]}" if len(absent) > 1 else str(absent[0])
                new_file = previous is None or previous.file_index != e.file_index
                if previous is None and max_seq == 0:
                    report.problems.append(
                        Problem(
                            "gap",
                            name,
                            e.line,
                            absent[0],
                            f"the chain starts at seq {s}, not 1: records {span} "
                            "(older files?) are missing",
                        )
                    )
                elif new_file and previous is not None:
                    prev_name = names[previous.file_index]
                    report.problems.append(
                        Problem(
                            "truncated",
                            prev_name,
                            line_counts[previous.file_index] + 1,
                            absent[0],
                            f"{prev_name} ends at seq {max_seq} but {name} starts at seq {s}: "
                            f"records {span} are missing",
                        )
                    )
                else:
                    report.problems.append(
                        Problem("deleted", name, e.line, absent[0], f"records {span} are missing")
                    )
        elif s < expected:
            pending.discard(s)
        seen.add(s)
        max_seq = max(max_seq, s)
        previous = e


def _check_links(
    entries: list[_Entry],
    names: list[str],
    hashes: dict[int, str],
    where: dict[int, _Entry],
    report: VerifyReport,
) -> None:
    for e in entries:
        if e.record is None or where.get(e.seq) is not e:
            continue
        s, prev = e.seq, e.record["prev_hash"]
        if s == 1 and prev != GENESIS:
            report.problems.append(
                Problem("edited", names[e.file_index], e.line, s, "seq 1 must follow genesis")
            )
        elif s - 1 in hashes and hashes[s - 1] != prev:
            before = where[s - 1]
            report.problems.append(
                Problem(
                    "edited",
                    names[before.file_index],
                    before.line,
                    s - 1,
                    f"its hash is not the prev_hash of seq {s} "
                    f"({names[e.file_index]}:{e.line}): one of them was rewritten",
                )
            )


def _check_checkpoints(
    entries: list[_Entry],
    names: list[str],
    pinned: Ed25519PublicKey | None,
    report: VerifyReport,
) -> _Entry | None:
    first_key: str | None = None
    last: _Entry | None = None
    for e in entries:
        if e.record is None or e.record.get("kind") != CHECKPOINT:
            continue
        report.checkpoints += 1
        r = e.record
        name = names[e.file_index]
        why = verify_checkpoint_signature(r, pinned)
        if why is None and (r.get("count") != e.seq - 1 or r.get("head_hash") != r["prev_hash"]):
            why = "count or head_hash does not match the record's place in the chain"
        if why is None and pinned is None:
            first_key = first_key or str(r.get("key_id"))
            if r.get("key_id") != first_key:
                why = f"signed by key {r.get('key_id')}, earlier checkpoints by {first_key}"
        if why is not None:
            report.problems.append(Problem("bad_signature", name, e.line, e.seq, why))
            continue
        last = e
        report.signed_count = r["count"]
    return last


def _check_signed_head(
    cp_path: Path,
    names: list[str],
    line_counts: list[int],
    hashes: dict[int, str],
    where: dict[int, _Entry],
    last_in_log: _Entry | None,
    pinned: Ed25519PublicKey | None,
    report: VerifyReport,
) -> None:
    try:
        raw = cp_path.read_bytes().rstrip(b"\n")
    except OSError as exc:
        report.problems.append(Problem("gap", str(cp_path), 0, None, f"cannot read: {exc}"))
        return
    record, why = _parse(raw)
    if record is None or record.get("kind") != CHECKPOINT:
        report.problems.append(
            Problem("bad_signature", str(cp_path), 1, None, why or "not a checkpoint record")
        )
        return
    bad = verify_checkpoint_signature(record, pinned)
    if bad is not None:
        report.problems.append(Problem("bad_signature", str(cp_path), 1, record["seq"], bad))
        return
    seq, count = record["seq"], record["count"]
    in_log = (
        f"the last checkpoint in the log has count {last_in_log.record['count']} "
        f"({names[last_in_log.file_index]}:{last_in_log.line})"
        if last_in_log is not None and last_in_log.record is not None
        else "the log holds no good checkpoint"
    )
    max_seq = max(hashes, default=0)
    if seq in hashes:
        if hashes[seq] != record["hash"]:
            e = where[seq]
            report.problems.append(
                Problem(
                    "truncated",
                    names[e.file_index],
                    e.line,
                    seq,
                    f"seq {seq} is not the checkpoint (count {count}) signed in {cp_path.name}: "
                    f"the log was cut and written on; {in_log}",
                )
            )
        else:
            report.signed_count = max(report.signed_count or 0, count)
        return
    if seq > max_seq:
        last_index = len(names) - 1
        report.problems.append(
            Problem(
                "truncated",
                names[last_index],
                line_counts[last_index] + 1 if line_counts else 1,
                max_seq + 1,
                f"the log ends at seq {max_seq} but the checkpoint signed in {cp_path.name} "
                f"has count {count} (seq {seq}); {in_log}",
            )
        )
