"""Counts, windows and thresholds read from the request's units, never from a name."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_kube.llm.slots import durations, is_quantity, settle_numbers
from mcp_kube.tools.catalog import by_name


def schema(tool: str) -> dict[str, Any]:
    return by_name()[tool].input.model_json_schema()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("for two hours", [7200.0]),
        ("up to five minutes", [300.0]),
        ("over the past hour", [3600.0]),
        ("3h on gpu-west", [10800.0]),
        ("half an hour ago", [1800.0]),
        ("since a quarter of an hour ago", [900.0]),
        ("under 15 percent for a whole day", [86400.0]),
        ("this week", [604800.0]),
        ("since yesterday", [86400.0]),
        ("in the past fortnight", [1209600.0]),
        ("job t5-xl, pod r50-1m", []),  # digits inside names are no spans
        ("seventy-two hours of usage", [259200.0]),  # a compound number word
        ("the past twenty-four hours", [86400.0]),
    ],
)
def test_durations_in_the_ways_people_write_them(text: str, seconds: list[float]) -> None:
    assert durations(text) == seconds


@pytest.mark.parametrize(
    ("tool", "model", "request_", "want"),
    [
        ("idle_gpus", {}, "which GPUs were idle for two hours?", {"idle_hours": 2}),
        ("idle_gpus", {}, "under 10% busy for 3h", {"idle_hours": 3, "threshold_percent": 10}),
        ("wait_job", {}, "follow x-1 up to five minutes", {"timeout_s": 300}),
        ("list_events", {}, "ten most recent warnings in ns-1", {"limit": 10}),
        ("list_jobs", {}, "show me two of ns-1's jobs", {"limit": 2}),
        ("gpu_usage_report", {}, "namespaces by gpu hours, just the leading three", {"limit": 3}),
        ("list_jobs", {"limit": 3}, "a few jobs of ns-1", {}),
        ("gpu_utilization", {}, "util of node n-1 last 30 minutes", {"window_hours": 0.5}),
        ("pod_logs", {}, "last twenty lines of pod p-0", {"tail_lines": 20}),
        ("recommend_placement", {"gpus": 1}, "where do a dozen GPUs fit", {"gpus": 12}),
        ("recommend_placement", {"gpus": 1}, "8x H100 job, which node?", {"gpus": 8}),
        ("recommend_placement", {"gpus": 3}, "a job for llama-7b, where?", {"gpus": 3}),
        ("gpu_usage_report", {"since_hours": 7}, "gpu hours of llama-7b", {}),
    ],
)
def test_each_number_fills_the_argument_of_its_unit(
    tool: str, model: dict[str, Any], request_: str, want: dict[str, Any]
) -> None:
    assert settle_numbers(model, schema(tool), request_) == want


def test_a_number_beyond_the_argument_bounds_is_not_used() -> None:
    assert settle_numbers({}, schema("wait_job"), "wait for x-1 for two hours") == {}


def test_quantities_are_never_names() -> None:
    assert all(map(is_quantity, ["3h", "8x", "80GB", "10%", "15m"]))
    assert not any(map(is_quantity, ["team-a", "h100-1", "t5-xl", "ns2"]))
