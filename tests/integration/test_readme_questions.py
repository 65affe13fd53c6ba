"""Every example question of the README, asked with the CI model over MCP on the testbed: the
calls it needs are made, and every answer holds to the tool results."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_kube.llm import answer as A
from mcp_kube.llm.agent import Agent, AgentResult
from mcp_kube.llm.manifest import ModelMissing, by_role, check
from mcp_kube.llm.session import connect
from mcp_kube.llm.worker import ModelProcess
from mcp_kube.testbed import cluster
from mcp_kube.testbed.telemetry import server_env

from .mcp_helpers import MCP_KUBE

ROLES = {"namespace", "cluster", "job", "pod", "node", "name"}
README = Path(__file__).resolve().parents[2] / "README.md"
# question -> the calls it needs: (tool, arguments that must be there), in any order
EXPECTED: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "How many H100 GPUs are free right now, and on which nodes?": [("gpu_inventory", {})],
    "why is job bert-ft pending in team-b?": [
        ("explain_pending", {"namespace": "team-b", "job": "bert-ft"})
    ],
    "how much GPU quota does team-a have left?": [("gpu_quota", {"namespace": "team-a"})],
    "who is using GPUs in team-b, and how much quota is left there?": [
        ("gpu_workloads", {"namespace": "team-b"}),
        ("gpu_quota", {}),
    ],
    "which teams used the most GPU hours over the last day?": [
        ("gpu_usage_report", {"since_hours": 24})
    ],
    "which allocated GPUs are sitting idle, and whose are they?": [("idle_gpus", {})],
    "how busy were the GPUs per namespace over the last 6 hours?": [
        ("gpu_utilization", {"group_by": "namespace", "window_hours": 6})
    ],
}


def readme_questions() -> list[str]:
    text = README.read_text()
    block = text.split("<!-- questions:begin -->")[1].split("<!-- questions:end -->")[0]
    return [m.strip() for m in re.findall(r"^- (.+)$", block, re.M)]


def test_the_readme_lists_the_questions_this_test_asks() -> None:
    assert readme_questions() == list(EXPECTED)


def _made(result: AgentResult, tool: str, want: dict[str, Any]) -> bool:
    return any(
        c.name == tool and all(c.arguments.get(k) == v for k, v in want.items())
        for c, o in zip(result.calls, result.outcomes, strict=False)
    )


async def _ask_all(server: str, model: str, cache: Path) -> list[AgentResult]:
    backend = ModelProcess(check(by_role("ci")), n_ctx=8192, label=model)
    try:
        async with connect(server) as session:
            agent = Agent(
                backend,
                session.tools,
                clusters=session.clusters,
                namespaces=session.namespaces,
                instructions=session.instructions,
            )
            backend.warm(agent.prefix, cache)
            results = []
            for q in EXPECTED:
                agent.history.clear()  # each question on its own, as `ask` would
                results.append(await agent.ask(q, session))
            return results
    finally:
        backend.close()


def test_every_readme_question_is_answered_from_its_results(
    testbed: cluster.TestbedState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        model = by_role("ci").name
        check(by_role("ci"))
    except ModelMissing as e:
        pytest.fail(f"the CI model is not installed: {e}")
    server = (
        f"{MCP_KUBE} serve --kubeconfig {testbed.kubeconfig} --context gpu-east "
        f"--context gpu-west --audit-log {tmp_path / 'audit.jsonl'}"
    )
    metrics = server_env(testbed)  # the server reads the testbed's Prometheus, as in `make demo`
    assert metrics, "the testbed runs no Prometheus"
    for key, value in metrics.items():
        monkeypatch.setenv(key, value)
    t0 = time.monotonic()
    results = anyio.run(_ask_all, server, model, tmp_path / "states")
    for q, result in zip(EXPECTED, results, strict=True):
        calls = [(c.name, c.arguments) for c in result.calls]
        print(f"{result.seconds:5.1f}s {q!r} -> {calls} [{result.answer_source}]")
        print("      " + result.answer.replace("\n", "\n      "))
        for tool, want in EXPECTED[q]:
            assert _made(result, tool, want), (q, calls)
        for c in result.calls:  # every name an argument holds is one the question names
            for key in ROLES & set(c.arguments):
                value = str(c.arguments[key])
                assert value in q, (q, c.name, key, value)
                assert re.search(r"[-\d]", value), (q, c.name, key, value)
        found = A.problems(
            result.answer,
            q,
            [
                A.Result(c.name, o.text, o.is_error)
                for c, o in zip(result.calls, result.outcomes, strict=False)
            ],
        )
        assert found == [], (q, result.answer, found)
        assert not A.looks_like_call(result.answer)
    missing = results[1]
    assert missing.outcomes[0].text.startswith("error [not_found]")
    assert "bert-ft-0" in missing.outcomes[0].text  # the near match a reader can follow
    print(f"{len(results)} questions in {time.monotonic() - t0:.1f}s")
