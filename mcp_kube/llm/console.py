"""Terminal front ends of the offline client: ``mcp-kube ask`` (one question) and ``mcp-kube
chat`` (a conversation). Tool calls and results are shown compactly on stderr, the answer is
streamed to stdout, and write approvals are asked on the terminal: only a typed ``y`` approves.
A submitted job is followed until it ends, one progress line on stderr for each new state.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import anyio
import anyio.to_thread
from rich.console import Console
from rich.markup import escape

from mcp_kube.errors import McpKubeError
from mcp_kube.llm.agent import Agent, AgentResult, Events, ToolCall, ToolOutcome
from mcp_kube.llm.backend import Backend, EndpointBackend
from mcp_kube.llm.manifest import ModelManifest, ModelMissing, by_role, check, get_manifest
from mcp_kube.llm.session import McpSession, connect, leaf_error
from mcp_kube.llm.tasks import TaskView
from mcp_kube.llm.worker import ModelProcess
from mcp_kube.settings import LlmSettings, Settings

__all__ = [
    "ClientError",
    "Options",
    "choose_model",
    "make_agent",
    "open_backend",
    "run_ask",
    "run_chat",
]


T = TypeVar("T")


class ClientError(McpKubeError):
    """The MCP server could not be started or reached, or the session broke."""


def _run(go: Callable[[], Awaitable[T]], server: str) -> T:
    """Run the session; a failure to reach the server becomes one clear line, not a trace."""
    try:
        return anyio.run(go)
    except (McpKubeError, KeyboardInterrupt):
        raise
    except Exception as e:
        leaf = leaf_error(e)
        if isinstance(leaf, McpKubeError):
            raise leaf from None
        raise ClientError(
            f"the MCP server ({server}) failed or could not be reached: "
            f"{type(leaf).__name__}: {leaf}; run the server command alone to see why"
        ) from None


@dataclass
class Options:
    server: str
    model: str | None = None
    endpoint: str | None = None
    plan: bool = False
    as_json: bool = False
    show_calls: bool = True


def _secret(path: Path | None) -> str | None:
    """A token kept in a file (its surrounding white space dropped), or None without a file."""
    return path.read_text().strip() if path else None


def choose_model(name: str | None) -> tuple[ModelManifest, Path]:
    """The named model, else the 'default' model when installed, else the 'ci' one."""
    if name:
        m = get_manifest(name)
        return m, check(m)
    default = by_role("default")
    try:
        return default, check(default)
    except ModelMissing:
        ci = by_role("ci")
        try:
            return ci, check(ci)
        except ModelMissing:
            raise ModelMissing(
                f"no local model is installed: {default.how_to_get()}; or the smaller "
                f"{ci.name}: {ci.how_to_get()}"
            ) from None


def open_backend(cfg: LlmSettings, opts: Options) -> Backend:
    endpoint = opts.endpoint or cfg.endpoint
    if endpoint:
        return EndpointBackend(
            endpoint,
            model=cfg.endpoint_model,
            api_key=_secret(cfg.endpoint_token_file),
            grammar_field=cfg.endpoint_grammar_field,
        )
    manifest, path = choose_model(opts.model or cfg.model)
    n_ctx = min(cfg.n_ctx, manifest.context_length)
    return ModelProcess(
        path,
        n_ctx=n_ctx,
        n_threads=cfg.n_threads,
        n_gpu_layers=cfg.n_gpu_layers,
        label=manifest.name,
    )


def make_agent(backend: Backend, session: McpSession, cfg: LlmSettings) -> Agent:
    """An agent over the session's tools, its prompt prefix evaluated (or loaded) once."""
    agent = Agent(
        backend,
        session.tools,
        clusters=session.clusters,
        namespaces=session.namespaces,
        instructions=session.instructions,
        max_calls=cfg.max_calls,
        result_budget=cfg.result_budget_chars,
        answer_tokens=cfg.answer_max_tokens,
        follow_up=cfg.follow_up,
        answer=cfg.answer,
    )
    backend.warm(agent.prefix, cfg.prompt_cache)
    return agent


class TerminalEvents(Events):
    """Tool cards on ``err``, the answer streamed on ``out``."""

    def __init__(self, out: TextIO, err: Console, *, stream: bool = True) -> None:
        self.out = out
        self.err = err
        self.stream = stream

    def tool_call(self, call: ToolCall) -> None:
        args = json.dumps(call.arguments, separators=(",", ":"))
        self.err.print(f"[bold cyan]→ {call.name}[/] [dim]{escape(args)}[/]")

    def tool_result(self, call: ToolCall, outcome: ToolOutcome) -> None:
        lines = outcome.text.splitlines() or [""]
        head = "\n  ".join(escape(line[:160]) for line in lines[:8])
        more = f"\n  [dim]… {len(lines) - 8} more lines[/]" if len(lines) > 8 else ""
        mark = "[red]✗" if outcome.is_error else "[green]✓"
        self.err.print(f"{mark} {call.name}[/] [dim]{outcome.seconds:.2f}s[/]\n  {head}{more}")

    def text(self, delta: str) -> None:
        if self.stream:
            self.out.write(delta)
            self.out.flush()


