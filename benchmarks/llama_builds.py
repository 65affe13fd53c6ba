"""The portable llama.cpp build against a native (-march=native) build of the same version.

Same machine, same model, same prompt, same threads and context: each round runs both builds,
one after the other in fresh processes (the order flips every round), and reads llama.cpp's
own counters (llama_perf_context): prompt tokens/s (one batched prompt) and decode tokens/s.
The native wheel is built once by requirements/build_llama.py --kind native and cached beside
the portable one; it is imported from its own folder (PYTHONPATH), never installed.

Usage: python benchmarks/llama_builds.py [--model NAME] [--runs N] [--json PATH]
Prints a table and one JSON object (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from mcp_kube.llm.cpu import build_info, cpu_info
from mcp_kube.llm.manifest import by_role, check, get_manifest

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MCP_KUBE_CACHE", Path.home() / ".cache" / "mcp-kube")) / "llama"
PROMPT = (
    "<|im_start|>system\nYou are a Kubernetes assistant. Answer with a numbered list.<|im_end|>\n"
    "<|im_start|>user\nA cluster has 18 nodes: six with 8 H100 GPUs each, eight with 4 A100 GPUs "
    "each and four with 2 L4 GPUs each. Team A runs three 4-GPU training jobs on the H100 nodes, "
    "team B runs a 2-GPU notebook on an A100 node and a 1-GPU inference server on an L4 node, "
    "and team C has a 16-GPU job waiting for quota. List, one line per item, ten things an "
    "operator should check before admitting the waiting job, with the reason for each.<|im_end|>"
    "\n<|im_start|>assistant\n"
)
DECODE_TOKENS = 128

CHILD = r"""
import hashlib, json, os, sys
import llama_cpp  # a portable build registers its best CPU variant on import
from mcp_kube.llm.backend import system_info
from llama_cpp import Llama
path, prompt, n_decode = sys.argv[1], sys.argv[2], int(sys.argv[3])
llm = Llama(model_path=path, n_ctx=4096, n_threads=os.cpu_count() or 1, seed=0, verbose=False)
tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
out = []
for _ in range(2):  # the first pass warms caches and page-ins; the second is measured
    llm.reset()
    llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
    text = llm.create_completion(prompt, max_tokens=n_decode, temperature=0.0)["choices"][0]["text"]
    p = llama_cpp.llama_perf_context(llm._ctx.ctx)
    sha = hashlib.sha256(text.encode()).hexdigest()[:16]
    out.append({"n_prompt": p.n_p_eval, "prompt_ms": p.t_p_eval_ms, "n_decode": p.n_eval,
                "decode_ms": p.t_eval_ms, "text_sha": sha})
print(json.dumps({"run": out[-1], "system_info": system_info(),
                  "module": os.path.dirname(llama_cpp.__file__), "tokens": len(tokens)}))
"""


def native_site() -> Path:
    """The native wheel, built if missing, unpacked into its own folder."""
    wheel = subprocess.run(
        [sys.executable, str(REPO / "requirements" / "build_llama.py"), "--kind", "native",
         "--out", str(CACHE)],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    site = Path(wheel).parent / "site"
    if not (site / "llama_cpp" / "__init__.py").is_file():
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
    return site


def run_child(model: Path, site: Path | None) -> dict[str, Any]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), PROMPT, str(DECODE_TOKENS)],
        capture_output=True, text=True, env=env, check=False, timeout=600,
    )  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"benchmark child failed ({r.returncode}): {r.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model manifest (default: the CI model)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    manifest = get_manifest(args.model) if args.model else by_role("ci")
    model = check(manifest)
    print(f"building or reusing the native llama.cpp build in {CACHE}", file=sys.stderr)
    site = native_site()
    rows: dict[str, list[dict[str, Any]]] = {"portable": [], "native": []}
    info: dict[str, str] = {}
    for i in range(args.runs):
        order = ["portable", "native"] if i % 2 == 0 else ["native", "portable"]
        for kind in order:
            res = run_child(model, site if kind == "native" else None)
            rows[kind].append(res["run"])
            info[kind] = res["system_info"]
            if kind == "native" and not res["module"].startswith(str(site)):
                raise SystemExit(f"the native run imported {res['module']}, not {site}")

    def rate(kind: str, n: str, ms: str) -> float:
        return statistics.median(r[n] / (r[ms] / 1000) for r in rows[kind] if r[ms] > 0)

    cpu = cpu_info()
    build = build_info()
    figures = {
        kind: {
            "prompt_tokens_per_s": round(rate(kind, "n_prompt", "prompt_ms"), 1),
            "decode_tokens_per_s": round(rate(kind, "n_decode", "decode_ms"), 2),
            "prompt_tokens": rows[kind][0]["n_prompt"],
            "decode_tokens": rows[kind][0]["n_decode"],
            "system_info": info[kind],
        }
        for kind in rows
    }
    result = {
        "benchmark": "llama_builds",
        "model": manifest.name,
        "runs": args.runs,
        "threads": os.cpu_count(),
        "cpu": {"model": cpu.model, "isa": cpu.isa},
        "portable_variants": build.cpu_variants if build else [],
        **figures,
        "decode_ratio": round(
            figures["portable"]["decode_tokens_per_s"] / figures["native"]["decode_tokens_per_s"], 3
        ),
        "prompt_ratio": round(
            figures["portable"]["prompt_tokens_per_s"] / figures["native"]["prompt_tokens_per_s"], 3
        ),
        "same_answer": len({r["text_sha"] for k in rows for r in rows[k]}) == 1,
    }
    print(f"llama.cpp builds on {cpu.model} ({' '.join(cpu.isa)}), {manifest.name}, "
          f"{args.runs} rounds, medians")  # fmt: skip
    for kind in ("portable", "native"):
        f = figures[kind]
        print(
            f"  {kind:<9} prompt {f['prompt_tokens_per_s']:>8.1f} tok/s ({f['prompt_tokens']} "
            f"tokens)   decode {f['decode_tokens_per_s']:>7.2f} tok/s ({f['decode_tokens']})"
        )
    print(f"  portable/native: decode {result['decode_ratio']}x, prompt {result['prompt_ratio']}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
