"""The verifier's checks, each over one read chain (:class:`mcp_kube.audit.reading.Chain`).

Why separate checks: each answers one question the report names - are the records in order
(``reordered``, ``deleted``, ``gap``, ``truncated`` between files), does each hash link to the
next (``edited``), are the checkpoints in the log signed (``bad_signature``), and does the log
reach the newest checkpoint signed beside it (``truncated``). They only append problems; the
verifier sorts them into log order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mcp_kube.audit.chain import CHECKPOINT, GENESIS, verify_checkpoint_signature
from mcp_kube.audit.reading import Chain, Entry, parse
from mcp_kube.audit.report import Problem, VerifyReport

__all__ = ["check_checkpoints", "check_links", "check_order", "check_signed_head"]


def check_order(chain: Chain, report: VerifyReport) -> None:
    """Walk the entries in log order and name every record out of place or missing."""
    _Order(chain, report).run()


class _Order:
    def __init__(self, chain: Chain, report: VerifyReport) -> None:
        self.chain = chain
        self.report = report
        self.present = set(chain.where)
        self.seen: set[int] = set()
        self.pending: set[int] = set()  # seqs passed over that appear later (out of place)
        self.max_seq = 0
        self.previous: Entry | None = None

    def run(self) -> None:
        entries = self.chain.entries
        for e in entries:
            if e.record is None:  # a damaged line stands in for the record expected there
                self._damaged(e, last=e is entries[-1])
            elif e.seq in self.seen:
                self._again(e)
            else:
                self._next(e)
            self.previous = e

    def _add(self, kind: str, file: str, line: int, seq: int | None, detail: str) -> None:
        self.report.problems.append(Problem(kind, file, line, seq, detail))

    def _damaged(self, e: Entry, *, last: bool) -> None:
        self.max_seq += 1
        self.seen.add(self.max_seq)
        kind = "torn_line" if e.torn and last else "edited"
        self._add(kind, self.chain.name(e), e.line, self.max_seq, e.why)

    def _again(self, e: Entry) -> None:
        s = e.seq
        if s in self.pending:
            self.pending.discard(s)
            return
        first = self.chain.where[s]
        detail = f"seq {s} again (first at {self.chain.at(first)})"
        self._add("reordered", self.chain.name(e), e.line, s, detail)

    def _next(self, e: Entry) -> None:
        s = e.seq
        expected = self.max_seq + 1
        if s > expected:
            self._jump(e, expected)
        elif s < expected:
            self.pending.discard(s)
        self.seen.add(s)
        self.max_seq = max(self.max_seq, s)

    def _jump(self, e: Entry, expected: int) -> None:
        """``e`` comes after records that are not (yet) seen: later in the log, or missing."""
        s = e.seq
        missing = range(expected, s)
        later = [x for x in missing if x in self.present and x not in self.seen]
        absent = [x for x in missing if x not in self.present]
        if later and not self.pending:
            at = self.chain.where[later[0]]
            detail = (
                f"seq {s} where seq {expected} belongs; seq {later[0]} is at {self.chain.at(at)}"
            )
            self._add("reordered", self.chain.name(e), e.line, expected, detail)
        self.pending.update(later)
        if absent:
            self._missing(e, absent)

    def _missing(self, e: Entry, absent: list[int]) -> None:
        s, name, previous = e.seq, self.chain.name(e), self.previous
        span = f"{absent[0]}..{absent[-1]}" if len(absent) > 1 else str(absent[0])
        if previous is None and self.max_seq == 0:
            detail = (
                f"the chain starts at seq {s}, not 1: records {span} (older files?) are missing"
            )
            self._add("gap", name, e.line, absent[0], detail)
        elif previous is not None and previous.file_index != e.file_index:
            prev_name = self.chain.name(previous)
            self._add(
                "truncated",
                prev_name,
                self.chain.line_counts[previous.file_index] + 1,
                absent[0],
                f"{prev_name} ends at seq {self.max_seq} but {name} starts at seq {s}: "
                f"records {span} are missing",
            )
        else:
            self._add("deleted", name, e.line, absent[0], f"records {span} are missing")


def check_links(chain: Chain, report: VerifyReport) -> None:
    """Each record's ``prev_hash`` is the hash of the record before it (genesis for seq 1)."""
    for e in chain.entries:
        if e.record is None or chain.where.get(e.seq) is not e:
            continue
        s, prev = e.seq, e.record["prev_hash"]
        if s == 1 and prev != GENESIS:
            report.problems.append(
                Problem("edited", chain.name(e), e.line, s, "seq 1 must follow genesis")
            )
        elif s - 1 in chain.hashes and chain.hashes[s - 1] != prev:
            before = chain.where[s - 1]
            report.problems.append(
                Problem(
                    "edited",
                    chain.name(before),
                    before.line,
                    s - 1,
                    f"its hash is not the prev_hash of seq {s} "
                    f"({chain.at(e)}): one of them was rewritten",
                )
            )


