"""Policy decision latency (microseconds) for the shipped policy sets, per CEL implementation.

Usage: python benchmarks/policy_decisions.py [--n N] [--only common-expression-language].
Prints one JSON object.
Read decisions are `decide` (match + conditions); write decisions are `review` of a
submit_job manifest (defaults applied, then every validation on the final manifest).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from mcp_kube.domain import Principal
from mcp_kube.policy.cel import CelPy, CommonCel
from mcp_kube.policy.loader import load_engine
from mcp_kube.tools.jobspec import SubmitJobInput, build_job

REPO = Path(__file__).resolve().parents[1]
SETS = {
    "default": [REPO / "policies" / "default.yaml"],
    "examples": [REPO / "policies" / "default.yaml", REPO / "policies" / "examples"],
}


def timed(fn: Callable[[], object], n: int) -> dict[str, float]:
    for _ in range(min(200, n)):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return {
        "p50_us": round(statistics.median(samples), 1),
        "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
        "per_s": round(1e6 / statistics.mean(samples)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--only", choices=[CommonCel.name, CelPy.name], help="one CEL implementation")
    a = p.parse_args()
    alice = Principal("alice", ("team-a",))
    args = {"name": "t", "namespace": "team-a", "image": "registry.internal/ml/t:1", "gpus": 2}
    manifest = build_job(SubmitJobInput.model_validate(args), alice)
    out: dict[str, object] = {}
    backends = ((CommonCel(), a.n), (CelPy(), max(200, a.n // 20)))
    for backend, n in (b for b in backends if a.only in (None, b[0].name)):
        for name, paths in SETS.items():
            engine = load_engine(paths, backend)
            row = {"read": timed(partial(engine.decide, alice, "gpu_inventory", True, {}), n)}
            if name == "examples":
                review = partial(engine.review, alice, "submit_job", "c", "team-a", manifest, args)
                row["submit_review"] = timed(review, n)
            out[f"{backend.name}/{name}"] = row
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
