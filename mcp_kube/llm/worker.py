"""The local model in a child process, so that a crash inside llama.cpp never takes its user down.

``ModelProcess`` (the parent side) is a :class:`~mcp_kube.llm.backend.Backend`: it starts
``python -m mcp_kube.llm.worker``, which loads the model with
:class:`~mcp_kube.llm.backend.LlamaCppBackend` and answers one JSON line per request on a pipe,
streaming generated text as it comes. When the child dies (SIGSEGV, SIGILL, an abort in
ggml), the call in flight fails with :class:`ModelCrashed`, which names the signal, the CPU
features and the llama.cpp build, and points to ``mcp-kube doctor``; the next call starts a
fresh child (and evaluates the saved prompt prefix again), so a chat or the web page goes on.

For drills and tests, ``MCP_KUBE_LLM_FAULT_FILE`` names a file: when it exists as a generation
starts, the child removes it and raises the signal written in it (``SIGSEGV`` by default), once.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from mcp_kube.llm.backend import BackendError, Generation, TextSink
from mcp_kube.llm.cpu import best_variant, build_info, cpu_info

__all__ = ["ModelCrashed", "ModelProcess", "crash_advice"]

FAULT_ENV = "MCP_KUBE_LLM_FAULT_FILE"
_NOISE = ("load_backend:",)  # ggml's own start-up lines, not a reason
_SIGNALS = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGILL: "illegal instruction: the CPU lacks an instruction the build uses",
    signal.SIGABRT: "abort: llama.cpp stopped on a failed check",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "arithmetic fault",
    signal.SIGKILL: "killed, often by the kernel's out-of-memory killer",
}


class ModelCrashed(BackendError):
    """The model process died; the message says how and what to do."""

    code = "model_crashed"

    def __init__(self, message: str, *, signal_name: str | None, exit_code: int | None) -> None:
        super().__init__(message)
        self.signal_name = signal_name
        self.exit_code = exit_code


def crash_advice(returncode: int | None, activity: str, stderr_tail: str = "") -> ModelCrashed:
    cpu = cpu_info()
    build = build_info()
    if returncode is not None and returncode < 0:
        sig = signal.Signals(-returncode)
        what = f"{sig.name} ({_SIGNALS.get(sig, 'signal')})"
        sig_name: str | None = sig.name
    else:
        what, sig_name = f"exit code {returncode}", None
    if build is None:
        built = "llama-cpp-python is not installed"
    else:
        variant = best_variant(build, cpu) or "none"
        built = f"llama.cpp {build.version} {build.kind} build, CPU variant {variant}"
    said = [ln for ln in stderr_tail.splitlines() if ln.strip() and not ln.startswith(_NOISE)]
    detail = f" Its last words: {said[-1][:300]}." if said else ""
    return ModelCrashed(
        f"the local model crashed with {what} while {activity}; it is started again for the "
        f"next question. Run 'mcp-kube doctor' to check this machine's llama.cpp build and "
        f"models. {built}; CPU: {cpu.describe()}.{detail}",
        signal_name=sig_name,
        exit_code=returncode,
    )


class ModelProcess:
    """A GGUF model served by a child process; the same interface as ``LlamaCppBackend``."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        seed: int = 0,
        label: str | None = None,
        load_timeout_s: float = 300.0,
    ) -> None:
        self.label = label or model_path.name
        self._config = {
            "model_path": str(model_path),
            "n_ctx": n_ctx,
            "n_threads": n_threads,
            "n_gpu_layers": n_gpu_layers,
            "seed": seed,
            "label": self.label,
        }
        self._load_timeout = load_timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._warm: tuple[str, str | None] | None = None
        self.load_s = 0.0
        self.system_info = ""
        self.restarts = 0
        with self._lock:
            self._start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- the child's life cycle ------------------------------------------------------------

    def _start(self) -> None:
        proc = subprocess.Popen(  # our own module, with this interpreter
            [sys.executable, "-m", "mcp_kube.llm.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C reaches the parent, which closes us
        )
        self._proc = proc
        self._stderr.clear()
        assert proc.stderr is not None
        threading.Thread(target=self._drain, args=(proc.stderr,), daemon=True).start()
        ready = self._exchange({"op": "load", **self._config}, None, "loading the model")
        self.load_s = float(ready.get("load_s", 0.0))
        self.system_info = str(ready.get("system_info", ""))
        if self._warm is not None:
            self._exchange({"op": "warm", "prefix": self._warm[0], "cache_dir": self._warm[1]},
                           None, "evaluating the prompt prefix")  # fmt: skip

    def _drain(self, stream: IO[bytes]) -> None:
        with stream:  # closed at the child's end
            for raw in iter(stream.readline, b""):
                self._stderr.append(raw.decode(errors="replace").rstrip()[:500])

    def _ensure(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = None
            self.restarts += 1
            self._start()

    def _died(self, activity: str) -> ModelCrashed:
        proc, self._proc = self._proc, None
        rc = _reap(proc, 10) if proc is not None else None
        time.sleep(0.05)  # let the stderr reader take the last lines
        return crash_advice(rc, activity, "\n".join(self._stderr))

    def _exchange(
        self, request: dict[str, Any], on_text: TextSink | None, activity: str
    ) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(activity) from None
        while True:
            line = proc.stdout.readline()
            if not line:
                raise self._died(activity)
            msg = json.loads(line)
            if "text" in msg:
                if on_text:
                    on_text(msg["text"])
                continue
            if "error" in msg:
                raise BackendError(str(msg["error"]))
            return dict(msg["ok"])

    # -- the Backend interface -------------------------------------------------------------

    def warm(self, prefix: str, cache_dir: Path | None = None) -> str:
        with self._lock:
            self._warm = (prefix, str(cache_dir) if cache_dir else None)
            self._ensure()
            req = {"op": "warm", "prefix": prefix, "cache_dir": self._warm[1]}
            return str(self._exchange(req, None, "evaluating the prompt prefix")["how"])

    def count_tokens(self, text: str) -> int:
        with self._lock:
            self._ensure()
            return int(self._exchange({"op": "count", "text": text}, None, "tokenizing")["n"])

    def generate(
        self,
        prompt: str,
        *,
        grammar: str | None = None,
        max_tokens: int = 256,
        stop: Sequence[str] = (),
        on_text: TextSink | None = None,
    ) -> Generation:
        req = {
            "op": "generate",
            "prompt": prompt,
            "grammar": grammar,
            "max_tokens": max_tokens,
            "stop": list(stop),
        }
        with self._lock:
            self._ensure()
            out = self._exchange(req, on_text, "generating")
        return Generation(
            out["text"], out["prompt_tokens"], out["tokens"], out["seconds"], out["first_token_s"]
        )

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            _reap(proc, 10)


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """End the child (its input closed first, killed if it lingers); its exit status."""
    for pipe in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            if pipe is not None:
                pipe.close()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# -- the child --------------------------------------------------------------------------------


def _fault() -> None:
    path = os.environ.get(FAULT_ENV)
    if not path:
        return
    try:
        name = Path(path).read_text().strip() or "SIGSEGV"
        Path(path).unlink()
    except OSError:
        return
    os.kill(os.getpid(), signal.Signals[name])


def _serve(out: IO[bytes]) -> None:
    from mcp_kube.llm.backend import LlamaCppBackend, system_info

    def send(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg).encode() + b"\n")
        out.flush()

    backend: LlamaCppBackend | None = None
    for raw in sys.stdin.buffer:
        req = json.loads(raw)
        op = req.pop("op")
        try:
            if op == "load":
                backend = LlamaCppBackend(Path(req.pop("model_path")), **req)
                send({"ok": {"load_s": backend.load_s, "system_info": system_info()}})
                continue
            assert backend is not None
            if op == "warm":
                cache = Path(req["cache_dir"]) if req.get("cache_dir") else None
                send({"ok": {"how": backend.warm(req["prefix"], cache)}})
            elif op == "count":
                send({"ok": {"n": backend.count_tokens(req["text"])}})
            elif op == "generate":
                _fault()
                g = backend.generate(
                    req["prompt"],
                    grammar=req.get("grammar"),
                    max_tokens=int(req["max_tokens"]),
                    stop=req.get("stop") or (),
                    on_text=lambda piece: send({"text": piece}),
                )
                send({"ok": {
                    "text": g.text, "prompt_tokens": g.prompt_tokens, "tokens": g.tokens,
                    "seconds": g.seconds, "first_token_s": g.first_token_s,
                }})  # fmt: skip
        except BackendError as e:
            send({"error": str(e)})


def main() -> None:
    # The protocol owns the original stdout; anything llama.cpp prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _serve(out)


if __name__ == "__main__":
    main()
