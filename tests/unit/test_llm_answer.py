"""The final answer is held to the tool results: numbers, names, false premises, tool-call JSON."""

from __future__ import annotations

import pytest

from mcp_kube.llm import answer as A

INVENTORY = A.Result(
    "gpu_inventory",
    "Free now: 20 of 56 GPUs (20 NVIDIA-H100-80GB-HBM3).\n"
    "gpu-east/h100-2 8 free\nNot accepting new work: gpu-east/h100-cordoned-0 (cordoned).",
)
MISSING = A.Result(
    "explain_pending",
    "error [not_found]: no job bert-ft in namespace team-b on cluster gpu-east. Near matches: "
    "pod bert-ft-0 in team-b on cluster gpu-east (Running on h100-1).",
    is_error=True,
)
RUNNING = A.Result("explain_pending", "gpu-east/team-b/job/x-1: not pending: its pods are Running")
Q = "How many H100 GPUs are free right now, and on which nodes?"


def kinds(answer: str, question: str, *results: A.Result) -> list[str]:
    return [p.kind for p in A.problems(answer, question, results)]


def test_an_answer_from_the_results_is_kept() -> None:
    text = "20 H100 GPUs are free; h100-2 has 8 of them."
    assert A.settle(text, Q, [INVENTORY]) == (text, [])


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("There are 24 H100 GPUs free.", "number"),  # no result holds 24
        ("20 are free on h100-7.", "name"),  # a node no result names
        ('{"name": "list_clusters", "arguments": {}}', "call"),
        ('```json\n{"tool": "gpu_inventory"}\n```', "call"),
        ("   ", "empty"),
    ],
)
def test_an_answer_past_the_results_is_replaced_by_the_facts(text: str, kind: str) -> None:
    assert kind in kinds(text, Q, INVENTORY)
    final, found = A.settle(text, Q, [INVENTORY])
    assert found
    assert final.startswith("From gpu_inventory:\nFree now: 20 of 56 GPUs")


def test_a_job_that_does_not_exist_is_never_explained_as_pending() -> None:
    q = "why is job bert-ft pending in team-b?"
    wrong = "Job bert-ft is pending because there are no available GPUs on the nodes."
    assert kinds(wrong, q, MISSING) == ["premise"]
    final, _ = A.settle(wrong, q, [MISSING])
    assert final.startswith("No job bert-ft in namespace team-b on cluster gpu-east. Near matches")
    right = "There is no job bert-ft in team-b; pod bert-ft-0 is Running on h100-1."
    assert kinds(right, q, MISSING) == []


def test_a_job_that_is_not_pending_is_said_to_be_so() -> None:
    q = "why is job x-1 in team-b pending?"
    assert kinds("Job x-1 is pending for lack of GPUs.", q, RUNNING) == ["premise"]
    assert kinds("Job x-1 is not pending: its pods are Running.", q, RUNNING) == []
    assert kinds("x-1 is already running.", q, RUNNING) == []


def test_numbers_inside_names_and_the_question_count_as_known() -> None:
    q = "is bert-ft-2 using 2 GPUs?"
    assert kinds("Yes, bert-ft-2 uses 2 GPUs.", q, A.Result("get_job", "job bert-ft-2")) == []


def test_a_sentence_said_twice_is_said_once() -> None:
    assert A.tidy("20 are free. 20 are free. h100-2 has 8.") == "20 are free. h100-2 has 8."


def test_an_answer_that_asks_back_is_no_answer() -> None:
    assert kinds("How much GPU quota is left in team-b?", "quota of team-b", INVENTORY) == [
        "question"
    ]
