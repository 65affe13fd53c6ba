"""``mcp-kube doctor``: check this machine and this installation, with no network.

Each check says ok, warn, fail or skip (not configured). The model checks run a batched prompt
(at least 64 tokens) and a short generation in a child process, so a llama.cpp build that
crashes on this CPU is reported as crashed, with its signal, instead of taking the doctor
down. Exit status 0 only when every check of something the user configured passed.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio

from mcp_kube.errors import McpKubeError
from mcp_kube.llm.cpu import best_variant, build_info, cpu_info, unservable_reason
from mcp_kube.settings import Settings

__all__ = ["Check", "as_json", "render", "run_checks"]

State = Literal["ok", "warn", "fail", "skip"]
SMOKE_PROMPT = (
    "<|im_start|>system\nYou answer questions about a Kubernetes GPU cluster in one short "
    "sentence.<|im_end|>\n<|im_start|>user\nThe cluster has these nodes: h100-1 with 8 H100 "
    "GPUs of which 3 are free, h100-2 with 8 H100 GPUs of which 0 are free, a100-1 with 4 A100 "
    "GPUs of which 4 are free, and l4-1 with 2 L4 GPUs of which 1 is free. Which node has the "
    "most free GPUs, and how many are free there?<|im_end|>\n<|im_start|>assistant\n"
)
MIN_PROMPT_TOKENS = 64


@dataclass
class Check:
    area: str
    name: str
    state: State
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def _python() -> Check:
    return Check(
        "system",
        "python",
        "ok" if sys.version_info >= (3, 11) else "fail",
        f"Python {platform.python_version()} on {platform.platform()}",
    )


def _cpu() -> list[Check]:
    cpu = cpu_info()
    out = [Check("system", "cpu", "ok", cpu.describe(), {"isa": cpu.isa})]
    build = build_info()
    if build is None:
        missing = "llama-cpp-python is not installed (pip install 'mcp-kube[llm]', or --endpoint)"
        out.append(Check("llama.cpp", "build", "skip", missing))
        return out
    reason = unservable_reason(build, cpu)
    variants = ", ".join(build.cpu_variants) or "unknown"
    left = "; left out: " + "; ".join(f"{k} ({v})" for k, v in build.left_out.items())
    detail = (
        f"{build.version} {build.kind}, CPU variants: {variants}; "
        f"this CPU runs: {best_variant(build, cpu) or 'none'}" + (left if build.left_out else "")
    )
    state: State = "fail" if reason else "ok"
    if build.kind == "native" and not reason:
        state, detail = "warn", detail + " (a native build runs only on CPUs like this one)"
    out.append(Check("llama.cpp", "build", state, reason or detail, build.as_json()))
    return out


def _models(settings: Settings, only: list[str] | None) -> list[Check]:
    from mcp_kube.llm import manifest as mf

    out = []
    for s in mf.status(settings.models.store, settings.models.manifests):
        if only and s.name not in only:
            continue
        if s.state == "missing":
            state: State = "fail" if only else "skip"
            out.append(Check("model", s.name, state, f"not installed ({s.path})"))
        elif s.state == "corrupt":
            out.append(Check("model", s.name, "fail", f"checksum: {s.detail}"))
        elif build_info() is None:
            out.append(Check("model", s.name, "skip", "verified; llama-cpp-python not installed"))
        else:
            out.append(smoke(s.name, s.path, settings))
    if only and not out:
        out.append(Check("model", ",".join(only), "fail", "no such model manifest"))
    return out


def smoke(name: str, path: Path, settings: Settings) -> Check:
    """Load the model in a child process, run a batched prompt and a short generation."""
    from mcp_kube.llm.worker import ModelCrashed, ModelProcess

    t0 = time.perf_counter()
    try:
        proc = ModelProcess(path, n_ctx=2048, n_threads=settings.llm.n_threads, label=name)
        try:
            n_prompt = proc.count_tokens(SMOKE_PROMPT)
            gen = proc.generate(SMOKE_PROMPT, max_tokens=16, stop=["<|im_end|>"])
            info = proc.system_info
        finally:
            proc.close()
    except ModelCrashed as e:
        what = f"crashed ({e.signal_name or f'exit {e.exit_code}'})"
        return Check("model", name, "fail", f"{what}: {e}", {"signal": e.signal_name})
    except McpKubeError as e:
        return Check("model", name, "fail", f"failed: {e}")
    prompt_tps = gen.prompt_tokens / gen.first_token_s if gen.first_token_s > 0 else 0.0
    data = {
        "checksum": "verified",
        "prompt_tokens": n_prompt,
        "prompt_tokens_per_s": round(prompt_tps, 1),
        "tokens": gen.tokens,
        "tokens_per_s": round(gen.tokens_per_s, 1),
        "seconds": round(time.perf_counter() - t0, 2),
        "system_info": info,
        "answer": gen.text.strip()[:200],
    }
    state: State = "ok" if n_prompt >= MIN_PROMPT_TOKENS and gen.tokens > 0 else "fail"
    detail = (
        f"checksum verified; {n_prompt}-token prompt at {prompt_tps:.0f} tok/s, "
        f"{gen.tokens} tokens at {gen.tokens_per_s:.1f} tok/s"
    )
    if state == "ok" and "AMX_INT8 = 1" in info:
        state = "warn"
        detail += (
            "; this llama.cpp uses AMX, whose matrix multiply crashes on longer prompts "
            "(llama.cpp #20824): install the portable build (make install)"
        )
    return Check("model", name, state, detail, data)


def _clusters(settings: Settings) -> list[Check]:
    from mcp_kube.kube.client import ClusterRegistry

    cfg = settings.clusters
    where = str(cfg.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config")
    try:
        registry = ClusterRegistry(cfg.model_copy(update={"watch_cache": False}))
    except McpKubeError as e:
        return [Check("cluster", "kubeconfig", "fail", f"{where}: {e}")]
    if not registry.names:
        return [Check("cluster", "kubeconfig", "skip", f"no contexts in {where}")]

    async def probe(name: str) -> Check:
        try:
            with anyio.fail_after(min(cfg.request_timeout_s, 10.0) + 1):
                v = await registry.get(name).version()
        except (McpKubeError, TimeoutError) as e:
            return Check("cluster", name, "fail", f"unreachable: {e or 'no answer'}")
        return Check("cluster", name, "ok", f"Kubernetes {v.get('gitVersion', '?')}")

    async def all_probes() -> list[Check]:
        return [await probe(n) for n in registry.names]

    try:
        return anyio.run(all_probes)
    finally:
        registry.close()


def _policies(paths: list[Path]) -> Check:
    from mcp_kube.policy.engine import PolicyError
    from mcp_kube.policy.loader import load_engine, policy_paths

    if not paths:
        return Check("policy", "files", "skip", "no policy files given (default: read-only)")
    try:
        files = policy_paths(paths)
        load_engine(paths)
    except (PolicyError, McpKubeError, OSError) as e:
        return Check("policy", "files", "fail", str(e))
    return Check("policy", "files", "ok", f"{len(files)} file(s) valid: " +
                 ", ".join(p.name for p in files))  # fmt: skip


def _audit(path: Path) -> Check:
    """Writable as the server would write it: the file opened for appending (nothing is
    written), or a file created and removed where the missing folders would be made."""
    if path.is_dir():
        return Check("audit", "log", "fail", f"{path} is a folder")
    try:
        if path.exists():
            with path.open("ab"):
                pass
        else:
            folder = path.parent
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as e:
        return Check("audit", "log", "fail", f"{path}: not writable ({e.strerror or e})")
    return Check("audit", "log", "ok", f"{path} writable")


def run_checks(
    settings: Settings,
    policies: list[Path],
    *,
    models: list[str] | None = None,
    skip_models: bool = False,
    skip_clusters: bool = False,
) -> list[Check]:
    checks = [_python(), *_cpu()]
    if not skip_models:
        checks += _models(settings, models)
    if not skip_clusters:
        checks += _clusters(settings)
    checks += [_policies(policies), _audit(settings.audit.path)]
    return checks


def render(checks: list[Check]) -> str:
    mark = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "-"}
    w1 = max(len(c.area) for c in checks)
    w2 = max(len(c.name) for c in checks)
    lines = [f"{'AREA':<{w1}}  {'CHECK':<{w2}}  {'STATE':<5}  DETAIL"]
    lines += [f"{c.area:<{w1}}  {c.name:<{w2}}  {mark[c.state]:<5}  {c.detail}" for c in checks]
    failed = [c for c in checks if c.state == "fail"]
    lines.append("")
    lines.append(
        f"{len(failed)} check(s) failed: " + ", ".join(f"{c.area}/{c.name}" for c in failed)
        if failed
        else "everything configured works"
    )
    return "\n".join(lines)


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {"ok": not any(c.state == "fail" for c in checks), "checks": [asdict(c) for c in checks]}
