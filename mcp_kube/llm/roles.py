"""A read call's names put in the roles the request's own words give them.

The grammar lets a small model fill only names the conversation holds, but not always in the
right place. After the call is decoded, for a read tool only (a write is never completed or
moved: it asks instead, see ``grammar.missing``):

- a name after "pod" goes in ``pod``, not ``job``; a tool that takes either gets one of them;
- the namespace's value never fills another role as well ("warnings ml-platform" is no event
  about an object named ml-platform);
- a namespace or a served cluster the request names, left out by the model, is filled in when
  the request names exactly one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["settle_roles"]

_OTHER_ROLES = ("name", "job", "pod", "node")


def _after(word: str, value: str, request: str) -> bool:
    return bool(re.search(rf"\b{word}s?\W+{re.escape(value)}\b", request, re.IGNORECASE))


def _one_of_job_or_pod(args: dict[str, Any], request: str) -> None:
    job, pod = args.get("job"), args.get("pod")
    if isinstance(job, str) and (pod == job or pod is None) and _after("pod", job, request):
        args["pod"] = job
        del args["job"]
    elif isinstance(pod, str) and job is None and _after("job", pod, request):
        args["job"] = pod
        del args["pod"]
    elif isinstance(job, str) and isinstance(pod, str):  # both: the role the request gives
        del args["pod" if _after("job", job, request) or not _after("pod", pod, request) else "job"]


def settle_roles(
    args: dict[str, Any],
    params: Sequence[str],
    request: str,
    spaces: Sequence[str],
    clusters: Sequence[str],
) -> dict[str, Any]:
    """``args`` with names moved, dropped or filled in as above (a new dict). ``params``: the
    tool's argument names; ``spaces``: the words the request puts where a namespace goes."""
    out = dict(args)
    if "job" in params and "pod" in params:
        _one_of_job_or_pod(out, request)
    ns = out.get("namespace")
    for role in _OTHER_ROLES:
        if ns is not None and out.get(role) == ns and not _after(role, ns, request):
            del out[role]
    named_spaces = sorted(set(spaces) - set(clusters))
    if "namespace" in params and "namespace" not in out and len(named_spaces) == 1:
        out["namespace"] = named_spaces[0]
    low = request.lower()
    named = [c for c in clusters if re.search(rf"\b{re.escape(c.lower())}\b", low)]
    if "cluster" in params and "cluster" not in out and len(named) == 1:
        out["cluster"] = named[0]
    return out
