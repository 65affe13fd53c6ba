"""A read call's names put in the roles the request's own words give them.

The grammar lets a small model fill only names the conversation holds, but not always in the
right place. After the call is decoded, for a read tool only (a write is never completed or
moved: it asks instead, see ``grammar.missing``):

- a name after "pod" goes in ``pod``, not ``job``; a tool that takes either gets one of them;
- the namespace's value never fills another role as well ("warnings ml-platform" is no event
  about an object named ml-platform);
- a namespace, a served cluster or a GPU product the request names, left out by the model, is
  filled in when the request names exactly one;
- a job or pod the model named with a plain word ("over") is the request's one name-like word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mcp_kube.llm.grounding import is_product, name_like, quoted
from mcp_kube.llm.prompt import ToolDef
from mcp_kube.llm.route import close, spelled
from mcp_kube.llm.slots import is_quantity, settle_numbers

__all__ = ["settle", "settle_choices", "settle_roles"]

_OTHER_ROLES = ("name", "job", "pod", "node")
_ROLES = ("namespace", "cluster", *_OTHER_ROLES)
_NAME_LIKE = re.compile(r"(?<![\w.-])[a-z][a-z0-9]*(?:-[a-z0-9]+)+(?![\w-])")  # "t5-3b", "h100-1"
_OBJECT = re.compile(r"\b(jobs?|pods?)\b", re.IGNORECASE)  # a name here may be one of these
_POD_INDEX = re.compile(r"-0$")  # a Job's first pod: <job>-0 ("diff-3" is a job's own name)


def _after(word: str, value: str, request: str) -> bool:
    """Whether ``value`` is typed after ``word`` ("pod x-1", "job: x", "job called x"), not
    after a comma ("a pod, ml-platform": a place)."""
    pattern = rf"\b{word}s?(\s*[:=#]\s*|\s+)['\"`]?((named|called)\s+)?{re.escape(value)}\b"
    return bool(re.search(pattern, request, re.IGNORECASE))


def _pod_named(name: str, request: str) -> bool:
    """A pod: typed as one, or named like one of a Job's pods ("train-0") with no "job" before."""
    if _typed_as_pod(name, request):
        return True
    return bool(_POD_INDEX.search(name)) and not _after("job", name, request)


def _typed_as_pod(name: str, request: str) -> bool:
    """Whether ``name`` is typed after "pod" or right before it ("x-1 pod")."""
    before = rf"(?<![\w-]){re.escape(name)}\s+pod\b"
    return _after("pod", name, request) or bool(re.search(before, request, re.IGNORECASE))


def _job_named(name: str, request: str) -> bool:
    """A job: after "job", or neither after "pod" nor named like a Job's pod ("no pod has come
    up for x-1": x-1 is the job)."""
    if _after("job", name, request):
        return True
    return not _POD_INDEX.search(name) and not _typed_as_pod(name, request)


def _one_of_job_or_pod(args: dict[str, Any], request: str) -> None:
    job, pod = args.get("job"), args.get("pod")
    if isinstance(job, str) and (pod == job or pod is None) and _pod_named(job, request):
        args["pod"] = job
        del args["job"]
    elif isinstance(pod, str) and job is None and _job_named(pod, request):
        args["job"] = pod
        del args["pod"]
    elif isinstance(job, str) and pod == job:
        del args["pod"]  # one name for both: a job, as it is not named like a pod
    elif isinstance(job, str) and isinstance(pod, str):  # both: the role the request gives
        del args["pod" if _after("job", job, request) or not _after("pod", pod, request) else "job"]


def _swap_pod_named_namespace(args: dict[str, Any]) -> None:
    """A namespace named like a Job's pod ("eval-0") and a pod or job named like a namespace
    ("team-b") trade places: pods end in their index, namespaces rarely do."""
    ns = args.get("namespace")
    if not isinstance(ns, str) or not _POD_INDEX.search(ns):
        return
    for role in ("pod", "job", "name"):
        other = args.get(role)
        if isinstance(other, str) and not _POD_INDEX.search(other):
            args["namespace"], args[role] = other, ns
            return


def _quantity(value: Any) -> bool:
    return isinstance(value, str) and is_quantity(value)


