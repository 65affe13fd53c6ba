"""Generation speed of the offline agent vs raw llama-cpp-python, on the same model and prompt.

Runs the agent on a question against a real `mcp-kube serve` (tool call, result, streamed
answer; the model in its child process, as users run it) and gives the exact prompt of its
answer to a plain `llama_cpp.Llama` with the same settings and the same number of tokens;
agent and raw runs alternate inside one session, so the server, the testbed and any other
load are the same for both. Both speeds are decode tokens/s after the first token (prompt
processing excluded); medians over --runs. Also: time to the first tool call.

Usage: python benchmarks/agent_speed.py KUBECONFIG CONTEXT [CONTEXT...] [--model NAME] [--runs N]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from mcp_kube.llm.agent import Agent
from mcp_kube.llm.manifest import by_role, check, get_manifest
from mcp_kube.llm.session import connect
from mcp_kube.llm.worker import ModelProcess

QUESTION = "How many H100 GPUs are free right now, and on which nodes?"
STOP = ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]
N_CTX = 8192


def raw_decode(llm: Any, prompt: str, tokens: int) -> float:
    """Decode tokens/s of a plain ``create_completion`` stream (after its first token)."""
    first, n = 0.0, 0
    for _chunk in llm.create_completion(
        prompt, max_tokens=tokens, temperature=0.0, stop=STOP, stream=True
    ):
        n += 1
        if n == 1:
            first = time.perf_counter()
    end = time.perf_counter()
    return (n - 1) / (end - first) if n > 1 else 0.0


async def interleaved(path: Path, server: str, runs: int) -> dict[str, Any]:
    """Agent and raw runs alternate inside one session (the server, the testbed and the
    machine's other load are the same for both); the order flips every round."""
    from llama_cpp import Llama

    backend = ModelProcess(path, n_ctx=N_CTX)  # what ask, chat and the web page use
    # the settings the model process uses: every CPU, the same context, the same seed
    raw = Llama(
        model_path=str(path), n_ctx=N_CTX, n_threads=os.cpu_count() or 1, verbose=False, seed=0
    )
    out: dict[str, Any] = {"agent": [], "raw": [], "first_call": [], "prompt": "", "tokens": 0}
    try:
        async with connect(server) as session:
            agent = Agent(
                backend,
                session.tools,
                clusters=session.clusters,
                namespaces=session.namespaces,
                instructions=session.instructions,
            )
            backend.warm(agent.prefix)

            async def agent_once() -> None:
                agent.history.clear()
                result = await agent.ask(QUESTION, session)
                answer = result.generations[-1]
                out["agent"].append(answer.tokens_per_s)
                out["first_call"].append(result.first_call_s or 0.0)
                out["prompt"], out["tokens"] = result.answer_prompt, answer.tokens

            await agent_once()  # the answer prompt and its length, for the raw runs
            raw_decode(raw, out["prompt"], out["tokens"])  # raw's prompt into its KV cache
            out["agent"].clear()
            out["first_call"].clear()
            for i in range(runs):
                if i % 2:
                    out["raw"].append(raw_decode(raw, out["prompt"], out["tokens"]))
                    await agent_once()
                else:
                    await agent_once()
                    out["raw"].append(raw_decode(raw, out["prompt"], out["tokens"]))
    finally:
        backend.close()
        raw.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kubeconfig")
    ap.add_argument("contexts", nargs="+")
    ap.add_argument("--model", default=None, help="default: the CI model")
    ap.add_argument("--runs", type=int, default=6)
    args = ap.parse_args()
    manifest = get_manifest(args.model) if args.model else by_role("ci")
    path = check(manifest)
    server = f"{Path(sys.executable).parent / 'mcp-kube'} serve --kubeconfig {args.kubeconfig}"
    server += "".join(f" --context {c}" for c in args.contexts)
    out = anyio.run(interleaved, path, server, args.runs)
    agent, raw, first_calls, tokens = out["agent"], out["raw"], out["first_call"], out["tokens"]
    a, r = statistics.median(agent), statistics.median(raw)
    print(
        json.dumps(
            {
                "benchmark": "agent_speed",
                "model": manifest.name,
                "answer_tokens": tokens,
                "agent_decode_tok_s": round(a, 2),
                "raw_llama_cpp_decode_tok_s": round(r, 2),
                "ratio": round(a / r, 3) if r else None,
                "agent_runs": [round(x, 2) for x in agent],
                "raw_runs": [round(x, 2) for x in raw],
                "first_tool_call_s_median": round(statistics.median(first_calls), 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
