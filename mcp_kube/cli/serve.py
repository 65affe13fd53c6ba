"""``mcp-kube serve``: the MCP server over stdio or streamable HTTP."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

from mcp_kube.cli.common import SubParsers, overrides, policy_paths

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    sv = sub.add_parser(
        "serve",
        help="run the MCP server (stdio or streamable HTTP)",
        description="Serve the mcp-kube tools over MCP. Every call passes the policy gate.",
    )
    sv.set_defaults(handler=run)
    sv.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    sv.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    sv.add_argument("--port", type=int, help="HTTP port (default 8080)")
    sv.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG)")
    sv.add_argument(
        "--context",
        action="append",
        dest="contexts",
        metavar="NAME",
        help="serve this kubeconfig context (repeatable; default: every context)",
    )
    sv.add_argument("--in-cluster", action="store_true", help="also serve the in-pod cluster")
    sv.add_argument(
        "--impersonate",
        action="store_true",
        help="call Kubernetes as the caller (Impersonate-User/Group) so the cluster's RBAC applies",
    )
    sv.add_argument(
        "--policy",
        action="append",
        type=Path,
        metavar="PATH",
        help="policy file or folder (repeatable; default: $MCP_KUBE_POLICY or "
        "policies/default.yaml; without any, read-only)",
    )
    sv.add_argument(
        "--audit-log",
        type=Path,
        metavar="PATH",
        help="audit log file (default: $MCP_KUBE_AUDIT__PATH or ~/.local/state/mcp-kube/"
        "audit.jsonl); a restarted server continues its chain",
    )
    _http_auth_args(sv)
    sv.add_argument("--principal", help="stdio caller identity (default: the OS user)")
    sv.add_argument("--groups", help="stdio caller groups, comma separated")
    sv.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="server log on stderr (default: $MCP_KUBE_LOG_FORMAT or text)",
    )


def _http_auth_args(sv: argparse.ArgumentParser) -> None:
    sv.add_argument("--token-file", type=Path, help="HTTP: static tokens (sha256 -> principal)")
    sv.add_argument("--jwks-file", type=Path, help="HTTP: JWKS of the JWT issuer (local file)")
    sv.add_argument("--jwt-issuer", help="HTTP: required JWT issuer (iss)")
    sv.add_argument("--jwt-audience", help="HTTP: required JWT audience (default: public URL)")
    sv.add_argument(
        "--token-review",
        action="store_true",
        help="HTTP: accept ServiceAccount tokens bound to audience mcp-kube (TokenReview)",
    )
    sv.add_argument("--public-url", help="HTTP: the URL clients use (metadata, Host, audience)")
    sv.add_argument(
        "--allowed-host", action="append", help="HTTP: accept this Host header (repeatable)"
    )
    sv.add_argument(
        "--allowed-origin", action="append", help="HTTP: accept this browser Origin (repeatable)"
    )
    sv.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="HTTP on a loopback bind without tokens (local development; the OS user calls)",
    )


def run(args: argparse.Namespace) -> int:
    # Start-up makes ~140,000 long-lived objects (modules, the tools' pydantic models and schemas)
    # and nothing to collect: collections while they are made cost a quarter of a cold start.
    # serve() freezes them and turns collection back on once the server is built.
    gc.disable()
    from mcp_kube.server.transports import serve
    from mcp_kube.settings import Settings

    settings = Settings()
    clusters = overrides(
        settings.clusters,
        kubeconfig=args.kubeconfig,
        contexts=args.contexts,
        in_cluster=args.in_cluster or None,
        impersonate=args.impersonate or None,
    )
    auth = overrides(
        settings.http.auth,
        token_file=args.token_file,
        jwks_file=args.jwks_file,
        jwt_issuer=args.jwt_issuer,
        jwt_audience=args.jwt_audience,
        token_review=args.token_review or None,
        allow_unauthenticated=args.allow_unauthenticated or None,
    )
    http = overrides(
        settings.http,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        allowed_hosts=args.allowed_host,
        allowed_origins=args.allowed_origin,
        auth=auth,
    )
    settings = overrides(
        settings,
        clusters=clusters,
        http=http,
        audit=overrides(settings.audit, path=args.audit_log),
        principal=args.principal or None,
        groups=None if args.groups is None else [g for g in args.groups.split(",") if g],
        log_format=args.log_format,
    )
    serve(settings, args.transport, policy_paths(args.policy))
    return 0
