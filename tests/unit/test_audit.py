"""The audit log: chain, checkpoints, rotation, crash recovery, redaction and tamper detection.

Plain files in tmp_path; every tamper kind the issue names is made by hand and must be found
at the right line and seq.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mcp_kube.audit import AuditLog, AuditUnavailable, verify
from mcp_kube.audit.chain import GENESIS, seal
from mcp_kube.audit.redact import MAX_DEPTH, MAX_ITEMS, MAX_STRING, redact
from mcp_kube.errors import McpKubeError

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BEARER = "s3cr3tT0kenValue0123456789"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BODY = "MC4CAQAwBQYDK2VwBCIEIPlantedPrivateKeyMaterial0123456789abcdefXYZ"
PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n"
SECRET_DATA = "aHVudGVyMi1zdXBlci1zZWNyZXQtcGFzc3dvcmQ="
SECRET_PLAIN = "hunter2-super-secret-password"


def event(i: int) -> dict[str, Any]:
    """A mix of what the gate writes: allowed, denied and failed calls, and approvals."""
    if i % 7 == 3:
        return {
            "kind": "approval",
            "request_id": f"req-{i}",
            "principal": {"name": "bob", "groups": ["approvers"]},
            "approval": {"action": "approved", "request": f"apr-{i}", "manifest_sha256": "ab" * 32},
        }
    outcome = ("ok", "denied", "failed")[i % 3]
    return {
        "kind": "tool_call",
        "request_id": f"req-{i}",
        "principal": {"name": "alice", "groups": ["ml"]},
        "client": {"name": "test", "version": "1"},
        "transport": "stdio",
        "cluster": "gpu-a",
        "tool": "list_jobs" if i % 2 else "submit_job",
        "arguments": {"namespace": "team-a", "limit": i, "ratio": i / 8},
        "decision": {"allowed": outcome != "denied", "rule": "r1", "message": "ü ✓ 𝄞"},
        "kube_requests": [
            {
                "verb": "list",
                "resource": "jobs",
                "namespace": "team-a",
                "name": None,
                "dry_run": False,
                "status": 200,
                "audit_id": "9b2f1c3e-1111-2222-3333-444455556666",
            }
        ],
        "outcome": outcome,
        "latency_ms": 1.25 * i,
        "result_bytes": 100 * i,
    }


def write_log(tmp_path: Path, n: int, **kw: Any) -> Path:
    path = tmp_path / "audit.jsonl"
    kw.setdefault("fsync", False)
    with AuditLog(path, key_path=tmp_path / "keys" / "audit.key", **kw) as log:
        for i in range(n):
            log.append(event(i))
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def pub(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "audit.key.pub"


# --- a whole log -------------------------------------------------------------------------


def test_100_mixed_records_verify_ok(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    written = []
    with AuditLog(path, key_path=tmp_path / "keys" / "audit.key", checkpoint_every=25) as log:
        for i in range(100):
            written.append(log.append(event(i)))
    lines = lines_of(path)
    assert len(lines) == 104  # 100 records and a checkpoint after every 25
    for line in lines:  # each line is the RFC 8785 form of its record
        assert rfc8785.dumps(json.loads(line)) + b"\n" == line
    by_seq = {json.loads(x)["seq"]: json.loads(x) for x in lines}
    for rec in written:
        assert by_seq[rec["seq"]] == rec
    assert written[0]["prev_hash"] == GENESIS
    assert written[0]["time"].endswith("Z")
    assert "T" in written[0]["time"]
    report = verify([path], public_key=pub(tmp_path))
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.signed_count) == (104, 4, 103)
    key = tmp_path / "keys" / "audit.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PUBLIC KEY" in pub(tmp_path).read_bytes()


def test_seal_is_rfc8785_even_where_utf16_order_differs(tmp_path: Path) -> None:
    body = {
        "\ue000": 1,
        "😀": 2,
        "a": [1.5, 1e21, -0.0, None, 1e-7],
        "é": {"z": "\u2028\x00", "b": True},
        "": "empty key",
        "has": 1,
        "hasi": 2,
        "hash_": 3,
        "H": 4,
    }
    digest, line = seal(body)
    assert line == rfc8785.dumps({**body, "hash": digest}) + b"\n"


def test_caller_cannot_set_chain_fields(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl", fsync=False) as log:
        rec = log.append({"kind": "tool_call", "seq": 99, "hash": "x", "prev_hash": "y"})
        with pytest.raises(ValueError, match="reserved"):
            log.append({"kind": "audit.recovered", "torn": [{"line": 1}]})
    assert (rec["seq"], rec["prev_hash"]) == (1, GENESIS)
    assert verify([tmp_path / "a.jsonl"]).ok


# --- tamper kinds --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["content", "seq", "hash", "start"])
def test_edit_one_byte_is_found_at_that_record(tmp_path: Path, where: str) -> None:
    path = write_log(tmp_path, 60, checkpoint_every=1000)
    lines = lines_of(path)
    k = 37  # 1-based line, and seq, of the record to edit
    line = bytearray(lines[k - 1])
    pos = {
        "content": line.index(b'"team-a"') + 3,
        "seq": line.index(b'"seq":') + 6,
        "hash": line.index(b'"hash":') + 20,
        "start": 0,
    }[where]
    line[pos] = ord("x") if line[pos] != ord("x") else ord("y")
    lines[k - 1] = bytes(line)
    path.write_bytes(b"".join(lines))
    report = verify([path])
    assert not report.ok
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("edited", k, k)]


def test_rewritten_and_rehashed_record_breaks_the_link(tmp_path: Path) -> None:
    path = write_log(tmp_path, 30, checkpoint_every=1000)
    lines = lines_of(path)
    rec = json.loads(lines[9])
    rec["outcome"] = "ok-forged"
    body = {k: v for k, v in rec.items() if k != "hash"}
    lines[9] = seal(body)[1]
    path.write_bytes(b"".join(lines))
    report = verify([path])
    assert report.first is not None
    assert (report.first.kind, report.first.line, report.first.seq) == ("edited", 10, 10)


def test_deleted_record_is_found(tmp_path: Path) -> None:
    path = write_log(tmp_path, 50, checkpoint_every=20)
    lines = lines_of(path)
    seq = json.loads(lines[29])["seq"]
    del lines[29]
    path.write_bytes(b"".join(lines))
    report = verify([path], public_key=pub(tmp_path))
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [("deleted", 30, seq)]


def test_swapped_records_are_reordered(tmp_path: Path) -> None:
    path = write_log(tmp_path, 50, checkpoint_every=1000)
    lines = lines_of(path)
    lines[19], lines[20] = lines[20], lines[19]
    path.write_bytes(b"".join(lines))
    report = verify([path])
    assert [(p.kind, p.line) for p in report.problems] == [("reordered", 20)]
    assert report.problems[0].seq == 20
    assert report.problems[0].detail.endswith("audit.jsonl:21")


def test_truncation_after_a_checkpoint_is_found(tmp_path: Path) -> None:
    path = write_log(tmp_path, 250, checkpoint_every=100)
    lines = lines_of(path)
    first_cp = next(i for i, x in enumerate(lines) if b'"kind":"checkpoint"' in x)
    assert json.loads(lines[first_cp])["count"] == 100
    path.write_bytes(b"".join(lines[: first_cp + 1]))
    report = verify([path], public_key=pub(tmp_path))
    assert [(p.kind, p.line, p.seq) for p in report.problems] == [
        ("truncated", first_cp + 2, first_cp + 2)
    ]
    detail = report.problems[0].detail
    assert "count 252" in detail  # the signed head beside the log (closed: 250 + 2 checkpoints)
    assert "last checkpoint in the log has count 100" in detail
    # without the signed head beside it, the cut cannot be seen: the verifier says so
    (tmp_path / "audit.jsonl.checkpoint").unlink()
    report = verify([path], public_key=pub(tmp_path))
    assert report.ok
    assert any("no checkpoint file" in n for n in report.notes)


def test_truncation_then_more_writes_is_found(tmp_path: Path) -> None:
    path = write_log(tmp_path, 30, checkpoint_every=10)
    lines = lines_of(path)
    path.write_bytes(b"".join(lines[:15]))  # cut after the checkpoint at count 20 ... and before
    (tmp_path / "keep").write_bytes((tmp_path / "audit.jsonl.checkpoint").read_bytes())
    with AuditLog(path, key_path=tmp_path / "keys" / "audit.key", fsync=False) as log:
        for i in range(20):  # the server writes on past the cut; seqs are reused
            log.append(event(i))
    report = verify([path], checkpoint=tmp_path / "keep")
    assert [p.kind for p in report.problems] == ["truncated"]


def test_bad_checkpoint_signature_and_wrong_key(tmp_path: Path) -> None:
    path = write_log(tmp_path, 30, checkpoint_every=10)
    (tmp_path / "audit.jsonl.checkpoint").unlink()
    lines = lines_of(path)
    last = json.loads(lines[-1])
    assert last["kind"] == "checkpoint"
    sig = bytearray(last["signature"].encode())
    sig[5] = ord("A") if sig[5] != ord("A") else ord("B")
    last["signature"] = sig.decode()
    lines[-1] = seal({k: v for k, v in last.items() if k != "hash"})[1]
    path.write_bytes(b"".join(lines))
    report = verify([path], public_key=pub(tmp_path))
    assert [(p.kind, p.line) for p in report.problems] == [("bad_signature", len(lines))]

    other = Ed25519PrivateKey.generate().public_key()
    other_pub = tmp_path / "other.pub"
    other_pub.write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    report = verify([path], public_key=other_pub)
    assert {p.kind for p in report.problems} == {"bad_signature"}
    assert len(report.problems) == report.checkpoints == 3
    assert "not by the given public key" in report.problems[0].detail


def test_log_resigned_with_another_key_fails_against_the_pinned_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key_path=tmp_path / "forged.key", checkpoint_every=5, fsync=False) as log:
        for i in range(10):
            log.append(event(i))
    assert verify([path]).ok  # self-consistent ...
    write_log(tmp_path / "real", 1)  # ... but the operator's key is another one
    report = verify([path], public_key=tmp_path / "real" / "keys" / "audit.key.pub")
    assert report.first is not None
    assert report.first.kind == "bad_signature"


# --- crashes, restarts, rotation -------------------------------------------------------------


def test_torn_last_line_then_restart_names_it(tmp_path: Path) -> None:
    path = write_log(tmp_path, 20, checkpoint_every=1000)
    whole = len(lines_of(path))
    head = json.loads(lines_of(path)[-1])["hash"]
    with path.open("ab") as f:
        f.write(b'{"arguments":{"namespace":"team-a"},"kind":"tool_c')
    report = verify([path])
    assert [(p.kind, p.line) for p in report.problems] == [("torn_line", whole + 1)]
    assert report.records == whole

    with AuditLog(path, key_path=tmp_path / "keys" / "audit.key", fsync=False) as log:
        assert log.head[0] == whole + 1  # the torn line is no record; audit.recovered is
        rec = log.append(event(1))
    assert rec["seq"] == whole + 2
    recovered = json.loads(lines_of(path)[whole + 1])
    assert recovered["kind"] == "audit.recovered"
    assert recovered["torn"][0]["line"] == whole + 1
    assert recovered["prev_hash"] == head
    report = verify([path], public_key=pub(tmp_path))
    assert report.ok, report.problems
    assert any("damaged by a crash" in n for n in report.notes)


def test_last_line_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    path = write_log(tmp_path, 5, checkpoint_every=1000)
    (tmp_path / "audit.jsonl.checkpoint").unlink()  # it signs the line we are about to tear
    path.write_bytes(path.read_bytes()[:-1])
    assert [p.kind for p in verify([path]).problems] == ["torn_line"]
    with AuditLog(path, key_path=tmp_path / "keys" / "audit.key", fsync=False) as log:
        assert log.head[0] == 6  # 5 records and the checkpoint on close
        log.append(event(9))
    assert b"audit.recovered" not in path.read_bytes()
    assert verify([path]).ok


def test_restart_continues_the_chain(tmp_path: Path) -> None:
    path = write_log(tmp_path, 10)
    last = json.loads(lines_of(path)[-1])
    with AuditLog(path, key_path=tmp_path / "keys" / "audit.key", fsync=False) as log:
        assert log.head == (last["seq"], last["hash"])
        rec = log.append(event(3))
    assert rec["prev_hash"] == last["hash"]
    assert rec["seq"] == last["seq"] + 1
    assert verify([path], public_key=pub(tmp_path)).ok


def test_rotation_keeps_the_chain_across_files(tmp_path: Path) -> None:
    path = write_log(tmp_path, 40, max_bytes=4096, checkpoint_every=1000)
    rotated = sorted(tmp_path.glob("audit.jsonl.[0-9]*"))
    assert len(rotated) >= 2, rotated
    for f in rotated:  # each rotated file ends signed
        assert json.loads(lines_of(f)[-1])["kind"] == "checkpoint"
    report = verify([path], public_key=pub(tmp_path))
    assert report.ok, report.problems
    assert len(report.files) == len(rotated) + 1 >= 3
    assert verify([*rotated, path], public_key=pub(tmp_path)).ok
    # the chain goes on across a restart after rotation
    with AuditLog(path, key_path=tmp_path / "keys" / "audit.key", max_bytes=4096) as log:
        log.append(event(1))
    assert verify([path]).ok
    # a missing rotated file shows
    middle = tmp_path / "audit.jsonl.2"
    middle.unlink()
    report = verify([path])
    assert report.first is not None
    assert report.first.kind == "truncated"
    assert report.first.file.endswith("audit.jsonl.1")
    (tmp_path / "audit.jsonl.1").unlink()
    report = verify([path])
    assert report.first is not None
    assert report.first.kind == "gap"


def test_kill_9_mid_write_loses_at_most_one_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    # The child writes in 512-byte pieces with a pause between them (a slow disk), so that
    # the kill is likely to land inside a record rather than between two.
    script = textwrap.dedent(
        f"""
        import os, time
        from mcp_kube.audit import AuditLog
        real_write = os.write
        def slow_write(fd, data):
            time.sleep(0.0005)
            return real_write(fd, bytes(data[:512]))
        os.write = slow_write
        log = AuditLog({str(path)!r}, checkpoint_every=50, max_bytes=200_000)
        i = 0
        while True:
            log.append({{"kind": "tool_call", "arguments": {{"s": "x" * 3000, "i": i}}}})
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 10
        while (not path.exists() or path.stat().st_size == 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    report = verify([path])
    assert report.records > 10
    assert all(p.kind == "torn_line" for p in report.problems), report.problems
    if report.problems:
        last_file = Path(report.files[-1])
        assert report.problems[0].file == str(last_file)
        assert report.problems[0].line == len(lines_of(last_file))
    with AuditLog(path, checkpoint_every=50, max_bytes=200_000) as log:
        seq, _ = log.head
        rec = log.append(event(0))
    assert rec["seq"] > seq
    report = verify([path], public_key=tmp_path / "audit.jsonl.key.pub")
    assert report.ok, report.problems


def test_threads_share_one_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, checkpoint_every=30, fsync=False) as log:

        def work(t: int) -> None:
            for i in range(50):
                log.append({"kind": "tool_call", "thread": t, "i": i})

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    report = verify([path])
    assert report.ok
    assert report.records == 200 + report.checkpoints


