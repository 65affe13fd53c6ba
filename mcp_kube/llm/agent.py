"""The tool-calling loop of the offline client.

A question becomes at most ``max_calls`` tool calls and one answer. Every call is produced under
a grammar (first the tool's name, then its arguments from that tool's schema), so every call
parses; the server validates it again and its policy decides. Results go back to the model as
delimited, size-budgeted data. The agent never approves anything: a write's approval is the
server's question to the human, answered through the session's approver.

The loop is independent of how tools are reached (``ToolRunner``) and of how the model runs
(``Backend``); both are given.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio.to_thread

from mcp_kube.llm import answer as A
from mcp_kube.llm import grammar as G
from mcp_kube.llm import prompt as P
from mcp_kube.llm import route as R
from mcp_kube.llm.backend import Backend, Generation
from mcp_kube.llm.grounding import clusters_spelled, name_like
from mcp_kube.llm.roles import settle
from mcp_kube.llm.slots import windows_in

ANSWER_MODES = ("brief", "checked", "facts", "model")
BRIEF_TOKENS = 64  # one sentence

__all__ = [
    "ANSWER_MODES",
    "Agent",
    "AgentResult",
    "Events",
    "ToolCall",
    "ToolOutcome",
    "ToolRunner",
]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"tool": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class ToolOutcome:
    text: str
    is_error: bool = False
    structured: dict[str, Any] | None = None
    seconds: float = 0.0


class ToolRunner(Protocol):
    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome: ...


class Events:
    """What a front end may show while the agent works; every hook is optional."""

    def tool_call(self, call: ToolCall) -> None:
        return None

    def tool_result(self, call: ToolCall, outcome: ToolOutcome) -> None:
        return None

    def answer_start(self) -> None:
        return None

    def text(self, delta: str) -> None:
        return None


@dataclass
class AgentResult:
    question: str
    answer: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    outcomes: list[ToolOutcome] = field(default_factory=list)
    generations: list[Generation] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)  # model outputs that were not a call
    seconds: float = 0.0
    stopped: str = ""  # why the loop ended: answer, ask, limit, repeat, plan, unparsed
    answer_prompt: str = ""  # the prompt the answer was generated from
    answer_source: str = ""  # model (checked and kept), facts (the results' summaries), ask
    answer_problems: list[str] = field(default_factory=list)  # why the model's was replaced

    @property
    def results(self) -> list[A.Result]:
        """Each call made with its outcome, as the answer checks read them."""
        return [
            A.Result(c.name, o.text, o.is_error)
            for c, o in zip(self.calls, self.outcomes, strict=False)
        ]

    @property
    def first_call_s(self) -> float | None:
        """Seconds from the question to the first complete tool call."""
        return self._first_call_s

    _first_call_s: float | None = None

    def stats(self) -> dict[str, Any]:
        gen = [g for g in self.generations if g.tokens]
        tokens = sum(g.tokens for g in gen)
        answer = (
            self.generations[-1]
            if self.stopped not in ("plan", "ask") and self.generations
            else None
        )
        return {
            "seconds": round(self.seconds, 3),
            "first_call_s": None if self._first_call_s is None else round(self._first_call_s, 3),
            "tool_calls": len(self.calls),
            "generated_tokens": tokens,
            "prompt_tokens": sum(g.prompt_tokens for g in gen),
            "answer_tokens_per_s": round(answer.tokens_per_s, 2) if answer else None,
            "unparsed": len(self.unparsed),
            "stopped": self.stopped,
            "answer_source": self.answer_source,
            "answer_problems": self.answer_problems,
        }


# "..., it was suspended": a remark about what the ask before named, not an ask of its own
_ABOUT_IT = re.compile(r"^\W*(it|they|this|that|which)\s+(is|was|were|are|has|had)\b", re.I)
_SHOW = re.compile(
    r"^\W*((please|pls|plz|(could|can|would) you)\s+)?"
    r"(show|get|describe|check|look at|tell me about|look up|look into|pull up|fetch)\b",
    re.I,
)
# "Our team-b folks say ...", "I think x-1 went wrong", "So I'm trying to ...": what the user
# tells before asking sets the scene of the ask that follows; it names no tool of its own
_SETTING = re.compile(
    r"^\W*((hi|hey|hello|morning|good (morning|afternoon|evening))\b\W*)?((so|well|ok|okay)\b\W*)?"
    r"((i|we|they)('m|'re|\s+am|\s+are)\s+(trying|wondering|worried|not sure|unsure|curious)\b"
    r"|(i|we|our(\s+[\w-]+){1,2}|my(\s+[\w-]+){1,2}|someone|people|folks|users|they)\s+(\w+\s+)?"
    r"(say|says|said|think|thought|believe|noticed?|heard|suspect|guess|feel|reckon|complain\w*"
    r"|report(s|ed)?|told me|asked me|wants? me|wanted me|swears?|swore|claims?|claimed|insists?"
    r"|mentioned)\b)",
    re.I,
)
_HAPPENED = re.compile(
    r"^(?!\W*(what|when|where|why|which|who|how|is|are|was|were|did|has|have)\b).*\b(failed"
    r"|crashed|died|restarted|broke|hung|errored|stopped|blew up)"
    r"(\s+(overnight|yesterday|today|again|earlier|recently|just now|last night|this morning"
    r"|a while ago))?\W*$",
    re.I,
)


# "..., and what's idle there?", "which of them sit idle": the places of the ask before
_PLACE_BEFORE = r"((the )?same|that|this) (namespace|cluster|team|ns)"  # "that cluster"
_THERE = re.compile(
    rf"\b(there|(of )?them|they|their|(of )?those|of these|{_PLACE_BEFORE})\b", re.I
)
# a part that names no subject but a place the ask before named opens the ask after it
_AT_PLACE = re.compile(rf"\b{_PLACE_BEFORE}\b|\b(over|in|on) there\b", re.I)
_IT = re.compile(r"\b(it|its|it'?s|that one|this one)\b", re.I)  # the object of the ask before
_SAME_WINDOW = re.compile(
    r"\b(same|that)\s+(window|period|time\s*frame|timeframe|time|range|span|interval)\b", re.I
)
# "..., and then the same for gpu-east": the ask before again, at another place
_SAME_FOR = re.compile(
    r"^\W*(?:(?:and|then|now|also|do)\W+)*(the same|same (thing|again)|likewise|ditto)"
    r"\s+(for|on|in|with)\s+([\w-]+)\W*$",
    re.I,
)
_NODE = re.compile(r"\bnodes?\b", re.I)
_SPACE_WORD = re.compile(r"\b(namespace|ns|in)\s+[a-z0-9][\w-]*-", re.I)


_KIND_BEFORE = re.compile(r"\b(pod|job|node)\s+$", re.I)


def _with_kind(name: str, ask: str) -> str:
    """``name`` with the kind the ask typed before it ("pod x-1"), so that "its log" after
    "pod x-1" reads the pod, not a job of that name."""
    at = ask.find(name)
    kind = _KIND_BEFORE.search(ask[:at]) if at > 0 else None
    return f"{kind.group(1).lower()} {name}" if kind else name


# "keep your hands off the jobs; ...", "no changes: ...": a stance on writes, no subject
_STANCE = re.compile(
    r"^\W*(please\s+|pls\s+|and\s+)?((keep\s+)?(your\s+)?hands\s+off|don'?t\s+touch|do\s+not\s+touch"
    r"|leave\b[^.;:]*\balone|no\s+(changes|writes|actions|edits|touching)|read[- ]only"
    r"|look,?\s+(but\s+)?don'?t\s+touch|(strictly|just|only)\s+look\w*|without\s+(touching|changing))\b",
    re.I,
)


def _asked_part(ask: str) -> str:
    """``ask`` without a scene or stance it opens with (``_SETTING``, ``_STANCE``), whose
    words name no tool."""
    spans = P.spans(ask)
    opens = _SETTING.match(ask) or _STANCE.match(ask)
    return ask[spans[1][0] :] if len(spans) > 1 and opens else ask


def _home_namespace(tool: str, context: list[str], known: Collection[str]) -> list[str]:
    """``context`` with the namespace an ask leaves unsaid where Kubernetes fixes it: a node's
    events are recorded in "default" (an ask that names a namespace said it)."""
    ask = context[0]
    said = _SPACE_WORD.search(ask) or any(_typed(k, ask) for k in known)
    if tool == "list_events" and _NODE.search(ask) and not said:
        return [f"{ask} (namespace default)", *context[1:]]
    return context


# a later ask about every namespace, or one that points back at a result ("its", "their")
_EVERY_SPACE = re.compile(
    r"\b(which|what|all|every|each|per|by|across)\s+(namespaces|teams)\b", re.I
)
_OBJECTS = frozenset({"job", "pod", "name", "namespace"})
_POINTS_BACK = re.compile(r"\b(its|their|it|them|those|that|this|these|there)\b", re.I)


def _own_namespace(
    args: dict[str, Any], tool: P.ToolDef, ask: str, request: str, known: Collection[str]
) -> None:
    """A later call's namespace is one the user typed (in the ask, or the request when the ask
    points back at it), or one a result gave when the ask points back at the result; an ask
    about every namespace ("which namespaces use most GPUs") has none it did not type, and a
    plain word is none unless the server showed such a namespace ("right now": no "now")."""
    ns = args.get("namespace")
    if not isinstance(ns, str) or "namespace" in tool.input_schema.get("required", ()):
        return
    if known and ns.lower() not in known and not name_like(ns):
        del args["namespace"]
    elif _typed(ns, ask):
        return
    elif _EVERY_SPACE.search(ask) or not (_POINTS_BACK.search(ask) or _typed(ns, request)):
        del args["namespace"]


def _own_node(args: dict[str, Any], ask: str, request: str, taken: Collection[Any]) -> None:
    """A later call's node is one the user typed, or one a result gave when the ask points back
    at it ("that node", "there"); never a word of a result the ask does not point at ("what
    GPUs does the fleet have" after a result that says "credentials")."""
    node = args.get("node")
    if not isinstance(node, str):
        return
    if node in taken:  # a job or pod an earlier call named is no node
        del args["node"]
    elif not (_typed(node, request) or (_POINTS_BACK.search(ask) and name_like(node))):
        del args["node"]  # a result's plain word ("credentials") is no node's name


def _own_product(args: dict[str, Any], ask: str, request: str) -> None:
    """A later call's GPU product is one the user typed in its ask, or anywhere in the request
    when the ask points back ("the same kind"); never one a result named ("where would a 3-GPU
    job land" after a quota result that lists H100s)."""
    product = args.get("product")
    if not isinstance(product, str):
        return
    typed = (product, f"{product}s")  # "H100" typed as "h100" or "H100s"
    where = [ask, request] if _POINTS_BACK.search(ask) else [ask]
    if not any(_typed(p, text) for p in typed for text in where):
        del args["product"]


def _typed(name: str, text: str) -> bool:
    """Whether ``text`` holds ``name`` as a whole name (not inside ``name-2``)."""
    return bool(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.I))


