"""Language-model backends: llama.cpp (run by ``mcp_kube.llm.worker`` in a child process) or
an OpenAI-compatible endpoint inside the network (llama.cpp's server, llama-cpp-python's
server, vLLM).

This is the only module that imports ``llama_cpp``. Both backends take a finished prompt (the
agent renders the chat template itself, so the system prompt and tool list stay a byte-stable
prefix that llama.cpp reuses from its KV cache between turns) and an optional GBNF grammar that
constrains the output. Nothing here downloads anything: the llama.cpp backend loads a file the
model store has verified, and the endpoint backend talks to the one URL it is given.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mcp_kube.errors import McpKubeError

__all__ = [
    "Backend",
    "BackendError",
    "EndpointBackend",
    "Generation",
    "LlamaCppBackend",
]

# Belt and braces: nothing in llama-cpp-python downloads unless its hub helper is called,
# but a hub library imported by anything else must not either.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


class BackendError(McpKubeError):
    """The model could not be loaded or reached, or it failed mid-generation."""


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    tokens: int  # generated
    seconds: float  # wall time of the whole call
    first_token_s: float  # prompt processing (time to the first generated token)

    @property
    def tokens_per_s(self) -> float:
        """Generation speed: tokens after the first over the time after the first."""
        gen = self.seconds - self.first_token_s
        return (self.tokens - 1) / gen if self.tokens > 1 and gen > 0 else 0.0


TextSink = Callable[[str], None]


class Backend(Protocol):
    label: str

    def generate(
        self,
        prompt: str,
        *,
        grammar: str | None = None,
        max_tokens: int = 256,
        stop: Sequence[str] = (),
        on_text: TextSink | None = None,
    ) -> Generation: ...

    def warm(self, prefix: str, cache_dir: Path | None = None) -> str:
        """Evaluate ``prefix`` (the byte-stable start of every prompt) ahead of the first
        question, kept in ``cache_dir`` where the backend saves state; returns how it was
        done. This default, for a backend that keeps no prefix, does nothing."""
        return "none"

    def close(self) -> None: ...


class _Stream:
    """Generated text as it streams in: the pieces, their count, the time to the first one."""

    def __init__(self, on_text: TextSink | None) -> None:
        self.on_text = on_text
        self.t0 = time.perf_counter()
        self.first = 0.0
        self.seconds = 0.0
        self.parts: list[str] = []
        self.n = 0

    def add(self, piece: str) -> None:
        self.n += 1
        if self.n == 1:
            self.first = time.perf_counter() - self.t0
        if piece:
            self.parts.append(piece)
            if self.on_text:
                self.on_text(piece)

    def end(self) -> None:
        self.seconds = time.perf_counter() - self.t0

    def generation(self, prompt_tokens: int, tokens: int | None = None) -> Generation:
        n = self.n if tokens is None else tokens
        return Generation("".join(self.parts), prompt_tokens, n, self.seconds, self.first)


class LlamaCppBackend:
    """A GGUF model loaded in this process. Greedy decoding (temperature 0): the same question
    gets the same tool call. ``n_gpu_layers`` offloads layers when llama.cpp was built with CUDA
    (-1: all of them); a CPU-only build ignores it."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        seed: int = 0,
        label: str | None = None,
    ) -> None:
        os.environ.update(OFFLINE_ENV)
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise BackendError(
                "llama-cpp-python is not installed: pip install 'mcp-kube[llm]' "
                "(or use an OpenAI-compatible endpoint with --endpoint)"
            ) from e
        self.label = label or model_path.name
        st = model_path.stat()
        self._identity = [model_path.name, st.st_size, st.st_mtime_ns, _llama_version()]
        self.load_s = 0.0
        t0 = time.perf_counter()
        try:
            self._llm = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=n_threads or max(1, os.cpu_count() or 1),
                n_gpu_layers=n_gpu_layers,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise BackendError(f"cannot load model {model_path}: {e}") from e
        self.load_s = time.perf_counter() - t0
        self._grammars: dict[str, Any] = {}
        self._lock = threading.Lock()  # one generation at a time per loaded model

    def _grammar(self, gbnf: str) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        g = self._grammars.get(gbnf)
        if g is None:
            g = LlamaGrammar.from_string(gbnf, verbose=False)
            if len(self._grammars) > 64:
                self._grammars.clear()
            self._grammars[gbnf] = g
        return g

    def warm(self, prefix: str, cache_dir: Path | None = None) -> str:
        """Evaluate ``prefix`` (the system prompt and tool list) now, so that every prompt
        starting with it only pays for the rest. With ``cache_dir`` the evaluated state is kept
        on disk and later processes load it instead (a few MB, versus seconds of prompt
        processing on a CPU). Returns how: ``disk`` or ``computed``."""
        import numpy as np
        from llama_cpp import llama_cpp as lib

        tokens = self._llm.tokenize(prefix.encode(), add_bos=False, special=True)
        key = hashlib.sha256(
            json.dumps([self._identity, self._llm.n_ctx(), prefix]).encode()
        ).hexdigest()[:32]
        path = cache_dir / f"{key}.kvstate" if cache_dir else None
        ctx = self._llm._ctx.ctx
        with self._lock:
            if path is not None and path.is_file():
                try:
                    blob = path.read_bytes()
                    n = int.from_bytes(blob[:4], "little")
                    ids = np.frombuffer(blob[4 : 4 + 4 * n], dtype=np.intc)
                    state = blob[4 + 4 * n :]
                    if n == len(tokens) and list(ids) == list(tokens):
                        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
                        if lib.llama_state_set_data(ctx, buf, len(state)) == len(state):
                            full = np.zeros(self._llm.n_ctx(), dtype=np.intc)
                            full[:n] = ids
                            self._llm.input_ids = full
                            self._llm.n_tokens = n
                            return "disk"
                except (OSError, ValueError):
                    pass  # unreadable or stale: evaluated again below
            self._llm.reset()  # type: ignore[no-untyped-call]
            self._llm.eval(tokens)
            if path is None:
                return "computed"
            size = lib.llama_state_get_size(ctx)
            buf = (ctypes.c_uint8 * size)()
            written = lib.llama_state_get_data(ctx, buf, size)
            ids_bytes = np.asarray(tokens, dtype=np.intc).tobytes()
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(
                    len(tokens).to_bytes(4, "little") + ids_bytes + bytes(buf)[:written]
                )
                os.replace(tmp, path)
                _prune(path.parent, keep=8)
            return "computed"

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def generate(
        self,
        prompt: str,
        *,
        grammar: str | None = None,
        max_tokens: int = 256,
        stop: Sequence[str] = (),
        on_text: TextSink | None = None,
    ) -> Generation:
        with self._lock:
            out = _Stream(on_text)
            stream: Iterator[Any] = self._llm.create_completion(  # type: ignore[assignment]
                prompt,
                max_tokens=max_tokens,
                temperature=0.0,
                stop=list(stop),
                grammar=self._grammar(grammar) if grammar else None,
                stream=True,
            )
            try:
                for chunk in stream:
                    out.add(chunk["choices"][0]["text"])
            except (ValueError, RuntimeError) as e:
                raise BackendError(f"generation failed: {e}") from e
            out.end()
            return out.generation(self.count_tokens(prompt))

    def close(self) -> None:
        self._llm.close()


