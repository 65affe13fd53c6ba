"""Which read tools a request's own words point at, before the model chooses among them.

A small model choosing from fifteen tools confuses neighbours: logs with events, quota with
usage, a pending job with its progress. The words users type for each tool's subject are few
and plain ("log", "quota", "stuck", "idle", "where ... fit"), so the choice is narrowed to the
tools whose subject the request names; the model still chooses among them, and its arguments are
still grounded. A request that names no subject keeps every tool. Writes are not routed here:
they are offered only for their own verbs (``prompt.changes_asked``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Sequence

__all__ = ["close", "names_subject", "route", "spelled"]

_I = re.IGNORECASE
# "fits in the quota": a question about the quota, not about a node
_IN_QUOTA = (  # "fit in its quota", "fit two more H100s inside its quota"
    r"(\s+[\w-]+){0,4} (in|into|inside|within|under) (the |its |their |my |our |[\w-]+'s )?"
    r"(quota|budget|allowance)"
)
_JOB_NAME = r"(job\s+)?[a-z][a-z0-9]*-[\w-]+"  # "x-1", "job t5-xl": a Job's name, as users type it
_YES_NO = rf"^\W*(has|did|is|was)\s+{_JOB_NAME}"  # "has x-1 ...", "did job x-1 ..."
_SEE = r"\s+(please\s+)?(see|get|have|look|view|read|grab|know|hear)\b"  # "can I see x": a request
# tool -> the words that name its subject (tuned on tests/eval/dev.yaml only)
# "which node could take a 4-GPU job" (not "it would take a while"): a job to be placed
_TAKES = (  # "could gpu-west take an 8-gpu job" too; "could team-a take 2 more in its quota": quota
    r"\b(could|can|would)\s+([\w]+-[\w-]+\s+|it\s+|you\s+)?(take|host|accommodate|accept)\b"
    r"(?![^.?!;]*\b(quota|budget|allowance)\b)"
    r"(?!\s+(a\s+)?(while|bit|few|long|minute|second|hour|day|week|ages|time|look|peek|glance"
    r"|note|moment|care|break|rest)s?\b)"
)
_NOW = r"\b(right now|now|currently|at the moment|at present)\b"
SUBJECTS: dict[str, re.Pattern[str]] = {
    "pod_logs": re.compile(
        r"\blogs?\b|\blogged\b|\bprint(ed|s|ing)?\b|\boutput\b|\bstdout\b|\bstderr\b|\bgrep\b"
        r"|\blines?\b|\b(earlier|previous|last) container\b|\bcrash(ed|es|ing)?\b|\bwr[io]te\b"
        r"|\bcrashloop\w*|\bstack ?traces?\b|\btracebacks?\b|\bexceptions?\b",
        _I,
    ),
    "list_events": re.compile(
        r"\bevents?\b|\bwarnings?\b|\bscheduling (failures?|errors?|problems?)\b"
        r"|\b(weird|odd|strange|unusual)\b.*\bhappen\w*|\bevict\w*|\boom ?kill\w*|\bpreempt\w*"
        r"|\bkick\w*\b[^.?!;]*\boff (of )?(their |its |the |a )?nodes?\b"
        r"|\b(kubernetes|k8s|the cluster)\s+(has\s+)?(recorded|noted|reported|complain\w*"
        r"|flagged)\b|\bhappenings?\b|\brecorded (against|about|for|on)\b"
        r"|\b(happen\w*|going on)\b[^.?!;]*\bnode\b"  # a node: its events
        r"|\bnode\b[^.?!;]*\b(happen\w*|going on)\b",
        _I,
    ),
    "idle_gpus": re.compile(
        r"\bidle\b|\bunused\b|\bwast(e|ed|ing)\b|\bdoing nothing\b|\bnobody\b.*\busing\b"
        r"|\b(below|under)\b.*(\bpercent\b|%)|\bsitting (idle|unused)\b"
        r"|\bstranded\b|\bzombies?\b|\b(did|do|does|done|doing) (nothing|zilch|nada)\b",
        _I,
    ),
    "gpu_utilization": re.compile(
        r"\butili[sz]ation\b|\butli[sz]ation\b|\butil\b|\butili[sz]ed\b|\bbusy\b|\bloaded\b"
        r"|\bhow hard\b"
        r"|\bpower\b|\bgpu mem(ory)?\b|\bmemory used\b|\bdcgm\b|\bcomputing\b|\bpercentage\b"
        r"|\bsaturat\w*|\bhot\b|\btemperature\b|\bmemory usage\b"
        r"|\bworking hard\b|\bcompute\b.*\bused\b|\bsm\b|\bdoing (any |real )?work\b"
        r"|\b(gpu|compute) load\b|\bload (on|of)\b|\btensor cores?\b"
        r"|\b(gpu|card|accelerator|sm)s? activity\b|\bcrunch\w*",
        _I,
    ),
    "gpu_quota": re.compile(
        r"\bquotas?\b|\bcap\b|\bheadroom\b|\bkueue\b|\ballowance\b|\blimit left\b"
        r"|(?<!\bin the )(?<!\bin )\bqueues?\b"  # "sat in the queue": a waiting job
        r"|\bbudget\b|\blimit\b|\b(cluster|local) ?queues?\b|\bceiling\b|\bshare of\b"
        r"|\b(gpu|accelerator|fair|our|their|its) share\b"
        r"|\ballotments?\b"
        r"|\bgpus?\b.*\b(allowed|entitled)\b(?! to (cancel|delete|submit|suspend|resume))",
        _I,
    ),
    "explain_pending": re.compile(
        r"\bpend(ing)?\b|\bwaiting\b|\bstuck\b|\bqueued\b|\bin (the )?queue\b"
        r"|\b(won'?t|can'?t|cannot|doesn'?t|didn'?t|not)\s+([\w-]+\s+){0,2}(start|run|schedul|admit)"
        r"|\b(hasn'?t|has not|isn'?t|is not|not) (been )?(start|run|schedul|admit)\w*"
        r"|\bwhy\b.*\b(not|can'?t|cannot|won'?t)\b"
        r"|\bwhy\b.*\b(hasn'?t|haven'?t|isn'?t|aren'?t)\b.*\b(start|run|schedul|admit)\w*"
        r"|\bnever (got|gets?|went|goes) (a node|a slot|a spot|any gpus?|a gpu|placed|scheduled"
        r"|started|admitted|going|off the ground)\b"
        r"|\b(hasn'?t|didn'?t|won'?t|not) (got|get|gotten) (going|started|off the ground)\b"
        r"|\b(can'?t|cannot) find a node\b|\bobstacles?\b"
        r"|\bnever\s+(kicked off|started|began|launched|ran|got admitted)\b"
        r"|\bshould\s+(be|have\s+been)\s+(running|started|scheduled|admitted)\b[^.?!;]*\bnot\b"
        r"|\b(prevent|stop|keep)\w*\b.*\bfrom (running|starting|being|scheduling|getting)\b"
        r"|\bblock(ed|ing)\b|\bheld up\b|\bhold[- ]?ups?\b|\bwhy\b[^.?!;]*\bwaits?\b"
        r"|\bno pods? (has |have )?(come|came|started|spun|shown) up\b"
        r"|\bholding\s+([\w-]+\s+){0,2}(up|back)\b|\bno node\b|\bthe wait\b|\bunschedul\w*"
        r"|\bnothing (runs|is running|started|has started|happens)\b"
        r"|\bwithout (starting|running|being (scheduled|admitted)"
        r"|getting (a node|scheduled|started))\b",
        _I,
    ),
    "recommend_placement": re.compile(
        r"\bwhere\b.*\b(fit|run|go|place|land|put|schedule)s?\b|\bplacement\b|\bplace\b"
        rf"|\bfits?\b(?!{_IN_QUOTA})"
        r"|\bbest (spot|node|place)\b|\b(which|what) node\b(?! (is|are|did|was|were|does) [\w-]+ )"
        r"|\b(a|one|my) job with\b.*\bwhere\b|\bif (i|we) (submit|ran|run|launch|start)\w*\b"
        r"|\bwhere\?|\bwhere\W*$|\b(room|space|node) for (a|an|my|the|one|two|three|four|five"
        r"|six|seven|eight|\d+)\b|\bfind (me )?(a|the) (node|spot|home|place)\b"
        r"|\b(run|fit|go|land)\s+anywhere\b|\bland on\b"
        r"|\b(suggest|pick|choose|recommend)\b.*\bnode\b|\bnode (suggestion|recommendation)s?\b"
        r"|\b(can|could)\b.*\bbe (scheduled|placed)\b|\b(spot|slot) for\b"
        rf"|{_TAKES}"
        r"|\bwhere\b[^.?!;]*\b(best|most likely|chance|odds)\b",
        _I,
    ),
    "gpu_usage_report": re.compile(
        r"\bgpu[- ]?(hours?|hrs?)\b|\bgpu time\b|\bburn(ed|t)?\b|\bconsum(ed|es|ption)\b"
        r"|(?<!memory )\busage\b"
        rf"|\bused the most\b|\bhogs?\b(?![^.?!;]*{_NOW})"
        r"|\bhow much gpu\b(?!\s+mem)[^.?!;]*\buse[ds]?\b"
        r"|\bhow much\b(?:(?!\bmemory\b)[^.?!;])*\bused\b"  # "how much has team-a used"
        r"|\bcost\w*\b|\bspen[dt]\b|\bby label\b|\befficien\w*|\b(charge|show)backs?\b|\bbilling\b",
        _I,
    ),
    "whoami": re.compile(
        rf"\bwho (am i|i am)\b|\bperm(s|issions?)\b|(?<!where )(?<!how )\b(may|can) i\b(?!{_SEE})"
        # "I'm not allowed to ...", "I'm only allowed to look": a stance, no question
        r"|\b(am i|are we|i'?m(?! (not|only|just|merely)\b)|me|my \w+)\b.*\ballowed\b"
        r"|\bmy (role|rights|access|token)\b|\blogged in\b|\bidentity\b|\bacting as\b"
        r"|\b(which|what) user\b|\bservice ?account\b|\baccount\b|\bwhoami\b|\brbac\b"
        r"|\bwho (do|are) you\b|\brun(ning)? as\b|\bcredentials?\b",
        _I,
    ),
    "list_clusters": re.compile(
        r"\bclusters?\b.*\b(list|see|reach|available|connected|serve[sd]?|serving|manage[sd]?)\b"
        r"|\bcluster list\b"
        r"|\bcontexts\b|\bcontext\b(?!\s+[\w.]+-)|\bctx\b"  # "in context c-1": a place
        r"|\b(list|show|which|what)\b.*\bclusters\b"
        r"|\bversions?\b|\breleases?\b|\bclusters\b.*\b(talk|connect\w*|access)\b"
        r"|\b(un)?reachable\b|\bclusters? names?\b"
        r"|^\W*((give|show|get|tell) me |list )?(the |all (the )?|my |our )?clusters\W*$",
        _I,
    ),
    "get_job": re.compile(
        r"\bprogress\b|\bepochs?\b|\bsteps?\b|\bloss\b|\bfinished\b|\bdone\b|\balive\b"
        r"|\bstatus of\b|\bdetails? of job\b|\bhow far\b|\bhow long\b|\bwhere it'?s at\b"
        r"|\bstill running\b|\bwhat happen(s|ed)\b|\bstatus\b|\bstate\b|\bsucceed\b"
        r"|\babout (the )?job\b|\bcompletions?\b|\bretries\b|\battempts\b"
        r"|\bnews\b|\bupdate on\b|\bwhen did\b.*\b(start|finish|end|begin)\w*"
        r"|\b(wrong|the matter) with\b"
        r"|\b(did|has|is)\s+(it|that|this|the job)\s+(\w+\s+)?(complet|finish|succe|fail|end)\w*"
        rf"|\bhow('?s| is)\s+{_JOB_NAME}\b.*\b(doing|going|getting on|coming along)\b"
        r"|\b(would|if|will|does|whether)\s+(cancel+|kill|delet|remov|stopp|suspend|paus|terminat"
        rf"|abort|scrapp|resum)ing\s+{_JOB_NAME}"  # "would cancelling x-1": x-1's
        rf"|{_YES_NO}\s+(\S+\s+){{0,3}}(crash(ed)?|fail(ed)?|died?|dead|broken|blown up)\b",
        _I,
    ),
    "wait_job": re.compile(
        r"\b(until|till?)\b.*\b(ends?|finish\w*|done|complete\w*|succeed\w*|fail\w*)\b|\bwait for\b"
        r"|\blet me know when\b|^\W*wait\b|\bnotify\b|\bping me\b|\bkeep an eye\b"
        r"|\btell me (how|when) (it|that|the job) (ends|finishes|is done)\b"
        r"|\b(once|when)\b.*\b(succeeded|failed|finished|done|completes?|ended|ends|over)\b"
        r"|\bfollow\b|\bwatch(ing)?\b",
        _I,
    ),
    "list_jobs": re.compile(
        r"\bjobs\b|(?<!\bthat )(?<!\bwhich )(?<!\bwho )(?<!\bit )\bruns\b"  # "that runs on x"
        r"|(?<!\bit )(?<!\bthis )\b(failed|succeeded|completed)\b"
        r"|\bon hold\b|\bsuspended\b|(?<!scheduling )\bfailures\b"  # "if it failed": one job's
        r"|\brun+ing\b",
        _I,
    ),
    "gpu_workloads": re.compile(
        r"\bpods\b|\bworkloads?\b|\bhold(s|ing)?\b(?!(\s+[\w-]+){0,2}\s+(off|up|back)\b)"
        r"|\bwho(se|s|ose|'s)?\b.*\busing\b"
        r"|\bsitting on\b|\b(who|what)('?s| is| are)?\s+(running|runs)\b"
        r"|\busing\b[\w\s]{0,15}\bgpus\b"
        r"|\b(run\w*|doing|training|working) on (the |its |their )?(gpus|accelerators|cards)\b"
        r"|\bwho\b.*\bon (the |its |their )?(gpus|accelerators|cards)\b|\bhogging\b|\beating\b"
        r"|\ballocations? (by|per) (pod|job|namespace)\b"
        r"|\bwho('?s| has| is)? got\b"
        r"|\busing (the )?gpus\b|\boccupy\w*|\bconsumers?\b|\battached\b|\bconsuming\b|\bgrabb\w*"
        r"|\b(which|what) node (is|are|did|was|were|does) [\w-]+ (on|running|end|land|get|run)"
        r"|\b(assigned|allocated) to\b|\bwho (owns?|has|have)\b"
        r"|\b(gpus?|cards?|accelerators?|which|what|who|whom)\b[^.?!;]*\bbelong\w* to\b"
        r"|\bpods\s+((that\s+)?(are|is)\s+)?(running\s+|sitting\s+)?on\b"  # "pods on node x"
        r"|\bwho('?s| is| are)? (on|using|holding) (them|those|these)\b"
        rf"|\bhogs?\b[^.?!;]*{_NOW}",  # "the gpu hogs right now": who holds them now
        _I,
    ),
    "gpu_inventory": re.compile(
        r"\bfree\b|\bavailab\w*|\bavail\b|\bspare\b|\binventory\b|\bhow many\b"
        r"|\bin total\b|\bgpu totals?\b"
        r"|\bcapacity\b|\bmig\b(?!-)|\bdetails of node\b|\bnode [a-z][a-z0-9]*-[\w-]+"
        r"|\bunallocated\b|\bgpu (nodes|models|types)\b|\bfleet\b|\bgpus left\b|\btotal gpus\b"
        r"|\b(we|do we) (own|have)\b|\baccelerators are\b|\b(gpu|card|accelerator)s? counts?\b"
        r"|\bcount (per|by) node\b"
        r"|\bwith room\b|\broom left\b"
        r"|\b(what|which) (gpus|gpu models)\b.*\bhave\b"
        r"|\bgpu (picture|situation|overview|landscape|summary)\b"
        r"|\b(number|count) of (gpus?|cards|accelerators|[a-z]{1,3}\d+\w*)\b|\bunclaimed\b"
        r"|\b(nobody|no one) (has )?(claimed|allocated|requested|taken)\b",
        _I,
    ),
}


# words that settle the subject alone: a question about one's rights, a utilization floor
DECISIVE: dict[str, re.Pattern[str]] = {
    "whoami": re.compile(
        rf"(?<!where )(?<!how )\b(may|can|could) i\b(?!{_SEE})|\bpermitted\b|\bperms?\b"
        r"|\b(which|what) namespaces (can|could|may) i\b"
        r"|\b(am i|are we|i'?m(?! (not|only|just|merely)\b)|me|my \w+)\b.*\ballowed to\b"
        r"|\bdo i have (the )?(rights?|permissions?|access)\b|\bwhether (i|we) (can|could|may)\b"
        r"|\b(am i|are we)\s+(even\s+|actually\s+|really\s+)?able to\b"
        r"|\bwho (can|could|may|is allowed to)\s+(cancel|delete|kill|submit|create|suspend"
        r"|resume|pause|launch|stop)\b",
        _I,
    ),
    "idle_gpus": re.compile(r"\b(below|under)\b[^.?!]*(\bpercent\b|%)", _I),
    # a pod put off its node is an event, whoever holds GPUs now
    "list_events": re.compile(
        r"\bevict\w*|\bpreempt\w*|\boom ?kill\w*"
        r"|\bkick\w*\b[^.?!;]*\boff (of )?(their |its |the |a )?nodes?\b"
        r"|\b(got|get|gets|were|was|been|getting|are being)\s+kicked\s+(off|out)\b",
        _I,
    ),
    "recommend_placement": re.compile(
        rf"\bfits?\b(?!{_IN_QUOTA})|\bplacement\b|\bbest (spot|node|place) for\b"
        r"|\b(suggest|pick|choose|recommend)\b[^.?!;]*\bnodes?\b"
        rf"|{_TAKES}",
        _I,
    ),
}
# words that name a subject only when nothing else is named: "pods printed 'x'" asks for logs
WEAK = {
    "gpu_workloads": re.compile(
        r"\bpods\b(?!\s+((that\s+)?(are|is)\s+)?(running\s+|sitting\s+)?on\b)", _I
    ),
    "gpu_inventory": re.compile(r"\bfleet\b", _I),
}
# a subject that makes a neighbour's moot: following a job to its end is more than its state
OUTRANKS = {
    "wait_job": ("get_job", "list_jobs"),
    "gpu_utilization": ("gpu_inventory",),
    "get_job": ("gpu_inventory",),  # "how many completions does x have": x's, not the fleet's
    "gpu_quota": ("gpu_usage_report", "gpu_inventory"),  # "how much of its quota has x burned"
    "gpu_usage_report": ("gpu_inventory",),  # "how many gpu hours did x use": hours, no count
}
# a name like a Job's ("t5-xl", "bert-ft"): not after in/to/for/on (a namespace or cluster)
_JOB_LIKE = re.compile(
    r"(?<!\bin )(?<!\bto )(?<!\bfor )(?<!\bon )\b[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b"
)


_PODS = re.compile(r"\bpods\b", _I)
_NODE_WORD = re.compile(r"\bnodes?\b", _I)
_ENDED = re.compile(r"\b(finished|completed|succeeded|done)\b", _I)
_JOBS_SAID = re.compile(r"\bjobs?\b", _I)
_JOBS = re.compile(r"\b(jobs|runs|all|every|any|which(?! (cluster|node|namespace)))\b", _I)
_REACH = re.compile(
    r"\b(which|what)\s+(?!namespaces\b)\w+(\s+\w+)?\s+(can|could|may)\s+(i|we)\b", _I
)  # "which namespaces can I see": a question about one's rights
_CHANGE = re.compile(
    r"\b(cancel|delete|kill|remove|stop|submit|create|launch|suspend|pause|resume)\b", _I
)
# a why-question about a waiting job is explain_pending's, whatever else it names ("kueue")
_WHY = re.compile(
    r"\bwhy\b|\breasons?\b|\bblock(ed|ing)?\b|\bholding (it|them) (up|back)\b"
    r"|\b(waiting|stuck|held) (on|for|by)\b",  # "is x waiting on quota or on nodes"
    _I,
)
_YES_NO_JOB = re.compile(rf"{_YES_NO}\b", _I)
_WHY_SLIP = re.compile(r"^\W*y\b|\bwhy+\b|\bwy\b", _I)  # "y won't x start", "whyy"
# the plain words of the subjects above, for requests typed with a slip ("qouta", "logz")
KEYWORDS = (
    "logs", "events", "warnings", "idle", "unused", "utilization", "busy", "quota", "quotas",
    "queue", "utilisation", "list", "pending", "waiting", "stuck", "queued", "placement", "usage",
    "cost", "permissions", "memory", "utilized", "utilised",
    "clusters", "contexts", "versions", "which", "progress", "status", "finished", "jobs",
    "running", "failed", "suspended", "pods", "workloads", "inventory", "available", "capacity",
    "free",
)  # fmt: skip


# plain words one slip from a subject word, never a slip of it ("stack" trace, "last" lines)
_WORDS = frozenset({"stack", "last", "lost", "lust", "fist", "cots", "quote", "quotes", "stats"})


def close(word: str, key: str) -> bool:
    """One slip apart: a letter changed, added, dropped, or two neighbours swapped."""
    if word == key or word[0] != key[0] or abs(len(word) - len(key)) > 1:
        return False
    if len(word) == len(key):
        diff = [i for i, (a, b) in enumerate(zip(word, key, strict=True)) if a != b]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 and word[diff[0]] == key[diff[1]]
        return len(diff) == 1 or (swapped and word[diff[1]] == key[diff[0]])
    short, long = sorted((word, key), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


@functools.lru_cache(maxsize=1024)
def _subject_word(word: str) -> bool:
    """A word that names a subject itself ("wasting") is no slip of another ("waiting")."""
    return any(rx.fullmatch(word) for rx in (*SUBJECTS.values(), *DECISIVE.values()))


def spelled(request: str) -> str:
    """``request`` with each plain word one slip from a subject word written as that word."""

    def fix(m: re.Match[str]) -> str:
        word = m.group(0).lower()
        if len(word) < 4 or word in KEYWORDS or word in _WORDS or _subject_word(word):
            return m.group(0)  # nor a singular ("cluster") made plural: a slip, no inflection
        return next((k for k in KEYWORDS if close(word, k) and k != f"{word}s"), m.group(0))

    return re.sub(r"(?<![\w-])[A-Za-z]+(?![\w-])", fix, request)


_ON_VERB = re.compile(r"\b(check|report|update|news|keep tabs|follow up) on\b")


def _job_named(request: str, known: Collection[str]) -> bool:
    """Whether ``request`` names something like a Job that is no cluster or namespace."""
    request = _ON_VERB.sub(r"\1", request.lower())  # "check on x-1": x-1, no place
    return any(  # "ml-platfrom": a known place typed with a slip, no job
        m.group(0) not in known and not any(close(m.group(0), k) for k in known)
        for m in _JOB_LIKE.finditer(request)
    )


# "busy or not", "used or free": a state either way names none ("total count, busy or not")
_EITHER_WAY = re.compile(
    r"\b(busy|used|in use|free|idle|allocated|running)\s+or\s+(not|free|idle|busy|unused"
    r"|used|in use)\b",
    _I,
)


def _plain(request: str) -> str:
    """``request`` with slips fixed ("y" -> why) and states either way blanked."""
    return _EITHER_WAY.sub(" ", _WHY_SLIP.sub("why", spelled(request)))


def names_subject(request: str) -> bool:
    """Whether ``request`` names a tool's subject (a job's name alone names none)."""
    request = _plain(request)
    return any(rx.search(request) for rx in (*SUBJECTS.values(), *DECISIVE.values()))


def route(request: str, tools: Sequence[str], known: Collection[str] = ()) -> list[str]:
    """Of ``tools``, those whose subject ``request`` names, in their order; all of them when
    it names none. A decisive subject (``DECISIVE``) leaves only its own tool, as does a why
    about a waiting job. ``known``: the cluster and namespace names, which name no Job."""
    request = _plain(request)
    # "which clusters can I reach" asks for the clusters; "which jobs may I cancel", for rights
    reach = _REACH.search(request) and not _CHANGE.search(request)
    tools = [t for t in tools if not (reach and t == "whoami")] or list(tools)
    decisive = [t for t in tools if (rx := DECISIVE.get(t)) is not None and rx.search(request)]
    if decisive:
        return decisive
    named = [t for t in tools if (rx := SUBJECTS.get(t)) is not None and rx.search(request)]
    if "explain_pending" in named and _WHY.search(request):
        return ["explain_pending"]
    if "get_job" in named and _YES_NO_JOB.match(request):
        return ["get_job"]  # "did x-1 crash?": a yes or no about its state, not its log
    if "gpu_workloads" in named and _PODS.search(request) and not _JOBS_SAID.search(request):
        named = [t for t in named if t != "list_jobs"]  # "the GPU pods running there"
    if "get_job" in named and _ENDED.search(request) and _job_named(request, known):
        named = [t for t in named if t != "gpu_workloads"]  # "x-1's finished pods": x-1's
    if "list_events" in named and _NODE_WORD.search(request):
        # "what happened on node x", "what's going on with node x": its events
        named = [t for t in named if t not in ("get_job", "gpu_inventory")]
    weak = {t for t in named if t in WEAK and not SUBJECTS[t].search(WEAK[t].sub(" ", request))}
    named = [t for t in named if t not in weak] if len(weak) < len(named) else named
    moot = {m for t in named for m in OUTRANKS.get(t, ())}
    named = [t for t in named if t not in moot]
    job = "get_job" in tools and _job_named(request, known)
    if job and "list_jobs" in named and not _JOBS.search(request):
        # "has t5-large succeeded?", "is x still running?": one job's state, not a list
        named = [t for t in named if t != "list_jobs"] or ["get_job"]
    if job and not named:
        return ["get_job"]  # a job named, no subject: where it stands
    return named or list(tools)
