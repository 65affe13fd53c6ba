"""Audit sink throughput (records/s) and cost per tool call (microseconds per append).

Usage: python benchmarks/audit_sink.py [--n N] [--dir DIR]. Prints one JSON object.
One typical tool-call record (principal, arguments, decision, one Kubernetes request) is
appended N times, with and without fsync, from one thread; the parts of an append (redaction,
canonical JSON + hash) are timed alone too. ``--dir`` picks the filesystem: fsync costs what
the disk under it costs, so measure where the log will live.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp_kube.audit.chain import seal
from mcp_kube.audit.redact import redact
from mcp_kube.audit.sink import AuditLog


def tool_call(i: int) -> dict[str, Any]:
    return {
        "kind": "tool_call",
        "request_id": f"8c1f7c8e-{i:08d}",
        "principal": {"name": "alice@example.com", "groups": ["ml-team", "gpu-users"]},
        "client": {"name": "claude-code", "version": "2.1.0"},
        "transport": "streamable-http",
        "cluster": "gpu-a",
        "tool": "submit_job",
        "arguments": {
            "namespace": "team-a",
            "name": f"train-{i}",
            "image": "registry.local/train@sha256:" + "ab" * 32,
            "command": ["python", "train.py", "--epochs", "3", "--lr", "3e-4"],
            "gpus": 8,
            "env": [{"name": "WANDB_API_KEY", "value": "0123456789abcdef0123456789abcdef"}],
        },
        "decision": {"allowed": True, "rule": "team-a-submit", "approval": "not_required"},
        "kube_requests": [
            {
                "verb": "create",
                "resource": "jobs",
                "namespace": "team-a",
                "name": f"train-{i}",
                "dry_run": False,
                "status": 201,
                "audit_id": "9b2f1c3e-1111-2222-3333-444455556666",
            }
        ],
        "outcome": "ok",
        "latency_ms": 41.7,
        "result_bytes": 1843,
    }


def per_call_us(fn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n * 1e6


def run_sink(directory: Path, n: int, fsync: bool) -> dict[str, Any]:
    path = directory / f"audit-{'fsync' if fsync else 'nofsync'}.jsonl"
    events = [tool_call(i) for i in range(n)]
    samples = []
    with AuditLog(path, checkpoint_every=100, fsync=fsync) as log:
        t0 = time.perf_counter()
        for ev in events:
            s = time.perf_counter()
            log.append(ev)
            samples.append((time.perf_counter() - s) * 1e6)
        total = time.perf_counter() - t0
    samples.sort()
    return {
        "records_per_s": round(n / total),
        "us_per_append_mean": round(total / n * 1e6, 1),
        "us_per_append_p50": round(statistics.median(samples), 1),
        "us_per_append_p99": round(samples[int(len(samples) * 0.99) - 1], 1),
        "bytes_per_record": round(path.stat().st_size / n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    ev = tool_call(0)
    redacted = redact(ev)
    body = {**redacted, "seq": 1, "time": "2026-01-01T00:00:00.000000Z", "prev_hash": "0" * 64}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        result = {
            "python": platform.python_version(),
            "n": args.n,
            "redact_us": round(per_call_us(lambda _i: redact(ev), 2000), 1),
            "canonical_hash_us": round(per_call_us(lambda _i: seal(body), 2000), 1),
            "no_fsync": run_sink(directory, args.n, fsync=False),
            "fsync": run_sink(directory, max(200, args.n // 10), fsync=True),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