def system_info() -> str:
    """llama.cpp's own report of the CPU features its loaded code uses."""
    import llama_cpp

    return bytes(llama_cpp.llama_print_system_info()).decode(errors="replace").strip()


def _llama_version() -> str:
    import llama_cpp

    return str(llama_cpp.__version__)


def _prune(folder: Path, keep: int) -> None:
    """Keep the ``keep`` newest saved states; they are a cache, rebuilt when missing."""
    files = sorted(folder.glob("*.kvstate"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()


class EndpointBackend:
    """An OpenAI-compatible ``/v1/completions`` endpoint (streamed). The grammar travels in the
    request field ``grammar_field``: ``grammar`` for llama.cpp and llama-cpp-python servers,
    ``guided_grammar`` for vLLM."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "",
        api_key: str | None = None,
        grammar_field: str = "grammar",
        timeout_s: float = 120.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise BackendError(f"endpoint must be an http(s) URL, not {base_url!r}")
        self.url = base_url.rstrip("/")
        if not self.url.endswith("/v1"):
            self.url += "/v1"
        self.label = f"{model or 'model'} at {self.url}"
        self.model = model
        self._key = api_key
        self._field = grammar_field
        self._timeout = timeout_s

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        req = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            return urllib.request.urlopen(req, timeout=self._timeout)  # noqa: S310
        except urllib.error.HTTPError as e:
            detail = e.read(2000).decode(errors="replace")
            raise BackendError(f"endpoint {self.url}{path}: HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise BackendError(f"endpoint {self.url}{path} unreachable: {e}") from None

    def generate(
        self,
        prompt: str,
        *,
        grammar: str | None = None,
        max_tokens: int = 256,
        stop: Sequence[str] = (),
        on_text: TextSink | None = None,
    ) -> Generation:
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.model:
            body["model"] = self.model
        if stop:
            body["stop"] = list(stop)
        if grammar:
            body[self._field] = grammar
        out = _Stream(on_text)
        usage: dict[str, Any] = {}
        with self._post("/completions", body) as resp:
            try:
                for raw in resp:
                    line = raw.decode().strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    if event.get("usage"):
                        usage = event["usage"]
                    for choice in event.get("choices") or []:
                        out.add(choice.get("text") or "")
            except (OSError, ValueError) as e:
                raise BackendError(f"endpoint stream failed: {e}") from None
        out.end()
        return out.generation(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or out.n)
        )

    def warm(self, prefix: str, cache_dir: Path | None = None) -> str:
        """The endpoint's server keeps its own prompt cache: nothing to do here."""
        return "remote"

    def close(self) -> None:
        return None
