"""``mcp-kube policy``: check, test and explain policy files, offline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcp_kube.cli.common import SubParsers, json_arg

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    pol = sub.add_parser("policy", help="check, test and explain policy files")
    psub = pol.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = psub.add_parser(
        "test", help="run policy test cases (on both CEL implementations where installed)"
    )
    t.set_defaults(handler=run_cases)
    t.add_argument("path", nargs="?", type=Path, default=Path("policies/tests"))
    c = psub.add_parser("check", help="validate policy files; exit 2 naming file and rule")
    c.set_defaults(handler=check)
    c.add_argument("paths", nargs="+", type=Path)
    e = psub.add_parser("explain", help="show which rules match a call and why")
    e.set_defaults(handler=explain)
    e.add_argument("--policy", action="append", type=Path, required=True, metavar="PATH")
    e.add_argument("--principal", required=True)
    e.add_argument("--groups", default="")
    e.add_argument("--tool", required=True)
    e.add_argument("--args", default="{}", help="the call's arguments as JSON")


def check(args: argparse.Namespace) -> int:
    from mcp_kube.policy.loader import load_engine

    engine = load_engine(args.paths)
    print(f"ok: {len(engine.files)} file(s), rules: {', '.join(engine.rule_ids)}")
    return 0


def run_cases(args: argparse.Namespace) -> int:
    from mcp_kube.policy.testing import run_tests
    from mcp_kube.tools.catalog import CatalogFacts

    results = run_tests(args.path, CatalogFacts())
    for r in results:
        if not r.ok:
            print(f"FAIL {r.file}: {r.name}: {r.detail}")
    failed = sum(1 for r in results if not r.ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def explain(args: argparse.Namespace) -> int:
    from mcp_kube.domain import Principal
    from mcp_kube.policy.loader import load_engine
    from mcp_kube.tools.catalog import by_name

    call_args = json_arg(args.args)
    engine = load_engine(args.policy)
    spec = by_name().get(args.tool)
    read_only = spec.read_only if spec else False
    groups = tuple(g for g in args.groups.split(",") if g)
    ex = engine.explain(Principal(args.principal, groups, "cli"), args.tool, read_only, call_args)
    out = {
        "decision": ex.decision.action,
        "rule": ex.decision.rule,
        "message": ex.decision.message,
        "matched": ex.matched,
        "warnings": ex.warnings,
        "audits": ex.audits,
        "approval": ex.approval,
        "notes": ex.notes,
    }
    if not read_only:
        out["note"] = "write validations judge the final manifest; see `policy test` cases"
    print(json.dumps(out, indent=2))
    return 0
