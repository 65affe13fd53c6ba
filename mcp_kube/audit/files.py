"""The audit log's files on disk: which files make one chain, and what a crash left at the end.

Why apart from the writer: the verifier finds a chain's files by the same rule
(:func:`rotated_siblings`), and reading a file's end back - backwards, only as far as needed,
telling the last intact record from the debris of a writer that died mid-line - is the part
of opening a log that must be right after a crash. The writer decides what to do about the
damage (:meth:`mcp_kube.audit.sink.AuditLog`); this module only reads and names it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_kube.audit.chain import seal
from mcp_kube.errors import McpKubeError

__all__ = [
    "DamagedTail",
    "Flusher",
    "Head",
    "Tail",
    "count_newlines",
    "fsync_dir",
    "intact",
    "lock_writer",
    "name_damage",
    "next_rotated",
    "replace_file",
    "rotated_head",
    "rotated_siblings",
    "scan_tail",
    "write_all",
]

_TAIL_CHUNK = 64 * 1024
_MAX_DAMAGED = 16  # more damaged lines at the end than crashes leave: refuse to go on


class DamagedTail(McpKubeError):
    """The end of a file holds more damaged lines than a crash leaves."""


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    prev: str


@dataclass(frozen=True)
class Tail:
    head: Head | None  # the last intact record of the file
    torn: list[tuple[int, bytes]]  # (offset, bytes) of damaged complete lines after it
    fragment: bytes  # bytes after the last newline


def rotated_siblings(path: Path) -> list[tuple[int, Path]]:
    """The rotated files ``<name>.<n>`` of ``path``, oldest (lowest n) first."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)")
    found: list[tuple[int, Path]] = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in path.parent.iterdir():
            m = pattern.fullmatch(entry.name)
            if m and entry.is_file():
                found.append((int(m.group(1)), entry))
    return sorted(found)


def next_rotated(path: Path) -> Path:
    """The name ``path`` takes when it is rotated: one above the newest ``<name>.<n>``."""
    siblings = rotated_siblings(path)
    return path.with_name(f"{path.name}.{siblings[-1][0] + 1 if siblings else 1}")


def lock_writer(lock_path: Path) -> int | None:
    """Take the one-writer ``flock`` on ``lock_path``; None when another process holds it.

    The lock is held as long as the returned descriptor is open.
    """
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return None
    return lock_fd


class Flusher:
    """Group commit: one ``fdatasync`` flushes every record written before it, so the callers
    waiting meanwhile share it rather than taking turns at one each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.synced = 0  # seq of the last record known to be on disk

    def flushed(self, seq: int) -> None:
        self.synced = max(self.synced, seq)

    def sync(
        self, seq: int, writer: threading.Lock, current: Callable[[], tuple[int | None, int]]
    ) -> None:
        """Return once ``seq`` is on disk. ``current()``, called holding ``writer``: the log's
        descriptor and the seq of its last record (the descriptor is duplicated, so that a
        rotation meanwhile cannot close it under the flush)."""
        with self._lock:
            if self.synced >= seq:
                return
            with writer:
                fd, last = current()
                if fd is None:
                    raise OSError(errno.EBADF, "the audit log is not open")
                fd = os.dup(fd)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            self.flushed(last)


def write_all(fd: int, data: bytes, *, sync: bool) -> None:
    """Write all of ``data`` (retrying short writes), then ``fdatasync`` when ``sync``."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[n:]
    if sync:
        os.fdatasync(fd)


def replace_file(path: Path, data: bytes, *, sync: bool) -> None:
    """Replace ``path`` (0600) with ``data`` in one ``rename``, so it is never half written."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def intact(line: bytes) -> Head | None:
    """The chain fields of a line that is an intact record, else None.

    Deliberately looser than the verifier's parse (:func:`mcp_kube.audit.reading.parse`): it
    does not insist on canonical bytes. A hash-valid line that was edited stays the head, so
    the verifier reports it as ``edited``, instead of being named crash debris and excused.
    """
    try:
        record = json.loads(line)
        seq, digest, prev = record["seq"], record["hash"], record["prev_hash"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            return None
        if not (isinstance(digest, str) and isinstance(prev, str)):
            return None
        if seal({k: v for k, v in record.items() if k != "hash"})[0] != digest:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    return Head(seq, digest, prev)


def scan_tail(fd: int, size: int, path: object) -> Tail:
    """Find the last intact record of a file, reading backwards as far as needed."""
    window = min(size, _TAIL_CHUNK)
    while True:
        start = size - window
        lines = os.pread(fd, window, start).split(b"\n")
        fragment = lines.pop()
        if start > 0:
            lines = lines[1:]  # may begin mid-line
        end = size - len(fragment)
        torn: list[tuple[int, bytes]] = []
        for line in reversed(lines):
            end -= len(line) + 1
            head = intact(line)
            if head is not None:
                torn.reverse()
                return Tail(head, torn, fragment)
            torn.append((end, line))
            if len(torn) > _MAX_DAMAGED:
                raise DamagedTail(
                    f"the end of {path} is damaged beyond a crash; run `mcp-kube audit verify`"
                )
        if start == 0:
            torn.reverse()
            return Tail(None, torn, fragment)
        window = min(size, window * 4)


def rotated_head(path: Path) -> Head | None:
    """The last intact record of the newest rotated file of ``path`` (None: there is none)."""
    siblings = rotated_siblings(path)
    if not siblings:
        return None
    newest = siblings[-1][1]
    with open(newest, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return scan_tail(f.fileno(), size, newest).head


def name_damage(fd: int, size: int, tail: Tail) -> list[dict[str, Any]]:
    """The damaged lines at the end of a file, by line, offset, length and SHA-256."""
    damaged = list(tail.torn)
    if tail.fragment:
        damaged.append((size - len(tail.fragment), tail.fragment))
    first_line = count_newlines(fd, damaged[0][0]) + 1
    return [
        {
            "line": first_line + i,
            "offset": offset,
            "bytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
        for i, (offset, raw) in enumerate(damaged)
    ]


def count_newlines(fd: int, end: int) -> int:
    count = 0
    pos = 0
    while pos < end:
        chunk = os.pread(fd, min(1 << 20, end - pos), pos)
        if not chunk:
            break
        count += chunk.count(b"\n")
        pos += len(chunk)
    return count


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
