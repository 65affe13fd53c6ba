"""``mcp-kube audit``: verify the audit log's chain; run scripted audits into evidence."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcp_kube.cli.common import SubParsers

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    au = sub.add_parser("audit", help="verify the audit log; run scripted audits")
    asub = au.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = asub.add_parser(
        "verify",
        help="check the hash chain and signed checkpoints; locate the first tampered record",
    )
    v.set_defaults(handler=verify_log)
    v.add_argument("paths", nargs="+", type=Path, help="the log (its rotated files are found)")
    v.add_argument("--public-key", type=Path, help="PEM public key that signed the checkpoints")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    r = asub.add_parser("run", help="run a script of tool calls and write an evidence report")
    r.set_defaults(handler=run_audit)
    r.add_argument("script", type=Path)
    r.add_argument(
        "--server",
        help="MCP server command or http(s) URL (default: the script's, else `mcp-kube serve`)",
    )
    r.add_argument("--out", type=Path, default=Path("."), help="folder for the report files")


def verify_log(args: argparse.Namespace) -> int:
    from mcp_kube import audit

    report = audit.verify(args.paths, args.public_key)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    print(
        f"{'ok' if report.ok else 'FAILED'}: {report.records} records in "
        f"{len(report.files)} file(s), {report.checkpoints} checkpoint(s)"
    )
    for p in report.problems:
        print(f"  {p.kind}: {p.file}:{p.line} seq {p.seq}: {p.detail}")
    for note in report.notes:
        print(f"  note: {note}")
    return 0 if report.ok else 1


def run_audit(args: argparse.Namespace) -> int:
    from mcp_kube.evidence import run_script

    json_path, md_path, ok = run_script(args.script, args.server, args.out)
    print(f"evidence: {json_path} and {md_path}")
    return 0 if ok else 1