def settle_roles(
    args: dict[str, Any],
    params: Sequence[str],
    request: str,
    spaces: Sequence[str],
    clusters: Sequence[str],
) -> dict[str, Any]:
    """``args`` with names moved, dropped or filled in as above (a new dict). ``params``: the
    tool's argument names; ``spaces``: the words the request puts where a namespace goes."""
    out = {k: v for k, v in args.items() if not (k in _ROLES and _quantity(v))}
    _swap_pod_named_namespace(out)
    ns = out.get("namespace")
    if isinstance(ns, str) and is_product(ns) and ns not in spaces:
        del out["namespace"]  # "the h100 nodes": a GPU product, no namespace
    elif (
        isinstance(ns, str)
        and "node" in params
        and "node" not in out
        and _node_like(ns)
        and not _in_namespace(ns, request)
    ):
        out["node"] = out.pop("namespace")  # "sm occupancy for h200-0": a node
    if "job" in params and "pod" in params:
        _one_of_job_or_pod(out, request)
    container = out.get("container")
    if container is not None and container in (out.get("pod"), out.get("job")):
        del out["container"]  # the pod's name is not its container's
    elif isinstance(container, str) and _after("pod", container, request):
        del out["container"]  # "pod x-1 - previous container logs": x-1 is the pod
        if "pod" in params and not out.get("pod") and not out.get("job"):
            out["pod"] = container
    ns = out.get("namespace")
    for role in _OTHER_ROLES:
        if ns is not None and out.get(role) == ns and not _after(role, ns, request):
            del out[role]
    # only a word that looks like a name ("team-a", "ns2"), never a plain one ("namespace over")
    if "node" in params:  # "sm occupancy for h200-0": named as nodes are, and not "in" it
        spaces = [w for w in spaces if not (_node_like(w) and not _in_namespace(w, request))]
    taken = {str(v) for v in out.values()}  # the node it went to above
    named_spaces = sorted(w for w in set(spaces) - set(clusters) - taken if re.search(r"[-\d]", w))
    if "namespace" in params and "namespace" not in out and len(named_spaces) == 1:
        out["namespace"] = named_spaces[0]
    low = request.lower()
    named = [c for c in clusters if re.search(rf"\b{re.escape(c.lower())}\b", low)]
    if "cluster" in params and "cluster" not in out and len(named) == 1:
        out["cluster"] = named[0]
    products = {_product(w) for w in re.findall(r"(?<![\w-])[A-Za-z]+\d+\w*(?![\w-])", request)}
    products.discard(None)
    if "product" in params and "product" not in out and len(products) == 1:
        out["product"] = products.pop()  # "free h100s on gpu-east": the one product named
    if "node" in params and "node" not in out and not _OBJECT.search(request):
        taken = {str(v).lower() for v in out.values()} | {w.lower() for w in [*spaces, *clusters]}
        nodes = {
            w
            for w in _NAME_LIKE.findall(low)
            if w not in taken and (_node_like(w) or _after("node", w, request))
        }
        if len(nodes) == 1:  # "how busy it has been (h200-1)": the one node named
            out["node"] = nodes.pop()
    _plain_name(out, request, [*spaces, *clusters])
    if "job" in params and "pod" in params:  # the names it filled in take their role too
        _one_of_job_or_pod(out, request)
        _unnamed_object(out, request, [*spaces, *clusters])
    return out


