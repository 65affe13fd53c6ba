"""``mcp-kube doctor``: check this machine, offline, and exit 0 only if everything works."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcp_kube.cli.common import SubParsers, overrides, policy_paths

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    d = sub.add_parser(
        "doctor",
        help="check this machine: CPU and llama.cpp build, models, clusters, policies, audit log",
        description="Check, without any network: Python and platform; the CPU's features and "
        "which of llama.cpp's CPU variants runs on it; each installed model's checksum and a "
        "batched-prompt generation in a child process (tokens/s; a crash is reported with its "
        "signal); that each cluster of the kubeconfig answers; that the policy files are valid; "
        "that the audit log is writable. Exit 0 only if everything configured works.",
    )
    d.set_defaults(handler=run)
    d.add_argument("--json", action="store_true", help="print the checks as JSON")
    d.add_argument("--kubeconfig", type=Path, help="kubeconfig (default: $KUBECONFIG)")
    d.add_argument("--context", action="append", dest="contexts", help="only this context")
    d.add_argument("--policy", type=Path, action="append", help="policy file or folder")
    d.add_argument("--audit-log", type=Path, help="audit log path (default: setting audit.path)")
    d.add_argument("--model", action="append", dest="models", help="check only this model")
    d.add_argument("--no-models", action="store_true", help="skip the model smoke runs")
    d.add_argument("--no-clusters", action="store_true", help="skip the cluster probes")


def run(args: argparse.Namespace) -> int:
    from mcp_kube.doctor import as_json, render, run_checks
    from mcp_kube.settings import Settings

    settings = Settings()
    settings = overrides(
        settings,
        clusters=overrides(settings.clusters, kubeconfig=args.kubeconfig, contexts=args.contexts),
        audit=overrides(settings.audit, path=args.audit_log),
    )
    checks = run_checks(
        settings,
        policy_paths(args.policy),
        models=args.models,
        skip_models=args.no_models,
        skip_clusters=args.no_clusters,
    )
    report = as_json(checks)
    print(json.dumps(report, indent=2) if args.json else render(checks))
    return 0 if report["ok"] else 1