# --- fail closed -----------------------------------------------------------------------------


def test_unwritable_path_raises_audit_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    log = AuditLog(tmp_path / "file" / "audit.jsonl", fsync=False)
    assert not log.available
    with pytest.raises(AuditUnavailable) as err:
        log.append(event(0))
    assert isinstance(err.value, McpKubeError)
    assert err.value.code == "audit_unavailable"
    log.close()


def test_failed_write_leaves_nothing_and_the_next_write_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    real_write = os.write
    log = AuditLog(path, fsync=False)
    log.append(event(0))
    before = path.read_bytes()

    def half_then_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(AuditUnavailable, match="No space left"):
        log.append(event(1))
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == before
    rec = log.append(event(2))
    assert rec["seq"] == 2
    log.close()
    assert verify([path]).ok


def test_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, fsync=False) as first:
        second = AuditLog(path, fsync=False)
        with pytest.raises(AuditUnavailable, match="another process"):
            second.append(event(0))
        second.close()
        first.append(event(1))


# --- redaction -------------------------------------------------------------------------------


def test_planted_secrets_never_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, fsync=False, checkpoint_every=2) as log:
        log.append(
            {
                "kind": "tool_call",
                "tool": "submit_job",
                "arguments": {
                    "namespace": "team-a",
                    "command": ["sh", "-c", f"aws s3 cp --key {AWS_KEY} s3://bucket/x ."],
                    "headers": {"X-Forwarded-Authorization": f"Bearer {BEARER}"},
                    "note": f"curl -H 'Authorization: Bearer {BEARER}' https://x",
                    "annotations": {"ssh": PEM, "session": f"jwt={JWT}", "blob": AWS_SECRET},
                    "manifest": {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "creds"},
                        "data": {"password": SECRET_DATA},
                        "stringData": {"password": SECRET_PLAIN},
                    },
                    "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": AWS_SECRET}],
                    "args": [f"--password={SECRET_PLAIN}", "--api-token", BEARER, "-v"],
                    "shell": f"login --password {SECRET_PLAIN} && run",
                },
                "principal": {"name": "alice", "token": BEARER},
            }
        )
        log.append({"kind": "approval", "approval": {"comment": f"ok {JWT}"}})
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.jsonl"))
    for secret in (AWS_KEY, AWS_SECRET, BEARER, JWT, PEM_BODY, SECRET_DATA, SECRET_PLAIN):
        assert secret.encode() not in blob, secret
    assert b"team-a" in blob
    assert b"sha256:" in blob
    assert b"s3://bucket/x" in blob
    assert verify([path]).ok


