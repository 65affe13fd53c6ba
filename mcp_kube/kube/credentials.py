"""Which credentials a cluster uses, chosen once at its first request.

A cluster reachable through several kubeconfig contexts keeps the first whose identity may
list nodes and pods (what every fleet view reads); refused ones are skipped. When none may,
the first that loads is used as it is, and the refusals are logged. A cluster that cannot be
reached fails at once: another context of the same API server would not fare better.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubernetes import client as k8s

from mcp_kube.errors import ClusterUnavailable, Forbidden, ToolError

__all__ = ["Chosen", "Credentials", "choose_credentials"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    """One way into a cluster: a kubeconfig context (``None``: the pod's service account)."""

    context: str | None
    load: Callable[[], k8s.ApiClient]  # raises ClusterUnavailable on a bad configuration


Chosen = tuple[k8s.ApiClient, str | None]  # the client, and the context whose credentials it has


def choose_credentials(
    cluster: str, candidates: Sequence[Credentials], probe: Callable[[k8s.ApiClient], None]
) -> Chosen:
    """The first candidate that loads and passes ``probe`` (which raises Forbidden for
    credentials that will not do, another ToolError for a cluster that cannot serve)."""
    fallback: Chosen | None = None
    refused: list[str] = []
    for cred in candidates:
        try:
            api = cred.load()
        except ClusterUnavailable:
            refused.append(f"{cred.context}: bad configuration")
            continue
        try:
            probe(api)
        except Forbidden as e:  # 401 or 403: these credentials will not do
            refused.append(f"{cred.context}: {str(e).removeprefix(cluster + ': ')}")
            if fallback is None:
                fallback = (api, cred.context)
            else:
                api.close()
            continue
        except ToolError:  # unreachable or broken: another context will not fare better
            api.close()
            if fallback is not None:
                fallback[0].close()
            raise
        if fallback is not None:
            fallback[0].close()
        if refused:
            log.info("%s: using context %s; refused: %s", cluster, cred.context, refused)
        return api, cred.context
    if fallback is not None:  # none may read the fleet: the first that loads, as it is
        log.warning("%s: no context may list nodes and pods: %s", cluster, refused)
        return fallback
    raise ClusterUnavailable(
        f"cluster unavailable: {cluster} (bad configuration of every context: "
        + ", ".join(c.context or "in-cluster" for c in candidates)
        + ")"
    )
