"""The README's evaluation figures are tests/eval/report.py's rendering of the committed runs
(tests/eval/results/test.json and dev.json; benchmarks/results/agent_latency.json for the
answer time): a hand edit of either, or a new run without the regenerated block, fails here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_block_is_the_rendered_committed_run() -> None:
    spec = importlib.util.spec_from_file_location("eval_report", REPO / "tests/eval/report.py")
    assert spec
    assert spec.loader
    report = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = report
    spec.loader.exec_module(report)
    results = json.loads((REPO / "tests/eval/results/test.json").read_text())
    assert {r["set"] for r in results} == {"test"}
    assert len(results) == 2  # the CI and the default model
    latency = json.loads((REPO / "benchmarks/results/agent_latency.json").read_text())
    dev = json.loads((REPO / "tests/eval/results/dev.json").read_text())
    assert {r["set"] for r in dev} == {"dev"}
    block = report.block_of((REPO / "README.md").read_text())
    assert block, "README.md has no generated evaluation block"
    assert block == report.render(results, latency, dev), (
        "README.md and the committed evaluation disagree: run "
        "`.venv/bin/python tests/eval/report.py --write README.md` (or `make eval`)"
    )