def check_checkpoints(
    chain: Chain, pinned: Ed25519PublicKey | None, report: VerifyReport
) -> Entry | None:
    """Check every checkpoint in the log; return the last good one."""
    first_key: str | None = None
    last: Entry | None = None
    for e in chain.entries:
        if e.record is None or e.record.get("kind") != CHECKPOINT:
            continue
        report.checkpoints += 1
        r = e.record
        why = verify_checkpoint_signature(r, pinned)
        if why is None and (r.get("count") != e.seq - 1 or r.get("head_hash") != r["prev_hash"]):
            why = "count or head_hash does not match the record's place in the chain"
        if why is None and pinned is None:
            first_key = first_key or str(r.get("key_id"))
            if r.get("key_id") != first_key:
                why = f"signed by key {r.get('key_id')}, earlier checkpoints by {first_key}"
        if why is not None:
            report.problems.append(Problem("bad_signature", chain.name(e), e.line, e.seq, why))
            continue
        last = e
        report.signed_count = r["count"]
    return last


def check_signed_head(
    cp_path: Path,
    chain: Chain,
    last_in_log: Entry | None,
    pinned: Ed25519PublicKey | None,
    report: VerifyReport,
) -> None:
    """The log reaches, unchanged, the newest checkpoint signed in ``cp_path``."""
    record = _read_checkpoint(cp_path, pinned, report)
    if record is None:
        return
    seq, count = record["seq"], record["count"]
    in_log = (
        f"the last checkpoint in the log has count {last_in_log.record['count']} "
        f"({chain.at(last_in_log)})"
        if last_in_log is not None and last_in_log.record is not None
        else "the log holds no good checkpoint"
    )
    max_seq = max(chain.hashes, default=0)
    if seq in chain.hashes:
        if chain.hashes[seq] != record["hash"]:
            e = chain.where[seq]
            report.problems.append(
                Problem(
                    "truncated",
                    chain.name(e),
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
        last_index = len(chain.names) - 1
        report.problems.append(
            Problem(
                "truncated",
                chain.names[last_index],
                chain.line_counts[last_index] + 1 if chain.line_counts else 1,
                max_seq + 1,
                f"the log ends at seq {max_seq} but the checkpoint signed in {cp_path.name} "
                f"has count {count} (seq {seq}); {in_log}",
            )
        )


def _read_checkpoint(
    cp_path: Path, pinned: Ed25519PublicKey | None, report: VerifyReport
) -> dict[str, Any] | None:
    """The signed checkpoint record in ``cp_path``, or None (and why, in ``report``)."""
    try:
        raw = cp_path.read_bytes().rstrip(b"\n")
    except OSError as exc:
        report.problems.append(Problem("gap", str(cp_path), 0, None, f"cannot read: {exc}"))
        return None
    record, why = parse(raw)
    if record is None or record.get("kind") != CHECKPOINT:
        report.problems.append(
            Problem("bad_signature", str(cp_path), 1, None, why or "not a checkpoint record")
        )
        return None
    bad = verify_checkpoint_signature(record, pinned)
    if bad is not None:
        report.problems.append(Problem("bad_signature", str(cp_path), 1, record["seq"], bad))
        return None
    return record