def test_redaction_by_key_and_shape() -> None:
    out = redact(
        {
            "namespace": "team-a",
            "name": "train-llama-70b-finetune-run-20240101-abcdef",
            "image": "nginx@sha256:" + "a" * 64,
            "manifest_sha256": "ab" * 32,
            "apiKey": "k",
            "secretKeyRef": {"name": "x", "key": "y"},
            "token": None,
            "limit": 5,
            "raw": b"bytes are never stored plain",
            "big": 2**60,
            "nan": float("nan"),
            "text": f"before {AWS_KEY} after",
            "cmd": f"run --token={BEARER} Authorization: Bearer {BEARER}",
        }
    )
    assert out["namespace"] == "team-a"
    assert out["name"] == "train-llama-70b-finetune-run-20240101-abcdef"
    assert out["image"] == "nginx@sha256:" + "a" * 64
    assert out["manifest_sha256"] == "ab" * 32
    assert out["apiKey"].startswith("sha256:")
    assert len(out["apiKey"]) == 23
    assert out["secretKeyRef"].startswith("sha256:")
    assert out["token"] is None
    assert out["limit"] == 5
    assert out["raw"].startswith("sha256:")
    assert out["big"] == str(2**60)
    assert out["nan"] == "nan"
    assert out["text"].startswith("before sha256:")
    assert out["text"].endswith(" after")
    assert BEARER not in out["cmd"]
    assert out["cmd"].startswith("run --token=sha256:")
    assert redact(out) == out  # stable: redacting twice changes nothing


def test_redaction_is_bounded() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 5):
        deep = {"d": deep}
    out = redact({"deep": deep, "many": list(range(MAX_ITEMS + 10)), "long": "y " * MAX_STRING})
    assert "too deep" in json.dumps(out)
    assert len(out["many"]) == MAX_ITEMS + 1
    assert "10 more items" in out["many"][-1]
    assert len(out["long"]) < MAX_STRING + 50
    assert redact({"huge": "z" * 100_000})["huge"].startswith("sha256:")