_I = re.IGNORECASE
# tool -> argument -> value -> the words that choose it; (tuned on tests/eval/dev.yaml only)
CHOICES: dict[str, dict[str, dict[Any, re.Pattern[str]]]] = {
    "list_jobs": {
        "status": {
            "active": re.compile(r"\b(run+ing|active|in progress|ongoing)\b", _I),
            "succeeded": re.compile(
                r"\b(succeeded|successful|completed?|completion|finished|done)\b", _I
            ),
            "failed": re.compile(r"\b(fail(ed|ing|ures?)?|crashed|errored)\b", _I),
            "suspended": re.compile(
                r"\b(suspended|paused|on hold|held|resumable|frozen|shelved)\b"
                r"|\b(could|can|to) (be )?resume\b",
                _I,
            ),
        }
    },
    "list_events": {
        "kind": {
            k: re.compile(
                rf"\b{w}s?\W+events?\b|\bevents?\W+(of|for|about|on)\W+(the\W+)?{w}s?\b", _I
            )
            for k, w in (
                ("Job", "job"),
                ("Pod", "pod"),
                ("Node", "node"),
                ("PersistentVolumeClaim", "(pvc|persistentvolumeclaim)"),
            )
        },
        "warnings_only": {
            False: re.compile(r"\b(all|every)\W+events?\b|\bnormal\b|\bnot (just|only) warn", _I),
            True: re.compile(r"\bwarn(ing)?s?\b", _I),
        },
    },
    "gpu_utilization": {
        "group_by": {
            k: re.compile(rf"\b(per|by|each|for (each|every))\W+{w}\b|\b{w}s\b", _I)
            for k, w in (
                ("node", "node"),
                ("namespace", "(namespace|team)"),
                ("job", "job"),
                ("pod", "pod"),
            )
        }
    },
    "pod_logs": {
        "previous": {
            True: re.compile(
                r"\b(previous|earlier|prior|last)\W+(container|run|instance|attempt|crash)\b"
                r"|\bbefore (it|the) (crash|restart)|\bbefore (a |the |its )?restart\b"
                r"|\bcrash(ed)?\s+(container|instance|run|attempt)\b",
                _I,
            )
        }
    },
}
GUESSES = {"status", "previous"}  # filters the model may not set on its own
FIRST_WINS = {"warnings_only"}  # "all events, not just warnings": the first value named wins
_GREP_FOR = re.compile(
    r"\b(?:search|grep|filter|scan|look|find)\w*\b[^.?!]*?\bfor\s+"
    r"(?!(?:the|a|an|job|pod|lines?|logs?|me|us)\b)([A-Za-z_][\w.:-]*)",
    re.IGNORECASE,
)
# "did x print OOM", "has it thrown a RuntimeError": a capitalised term written after the verb
_PRINTED = re.compile(
    r"\b(?:print(?:s|ed)?|say|says|said|mention(?:s|ed)?|log(?:s|ged)?|emit(?:s|ted)?"
    r"|throw(?:s|n)?|threw|raise[sd]?|hit)\s+(?:any\s+|an?\s+)?"
    r"([A-Z][A-Z0-9_]+\b|[A-Z]\w*(?:Error|Exception)\b|NaN\b)"
)
_BY_LABEL = re.compile(r"\bby (?:the )?label\W+([A-Za-z0-9][\w./-]{0,62})", re.IGNORECASE)
_KINDS = {"job": "Job", "pod": "Pod", "node": "Node", "pvc": "PersistentVolumeClaim"}


def _kind_of(name: str, request: str) -> str | None:
    """The kind the request gives an object: "job x", "x job", "pod x-0"."""
    for word, kind in _KINDS.items():
        value = re.escape(name)
        if re.search(rf"\b{word}s?\W+{value}\b|\b{value}\W+{word}\b", request, _I):
            return kind
    return None


def settle_choices(tool: str, args: dict[str, Any], request: str) -> dict[str, Any]:
    """``args`` with each choice the request's words make (exactly one value named) set, and
    a filter of ``GUESSES`` the request names no value of dropped (a new dict)."""
    out = dict(args)
    typed = spelled(request)  # "faild": failed
    for arg, values in CHOICES.get(tool, {}).items():
        named = [v for v, rx in values.items() if rx.search(request) or rx.search(typed)]
        if len(named) == 1 or (named and arg in FIRST_WINS):
            out[arg] = named[0]
        elif not named and arg in GUESSES:
            out.pop(arg, None)
    said = quoted(request)
    if tool == "pod_logs" and len(said) == 1 and not out.get("grep"):
        out["grep"] = said[0]  # the one quoted text of a logs request is what to look for
    names = {out.get(k) for k in ("job", "pod", "namespace", "container")}
    if tool == "pod_logs" and not said and (not out.get("grep") or out["grep"] in names):
        out.pop("grep", None)  # a name is no text to look for
        if sought := _GREP_FOR.search(request) or _PRINTED.search(request):
            out["grep"] = sought.group(1)  # "search the logs for Traceback", "print OOM"
    label = _BY_LABEL.search(request)
    if tool == "gpu_usage_report" and label:
        out["group_by"] = f"label:{label.group(1)}"
    name = out.get("name")
    if tool == "list_events" and isinstance(name, str) and "kind" not in out:
        kind = _kind_of(name, request)
        if kind:
            out["kind"] = kind
    return out


