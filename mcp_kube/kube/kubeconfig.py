"""Reading the kubeconfig: its contexts, which API server each points at, and API clients.

Two contexts are one cluster when they point at the same API server: the same server URL
(normalised) and the same CA. Files are merged like kubectl merges ``$KUBECONFIG``; a
kubeconfig that is missing, unreadable or without contexts gives no context and a reason in
words, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.kube_config import (
    ENV_KUBECONFIG_PATH_SEPARATOR,
    ConfigNode,
    KubeConfigMerger,
)

from mcp_kube import __version__
from mcp_kube.errors import ClusterUnavailable

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


def _value(node: Any) -> Any:
    """A kubeconfig entry, whether the merger wrapped it (ConfigNode) or not."""
    return node.value if isinstance(node, ConfigNode) else node


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


def _server_key(context: str, entry: Any, clusters: dict[str, Any]) -> ServerKey:
    """What makes two contexts one cluster: the same API server URL and the same CA."""
    ctx = _value(_value(entry).get("context") or {})
    name = ctx.get("cluster") if isinstance(ctx, dict) else None
    node = clusters.get(str(name)) if name is not None else None
    cluster = _value(_value(node).get("cluster")) if node is not None else None
    if not isinstance(cluster, dict) or not cluster.get("server"):
        return ("context", context)  # no usable cluster entry: a cluster of its own
    base = node.path if isinstance(node, ConfigNode) else None  # the file it came from
    return (_server_of(cluster), hashlib.sha256(_ca_bytes(cluster, base)).hexdigest())


def read_contexts(kubeconfig: str) -> Contexts:
    """Every context of the kubeconfig (merged like kubectl) -> its API server key, and the
    current context."""
    paths = [p for p in kubeconfig.split(ENV_KUBECONFIG_PATH_SEPARATOR) if p]
    if not any(os.path.exists(os.path.expanduser(p)) for p in paths):
        return Contexts(problem="does not exist" if len(paths) <= 1 else "holds no existing file")
    try:
        merged = KubeConfigMerger(kubeconfig).config
        value = _value(merged) if merged is not None else {}
        clusters: dict[str, Any] = {}
        for node in value.get("clusters") or []:
            clusters.setdefault(str(_value(node).get("name")), node)
        out: dict[str, ServerKey] = {}
        for node in value.get("contexts") or []:
            name = str(_value(node).get("name"))
            out.setdefault(name, _server_key(name, node, clusters))
        current = value.get("current-context")
    except (ConfigException, OSError, yaml.YAMLError, AttributeError, KeyError) as e:
        return Contexts(problem=f"cannot be read ({str(e)[:200] or type(e).__name__})")
    return Contexts(
        servers=out,
        current=str(current) if current in out else None,
        problem="" if out else "has no contexts",
    )


def load_api_client(kubeconfig: str, cluster: str, context: str | None) -> k8s.ApiClient:
    """An ApiClient with the credentials of ``context`` (``None``: the pod's service account);
    raises ClusterUnavailable when they cannot be loaded."""
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
