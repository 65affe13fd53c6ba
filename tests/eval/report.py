"""Figures of one model's evaluation run: per tool and category, parse rate, wrong writes,
latency; and their printout."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _tally(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "tool": 0, "args": 0})
    for r in rows:
        t = out[r[key]]
        t["n"] += 1
        t["tool"] += r["tool_ok"]
        t["args"] += r["args_ok"]
    return dict(sorted(out.items()))


def _multi_step(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Two-call requests: all their calls made; answers that hold to the results."""
    two = [r for r in rows if "later_expected" in r]
    return {
        "requests": len(two),
        "all_calls_made": sum(r["args_ok"] and r["later_made"] == r["later_expected"] for r in two),
        "later_calls_made": sum(r["later_made"] for r in two),
        "later_calls_expected": sum(r["later_expected"] for r in two),
        "answers_held_to_results": sum(not r["answer_problems"] for r in two),
        "answers_replaced_by_facts": sum(r["answer_source"] == "facts" for r in two),
    }


def summarize(
    model: str, set_name: str, rows: list[dict[str, Any]], warm_s: float, prefix_tokens: int
) -> dict[str, Any]:
    for r in rows:
        r["tool"] = r["expected"]["tool"]
    secs = [r["seconds"] for r in rows if "later_expected" not in r]  # the first call only
    tokens = sum(r["tokens"] for r in rows)
    decode = sum(r["decode_s"] for r in rows)
    n = len(rows) or 1
    return {
        "model": model,
        "set": set_name,
        "requests": len(rows),
        "parse_rate": sum(r["parsed"] for r in rows) / n,
        "tool_accuracy": sum(r["tool_ok"] for r in rows) / n,
        "tool_and_args_accuracy": sum(r["args_ok"] for r in rows) / n,
        "right": sum(r["args_ok"] for r in rows),
        "wrong_write_arguments": sum(r["wrong_write"] for r in rows),
        "writes_expected": sum(r["write_expected"] for r in rows),
        "latency_p50_s": statistics.median(secs) if secs else 0.0,
        "latency_p95_s": pct(secs, 0.95),
        "decode_tokens_per_s": tokens / decode if decode else 0.0,
        "system_prompt_tokens": prefix_tokens,
        "system_prompt_eval_s": warm_s,
        "multi_step": _multi_step(rows),
        "per_tool": _tally(rows, "tool"),
        "per_category": _tally(rows, "category"),
        "rows": rows,
    }


def _table(title: str, tally: dict[str, dict[str, int]]) -> None:
    print(f"{title:22} {'n':>3} {'right tool':>11} {'tool+args':>10}")
    for key, t in tally.items():
        print(
            f"{key:22} {t['n']:3} {t['tool']:>5}/{t['n']:<5} {t['args']:>4}/{t['n']:<4}"
            f" {t['args'] / t['n']:5.0%}"
        )


def print_report(s: dict[str, Any], misses: bool = True) -> None:
    print(f"\n## {s['model']}  ({s['set']} set, {s['requests']} requests)")
    _table("tool", s["per_tool"])
    print()
    _table("category", s["per_category"])
    print(
        f"\nright tool + key args {s['right']}/{s['requests']} = "
        f"{s['tool_and_args_accuracy']:.1%} · right tool {s['tool_accuracy']:.1%} · "
        f"parse rate {s['parse_rate']:.0%} · wrong write arguments "
        f"{s['wrong_write_arguments']} (writes expected: {s['writes_expected']})\n"
        f"latency p50 {s['latency_p50_s']:.2f}s p95 {s['latency_p95_s']:.2f}s · "
        f"constrained decoding {s['decode_tokens_per_s']:.1f} tok/s · system prompt "
        f"{s['system_prompt_tokens']} tokens evaluated in {s['system_prompt_eval_s']:.1f}s"
    )
    m = s["multi_step"]
    if m["requests"]:
        print(
            f"two-call requests: all calls made {m['all_calls_made']}/{m['requests']} "
            f"(later calls {m['later_calls_made']}/{m['later_calls_expected']}) · answers held "
            f"to the results {m['answers_held_to_results']}/{m['requests']} "
            f"({m['answers_replaced_by_facts']} by the facts)"
        )
    if not misses:
        return
    for r in s["rows"]:
        if not r["args_ok"] or r["wrong_write"]:
            flag = " WRONG WRITE" if r["wrong_write"] else ""
            print(
                f"  miss{flag} [{r['category']}]: {r['request']!r}\n"
                f"        want {r['expected']}\n        got  {r['got']}"
            )


