"""Which read tools a request's own words point at, before the model chooses among them.

A small model choosing from fifteen tools confuses neighbours: logs with events, quota with
usage, a pending job with its progress. The words users type for each tool's subject are few
and plain ("log", "quota", "stuck", "idle", "where ... fit"), so the choice is narrowed to the
tools whose subject the request names; the model still chooses among them, and its arguments are
still grounded. A request that names no subject keeps every tool. Writes are not routed here:
they are offered only for their own verbs (``prompt.changes_asked``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["route"]

_I = re.IGNORECASE
# tool -> the words that name its subject (tuned on tests/eval/dev.yaml only)
SUBJECTS: dict[str, re.Pattern[str]] = {
    "pod_logs": re.compile(
        r"\blogs?\b|\blogged\b|\bprint(ed|s)?\b|\boutput\b|\bstdout\b|\bstderr\b|\bgrep\b"
        r"|\blines?\b|\b(earlier|previous|last) container\b|\bcrash(ed)?\b",
        _I,
    ),
    "list_events": re.compile(r"\bevents?\b|\bwarnings?\b", _I),
    "idle_gpus": re.compile(
        r"\bidle\b|\bunused\b|\bwast(e|ed|ing)\b|\bdoing nothing\b|\bnobody\b.*\busing\b"
        r"|\b(below|under)\b.*(\bpercent\b|%)|\bsitting (idle|unused)\b",
        _I,
    ),
    "gpu_utilization": re.compile(
        r"\butili[sz]ation\b|\butli[sz]ation\b|\butil\b|\bbusy\b|\bloaded\b|\bhow hard\b"
        r"|\bpower\b|\bgpu memory\b|\bmemory used\b|\bdcgm\b",
        _I,
    ),
    "gpu_quota": re.compile(
        r"\bquotas?\b|\bcap\b|\bheadroom\b|\bqueues?\b|\bkueue\b|\ballowance\b|\blimit left\b",
        _I,
    ),
    "explain_pending": re.compile(
        r"\bpending\b|\bwaiting\b|\bstuck\b|\bqueued\b|\bwon'?t (start|run|schedule)\b"
        r"|\b(hasn'?t|has not|isn'?t|is not|not) (been )?(start|run|schedul|admit)\w*"
        r"|\bwhy\b.*\bnot\b",
        _I,
    ),
    "recommend_placement": re.compile(
        r"\bwhere\b.*\b(fit|run|go|place|land|put|schedule)s?\b|\bfit\b|\bplacement\b"
        r"|\bbest (spot|node|place)\b|\bwhich node\b|\b(a|one|my) job with\b.*\bwhere\b"
        r"|\bwhere\?",
        _I,
    ),
    "gpu_usage_report": re.compile(
        r"\bgpu[- ]?hours?\b|\bgpu time\b|\bburn(ed|t)?\b|\bconsum\w*|\busage\b|\bused the most\b"
        r"|\bcost\w*\b|\bspen[dt]\b|\bby label\b|\befficien\w*",
        _I,
    ),
    "whoami": re.compile(
        r"\bwho am i\b|\bperm(s|issions?)\b|\bmay i\b|\bcan i\b|\ballowed\b"
        r"|\bmy (role|rights|access)\b|\blogged in\b|\bidentity\b",
        _I,
    ),
    "list_clusters": re.compile(
        r"\bclusters?\b.*\b(list|see|reach|available)\b|\bcluster list\b|\bcontexts?\b"
        r"|\bversions?\b",
        _I,
    ),
    "get_job": re.compile(
        r"\bprogress\b|\bepochs?\b|\bsteps?\b|\bloss\b|\bfinished\b|\bdone\b|\balive\b"
        r"|\bstatus of\b|\bdetails? of job\b|\bhow far\b|\bhow long\b|\bwhere it'?s at\b"
        r"|\bstill running\b|\bwhat happens\b",
        _I,
    ),
    "wait_job": re.compile(
        r"\buntil\b.*\b(ends?|finish\w*|done|complete\w*|succeed\w*|fail\w*)\b|\bwait for\b"
        r"|\b(once|when)\b.*\b(succeeded|failed|finished|done|completes?)\b|\bfollow\b|\bwatch\b",
        _I,
    ),
    "list_jobs": re.compile(
        r"\bjobs\b|\bruns\b|\bfailed\b|\bsucceeded\b|\bcompleted\b|\bon hold\b|\bsuspended\b"
        r"|\brun+ing\b",
        _I,
    ),
    "gpu_workloads": re.compile(
        r"\bpods\b|\bworkloads?\b|\bhold(s|ing)?\b|\bwho\b.*\busing\b|\bsitting on\b"
        r"|\busing (the )?gpus\b",
        _I,
    ),
    "gpu_inventory": re.compile(
        r"\bfree\b|\bavailable\b|\binventory\b|\binvnetory\b|\bhow many\b|\bin total\b"
        r"|\bcapacity\b|\bmig\b(?!-)|\bdetails of node\b|\bnode \S+\b",
        _I,
    ),
}


# words that settle the subject alone: a question about one's rights, a utilization floor
DECISIVE: dict[str, re.Pattern[str]] = {
    "whoami": re.compile(r"\b(may|can|could) i\b|\ballowed to\b|\bpermitted\b|\bperms?\b", _I),
    "idle_gpus": re.compile(r"\b(below|under)\b[^.?!]*(\bpercent\b|%)", _I),
}


def route(request: str, tools: Sequence[str]) -> list[str]:
    """Of ``tools``, those whose subject ``request`` names, in their order; all of them when
    it names none. A decisive subject (``DECISIVE``) leaves only its own tool."""
    decisive = [t for t in tools if (rx := DECISIVE.get(t)) is not None and rx.search(request)]
    if decisive:
        return decisive
    named = [t for t in tools if (rx := SUBJECTS.get(t)) is not None and rx.search(request)]
    return named or list(tools)
