"""`make eval`: how well the offline client picks tools and arguments.

Runs the agent in plan mode (the first tool call, nothing executed) over tests/eval/prompts.yaml
against a real `mcp-kube serve`, for each model given, and prints per tool: right tool, right
tool + key arguments; overall: parse rate, latency p50/p95 and tokens/s.

    python tests/eval/evaluate.py --kubeconfig KC --context gpu-east --context gpu-west \
        [--model NAME ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import yaml

from mcp_kube.llm.agent import Agent
from mcp_kube.llm.backend import LlamaCppBackend
from mcp_kube.llm.manifest import by_role, check, get_manifest
from mcp_kube.llm.session import connect

HERE = Path(__file__).parent


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, str) and isinstance(got, str):
        return want.lower() == got.lower()
    return bool(want == got)


def score(case: dict[str, Any], call: dict[str, Any] | None) -> tuple[bool, bool]:
    """(right tool, right tool and key arguments) for one planned call."""
    if call is None:
        return False, False
    tools = {case["tool"], *case.get("also", [])}
    if call["tool"] not in tools:
        return False, False
    if call["tool"] != case["tool"]:  # an acceptable alternative: its arguments are not keyed
        return True, True
    args = call["arguments"]
    ok = all(k in args and _same(v, args[k]) for k, v in (case.get("args") or {}).items())
    return True, ok


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def evaluate(model: str, server: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    manifest = get_manifest(model)
    backend = LlamaCppBackend(check(manifest), label=manifest.name)
    rows: list[dict[str, Any]] = []
    try:
        async with connect(server) as session:
            agent = Agent(
                backend, session.tools, clusters=session.clusters, instructions=session.instructions
            )
            t0 = time.perf_counter()
            backend.warm(agent.prefix)
            warm_s = time.perf_counter() - t0
            prefix_tokens = backend.count_tokens(agent.prefix)
            for i, case in enumerate(cases, 1):
                result = await agent.ask(case["request"], None, plan=True)
                call = result.calls[0].as_json() if result.calls else None
                tool_ok, args_ok = score(case, call)
                gens = result.generations
                rows.append(
                    {
                        "request": case["request"],
                        "kind": case.get("kind", "simple"),
                        "expected": {"tool": case["tool"], "arguments": case.get("args") or {}},
                        "got": call,
                        "parsed": call is not None and not result.unparsed,
                        "tool_ok": tool_ok,
                        "args_ok": args_ok,
                        "seconds": result.seconds,
                        "tokens": sum(g.tokens for g in gens),
                        "decode_s": sum(g.seconds - g.first_token_s for g in gens),
                        "prompt_tokens": sum(g.prompt_tokens for g in gens),
                    }
                )
                mark = "ok " if args_ok else ("tool" if tool_ok else "MISS")
                print(
                    f"  [{i:2}/{len(cases)}] {mark} {result.seconds:5.2f}s "
                    f"{case['request'][:60]!r} -> {json.dumps(call)[:110]}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        backend.close()
    return summarize(model, rows, warm_s, prefix_tokens)


def summarize(
    model: str, rows: list[dict[str, Any]], warm_s: float, prefix_tokens: int
) -> dict[str, Any]:
    per_tool: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "tool": 0, "args": 0})
    for r in rows:
        t = per_tool[r["expected"]["tool"]]
        t["n"] += 1
        t["tool"] += r["tool_ok"]
        t["args"] += r["args_ok"]
    secs = [r["seconds"] for r in rows]
    tokens = sum(r["tokens"] for r in rows)
    decode = sum(r["decode_s"] for r in rows)
    n = len(rows)
    return {
        "model": model,
        "requests": n,
        "parse_rate": sum(r["parsed"] for r in rows) / n,
        "tool_accuracy": sum(r["tool_ok"] for r in rows) / n,
        "tool_and_args_accuracy": sum(r["args_ok"] for r in rows) / n,
        "latency_p50_s": statistics.median(secs),
        "latency_p95_s": pct(secs, 0.95),
        "decode_tokens_per_s": tokens / decode if decode else 0.0,
        "system_prompt_tokens": prefix_tokens,
        "system_prompt_eval_s": warm_s,
        "per_tool": dict(sorted(per_tool.items())),
        "rows": rows,
    }


def print_report(s: dict[str, Any]) -> None:
    print(f"\n## {s['model']}  ({s['requests']} requests)")
    print(f"{'tool':22} {'n':>3} {'right tool':>11} {'tool+args':>10}")
    for tool, t in s["per_tool"].items():
        print(f"{tool:22} {t['n']:3} {t['tool']:>5}/{t['n']:<5} {t['args']:>4}/{t['n']:<5}")
    print(
        f"parse rate {s['parse_rate']:.0%} · right tool {s['tool_accuracy']:.1%} · "
        f"tool+key args {s['tool_and_args_accuracy']:.1%} · latency p50 "
        f"{s['latency_p50_s']:.2f}s p95 {s['latency_p95_s']:.2f}s · constrained decoding "
        f"{s['decode_tokens_per_s']:.1f} tok/s · system prompt {s['system_prompt_tokens']} "
        f"tokens evaluated in {s['system_prompt_eval_s']:.1f}s"
    )
    misses = [r for r in s["rows"] if not r["args_ok"]]
    for r in misses:
        print(f"  miss: {r['request']!r}\n        want {r['expected']}\n        got  {r['got']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--context", action="append", default=[])
    ap.add_argument("--audit-log", default=None)
    ap.add_argument("--model", action="append", help="default: the ci and the default model")
    ap.add_argument("--prompts", type=Path, default=HERE / "prompts.yaml")
    ap.add_argument("--limit", type=int, default=0, help="only the first N requests")
    ap.add_argument("--json", type=Path, help="also write the full results here")
    args = ap.parse_args()
    cases = yaml.safe_load(args.prompts.read_text())
    if args.limit:
        cases = cases[: args.limit]
    models = args.model or [by_role("ci").name, by_role("default").name]
    server = f"mcp-kube serve --kubeconfig {args.kubeconfig}"
    for c in args.context:
        server += f" --context {c}"
    if args.audit_log:
        server += f" --audit-log {args.audit_log}"
    results = []
    for model in models:
        print(f"evaluating {model} on {len(cases)} requests", file=sys.stderr, flush=True)
        results.append(anyio.run(evaluate, model, server, cases))
    for s in results:
        print_report(s)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