def settle(
    tool: ToolDef,
    args: dict[str, Any],
    ask: str,
    where: tuple[Sequence[str], Sequence[str], Sequence[str]],
    *,
    first: bool,
) -> dict[str, Any]:
    """A call's arguments settled by the ask's words and what the server showed. ``where``:
    the words the ask puts where a namespace goes, the served clusters, and the namespaces the
    server showed this user. A write only has a namespace and a name that trade places
    corrected (a namespace the server showed, typed by the user, is never a job's name); it is
    never completed or moved otherwise (it asks instead). A read's roles, choices and numbers
    are settled as above (see also ``slots``); its first call runs on a cluster the ask names,
    or the default: never on one a result of an earlier ask mentioned (a later call may follow
    a result's lead, "the same job is on gpu-west")."""
    spaces, clusters, known = where
    out = _known_namespace(dict(args), ask, known, write=not tool.read_only)
    if not tool.read_only:
        return out
    schema = tool.input_schema
    _node_role(out, "node" in schema.get("properties", {}), ask, known)
    if sum(_said(c, ask) for c in clusters) > 1:
        out.pop("cluster", None)  # "gpu-east versus gpu-west": every cluster
    named = [*spaces, *(k for k in known if _said(k, ask) and k not in spaces)]
    out = settle_roles(out, list(schema.get("properties", {})), ask, named, clusters)
    ns = out.get("namespace")
    if isinstance(ns, str) and ns not in known and (slip := _slip_of(ns, known)):
        out["namespace"] = slip  # "idle in tema-a", filled in above from the ask's words
    cluster = out.get("cluster")
    if first and isinstance(cluster, str) and not _said(cluster, ask):
        del out["cluster"]
    return settle_numbers(settle_choices(tool.name, out, ask), schema, ask)


_MIG = re.compile(r"^[0-9]+g\.[0-9]+gb$", re.IGNORECASE)  # a MIG profile, no node


def _node_role(args: dict[str, Any], takes_node: bool, ask: str, known: Sequence[str]) -> None:
    """A namespace the server never showed, typed after "on" or "node", is a node ("GPUs on
    h100-1"), or no argument of a tool without one; a node that is a MIG profile, or an object
    "in" a namespace, is none."""
    ns = args.get("namespace")
    unknown = isinstance(ns, str) and bool(known) and ns not in known and "node" not in args
    placed = _after("on", str(ns), ask) or _after("node", str(ns), ask)
    if unknown and (placed or (_node_like(str(ns)) and not _in_namespace(str(ns), ask))):
        node = args.pop("namespace")
        if takes_node:  # else a node this tool does not filter by: every namespace
            args["node"] = node
    node = args.get("node")
    if not isinstance(node, str) or _after("node", node, ask) or _after("on", node, ask):
        return
    spaces = "|".join(map(re.escape, known)) or r"[\w-]+"
    if _MIG.match(node) or re.search(rf"\b{re.escape(node)}\s+(in|from)\s+({spaces})\b", ask):
        del args["node"]


def _node_like(name: str) -> bool:
    """Named as nodes are, after their GPU ("h100-1", "a100-mig-0", "l4-shared-0")."""
    first, _, rest = name.partition("-")
    return bool(rest) and _product(first) is not None


def _in_namespace(name: str, ask: str) -> bool:
    return any(_after(w, name, ask) for w in ("namespace", "ns", "in"))


# "in the default namespace": the word before "namespace" names it
_WORD_BEFORE_NAMESPACE = re.compile(
    r"\b(?:in|of|for|from)\s+(?:the\s+)?(?!(?:the|a|an|that|this|same|each|every|which|what|any"
    r"|my|our|its|their|your|whole|entire|one)\b)([a-z0-9][a-z0-9-]*)\s+(?:namespace|ns)\b",
    re.IGNORECASE,
)


