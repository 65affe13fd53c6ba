"""Group commit: records written by calls that end together share one fdatasync, and each call's
record is on disk before the call returns; a failed flush fails closed like a failed write."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_kube.audit import AuditLog, AuditUnavailable, verify
from mcp_kube.domain import Principal
from mcp_kube.gate.record import AuditTrail, CallRecord, GroupCommit


class Flushes:
    """os.fdatasync, slowed down and noted: (start, end) of each call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> None:
        self.calls: list[tuple[float, float]] = []
        self.threads: list[int] = []  # the thread of each flush
        self.delay = delay
        self.fail: OSError | None = None
        real = os.fdatasync

        def fake(fd: int) -> None:
            start = time.monotonic()
            if self.fail is not None:
                raise self.fail
            time.sleep(self.delay)
            real(fd)
            self.calls.append((start, time.monotonic()))
            self.threads.append(threading.get_ident())

        monkeypatch.setattr(os, "fdatasync", fake)


def test_unflushed_records_wait_for_sync_and_one_flush_covers_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes = Flushes(monkeypatch)
    with AuditLog(tmp_path / "a.jsonl", fsync=True, checkpoint_every=1000) as log:
        assert isinstance(log, GroupCommit)
        seqs = [log.append({"kind": "tool_call", "i": i}, flush=False)["seq"] for i in range(3)]
        assert flushes.calls == []
        assert log.synced_through < seqs[0]
        log.sync(seqs[-1])
        assert len(flushes.calls) == 1
        assert log.synced_through >= seqs[-1]
        log.sync(seqs[0])  # already on disk: no second flush
        assert len(flushes.calls) == 1
        log.append({"kind": "tool_call", "i": 3})  # a flushed append flushes at once
        assert len(flushes.calls) == 2
        assert log.synced_through == log.head[0]
    assert verify([tmp_path / "a.jsonl"]).ok


def test_calls_ending_together_share_flushes_and_each_waits_for_one_after_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes = Flushes(monkeypatch, delay=0.05)
    done: list[tuple[float, float]] = []  # (written, sync returned) per call
    with AuditLog(tmp_path / "a.jsonl", fsync=True, checkpoint_every=1000) as log:

        def call(i: int) -> None:
            seq = log.append({"kind": "tool_call", "i": i}, flush=False)["seq"]
            written = time.monotonic()
            log.sync(seq)
            done.append((written, time.monotonic()))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(done) == 8
    assert len(flushes.calls) < 8  # shared (one per call would be 8)
    for written, returned in done:  # a whole flush began after the write, before the return
        assert any(written <= s and e <= returned for s, e in flushes.calls)
    assert verify([tmp_path / "a.jsonl"]).ok


def test_a_failed_flush_raises_and_the_log_reopens_with_its_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes = Flushes(monkeypatch)
    path = tmp_path / "a.jsonl"
    with AuditLog(path, fsync=True, checkpoint_every=1000) as log:
        seq = log.append({"kind": "tool_call", "i": 0}, flush=False)["seq"]
        flushes.fail = OSError(5, "Input/output error")
        with pytest.raises(AuditUnavailable, match="cannot flush"):
            log.sync(seq)
        assert not log.available
        flushes.fail = None
        assert log.append({"kind": "tool_call", "i": 1})["seq"] == seq + 1
    assert verify([path]).ok


class PlainSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return event


def test_the_gate_returns_only_once_the_record_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes = Flushes(monkeypatch)
    record = CallRecord(tool="whoami", principal=Principal("alice", (), "test"), arguments={})
    with AuditLog(tmp_path / "a.jsonl", fsync=True) as log:
        trail = AuditTrail(log)
        assert anyio.run(trail.done, record)  # alone: flushed in the write itself
        assert log.synced_through == log.head[0] == 1
        assert len(flushes.calls) == 1

        async def shared() -> bool:
            return await trail.done(record, shared=True)

        assert anyio.run(shared)  # with others in progress: flushed in a worker thread
        assert log.synced_through == log.head[0] == 2
        assert len(flushes.calls) == 2
        assert flushes.threads[0] == threading.get_ident() != flushes.threads[1]
    plain = PlainSink()  # a sink without group commit: written at once, as before
    assert anyio.run(AuditTrail(plain).done, record)
    assert [e["kind"] for e in plain.events] == ["tool_call"]