def _served(outcome: ToolOutcome) -> bool:
    """Whether a result answers its part of the request: a success, or ``not_found`` (the
    object does not exist, and the error names what does); other errors call for another try."""
    return not outcome.is_error or outcome.text.startswith("error [not_found]")


class Agent:
    def __init__(
        self,
        backend: Backend,
        tools: Sequence[P.ToolDef],
        *,
        clusters: Sequence[str] = (),
        namespaces: Sequence[str] = (),  # those the server showed: where a typed name goes
        instructions: str = "",
        max_calls: int = 4,
        result_budget: int = 6000,
        answer_tokens: int = 512,
        follow_up: str = "on_error",
        grounded: bool = True,
        answer: str = "brief",
    ) -> None:
        if not tools:
            raise ValueError("the server lists no tools")
        self.backend = backend
        self.tools = {t.name: t for t in tools}
        self.clusters, self.namespaces = list(clusters), list(namespaces)
        self.known = frozenset(n.lower() for n in (*clusters, *namespaces))
        self.namespaces_known = frozenset(n.lower() for n in namespaces)
        self.max_calls = max_calls
        self.result_budget = result_budget
        self.answer_tokens = answer_tokens
        # after a successful result: "on_error" answers at once (small models otherwise wander
        # off to other tools); "model" lets the model choose another call or the answer
        if follow_up not in ("on_error", "model"):
            raise ValueError(f"follow_up must be 'on_error' or 'model', not {follow_up!r}")
        self.follow_up = follow_up
        if answer not in ANSWER_MODES:
            raise ValueError(f"answer must be one of {', '.join(ANSWER_MODES)}, not {answer!r}")
        # brief: one sentence of the model's, checked, then the results' own summaries;
        # checked: the model's answer, replaced by the facts when it strays from the results;
        # facts: the results' own summaries, no generation; model: the model's, unchecked
        self.answer_mode = answer
        self.grounded = grounded
        self.system = P.system_prompt(tools, instructions=instructions, clusters=clusters)
        # the byte-stable start of every prompt (what a backend may keep evaluated)
        self.prefix = P.render([P.Message("system", self.system)], open_assistant=False)
        self.reads = [t.name for t in tools if t.read_only]
        self.examples = {  # names only the tools' examples use: never an argument by themselves
            v
            for t in tools
            for _, args in t.examples
            for v in args.values()
            if isinstance(v, str) and any(c.isdigit() or c in "-/" for c in v)
        }
        self.history: list[P.Message] = []  # earlier turns of a chat: questions and answers

    async def _generate(
        self,
        result: AgentResult,
        text: str,
        *,
        grammar: str | None,
        max_tokens: int,
        stop: Sequence[str] = (),
        on_text: Callable[[str], None] | None = None,
    ) -> str:
        def run() -> Generation:
            return self.backend.generate(
                text, grammar=grammar, max_tokens=max_tokens, stop=stop, on_text=on_text
            )

        gen = await anyio.to_thread.run_sync(run)
        result.generations.append(gen)
        return gen.text

    async def _next_call(
        self, result: AgentResult, prompt: str, first: bool, context: list[str]
    ) -> ToolCall | str | None:
        """The model's next tool call; None when it chose to answer (or wrote no call); a
        question to the human when a write lacks an argument the request does not state.
        ``first``: the first call for the ask ``context[0]`` (no answer may come before it)."""
        asked = [w for w in P.changes_asked(context[0]) if w in self.tools]
        # an order to change ("stop x") is the first call; a question may read first
        order = first and asked and not P.is_question(context[0])
        routed = R.route(_asked_part(context[0]), self.reads, self.known)
        offered = asked if order else routed + asked
        grounds: dict[str, G.Grounding] = {}  # by the ask it was made for
        if self.grounded and not order:  # a read that can be called beats one that must ask
            ready = [t for t in offered if t in asked or not self._lacks(t, context, grounds)]
            offered = ready if any(t not in asked for t in ready) else offered
        grammar = G.choice_grammar(offered, allow_answer=not first)
        choice = await self._generate(result, prompt, grammar=grammar, max_tokens=24)
        name = choice.removesuffix('"')
        if name == P.ANSWER:
            return None
        if name not in self.tools or not choice.endswith('"'):
            result.unparsed.append(P.CALL_PREFIX + choice)
            return None
        tool = self.tools[name]
        schema = tool.input_schema
        context = _home_namespace(name, context, self.namespaces_known)
        ground = self._ground(context, grounds) if self.grounded else None
        lacking = G.missing(schema, ground, write=not tool.read_only) if ground else []
        if lacking:
            return G.question_for(name, lacking)
        if ground and not tool.read_only:
            schema = G.for_write(schema, ground)
        common = frozenset(k for _, args in tool.examples for k in args) if tool.examples else None
        grammar = G.args_grammar(schema, ground, common, last_resort=tool.read_only)
        rest = await self._generate(result, prompt + choice, grammar=grammar, max_tokens=320)
        raw = P.CALL_PREFIX + choice + rest
        try:
            doc = json.loads(raw)
            args = doc["arguments"]
            if doc["name"] != name or not isinstance(args, dict):
                raise ValueError("not a call")
        except (ValueError, KeyError, TypeError):
            result.unparsed.append(raw)
            return None
        if ground:
            where = sorted(ground.spaces), self.clusters, self.namespaces
            args = settle(tool, args, context[0], where, first=first)
            if result.calls:  # after a result: its words are no name unless pointed at
                _own_namespace(args, tool, context[0], result.question, self.namespaces_known)
                objects = {  # the jobs and pods earlier calls named (a Node's events: a node)
                    v
                    for c in result.calls
                    for k, v in c.arguments.items()
                    if k in _OBJECTS and c.arguments.get("kind") != "Node"
                }
                _own_node(args, context[0], result.question, objects)
                _own_product(args, context[0], result.question)
        invented = [k for k, v in args.items() if self._invented(v, ground)]
        if invented:  # a name from the examples, not from the user or a result
            return G.question_for(name, invented)
        lacking = [k for k in schema.get("required", ()) if k not in args]
        if lacking and not tool.read_only:  # a write whose name settling dropped: ask for it
            return G.question_for(name, lacking)
        return ToolCall(name, args)

    def _lacks(self, name: str, context: list[str], grounds: dict[str, G.Grounding]) -> bool:
        tool, context = self.tools[name], _home_namespace(name, context, self.namespaces_known)
        ground = self._ground(context, grounds)
        return bool(G.missing(tool.input_schema, ground, write=not tool.read_only))

    def _ground(self, context: list[str], grounds: dict[str, G.Grounding]) -> G.Grounding:
        """Where the call's values may come from (made once per ask, kept in ``grounds``); an
        ask that points back ("where else could it run?") may take its counts from the results
        too."""
        if context[0] not in grounds:
            back = context[1:] if _POINTS_BACK.search(context[0]) else []
            known: dict[str, Sequence[str]] = {"cluster": self.clusters}
            grounds[context[0]] = G.Grounding.of(context[0], context[1:], known, counts_from=back)
        return grounds[context[0]]

    def _asks(self, question: str) -> list[str]:
        """The request's asks: a later part is its own ask only when its words name a subject
        of its own (a tool's, or a change) unlike the part before it; "and whose are they?" and
        "x-0 crashed; log of its earlier container" are one ask each. A first part that names
        no subject ("Hi! I'm new here.", "no changes please;") opens the ask after it, as does
        a later one that points back at a place ("over on that cluster, how many are free")."""
        text = clusters_spelled(P.unglue(question), self.clusters)  # "the east cluster"
        spans: list[tuple[int, int]] = []  # each ask's span of the request, joins included
        before: list[str] = []  # the subject of the ask at hand (every tool: none yet)
        lead: int | None = None  # where a later part that opens the next ask began
        for a, b in P.spans(text):
            part = text[a:b]
            routed, change = R.route(part, self.reads, self.known), P.changes_asked(part)
            if lead is not None:
                a, lead = lead, None
            elif spans and routed == self.reads and not change and _AT_PLACE.search(part):
                lead = a
                continue
            # "show x-1": x-1's state; "x-1 failed, logs please": what happened is the setting
            # of the ask that follows
            subject = bool(R.names_subject(part) or _SHOW.match(part)) and not (
                not spans and (_HAPPENED.search(part) or _SETTING.match(part))
            )
            subject = subject and not _STANCE.match(part)
            own = (routed != self.reads and subject and not _ABOUT_IT.match(part)) or bool(change)
            own = own or bool(spans and self._same_for(part))
            if spans and change and _IT.search(part):  # "x may continue now, resume it": one
                own = own and change != P.changes_asked(text[slice(*spans[-1])])
            first = text[slice(*spans[0])] if spans else ""
            opening = len(spans) == 1 and before == self.reads and not P.changes_asked(first)
            if spans and (opening or not own or (routed == before and not change)):
                spans[-1] = (spans[-1][0], b)
                # a question sets the subject; a scene ("x-1 died overnight") sets none
                if opening and (subject or part.endswith("?") or P.is_question(part)):
                    before = R.route(text[slice(*spans[-1])], self.reads, self.known)
            else:
                spans.append((a, b))
                before = routed if subject or change else self.reads
                if change and not P.is_question(part):
                    before = []  # after an order, a read is its own ask: "... then its state"
        if lead is not None:  # nothing came after it: it belongs to the ask before
            spans[-1] = (spans[-1][0], len(text))
        if len(spans) > P.MAX_ASKS:
            spans[P.MAX_ASKS - 1 :] = [(spans[P.MAX_ASKS - 1][0], spans[-1][1])]
        asks = [text[a:b] for a, b in spans] or [question]
        for i in range(1, len(asks)):  # "...on gpu-west, and what's idle there?": gpu-west
            if place := self._same_for(asks[i]):
                asks[i] = self._moved(asks[i - 1], place)
                continue
            if kinds := {m.group(0).split()[-1].lower() for m in _THERE.finditer(asks[i])}:
                # "that cluster": only the cluster; "there", "of them": every place
                clusters = {c.lower() for c in self.clusters}
                only = {"cluster"} if kinds == {"cluster"} else None
                only = {"namespace"} if kinds <= {"namespace", "team", "ns"} else only
                places = [
                    w
                    for w in G.names_in(asks[i - 1]).split()
                    if w.lower() in self.known
                    and w not in asks[i]
                    and (
                        only is None
                        or ("cluster" if w.lower() in clusters else "namespace") in only
                    )
                ]
                asks[i] += f" ({' '.join(places)})" if places else ""
            if _IT.search(asks[i]):  # "h100-1: what runs on it, and how busy it's been": h100-1
                objects = [
                    _with_kind(w, asks[i - 1])
                    for w in G.names_in(asks[i - 1]).split()
                    if "-" in w and w.lower() not in self.known and w not in asks[i]
                ]
                asks[i] += f" ({' '.join(dict.fromkeys(objects))})" if objects else ""
            if _SAME_WINDOW.search(asks[i]) and (windows := windows_in(asks[i - 1])):
                asks[i] += f" ({', '.join(windows)})"  # "... for the same window": the one before
        return asks

    def _names_so_far(self, question: str, asks: list[str]) -> str:
        """The names of ``asks`` and the known places (clusters, namespaces) of the request."""
        places = G.names_in(clusters_spelled(question, self.clusters)).split()
        so_far = G.names_in(clusters_spelled(" ".join(asks), self.clusters)).split()
        return " ".join(dict.fromkeys([*so_far, *(w for w in places if w.lower() in self.known)]))

    def _same_for(self, part: str) -> str | None:
        """The known place of a part that asks the ask before again there ("the same for
        gpu-east"), or None."""
        m = _SAME_FOR.match(part)
        return m.group(4) if m and m.group(4).lower() in self.known else None

    def _moved(self, ask: str, place: str) -> str:
        """``ask`` with its place of ``place``'s kind (a cluster, a namespace) made ``place``."""
        clusters = {c.lower() for c in self.clusters}
        kind = place.lower() in clusters
        words = [
            w
            for w in G.names_in(ask).split()
            if w.lower() in self.known and (w.lower() in clusters) == kind
        ]
        for w in dict.fromkeys(words):
            ask = re.sub(rf"(?<![\w-]){re.escape(w)}(?![\w-])", place, ask)
        return ask if words else f"{ask} ({place})"

    def _invented(self, value: Any, ground: G.Grounding | None) -> bool:
        """A name from the examples the user did not type; a namespace the server showed that
        the user typed with a slip ("tema-b") is typed."""
        if ground is None or value not in self.examples or value in ground.words:
            return False
        low = str(value).lower()  # "Team-b's quota": team-b, typed
        typed = {w.lower() for w in ground.words}
        return low not in typed and (
            low not in self.known or not any(R.close(w, low) for w in typed)
        )

    async def ask(
        self,
        question: str,
        runner: ToolRunner | None,
        events: Events | None = None,
        *,
        plan: bool = False,
    ) -> AgentResult:
        """Answer ``question`` (``plan``: only decide the first tool call, call nothing)."""
        events = events or Events()
        t0 = time.perf_counter()
        result = AgentResult(question)
        messages = [P.Message("system", self.system), *self.history, P.Message("user", question)]
        result.stopped = await self._act(result, messages, None if plan else runner, events, t0)
        if result.stopped == "ask":  # the question to the human is the answer
            result.answer_source = "ask"
            events.answer_start()
            events.text(result.answer)
        if result.stopped not in ("plan", "ask"):
            await self._answer(result, messages, events)
        if result.stopped != "plan":
            self.history += [P.Message("user", question), P.Message("assistant", result.answer)]
            self.history = self.history[-8:]  # a chat remembers its last four exchanges
        result.seconds = time.perf_counter() - t0
        return result

    async def _act(
        self,
        result: AgentResult,
        messages: list[P.Message],
        runner: ToolRunner | None,
        events: Events,
        t0: float,
    ) -> str:
        """Tool calls, each result appended to ``messages``, until the model answers or a limit
        stops it; why the calls ended (``plan``: the first call is decided, ``runner`` None)."""
        seen: set[str] = set()
        asks = self._asks(result.question)  # a request may ask two things: one call for each
        results: list[str] = []  # where grounded argument values may come from, besides asks
        while True:
            if len(result.calls) >= self.max_calls:
                return "limit"
            done = sum(map(_served, result.outcomes))
            if done and done >= len(asks) and self.follow_up == "on_error":
                return "answer"
            at = min(done, len(asks) - 1)
            ask = asks[at]
            # the ask at hand first; the request's places, the asks so far and the results may
            # fill names too (an object typed only in a later ask is that ask's: "events in
            # team-b, then pod web-0's logs"; a place may be said last for all: "..., on gpu-east")
            whole = self._names_so_far(result.question, asks[: at + 1])
            context = [ask, whole, *results] if len(asks) > 1 else [ask, *results]
            prompt = P.render(messages) + P.CALL_PREFIX
            # a new ask (none yet, or the last result served the one before) must get a call
            fresh = not result.outcomes or _served(result.outcomes[-1])
            call = await self._next_call(result, prompt, fresh, context)
            if isinstance(call, str):  # what the results said so far, then the question
                said = result.results
                result.answer = f"{A.facts(said)}\n\n{call}" if said else call
                return "ask"
            if call is None:
                return "unparsed" if result.unparsed else "answer"
            if result._first_call_s is None:
                result._first_call_s = time.perf_counter() - t0
            key = json.dumps(call.as_json(), sort_keys=True)
            if key in seen:  # the same call again would only repeat the same result
                return "repeat"
            seen.add(key)
            result.calls.append(call)
            if runner is None:
                return "plan"
            events.tool_call(call)
            outcome = await runner.call(call.name, call.arguments)
            result.outcomes.append(outcome)
            results.append(outcome.text[: self.result_budget])
            events.tool_result(call, outcome)
            done = sum(map(_served, result.outcomes))
            later = asks[done] if _served(outcome) and done < len(asks) else None
            messages += self._exchange(call, outcome, later)

    def _exchange(self, call: ToolCall, outcome: ToolOutcome, later: str | None) -> list[P.Message]:
        """The call as the model's turn, then its result and what to do next as the user's
        (``later``: the part of the request still to serve)."""
        answering = _served(outcome) and self.follow_up == "on_error" and later is None
        then = P.REPLY if answering else P.NEXT
        if later is not None:
            then = P.NEXT_PART.format(part=P.escape_data(later))
        return [
            P.Message("assistant", json.dumps({"name": call.name, "arguments": call.arguments})),
            P.result_message(
                call.name,
                outcome.text,
                is_error=outcome.is_error,
                budget=self.result_budget,
                then=then,
            ),
        ]

    async def _answer(self, result: AgentResult, messages: list[P.Message], events: Events) -> None:
        """The answer from the conversation so far, streamed to ``events`` (unless it is held
        to the results first: ``brief`` and ``checked``)."""
        results = result.results
        events.answer_start()
        mode = self.answer_mode
        # nothing exists to answer about: the error (with its near matches) is the answer
        missing = mode in ("brief", "checked") and A.premise_false(results) == "missing"
        if results and (mode == "facts" or missing):
            result.answer, result.answer_source = A.facts(results), "facts"
            events.text(result.answer)
            return
        if messages[-1].role == "user" and messages[-1].content.endswith(P.NEXT):
            last = messages[-1].content
            messages[-1] = P.Message("user", last[: -len(P.NEXT)] + P.REPLY)
        if mode == "brief" and results:
            last = messages[-1].content
            messages[-1] = P.Message("user", last.removesuffix(P.REPLY) + P.BRIEF)
        result.answer_prompt = P.render(messages)
        answer = await self._generate(
            result,
            result.answer_prompt,
            grammar=None,
            max_tokens=BRIEF_TOKENS if mode == "brief" else self.answer_tokens,
            stop=[P.END, "<|im_start|>", "<|endoftext|>", *(["\n"] if mode == "brief" else [])],
            on_text=events.text if mode == "model" else None,
        )
        result.answer, result.answer_source = answer.strip(), "model"
        if mode == "model":
            return
        result.answer, found = A.settle(answer, result.question, results)
        if found:
            result.answer_source = "facts"
            result.answer_problems = [f"{p.kind}: {p.detail}" for p in found]
        elif mode == "brief" and results:  # the sentence, then the facts it stands on
            result.answer = f"{result.answer}\n\n{A.facts(results)}"
            result.answer_source = "brief"
        events.text(result.answer)