def print_comparison(results: list[dict[str, Any]]) -> None:
    """One line per model, for the README (its table is pasted from here)."""
    print(
        "\n| model | set | right tool + key args | right tool | parse rate | wrong write args "
        "| two-call: all calls made | p50 / p95 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in results:
        m = s.get("multi_step") or {"requests": 0, "all_calls_made": 0}
        print(
            f"| {s['model']} | {s['set']} | {s['right']}/{s['requests']} = "
            f"{s['tool_and_args_accuracy']:.0%} | {s['tool_accuracy']:.0%} | "
            f"{s['parse_rate']:.0%} | {s['wrong_write_arguments']} | "
            f"{m['all_calls_made']}/{m['requests']} | "
            f"{s['latency_p50_s']:.1f} s / {s['latency_p95_s']:.1f} s |"
        )


BEGIN, END = "<!-- eval:begin -->", "<!-- eval:end -->"


def _header() -> list[str]:
    return [
        "| model | right tool + key args | right tool | parse rate | wrong write args "
        "| two-call: all calls made | first call p50 / p95 |",
        "|---|---|---|---|---|---|---|",
    ]


def _row(s: dict[str, Any]) -> str:
    m = s.get("multi_step") or {"requests": 0, "all_calls_made": 0}
    return (
        f"| {s['model']} | {s['right']}/{s['requests']} = {s['tool_and_args_accuracy']:.0%} "
        f"| {s['tool_accuracy']:.0%} | {s['parse_rate']:.0%} | {s['wrong_write_arguments']} "
        f"| {m['all_calls_made']}/{m['requests']} "
        f"| {s['latency_p50_s']:.1f} s / {s['latency_p95_s']:.1f} s |"
    )


def _categories(results: list[dict[str, Any]]) -> list[str]:
    names = sorted({c for s in results for c in s["per_category"]})
    lines = ["| category | " + " | ".join(s["model"] for s in results) + " |"]
    lines.append("|---|" + "---|" * len(results))
    for c in names:
        cells = []
        for s in results:
            t = s["per_category"].get(c)
            cells.append(f"{t['args']}/{t['n']}" if t else "")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines


def _latency(lat: dict[str, Any]) -> list[str]:
    warm, cold = lat["warm"], lat["cold_ask"]
    lines = [
        f'The demo question ("{lat["question"]}") with {lat["model"]}, one warm process '
        "(model loaded, prompt prefix evaluated), "
        f"{next(v['runs'] for v in warm.values() if isinstance(v, dict))} runs per answer mode:",
        "",
        "| answer mode | end to end p50 / p95 | first tool call p50 | answer prompt + decode p50 |",
        "|---|---|---|---|",
    ]
    for mode, v in warm.items():
        if not isinstance(v, dict):
            continue
        split = v["answer_tokens"]["p50"] > 0  # brief's one sentence is not split out
        answer = (
            f"{v['answer_prompt_s']['p50']:.1f} s + {v['answer_decode_s']['p50']:.1f} s"
            if split
            else "(in the whole)"
        )
        lines.append(
            f"| {mode} | {v['total_s']['p50']:.1f} s / {v['total_s']['p95']:.1f} s "
            f"| {v['first_call_s']['p50']:.1f} s | {answer} |"
        )
    lines += [
        "",
        f"A cold `mcp-kube ask` (new process: interpreter, model load, server spawn): "
        f"{cold['no_prompt_state_s']:.1f} s without a saved prompt state, "
        f"{cold['with_prompt_state_s']:.1f} s with one.",
    ]
    return lines


def render(
    results: list[dict[str, Any]],
    latency: dict[str, Any] | None,
    dev: list[dict[str, Any]] | None = None,
) -> str:
    """The README's generated block: the test-set figures of both models, per category, the
    dev set's for the gap, and the agent's answer time (``benchmarks/agent_latency.py``)."""
    lines = [
        *_header(),
        *(_row(s) for s in results),
        "",
        *_categories(results),
    ]
    if dev:
        lines += ["", "The dev set (tuned on), for the gap:", "", *_header(), *map(_row, dev)]
    if latency:
        lines += ["", *_latency(latency)]
    return "\n".join([BEGIN, *lines, END])


def block_of(text: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    return text[start : end + len(END)] if 0 <= start < end else ""


def main() -> int:
    """Print the comparison table of an evaluation's JSON (``evaluate.py --json``); with
    ``--write README.md``: replace the README's generated block with the committed results'."""
    import json
    import sys
    from pathlib import Path

    if sys.argv[1:2] == ["--write"]:
        here = Path(__file__).resolve().parents[2]
        results = json.loads((here / "tests/eval/results/test.json").read_text())
        lat_path = here / "benchmarks/results/agent_latency.json"
        latency = json.loads(lat_path.read_text()) if lat_path.exists() else None
        dev_path = here / "tests/eval/results/dev.json"
        dev = json.loads(dev_path.read_text()) if dev_path.exists() else None
        readme = Path(sys.argv[2])
        text = readme.read_text()
        readme.write_text(text.replace(block_of(text), render(results, latency, dev)))
        return 0
    print_comparison(json.loads(Path(sys.argv[1]).read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
