"""The audit writer: one JSON line per event, hash-chained, signed at checkpoints, rotated.

Why it is built this way:

* **Fail closed.** :meth:`AuditLog.append` returns only once the line is written (and, with
  ``fsync``, on disk); any failure raises :class:`AuditUnavailable`, and a half-written line
  is cut off again, so the caller (the gate) can refuse what it cannot record. A sink that
  could not even be opened retries on every append rather than failing the server's start.
* **The file is the truth.** The head of the chain (last ``seq`` and ``hash``) is read back
  from the tail of the newest file when the log opens, so a restarted server continues the
  chain, and after any write error the sink reopens and re-reads rather than trusting memory.
  A torn last line (the writer was killed mid-write) is ended with a newline, left in place
  as evidence and named by an ``audit.recovered`` record; the head ignores it.
* **One writer.** An ``flock`` on ``<name>.lock`` keeps a second process from forking the
  chain; threads share one :class:`AuditLog`, whose lock orders the records.
* **Offline verification.** Every ``checkpoint_every`` records, before each rotation and on
  close, a ``checkpoint`` record carries the count and head hash with an Ed25519 signature
  (key at ``key_path``, created 0600 if missing, public key beside it as ``<key>.pub``); the
  newest checkpoint is also copied to ``<name>.checkpoint`` so that cutting the log after a
  checkpoint shows (see :mod:`mcp_kube.audit.verify`).
* **Rotation keeps the chain.** When the file reaches ``max_bytes`` it is renamed to
  ``<name>.<n>`` (1 is the oldest) with one ``rename``; the next record in the new file
  points at the last one in the old.
* **Group commit.** ``append(flush=False)``, then ``sync(seq)``: waiters share one fdatasync.
* **structlog, locally.** Records are built by a processor chain on a logger wrapped here
  (never the global structlog configuration): timestamp, redaction, chaining, rendering.
  structlog is imported with the first record, not at start: with rich installed its import
  is ~25 ms of a server's start (structlog.dev imports rich's tracebacks and pretty-printer).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mcp_kube.audit.chain import (
    CHAIN_FIELDS,
    CHECKPOINT,
    GENESIS,
    RECOVERED,
    checkpoint_fields,
    seal,
)
from mcp_kube.audit.files import (
    DamagedTail,
    Flusher,
    Head,
    Tail,
    fsync_dir,
    intact,
    lock_writer,
    name_damage,
    next_rotated,
    replace_file,
    rotated_head,
    scan_tail,
    write_all,
)
from mcp_kube.audit.keys import load_or_create_key
from mcp_kube.audit.redact import redact
from mcp_kube.errors import McpKubeError

__all__ = ["DEFAULT_MAX_BYTES", "AuditLog", "AuditUnavailable"]

log = logging.getLogger("mcp_kube.audit")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_EVENT = "_audit_event"
_INTERNAL = "_audit_internal"
_LINE = "_audit_line"
_RESERVED = frozenset({CHECKPOINT, RECOVERED})  # kinds only the sink writes


class AuditUnavailable(McpKubeError):
    """The audit log cannot be written; whatever needed a record must not go ahead."""

    code = "audit_unavailable"


class AuditLog:
    """Append-only, hash-chained JSON Lines audit log (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 100,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fsync: bool = True,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1024")
        self.path = Path(path)
        self.key_path = (
            Path(key_path) if key_path is not None else self.path.with_name(self.path.name + ".key")
        )
        self.checkpoint_path = self.path.with_name(self.path.name + ".checkpoint")
        self.checkpoint_every = checkpoint_every
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._flusher = Flusher()
        self._defer = False  # set while append(flush=False) writes
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._key: Ed25519PrivateKey | None = None
        self._seq = 0
        self._head = GENESIS
        self._size = 0
        self._since_checkpoint = 0
        self._closed = False
        self._prefix = b""  # written in front of the next line (ends a torn line)
        self._last_line = b""
        with self._lock:
            try:
                self._ensure_open()
            except AuditUnavailable as exc:
                log.error("audit log unavailable: %s", exc)

    # --- public ------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether the log is open for writing now (an append retries opening if not)."""
        return self._fd is not None

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record written (``(0, GENESIS)`` for an empty log)."""
        return self._seq, self._head

    def append(self, event: Mapping[str, Any], *, flush: bool = True) -> dict[str, Any]:
        """Write one record for ``event``; return it as written (with the chain fields).

        Raises :class:`AuditUnavailable` when the record could not be written; then nothing
        of it stays in the file. The kinds ``checkpoint`` and ``audit.recovered`` are the
        sink's own (ValueError). ``flush=False``: not yet flushed; :meth:`sync` its ``seq``.
        """
        if event.get("kind") in _RESERVED:
            raise ValueError(f"kind {event.get('kind')!r} is reserved for the audit sink")
        with self._lock:
            if self._closed:
                raise AuditUnavailable("the audit log is closed")
            self._ensure_open()
            if self._size >= self.max_bytes:
                self._rotate()
            self._defer = not flush
            try:
                record = self._emit(event, internal=False)
            finally:
                self._defer = False
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.checkpoint_every:
                try:
                    self._checkpoint()
                except AuditUnavailable as exc:  # the record is written; retried next append
                    log.error("audit checkpoint failed: %s", exc)
            return record

    @property
    def synced_through(self) -> int:
        """The ``seq`` up to which records are on disk (every one written, without fsync)."""
        return self._flusher.synced if self.fsync else self._seq

    def sync(self, seq: int) -> None:
        """Once record ``seq`` is on disk (a failure reopens the file, as a failed write does)."""
        try:
            self._flusher.sync(seq, self._lock, lambda: (self._fd, self._seq))
        except OSError as exc:
            with self._lock:
                self.last_error = f"cannot flush {self.path}: {exc}"
                self._close_fd()
            raise AuditUnavailable(self.last_error) from exc

    def checkpoint(self) -> dict[str, Any] | None:
        """Write a signed checkpoint now (None when nothing was written since the last)."""
        with self._lock:
            if self._closed:
                raise AuditUnavailable("the audit log is closed")
            self._ensure_open()
            return self._checkpoint() if self._since_checkpoint else None

    def close(self) -> None:
        """Checkpoint what is unsigned, then release the file and the writer lock."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd is not None and self._since_checkpoint:
                try:
                    self._checkpoint()
                except AuditUnavailable as exc:
                    log.error("audit checkpoint on close failed: %s", exc)
            self._release()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @functools.cached_property
    def _logger(self) -> Any:
        import structlog

        return structlog.wrap_logger(
            structlog.ReturnLogger(),  # _render writes the line; the logger hands back the record
            processors=[
                self._unpack,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
                self._redact,
                self._chain,
                self._render,
            ],
            wrapper_class=structlog.BoundLogger,
            context_class=dict,
            cache_logger_on_first_use=False,
        )

    # --- the structlog processors ------------------------------------------------------

    def _unpack(self, _logger: Any, _method: str, ed: MutableMapping[str, Any]) -> Any:
        event = ed[_EVENT]
        out = {str(k): v for k, v in event.items() if k not in CHAIN_FIELDS}
        out[_INTERNAL] = ed[_INTERNAL]
        return out

    def _redact(self, _logger: Any, _method: str, ed: MutableMapping[str, Any]) -> Any:
        internal = ed.pop(_INTERNAL)
        if internal:  # records the sink builds itself (checkpoints, recoveries) hold no secrets
            return ed
        time = ed.pop("time")
        out: dict[str, Any] = redact(ed)
        out["time"] = time
        return out

    def _chain(self, _logger: Any, _method: str, ed: MutableMapping[str, Any]) -> Any:
        ed["seq"] = self._seq + 1  # ``ed`` is this record's own dict (made by _unpack/_redact)
        ed["prev_hash"] = self._head
        digest, line = seal(ed)
        ed["hash"] = digest
        ed[_LINE] = line
        return ed

    def _render(self, _logger: Any, _method: str, ed: MutableMapping[str, Any]) -> Any:
        line = ed.pop(_LINE)
        record = ed if type(ed) is dict else dict(ed)
        self._write(line, record)
        return (record,), {}

    # --- internals (all called with self._lock held) -------------------------------------

    def _emit(self, event: Mapping[str, Any], *, internal: bool) -> dict[str, Any]:
        if self._fd is None:
            raise AuditUnavailable(self.last_error or "the audit log is not open")
        try:
            record: dict[str, Any] = self._logger.msg(**{_EVENT: event, _INTERNAL: internal})
        except AuditUnavailable:
            raise
        except Exception as exc:  # a record that cannot be encoded is a record not written
            raise AuditUnavailable(f"audit record could not be built: {exc}") from exc
        return record

    def _write(self, line: bytes, record: dict[str, Any]) -> None:
        fd = self._fd
        assert fd is not None
        data = self._prefix + line if self._prefix else line
        sync = self.fsync and not self._defer
        try:
            write_all(fd, data, sync=sync)
        except OSError as exc:
            self.last_error = f"cannot write {self.path}: {exc}"
            log.error("audit: %s", self.last_error)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)  # no half record stays behind
            self._close_fd()  # the next append reopens and re-reads the head from the file
            raise AuditUnavailable(self.last_error) from exc
        self._seq = record["seq"]
        self._head = record["hash"]
        if sync:  # this fdatasync flushed the records written before it too
            self._flusher.flushed(self._seq)
        self._size += len(data)
        self._last_line = line

    def _ensure_open(self) -> None:
        if self._fd is not None:
            return
        try:
            self._open()
        except AuditUnavailable as exc:
            self.last_error = str(exc)
            self._release()
            raise
        except (OSError, ValueError) as exc:
            self.last_error = f"cannot open audit log {self.path}: {exc}"
            self._release()
            raise AuditUnavailable(self.last_error) from exc
        self.last_error = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._lock_fd is None:
            self._lock_fd = lock_writer(self.path.with_name(self.path.name + ".lock"))
            if self._lock_fd is None:
                raise AuditUnavailable(f"another process is writing {self.path}")
        if self._key is None:
            self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._key = load_or_create_key(self.key_path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._fd = fd
        self._size = os.fstat(fd).st_size
        try:
            tail = scan_tail(fd, self._size, self.path)
            # no record here (yet): the head is in the newest rotated file
            head = tail.head if tail.head is not None else rotated_head(self.path)
        except DamagedTail as exc:
            raise AuditUnavailable(str(exc)) from exc
        self._seq, self._head = (0, GENESIS) if head is None else (head.seq, head.hash)
        if tail.torn or tail.fragment:
            self._recover(tail)

    def _recover(self, tail: Tail) -> None:
        """After a crash: adopt a last line that lacks only its newline, or name the damage.

        Damaged lines stay in the file as evidence; one ``audit.recovered`` record (written
        in the same ``write`` as the newline that ends a torn line, so a second crash cannot
        leave a new damaged line in front of it) names each by line, offset and SHA-256.
        """
        fd = self._fd
        assert fd is not None
        if tail.fragment and not tail.torn:
            whole = intact(tail.fragment)
            if whole is not None and self._adopt(fd, whole):
                return
        named = name_damage(fd, self._size, tail)
        log.warning("audit log %s: %d damaged line(s) after a crash", self.path, len(named))
        self._prefix = b"\n" if tail.fragment else b""
        try:
            self._emit(
                {
                    "kind": RECOVERED,
                    "file": self.path.name,
                    "torn": named,
                    "detail": "a writer stopped mid-record; the named lines are not records",
                },
                internal=True,
            )
        finally:
            self._prefix = b""

    def _adopt(self, fd: int, whole: Head) -> bool:
        """End a last line that reached the file whole but for its newline, if it is next."""
        if whole.seq != self._seq + 1 or whole.prev != self._head:
            return False
        write_all(fd, b"\n", sync=self.fsync)  # all of it reached the file but the newline
        self._size += 1
        self._seq, self._head = whole.seq, whole.hash
        return True

    def _checkpoint(self) -> dict[str, Any]:
        assert self._key is not None
        record = self._emit(checkpoint_fields(self._seq, self._head, self._key), internal=True)
        self._since_checkpoint = 0
        try:
            replace_file(self.checkpoint_path, self._last_line, sync=self.fsync)
        except OSError as exc:
            raise AuditUnavailable(f"cannot write {self.checkpoint_path}: {exc}") from exc
        return record

    def _rotate(self) -> None:
        if self._since_checkpoint:
            self._checkpoint()  # each file ends signed
        target = next_rotated(self.path)
        self._close_fd()
        try:
            os.rename(self.path, target)
            if self.fsync:
                fsync_dir(self.path.parent)
        except OSError as exc:
            raise AuditUnavailable(f"cannot rotate {self.path}: {exc}") from exc
        self._ensure_open()

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _release(self) -> None:
        self._close_fd()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None
