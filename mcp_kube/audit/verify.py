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

import re
from pathlib import Path

from mcp_kube.audit.checks import check_checkpoints, check_links, check_order, check_signed_head
from mcp_kube.audit.files import rotated_siblings
from mcp_kube.audit.keys import load_public_key
from mcp_kube.audit.reading import read_chain
from mcp_kube.audit.report import Problem, VerifyReport

__all__ = ["Problem", "VerifyReport", "discover", "load_public_key", "verify"]

_ROTATED = re.compile(r".+\.\d+")


def discover(path: Path) -> list[Path]:
    """The files of the chain whose live file is ``path``: rotated ones first, oldest first."""
    files = [p for _, p in rotated_siblings(path)]
    if path.exists():
        files.append(path)
    return files


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
    report = VerifyReport(ok=False, records=0, files=[str(p) for p in paths])
    chain = read_chain(paths, report)
    report.records = sum(1 for e in chain.entries if e.record is not None)

    check_order(chain, report)
    check_links(chain, report)
    last_checkpoint = check_checkpoints(chain, pinned, report)
    if pinned is None and report.checkpoints:
        report.notes.append(
            "signatures checked against the key the log carries; pin it with --public-key"
        )
    cp_path = checkpoint
    if cp_path is None and paths:
        candidate = paths[-1].with_name(paths[-1].name + ".checkpoint")
        cp_path = candidate if candidate.exists() else None
    if cp_path is not None:
        check_signed_head(cp_path, chain, last_checkpoint, pinned, report)
    else:
        report.notes.append(
            "no checkpoint file: records after the last checkpoint could be cut off unseen"
        )

    order = {n: i for i, n in enumerate(chain.names)}
    report.problems.sort(key=lambda p: (order.get(p.file, len(chain.names)), p.line))
    report.ok = not report.problems
    return report
