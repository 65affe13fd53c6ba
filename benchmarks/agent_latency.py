"""Where the offline agent's answer time goes: the demo question end to end, warm and cold.

Against a real `mcp-kube serve` on the two-cluster testbed (the demo's setting), with the model
in its child process as `ask`, `chat` and the web page run it:

- **warm**: one process, the model loaded and its prompt prefix evaluated; the demo question
  --runs times per answer mode (``checked``: the model's answer held to the results; ``facts``:
  the results' summaries, no answer generation). Each run is split into the tool choice and its
  arguments (decoding under the grammar), the tool call itself, the answer's prompt processing
  and its decoding. p50/p95 of the whole and of each part.
- **cold**: `mcp-kube ask` as a new process (interpreter, model load, server spawn, prefix
  from the on-disk prompt state or evaluated when there is none), wall time.

Usage: python benchmarks/agent_latency.py KUBECONFIG CONTEXT [CONTEXT...] [--model NAME]
       [--runs N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from mcp_kube.llm.agent import ANSWER_MODES, Agent, AgentResult
from mcp_kube.llm.manifest import by_role, check, get_manifest
from mcp_kube.llm.session import connect
from mcp_kube.llm.worker import ModelProcess

QUESTION = "How many H100 GPUs are free right now, and on which nodes?"
N_CTX = 8192
MCP_KUBE = str(Path(sys.executable).parent / "mcp-kube")


def split(result: AgentResult) -> dict[str, float]:
    """One run's seconds: whole, first call, choosing (all generations before the answer),
    tool calls, answer prompt processing and answer decoding."""
    gens = result.generations
    answered = result.answer_source == "model" or (
        result.answer_source == "facts" and result.answer_problems
    )
    answer = gens[-1] if answered and gens else None
    choosing = gens[:-1] if answer else gens
    return {
        "total_s": result.seconds,
        "first_call_s": result.first_call_s or 0.0,
        "choose_s": sum(g.seconds for g in choosing),
        "tool_s": sum(o.seconds for o in result.outcomes),
        "answer_prompt_s": answer.first_token_s if answer else 0.0,
        "answer_decode_s": (answer.seconds - answer.first_token_s) if answer else 0.0,
        "answer_prompt_tokens": float(answer.prompt_tokens) if answer else 0.0,
        "answer_tokens": float(answer.tokens) if answer else 0.0,
    }


def quantiles(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key in rows[0]:
        xs = sorted(r[key] for r in rows)
        p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
        out[key] = {"p50": round(statistics.median(xs), 3), "p95": round(p95, 3)}
    return out


async def warm(path: Path, label: str, server: str, runs: int) -> dict[str, Any]:
    backend = ModelProcess(path, n_ctx=N_CTX, label=label)
    out: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        async with connect(server) as session:
            connect_s = time.perf_counter() - t0
            for mode in ANSWER_MODES:
                if mode == "model":
                    continue  # unchecked: the same generation as checked, minus the check
                agent = Agent(
                    backend,
                    session.tools,
                    clusters=session.clusters,
                    namespaces=session.namespaces,
                    instructions=session.instructions,
                    answer=mode,
                )
                t1 = time.perf_counter()
                backend.warm(agent.prefix)
                warm_s = time.perf_counter() - t1
                await agent.ask(QUESTION, session)  # first question: caches settle
                rows, sources = [], []
                for _ in range(runs):
                    agent.history.clear()
                    result = await agent.ask(QUESTION, session)
                    rows.append(split(result))
                    sources.append(result.answer_source)
                    print(f"  {mode:8} {result.seconds:6.2f}s {result.answer[:70]!r}", flush=True)
                out[mode] = {
                    "runs": runs,
                    "prefix_warm_s": round(warm_s, 3),
                    "answer_sources": sources,
                    **quantiles(rows),
                }
        out["connect_s"] = round(connect_s, 3)
    finally:
        backend.close()
    return out


def cold(model: str, server: str) -> dict[str, float]:
    """`mcp-kube ask` as new processes: without a prompt state on disk, then with one."""
    out = {}
    with tempfile.TemporaryDirectory() as states:
        env_cache = {"MCP_KUBE_LLM__PROMPT_CACHE": states}
        for name in ("no_prompt_state_s", "with_prompt_state_s"):
            t0 = time.perf_counter()
            r = subprocess.run(
                [MCP_KUBE, "ask", QUESTION, "--model", model, "--server", server],
                capture_output=True, text=True, timeout=900, check=False,
                env={**_env(), **env_cache},
            )  # fmt: skip
            if r.returncode != 0:
                raise SystemExit(f"mcp-kube ask failed: {r.stderr[-2000:]}")
            out[name] = round(time.perf_counter() - t0, 3)
            print(f"  cold     {out[name]:6.2f}s ({name})", flush=True)
    return out


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("MCP_KUBE_LLM__")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kubeconfig")
    ap.add_argument("contexts", nargs="+")
    ap.add_argument("--model", default=None, help="default: the CI model")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    manifest = get_manifest(args.model) if args.model else by_role("ci")
    path = check(manifest)
    server = f"{MCP_KUBE} serve --kubeconfig {args.kubeconfig}"
    server += "".join(f" --context {c}" for c in args.contexts)
    print(f"agent latency: {manifest.name}, {args.runs} warm runs per mode", flush=True)
    figures = {
        "benchmark": "agent_latency",
        "model": manifest.name,
        "question": QUESTION,
        "warm": anyio.run(warm, path, manifest.name, server, args.runs),
        "cold_ask": cold(manifest.name, server),
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
