"""BENCHMARKS.md's table is benchmarks/report.py's rendering of benchmarks/results/reference.json:
a hand edit of either, or a new reference.json without the regenerated table, fails here."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "benchmarks" / "report.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return _report()


def test_committed_table_is_the_rendered_reference(report: ModuleType) -> None:
    reference = json.loads((REPO / "benchmarks" / "results" / "reference.json").read_text())
    committed = report.block_of((REPO / "BENCHMARKS.md").read_text())
    assert committed, "BENCHMARKS.md has no generated block between the bench markers"
    assert committed == report.render(reference), (
        "BENCHMARKS.md and benchmarks/results/reference.json disagree: run "
        "`.venv/bin/python benchmarks/report.py --write BENCHMARKS.md` (or `make bench`)"
    )


def test_no_measured_figure_outside_the_generated_block(report: ModuleType) -> None:
    text = (REPO / "BENCHMARKS.md").read_text()
    outside = text.replace(report.block_of(text), "")
    figure = re.compile(r"\d[\d,.]*\s?(ms|us|s|MiB|GiB|tok/s|calls/s|/s|x)\b")
    hits = [ln for ln in outside.splitlines() if figure.search(ln)]
    assert not hits, f"a measured figure outside the generated table: {hits}"


def test_new_format_renders(report: ModuleType) -> None:
    call = {"p50_ms": 2.0, "p99_ms": 3.0, "calls_per_s": 300.0, "calls": 200}
    cpu = call | {"server_cpu_ms_per_call": 0.9}
    stats = {"median_ms": 10.0, "min_ms": 9.0, "max_ms": 11.0, "runs": 1}
    series = {"cached": {"tool": "t", "1": cpu, "10": cpu, "50": cpu}}
    series["list"] = series["cached"]
    run = {
        "runs": 1,
        "b1": {
            "ours": {"cold": stats, "warm": stats, "checked": True},
            "kubectl_jq": stats | {"checked": True},
            "kms": {"cold": stats, "warm": stats, "checked": True},
        },
        "b2": {
            "format": 2,
            "ours": series,
            "kms": series,
            "kms_default": series,
            "bare_sdk": {"floor": {"tool": "echo", "1": cpu, "10": cpu, "50": cpu}},
        },
        "b4": {
            "ours": stats | {"peak_rss_mib": 90.0, "idle_rss_mib": 80.0},
            "kubectl": stats | {"peak_rss_mib": 40.0},
            "log_bytes": 1_000_000_000,
        },
        "b3": {
            "common-expression-language/examples": {
                "submit_review": {"p50_us": 90.0, "p99_us": 140.0, "per_s": 11000}
                | {"p50_min_us": 88.5, "p50_max_us": 104.0, "runs": 3}
            }
        },
        "b6": {"ours": stats, "bare_sdk": stats | {"median_ms": 8.0}},
        "b7": {
            "idle_rss_mib": 90.0,
            "warm_rss_mib": 116.0,
            "peak_rss_mib": 120.0,
            "per_10k_pods_mib": 26.0,
            "cached_pods": 10_000,
            "cached_nodes": 1_000,
        },
    }
    text = report.render(run)
    assert "bare mcp SDK server" in text
    assert "B2 floor: bare mcp SDK server, `echo`, 50 client(s)" in text
    assert "vs bare SDK 1.25x (goal <= 1.15x) missed" in text
    assert "+26.0 MiB per 10,000 pods (goal <= 40 MiB): met" in text
    assert "RSS idle 90.0 MiB, warm 116.0 MiB, peak 120.0 MiB" in text
    assert "checked against the fleet file" in text
    assert "server CPU 0.9 ms/call" in text
    assert "at default limiter" in text
    assert "its peak RSS 40.0 MiB" in text
    assert "p50 90.0 us (runs 3: 88.5-104.0), p99 140.0 us, 11,000/s" in text
    markdown = "a\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n"
    assert report.block_of(report.splice(markdown, text)) == text


def test_b2_bound_and_b6_split_render(report: ModuleType) -> None:
    """What bounds B2 (the host's cores over the clients' and API server's CPU per call) and
    where B6's start goes are rendered from the run's figures, never written by hand."""
    ours = {"p50_ms": 2.0, "p99_ms": 3.0, "calls_per_s": 450.0, "calls": 200}
    ours |= {"server_cpu_ms_per_call": 1.2, "client_cpu_ms_per_call": 1.5}
    ours |= {"apiserver_cpu_ms_per_call": 0.5, "host_busy_cores": 1.97}
    peer = {"p50_ms": 2.0, "p99_ms": 3.0, "calls_per_s": 400.0, "calls": 200}
    b2 = {"format": 2, "cpus": 2, "ours": {"cached": {"tool": "t", "50": ours}}}
    b2["kms"] = {"cached": {"tool": "p", "50": peer}}
    b2["bare_sdk"] = {"floor": {"tool": "echo", "50": {"server_cpu_ms_per_call": 1.0}}}
    row = report._b2_row("cached", "50", b2)
    # 2 cores / (1.5 + 0.5 + 1.0) ms = 667/s; the clients' one process: 1 / 1.5 ms = 667/s
    assert "host 1.97 of 2 cores busy" in row[3]
    assert "+ the bare SDK server's 1.0 ms CPU per call cap a server on the SDK at 667/s" in row[3]
    assert "2x the peer (800/s) is beyond 667/s" in row[3]
    peer["calls_per_s"] = 300.0
    assert "(600/s) is within 667/s" in report._b2_row("cached", "50", b2)[3]
    # the clients' process is the lower cap when their CPU per call is the larger part
    ours["client_cpu_ms_per_call"] = 2.5
    row = report._b2_row("cached", "50", b2)[3]
    assert "the clients (one process) at 400/s: 2x the peer (600/s) is beyond 400/s" in row
    stats = {"median_ms": 10.0, "min_ms": 9.0, "max_ms": 11.0, "runs": 1}
    split = {"bare_imports_ms": 400.0, "shared_imports_ms": 410.0, "extra_imports_ms": 120.5}
    split |= {"extra_by_package_ms": {"mcp_kube": 90.0, "yaml": 30.5}}
    b6 = {"ours": stats, "bare_sdk": stats, "start_split": split}
    verdict = report._b6(b6)[0][3]
    assert "bare 400.0 ms, mcp-kube the same 410.0 ms plus 120.5 ms (mcp_kube 90.0, yaml 30.5)" in (
        verdict
    )


def test_the_api_server_alone_bounds_the_list_rows(report: ModuleType) -> None:
    """The list class's LIST made straight at the API server is rendered as what any server
    making it can reach, against twice the peer; and the consistent read's wait beside the
    same LIST from the API server's cache."""
    alone = {"path": "/apis/batch/v1/namespaces/default/jobs"}
    alone |= {"1": {"p50_ms": 90.0, "calls_per_s": 11.0, "calls": 200}}
    alone |= {"10": {"p50_ms": 95.0, "calls_per_s": 150.0, "calls": 200}}
    alone |= {"rv0_1": {"p50_ms": 2.5, "calls_per_s": 300.0, "calls": 200}}
    peer = {"p50_ms": 2.0, "p99_ms": 3.0, "calls": 200}
    b2 = {"format": 2, "api_alone": alone}
    b2["kms"] = {"list": {"1": peer | {"calls_per_s": 10.0}, "10": peer | {"calls_per_s": 70.0}}}
    rows = {r[0]: r for r in report._b2_api(b2)}
    one = rows["B2 API list bound: the API server alone, 1 client(s)"]
    assert "p50 90.0 ms, 11.0/s" in one[2]
    assert "2x the peer (20/s) is beyond it" in one[3]
    assert (
        "2x the peer (140/s) is within it"
        in rows["B2 API list bound: the API server alone, 10 client(s)"][3]
    )
    cache = rows["B2 API list bound: the same LIST from the API server's watch cache, 1 client"]
    assert "waits 87.5 ms of its 90.0 ms p50" in cache[3]


def test_b5_shows_the_spread_of_its_runs(report: ModuleType) -> None:
    b5 = {
        "agent_decode_tok_s": 10.3,
        "raw_llama_cpp_decode_tok_s": 11.7,
        "ratio": 0.88,
        "first_tool_call_s_median": 1.7,
        "agent_runs": [13.6, 9.4, 5.9],
        "raw_runs": [15.2, 12.4, 9.1],
    }
    (row,) = report._b5(b5)
    assert "10.3 tok/s (runs 3: 5.9-13.6)" in row[1]
    assert "11.7 tok/s (runs 3: 9.1-15.2)" in row[2]
    assert "missed" in row[3]
