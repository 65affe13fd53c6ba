"""The read tools a request's words point at: a narrower choice for a small model."""

from __future__ import annotations

import pytest

from mcp_kube.llm.route import SUBJECTS, route

TOOLS = list(SUBJECTS)


@pytest.mark.parametrize(
    ("request_", "tool"),
    [
        ("tail of the output of pod x-0 in team-c", "pod_logs"),
        ("any warnings about node n-3?", "list_events"),
        ("how much of team-c's quota is left", "gpu_quota"),
        ("why is z-2 not scheduled yet in team-c", "explain_pending"),
        ("where would 6 GPUs fit for team-c", "recommend_placement"),
        ("which GPUs are idle in team-c", "idle_gpus"),
        ("how busy were the GPUs of team-c today", "gpu_utilization"),
        ("gpu-hours of team-c last week", "gpu_usage_report"),
    ],
)
def test_a_named_subject_narrows_the_choice_to_its_tool(request_: str, tool: str) -> None:
    got = route(request_, TOOLS)
    assert tool in got
    assert len(got) <= 3, got


def test_a_request_naming_no_subject_keeps_every_tool() -> None:
    assert route("hello there", TOOLS) == TOOLS


def test_only_offered_tools_are_returned_in_their_order() -> None:
    assert route("logs and events of x-0", ["list_events", "whoami", "pod_logs"]) == [
        "list_events",
        "pod_logs",
    ]
    assert route("logs of x-0", ["whoami"]) == ["whoami"]  # nothing offered matches: all


def test_a_decisive_subject_leaves_only_its_tool() -> None:
    assert route("may I delete jobs in team-c?", TOOLS) == ["whoami"]
    assert route("gpus under 3 % busy for a day", TOOLS) == ["idle_gpus"]


def test_a_name_is_not_a_subject() -> None:
    assert "gpu_inventory" not in route("logs of mig-infer-0", TOOLS)
