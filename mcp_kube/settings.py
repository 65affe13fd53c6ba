"""Typed settings, nested by concern; every field has an ``MCP_KUBE_`` environment twin.

Example: ``MCP_KUBE_CLUSTERS__CONTEXTS='["gpu-east","gpu-west"]'``,
``MCP_KUBE_LIMITS__MAX_LOG_BYTES=131072``.

``__`` steps into a group (or a map's key: ``MCP_KUBE_CLUSTERS__METRICS__GPU-EAST__URL``);
names are case-insensitive. A list, a map or a whole group is given as JSON, a plain value as
it is. Arguments given to :class:`Settings` win over the environment, and a deeper variable
over a group given whole. A misspelt name inside a group is an error, not silently ignored;
other ``MCP_KUBE_*`` variables that name no setting are left alone (tools and tests use them).
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mcp_kube.errors import McpKubeError

__all__ = [
    "ApprovalSettings",
    "ClusterSettings",
    "HttpAuthSettings",
    "HttpSettings",
    "Limits",
    "LlmSettings",
    "MetricsSource",
    "ModelSettings",
    "Settings",
    "SettingsError",
    "TracingSettings",
    "from_environment",
]

ENV_PREFIX = "MCP_KUBE_"


class SettingsError(McpKubeError, ValueError):
    """A setting is invalid: an ``MCP_KUBE_*`` variable or a value given to Settings."""

    code = "settings"


class MetricsSource(BaseModel):
    """Where one cluster's GPU metrics (dcgm-exporter, scraped by Prometheus) are read.

    Either ``url`` (a Prometheus reached directly, with ``ca_file`` and ``token_file``), or
    ``service`` (``<namespace>/<name>:<port>`` of an in-cluster Prometheus, reached through
    the API server's service proxy, so the cluster's RBAC and audit apply).
    """

    url: str | None = Field(None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    ca_file: Path | None = Field(None, description="CA bundle that verifies url (https)")
    token_file: Path | None = Field(None, description="bearer token for url, read per query")
    service: str | None = Field(
        None,
        pattern=r"^[a-z0-9-]{1,63}/[a-z0-9-]{1,63}:[a-z0-9-]{1,15}$",
        description="namespace/name:port of a Prometheus Service, e.g. monitoring/prometheus:9090",
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="time limit of one query")
    max_series: int = Field(5000, ge=1, le=100_000, description="series one answer may hold")
    max_bytes: int = Field(
        8 * 1024 * 1024, ge=4096, le=256 * 1024 * 1024, description="bytes of one answer read"
    )


class ClusterSettings(BaseModel):
    kubeconfig: Path | None = Field(
        None, description="kubeconfig file; default: $KUBECONFIG, then ~/.kube/config"
    )
    contexts: list[str] = Field(
        default_factory=list,
        description="allowlist of kubeconfig contexts served as clusters; empty = every context",
    )
    in_cluster: bool = Field(
        False, description="also serve the cluster this pod runs in (service account credentials)"
    )
    in_cluster_name: str = "in-cluster"
    request_timeout_s: float = Field(
        15.0, gt=0, le=300, description="timeout of one API request; a hung API server fails fast"
    )
    impersonate: bool = Field(
        False,
        description="send the caller's identity as Impersonate-User/Group so the cluster's RBAC "
        "applies too; the server's own identity then needs only `impersonate` on those",
    )
    watch_cache: bool = Field(True, description="keep a list+watch cache of nodes and pods")
    cache_max_objects: int = Field(
        200_000, gt=0, description="cache bound per cluster; beyond it the cache is dropped"
    )
    metrics: dict[str, MetricsSource] = Field(
        default_factory=dict, description="GPU metrics source by cluster name (none: no metrics)"
    )
    gpu_prices: dict[str, float] = Field(
        default_factory=dict,
        description="price per GPU-hour by GPU product (the nvidia.com/gpu.product label); "
        "a MIG slice costs its share of the GPU (1g = 1/7)",
    )


class Limits(BaseModel):
    call_timeout_s: float = Field(30.0, gt=0, le=600, description="wall time of one tool call")
    max_response_bytes: int = Field(
        640 * 1024, ge=4096, description="cap of one tool result (JSON), above the log cap"
    )
    default_page: int = Field(50, ge=1, le=1000, description="default list length per page")
    max_page: int = Field(500, ge=1, le=5000, description="largest page a caller may ask for")
    max_log_bytes: int = Field(
        256 * 1024, ge=1024, le=8 * 1024 * 1024, description="hard cap on log bytes returned"
    )
    max_log_lines: int = Field(5000, ge=1, le=100_000)


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mcp-kube"


class AuditSettings(BaseModel):
    path: Path = Field(
        default_factory=lambda: _state_dir() / "audit.jsonl",
        description="the audit log (JSON Lines, hash-chained); rotated files sit beside it",
    )
    key_path: Path | None = Field(
        None, description="Ed25519 key signing checkpoints; default: <path>.key (made if missing)"
    )
    checkpoint_every: int = Field(100, ge=1, le=100_000, description="records per checkpoint")
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="size that starts a new file")
    fsync: bool = Field(True, description="flush every record to disk before the call returns")
    fail_closed_reads: bool = Field(
        False, description="also refuse reads when the log cannot be written (writes always are)"
    )


class HttpAuthSettings(BaseModel):
    """How HTTP callers prove who they are. With none configured, HTTP serves only a loopback
    bind and only when ``allow_unauthenticated`` is set (the local user is the principal)."""

    token_file: Path | None = Field(
        None, description="static tokens: sha256(token) -> principal and groups (YAML/JSON)"
    )
    jwks_file: Path | None = Field(None, description="JWKS of the JWT issuer (a local file)")
    jwt_issuer: str | None = None
    jwt_audience: str | None = Field(None, description="default: the server's public URL")
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    jwt_groups_claim: str = "groups"
    token_review: bool = Field(
        False, description="accept Kubernetes ServiceAccount tokens, checked by TokenReview"
    )
    token_review_audiences: list[str] = Field(
        default_factory=lambda: ["mcp-kube"],
        description="audiences a reviewed token must be bound to (TokenRequest --audience)",
    )
    token_review_cluster: str | None = Field(
        None, description="the cluster that reviews tokens; default: the default cluster"
    )
    allow_unauthenticated: bool = Field(
        False, description="loopback development only: no token, the local user is the caller"
    )


class HttpSettings(BaseModel):
    host: str = Field("127.0.0.1", description="bind address; loopback unless deployed")
    port: int = Field(8080, ge=0, le=65535)
    path: str = "/mcp"
    public_url: str | None = Field(
        None,
        description="the URL clients use (Protected Resource Metadata, JWT audience); "
        "default: http://HOST:PORT/PATH",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host headers accepted ('name', 'name:*'); default: loopback names, plus "
        "the public URL's host",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="browser Origins accepted; default: loopback, plus the public URL's origin",
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    calls_per_second: float = Field(
        20.0, gt=0, description="requests per second per principal (token bucket)"
    )
    burst: int = Field(100, ge=1, description="requests a principal may send at once")
    auth: HttpAuthSettings = HttpAuthSettings()


class ApprovalSettings(BaseModel):
    """Where out-of-band approval requests live: one ConfigMap per request."""

    namespace: str = Field(
        "mcp-kube-system",
        description="namespace of the approval ConfigMaps; an operator creates it (the server "
        "needs get/list/create/patch on configmaps there, never namespace creation)",
    )
    cluster: str | None = Field(
        None,
        description="cluster (kubeconfig context) holding the approval ConfigMaps; "
        "default: the default cluster. Every replica must name the same one",
    )


class TracingSettings(BaseModel):
    """W3C trace context is always taken from a call's ``_meta`` (or started), recorded in its
    audit record and sent on its Kubernetes requests. Exporting spans is off by default."""

    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector inside the site (e.g. http://otel-collector:4318): one "
        "span per tool call is POSTed as JSON to <endpoint>/v1/traces; unset: no export",
    )
    otlp_headers: dict[str, str] = Field(
        default_factory=dict, description="extra HTTP headers of each export (e.g. a tenant)"
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="timeout of one export request")
    queue_size: int = Field(
        2048, ge=1, le=1_000_000, description="spans waiting for export; beyond it they drop"
    )
    batch_size: int = Field(256, ge=1, le=10_000, description="most spans in one export request")
    service_name: str = Field("mcp-kube", description="the spans' service.name resource")


def _data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mcp-kube"


class ModelSettings(BaseModel):
    """Where verified local model files live (see ``mcp-kube models``)."""

    store: Path = Field(
        default_factory=lambda: _data_dir() / "models",
        description="folder of installed or imported model files (and their .verified markers)",
    )
    manifests: Path | None = Field(
        None, description="folder of model manifests (*.yaml); default: the bundled offline_models"
    )


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcp-kube"


class LlmSettings(BaseModel):
    """The offline client (``mcp-kube ask`` / ``chat``): its model and its MCP server."""

    model: str | None = Field(
        None,
        description="model manifest name; default: the 'default' model if it is installed, "
        "else the 'ci' one (see `mcp-kube models list`)",
    )
    endpoint: str | None = Field(
        None,
        description="an OpenAI-compatible /v1 URL inside the network (llama.cpp server, vLLM) "
        "used instead of a local model",
    )
    endpoint_model: str = Field("", description="model name sent to the endpoint")
    endpoint_grammar_field: str = Field(
        "grammar",
        description="request field of the grammar: grammar (llama.cpp), guided_grammar (vLLM)",
    )
    endpoint_token_file: Path | None = Field(None, description="bearer token for the endpoint")
    server: str = Field(
        "mcp-kube serve",
        description="the MCP server: a command speaking stdio, or an http(s) URL",
    )
    server_token_file: Path | None = Field(
        None, description="file holding the bearer token for an HTTP server"
    )
    n_ctx: int = Field(8192, ge=1024, le=131072, description="context window, tokens")
    n_threads: int | None = Field(None, ge=1, le=512, description="default: every CPU")
    n_gpu_layers: int = Field(
        0, ge=-1, description="layers offloaded to the GPU when llama.cpp has CUDA (-1: all)"
    )
    max_calls: int = Field(4, ge=1, le=16, description="tool calls per question")
    follow_up: str = Field(
        "on_error",
        pattern="^(on_error|model)$",
        description="after a successful result: answer at once (on_error), or let the model "
        "call another tool (model)",
    )
    answer: str = Field(
        "brief",
        pattern="^(brief|checked|facts|model)$",
        description="the final answer: one sentence of the model's, then the results' own "
        "summaries (brief); the model's answer (checked); in both, an answer that states a "
        "number or name no result holds, or denies what a result says, is replaced by the "
        "summaries; the summaries only, no generation (facts); the model's, unchecked (model)",
    )
    result_budget_chars: int = Field(
        6000, ge=500, le=200_000, description="characters of one tool result the model reads"
    )
    answer_max_tokens: int = Field(512, ge=16, le=8192)
    task_follow_s: float = Field(
        600.0,
        ge=0,
        le=86_400,
        description="seconds a submitted job is followed as a task, its progress shown, before "
        "the answer says how to follow it later (the job goes on); 0: not followed",
    )
    prompt_cache: Path | None = Field(
        default_factory=lambda: _cache_dir() / "prompt-states",
        description="folder keeping the evaluated system prompt per model (null: off)",
    )


class Settings(BaseModel):
    """Every setting, read from ``MCP_KUBE_*`` environment variables under the arguments."""

    model_config = ConfigDict(extra="forbid")

    def __init__(self, **values: Any) -> None:
        """Raises ``SettingsError`` naming each invalid setting (one line each)."""
        try:
            super().__init__(**_merged(from_environment(type(self), os.environ), values))
        except ValidationError as e:
            wrong = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
            )
            raise SettingsError(f"invalid settings: {wrong}") from None

    clusters: ClusterSettings = ClusterSettings()
    limits: Limits = Limits()
    http: HttpSettings = HttpSettings()
    audit: AuditSettings = AuditSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    models: ModelSettings = ModelSettings()
    llm: LlmSettings = LlmSettings()
    tracing: TracingSettings = TracingSettings()
    principal: str | None = Field(
        None, description="stdio caller's principal; default: the OS user running the server"
    )
    groups: list[str] = Field(default_factory=list)
    log_format: Literal["text", "json"] = Field(
        "text", description="server log lines on stderr: text for people, json for collectors"
    )
    progress_log_patterns: list[str] = Field(
        default_factory=lambda: [
            r"\bstep[=: ]\s*(?P<step>\d+)",
            r"\bepoch[=: ]\s*(?P<epoch>\d+)",
            r"\bloss[=: ]\s*(?P<loss>[0-9.]+(?:e-?\d+)?)",
            r"\bthroughput[=: ]\s*(?P<throughput>[0-9.]+)",
        ],
        description="regexes with named groups step/epoch/loss/throughput, read from job logs",
    )


def _options(annotation: Any) -> list[Any]:
    """The types an annotation allows (``X | None`` gives X and None)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _is_group(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _is_json(annotation: Any) -> bool:
    """Whether a variable for this field holds JSON (a group, a list or a map)."""
    return any(
        _is_group(t) or get_origin(t) in (list, dict, set, tuple) or t in (list, dict)
        for t in _options(annotation)
    )


def _child(annotation: Any, key: str) -> tuple[bool, Any]:
    """(steps in, the annotation of ``key`` inside a value of ``annotation``)."""
    for t in _options(annotation):
        if _is_group(t):
            field = t.model_fields.get(key)
            return (field is not None, field.annotation if field else None)
        if get_origin(t) is dict:
            return (True, get_args(t)[1])
    return (False, None)


def from_environment(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The values that ``MCP_KUBE_*`` variables give ``model``'s fields, nested by ``__``.

    Raises ``SettingsError`` naming the variable when a name inside a group is unknown or a
    JSON value does not parse."""
    found: list[tuple[list[str], str, str]] = []
    for name, raw in environ.items():
        if name.upper().startswith(ENV_PREFIX):
            path = name[len(ENV_PREFIX) :].lower().split("__")
            if path[0] in model.model_fields:
                found.append((path, raw, name))
    out: dict[str, Any] = {}
    for path, raw, name in sorted(found, key=lambda f: len(f[0])):  # a group whole, then deeper
        annotation: Any = model
        node = out
        for depth, key in enumerate(path):
            known, annotation = _child(annotation, key)
            if not known or not key:
                raise SettingsError(f"{name}: {'__'.join(path[: depth + 1])} names no setting")
            if depth < len(path) - 1:
                inner = node.setdefault(key, {})
                if not isinstance(inner, dict):
                    raise SettingsError(f"{name}: {'__'.join(path[: depth + 1])} is not a group")
                node = inner
        if _is_json(annotation):
            try:
                value: Any = json.loads(raw)
            except ValueError:
                raise SettingsError(f"{name}: not valid JSON (lists and groups are)") from None
        else:
            value = raw
        node.update(_merged(node, {path[-1]: value}))
    return out


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on it, maps merged key by key (a model given whole wins)."""
    out = dict(base)
    for key, value in over.items():
        below = out.get(key)
        out[key] = (
            _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
        )
    return out
