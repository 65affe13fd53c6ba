"""`make eval`: how well the offline client picks tools and arguments.

Runs the agent in plan mode (the first tool call, nothing executed) over a set of requests
(tests/eval/test.yaml by default; dev.yaml is the one to tune on) against a real
`mcp-kube serve`, for each model given, and prints accuracy (right tool + key arguments) per tool
and per category, parse rate, wrong write arguments, latency p50/p95 and tokens/s.

    python tests/eval/evaluate.py --kubeconfig KC --context gpu-east --context gpu-west \
        [--set dev|test] [--model NAME ...] [--json OUT|-]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from cases import SETS, is_write, load, score, write_wrong
from report import print_comparison, print_report, summarize

from mcp_kube.llm import answer as A
from mcp_kube.llm.agent import Agent, ToolOutcome
from mcp_kube.llm.backend import LlamaCppBackend
from mcp_kube.llm.manifest import by_role, check, get_manifest
from mcp_kube.llm.session import connect


class ReadsOnly:
    """Runs read tools through the session; a write is recorded, never run (an evaluation
    changes nothing)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        if is_write(name):
            return ToolOutcome(f"{name} was not run: this is an evaluation")
        out: ToolOutcome = await self.session.call(name, arguments)
        return out


def later_calls(case: dict[str, Any], result: Any, home: str | None) -> dict[str, Any]:
    """For a two-call request run for real: were the later calls made, and does the answer
    hold to the results (``mcp_kube.llm.answer``)?"""
    made = [c.as_json() for c in result.calls[1:]]
    wanted = case.get("calls", [])
    found = sum(any(score({**w, "also": []}, m, home)[1] for m in made) for w in wanted)
    problems = A.problems(result.answer, case["request"], result.results)
    return {
        "later_expected": len(wanted),
        "later_made": found,
        "all_calls": [c.as_json() for c in result.calls],
        "answer": result.answer,
        "answer_source": result.answer_source,
        "answer_problems": [f"{p.kind}: {p.detail}" for p in problems],
    }


def row(case: dict[str, Any], result: Any, home: str | None) -> dict[str, Any]:
    call = result.calls[0].as_json() if result.calls else None
    tool_ok, args_ok = score(case, call, home)
    gens = result.generations
    return {
        "request": case["request"],
        "category": case["category"],
        "expected": {"tool": case["tool"], "arguments": case.get("args") or {}},
        "also": case.get("also", []),
        "later_calls": case.get("calls", []),
        "got": call,
        "parsed": call is not None and not result.unparsed,
        "tool_ok": tool_ok,
        "args_ok": args_ok,
        "write_expected": is_write(case["tool"]),
        "wrong_write": write_wrong(case, call, home),
        "seconds": result.seconds,
        "tokens": sum(g.tokens for g in gens),
        "decode_s": sum(g.seconds - g.first_token_s for g in gens),
        "prompt_tokens": sum(g.prompt_tokens for g in gens),
    }


async def evaluate(
    model: str, server: str, cases: list[dict[str, Any]], set_name: str, home: str | None
) -> dict[str, Any]:
    manifest = get_manifest(model)
    backend = LlamaCppBackend(check(manifest), label=manifest.name)
    rows: list[dict[str, Any]] = []
    try:
        async with connect(server) as session:
            agent = Agent(
                backend,
                session.tools,
                clusters=session.clusters,
                namespaces=session.namespaces,
                instructions=session.instructions,
            )
            t0 = time.perf_counter()
            backend.warm(agent.prefix)
            warm_s = time.perf_counter() - t0
            prefix_tokens = backend.count_tokens(agent.prefix)
            for i, case in enumerate(cases, 1):
                agent.history.clear()
                two = bool(case.get("calls"))  # run for real: the later calls need the first
                runner = ReadsOnly(session) if two else None
                result = await agent.ask(case["request"], runner, plan=not two)
                r = row(case, result, home)
                if two:
                    r.update(later_calls(case, result, home))
                rows.append(r)
                mark = "WW  " if r["wrong_write"] else "ok  " if r["args_ok"] else "MISS"
                print(
                    f"  [{i:3}/{len(cases)}] {mark} {result.seconds:5.2f}s "
                    f"{case['request'][:60]!r} -> {json.dumps(r['got'])[:110]}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        backend.close()
    return summarize(model, set_name, rows, warm_s, prefix_tokens)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--context", action="append", default=[])
    ap.add_argument("--audit-log", default=None)
    ap.add_argument("--model", action="append", help="default: the ci and the default model")
    ap.add_argument("--set", choices=sorted(SETS), default="test", help="default: test")
    ap.add_argument("--cases", type=Path, help="another case file (instead of --set)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N requests")
    ap.add_argument("--json", help="also write the full results to this file ('-': stdout only)")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    cases = load(args.cases or SETS[args.set])
    set_name = str(args.cases) if args.cases else args.set
    if args.limit:
        cases = cases[: args.limit]
    models = args.model or [by_role("ci").name, by_role("default").name]
    server = f"mcp-kube serve --kubeconfig {args.kubeconfig}"
    for c in args.context:
        server += f" --context {c}"
    if args.audit_log:
        server += f" --audit-log {args.audit_log}"
    home = args.context[0] if args.context else None
    results = []
    for model in models:
        print(
            f"evaluating {model} on {len(cases)} {set_name} requests", file=sys.stderr, flush=True
        )
        results.append(anyio.run(evaluate, model, server, cases, set_name, home))
    if args.json == "-":
        print(json.dumps(results, indent=2))
        return 0
    for s in results:
        print_report(s)
    print_comparison(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
