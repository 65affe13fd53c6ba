"""Reading the kubeconfig: its contexts, which API server each points at, and API clients.

Two contexts are one cluster when they point at the same API server: the same server URL
(normalised) and the same CA. Files are merged like the kubernetes client merges
``$KUBECONFIG``; a kubeconfig that is missing, unreadable or without contexts gives no context
and a reason in words, never an exception.

Reading the contexts needs only YAML: the ``kubernetes`` package (a third of the server's
start-up imports) is imported when the first API client is loaded, at a cluster's first
request, so ``tools/list`` never waits for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from mcp_kube import __version__
from mcp_kube.errors import ClusterUnavailable

if TYPE_CHECKING:
    from kubernetes import client as k8s

__all__ = ["Contexts", "ServerKey", "kubeconfig_source", "load_api_client", "read_contexts"]

ServerKey = tuple[str, str]  # (normalised API server URL, sha256 of its CA) or ("context", name)


@dataclass(frozen=True)
class Contexts:
    """What a kubeconfig holds: each context's API server, the current context, and (when
    there are no contexts) why not, in words."""

    servers: dict[str, ServerKey] = field(default_factory=dict)
    current: str | None = None
    problem: str = ""


def kubeconfig_source(given: Path | None) -> tuple[str, str]:
    """(what the kubernetes loader reads, the same in words for messages)."""
    if given is not None:
        return str(given), f"kubeconfig {given}"
    env = os.environ.get("KUBECONFIG")
    if env:
        return env, f"kubeconfig {env} (from $KUBECONFIG)"
    default = os.path.expanduser("~/.kube/config")
    return default, f"kubeconfig {default} (the default: $KUBECONFIG is not set)"


_SEPARATOR = os.pathsep  # between the files of $KUBECONFIG, as the kubernetes client splits it


@dataclass(frozen=True)
class _Merged:
    """The kubeconfig files merged: each named cluster with the file it came from, each named
    context (the first file to name one wins) and the current context (the last file to set
    it wins): the kubernetes client's merge, which loads the credentials later."""

    clusters: dict[str, tuple[Any, str]]
    contexts: dict[str, Any]
    current: Any


_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


def _merge(paths: list[str]) -> _Merged:
    clusters: dict[str, tuple[Any, str]] = {}
    contexts: dict[str, Any] = {}
    current: Any = None
    for path in paths:
        with open(path, encoding="utf-8") as f:
            # libyaml's parser where PyYAML has it (its wheels do): a kubeconfig holds long
            # base64 certificates, and the pure-Python scanner takes ~6 ms of the server's start
            config = yaml.load(f, Loader=_Loader)  # noqa: S506 (a safe loader)
        if config is None:
            raise ValueError(f"{path} is empty")
        if not isinstance(config, dict):
            raise ValueError(f"{path} is not a kubeconfig mapping")
        for entry in config.get("clusters") or []:
            clusters.setdefault(str(entry.get("name")), (entry, path))
        for entry in config.get("contexts") or []:
            contexts.setdefault(str(entry.get("name")), entry)
        if "current-context" in config:
            current = config["current-context"]
    return _Merged(clusters, contexts, current)


def _ca_bytes(cluster: dict[str, Any], base: str | None) -> bytes:
    data = cluster.get("certificate-authority-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=False)
        except (binascii.Error, ValueError):
            return str(data).encode()
    path = cluster.get("certificate-authority")
    if path:
        full = Path(os.path.expanduser(str(path)))
        if not full.is_absolute() and base:
            full = Path(base).parent / full
        try:
            return full.read_bytes()
        except OSError:
            return f"file:{full}".encode()
    return b""


def _server_of(cluster: dict[str, Any]) -> str:
    """The API server URL, normalised: scheme and host in lower case, default port explicit."""
    raw = str(cluster.get("server") or "").strip().rstrip("/")
    try:
        url = urlsplit(raw)
        port = url.port
    except ValueError:
        return raw
    if not url.hostname:
        return raw
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    port = port or {"https": 443, "http": 80}.get(url.scheme.lower())
    return f"{url.scheme.lower()}://{host}:{port}{url.path}"


def _server_key(context: str, entry: Any, clusters: dict[str, tuple[Any, str]]) -> ServerKey:
    """What makes two contexts one cluster: the same API server URL and the same CA."""
    ctx = entry.get("context") or {}
    name = ctx.get("cluster") if isinstance(ctx, dict) else None
    found = clusters.get(str(name)) if name is not None else None
    cluster = found[0].get("cluster") if found is not None else None
    if found is None or not isinstance(cluster, dict) or not cluster.get("server"):
        return ("context", context)  # no usable cluster entry: a cluster of its own
    return (_server_of(cluster), hashlib.sha256(_ca_bytes(cluster, found[1])).hexdigest())


def read_contexts(kubeconfig: str) -> Contexts:
    """Every context of the kubeconfig (merged like the kubernetes client) -> its API server
    key, and the current context."""
    paths = [os.path.expanduser(p) for p in kubeconfig.split(_SEPARATOR) if p]
    existing = [p for p in paths if os.path.exists(p)]
    if not existing:
        return Contexts(problem="does not exist" if len(paths) <= 1 else "holds no existing file")
    try:
        merged = _merge(existing)
        out: dict[str, ServerKey] = {}
        for name, entry in merged.contexts.items():
            out[name] = _server_key(name, entry, merged.clusters)
        current = merged.current
    except (ValueError, OSError, yaml.YAMLError, AttributeError, KeyError, TypeError) as e:
        return Contexts(problem=f"cannot be read ({str(e)[:200] or type(e).__name__})")
    return Contexts(
        servers=out,
        current=str(current) if current in out else None,
        problem="" if out else "has no contexts",
    )


def load_api_client(kubeconfig: str, cluster: str, context: str | None) -> k8s.ApiClient:
    """An ApiClient with the credentials of ``context`` (``None``: the pod's service account);
    raises ClusterUnavailable when they cannot be loaded."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    cfg = k8s.Configuration()
    try:
        if context is None:
            k8s_config.load_incluster_config(client_configuration=cfg)
        else:
            k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=cfg
            )
    except (ConfigException, OSError) as e:
        raise ClusterUnavailable(f"cluster unavailable: {cluster} (bad configuration)") from e
    cfg.retries = 0  # fail fast; the caller decides whether to try again
    api = k8s.ApiClient(cfg)
    # Names this server (and process) in the API server's audit log.
    api.user_agent = f"mcp-kube/{__version__} (pid {os.getpid()})"
    return api