def _unnamed_object(args: dict[str, Any], ask: str, places: Sequence[str]) -> None:
    """A job or pod the model left out is the one name-like word of the ask that is no place,
    product or node ("output of x-0 before it restarted": pod x-0), in the role it is typed."""
    if args.get("job") or args.get("pod"):
        return
    taken = {p.lower() for p in places}
    names = {
        w
        for w in _NAME_LIKE.findall(ask.lower())
        if w not in taken and _product(w) is None and not _node_like(w)
    }
    if len(names) == 1:
        name = names.pop()
        args["pod" if _pod_named(name, ask) else "job"] = name


def _plain_name(args: dict[str, Any], ask: str, places: Sequence[str]) -> None:
    """A job or pod the model named with a plain word ("over", "lately") is the one name-like
    word of the ask ("t5-3b") that is no namespace, cluster or product, if there is one."""
    taken = {p.lower() for p in places}
    names = {w for w in _NAME_LIKE.findall(ask.lower()) if w not in taken}
    for role in ("name", "job", "pod"):
        value = args.get(role)
        if isinstance(value, str) and not re.search(r"[-\d]", value) and len(names) == 1:
            args[role] = names.pop()
            return


_FAMILY = re.compile(r"(H|A|L|B|MI|GH|GB|RTX)[0-9]")  # not "gpt2", "t5", "v3": names


def _product(word: str) -> str | None:
    """A GPU product as written in a request ("h100s", "A100"), in capitals; None for others.
    A plural's small "s" goes; a capital one is the product's own ("L40S")."""
    plural = word.endswith("s") and len(word) > 3
    word = word.upper()
    if not is_product(word) or not _FAMILY.match(word):
        return None
    return word[:-1] if plural else word


def _known_namespace(
    args: dict[str, Any], ask: str, known: Sequence[str], *, write: bool
) -> dict[str, Any]:
    """A namespace the server never showed, and a name in another role that it did, trade
    places. A namespace the server showed fills no other role. For a read, a namespace it
    never showed is the one known namespace the ask names (if exactly one), or the one known
    namespace it is a slip of ("tema-b"), or else goes unless the user typed it."""
    if not known:
        return args
    ns = args.get("namespace")
    if isinstance(ns, str) and ns not in known:
        role = next((r for r in ("name", "job", "pod") if args.get(r) in known), None)
        if role:
            args["namespace"], args[role] = args[role], ns
    for role in ("name", "job", "pod", "node"):  # a namespace the server showed is no object
        value = args.get(role)  # nor one typed with a slip ("ml-plaform")
        shown = value in known or (isinstance(value, str) and _slip_of(value, known))
        if shown and not _after(role, str(value), ask):
            del args[role]  # (a write then lacks it, and asks)
    if write:
        return args
    ns = args.get("namespace")
    if not isinstance(ns, str) or ns in known:
        return args
    said = [k for k in known if _said(k, ask)]
    before = _WORD_BEFORE_NAMESPACE.search(ask)
    if before and not said and before.group(1).lower() != ns.lower():
        args["namespace"] = before.group(1).lower()  # not a word after it ("namespace incl.")
        return args
    slip = _slip_of(ns, known)  # "tema-b" typed for team-b
    words = re.findall(r"[\w-]+", ask.lower())
    typed = {k for k in known for w in words if close(w, k)}  # ... and the model chose another
    if len(said) == 1:
        args["namespace"] = said[0]
    elif not said and slip:
        args["namespace"] = slip
    elif not said and len(typed) == 1 and not _in_namespace(ns, ask):
        args["namespace"] = typed.pop()
    elif not _said(ns, ask):
        del args["namespace"]  # neither shown by the server nor typed: a name from a result
    elif not name_like(ns) and not _in_namespace(ns, ask):
        del args["namespace"]  # a plain word ("which", "s", "fleet-wide") typed as no namespace
    elif _POD_INDEX.search(ns) and not _in_namespace(ns, ask):
        del args["namespace"]  # "which node is train-0 on": a pod's name, no namespace
    return args


def _slip_of(word: str, known: Sequence[str]) -> str | None:
    """The one known namespace ``word`` is a slip of, if exactly one."""
    slips = [k for k in known if close(word.lower(), k)]
    return slips[0] if len(slips) == 1 else None


def _said(word: str, text: str) -> bool:
    return bool(re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, re.IGNORECASE))