def terminal_approver(err: Console, stdin: TextIO | None = None) -> Any:
    """Show the server's preview and read the human's answer; anything but y/yes is a no."""
    source = stdin or sys.stdin

    async def approve(preview: str) -> bool:
        err.rule("[bold yellow]approval needed")
        err.print(escape(preview))
        err.print("[bold yellow]Approve this change? [y/N][/] ", end="")

        def read() -> str:
            try:
                return source.readline()
            except (OSError, ValueError):
                return ""

        answer = (await anyio.to_thread.run_sync(read)).strip().lower()
        yes = answer in ("y", "yes")
        err.print("[green]approved[/]" if yes else "[red]declined[/]")
        return yes

    return approve


def _result_json(result: AgentResult, backend: Backend, plan: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"question": result.question, "model": backend.label}
    if plan:
        out["plan"] = [c.as_json() for c in result.calls]
    else:
        out["answer"] = result.answer
        out["calls"] = [
            c.as_json() | {"is_error": o.is_error, "text": o.text, "seconds": round(o.seconds, 3)}
            for c, o in zip(result.calls, result.outcomes, strict=False)
        ]
    out["unparsed"] = result.unparsed
    out["stats"] = result.stats()
    return out


@dataclass
class _Terminal:
    """What a terminal command holds: its settings, the loaded model, the console on stderr."""

    cfg: LlmSettings
    backend: Backend
    err: Console

    @classmethod
    def open(cls, opts: Options, settings: Settings | None) -> _Terminal:
        cfg = (settings or Settings()).llm
        err = Console(stderr=True, highlight=False)
        return cls(cfg, open_backend(cfg, opts), err)

    def task_line(self, view: TaskView) -> None:
        """A followed job's new state, as one line on stderr."""
        mark = "[yellow]⧗" if view.following and view.status == "working" else "[bold]■"
        self.err.print(f"{mark} {escape(view.line())}[/]")

    def run(
        self, server: str, work: Callable[[McpSession], Awaitable[T]], *, progress: bool = True
    ) -> T:
        """``work`` in a session with the server (approvals asked on the terminal, a followed
        job's progress shown unless ``progress`` is False); the model is closed after."""
        token = _secret(self.cfg.server_token_file)
        approver = terminal_approver(self.err)
        on_task = self.task_line if progress else None

        async def go() -> T:
            async with connect(
                server, token=token, approver=approver, on_task=on_task,
                follow_s=self.cfg.task_follow_s,
            ) as s:  # fmt: skip
                return await work(s)

        try:
            return _run(go, server)
        finally:
            self.backend.close()


def run_ask(question: str, opts: Options, settings: Settings | None = None) -> int:
    """One question: 0 answered, 1 when the model produced no usable call."""
    term = _Terminal.open(opts, settings)

    quiet = opts.as_json or opts.plan

    async def work(s: McpSession) -> AgentResult:
        agent = make_agent(term.backend, s, term.cfg)
        events = Events() if quiet else TerminalEvents(sys.stdout, term.err, stream=True)
        return await agent.ask(question, s, events, plan=opts.plan)

    result = term.run(opts.server, work, progress=not quiet)
    if opts.as_json or opts.plan:
        print(json.dumps(_result_json(result, term.backend, opts.plan), indent=2))
    else:
        print()
    return 1 if result.unparsed and not result.calls else 0


def run_chat(opts: Options, settings: Settings | None = None) -> int:
    """An interactive conversation until /quit or end of input."""
    term = _Terminal.open(opts, settings)
    out = Console(highlight=False)

    async def work(s: McpSession) -> None:
        with term.err.status(f"loading {term.backend.label}…"):
            agent = make_agent(term.backend, s, term.cfg)
        out.print(
            f"[bold]mcp-kube chat[/] · {escape(term.backend.label)} · {len(s.tools)} tools · "
            f"clusters: {', '.join(s.clusters) or '?'}\n"
            "[dim]Ask about GPUs, jobs, logs, quotas. /tools lists the tools, /reset "
            "forgets the conversation, /quit ends.[/]"
        )
        events = TerminalEvents(sys.stdout, term.err)
        while True:
            line = await anyio.to_thread.run_sync(_read_question)
            if line is None or line.strip() in ("/quit", "/exit"):
                return
            q = line.strip()
            if not q:
                continue
            if q == "/tools":
                for t in s.tools:
                    kind = "" if t.read_only else " [yellow](write)[/]"
                    out.print(f"  [cyan]{t.name}[/]{kind} {escape(t.description[:90])}")
                continue
            if q == "/reset":
                agent.history.clear()
                continue
            result = await agent.ask(q, s, events)
            stats = result.stats()
            out.print(
                f"\n[dim]{stats['tool_calls']} call(s) · {stats['seconds']}s · "
                f"{stats['answer_tokens_per_s'] or 0} tok/s[/]"
            )

    term.run(opts.server, work)
    return 0


def _read_question() -> str | None:
    try:
        return input("\n> ")
    except EOFError:
        return None
