"""``mcp-kube bundle``: the offline install bundle, made here, installed with no network."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcp_kube.cli.common import SubParsers

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    b = sub.add_parser(
        "bundle",
        help="the offline install bundle: create, verify, install (no network)",
        description="One archive with the wheels for this platform, model files, policies, "
        "deploy/ and checksums, to carry into a disconnected site.",
    )
    bsub = b.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = bsub.add_parser("create", help="write a bundle from this installation")
    c.set_defaults(handler=create)
    c.add_argument(
        "--output", type=Path, help="the archive (default: mcp-kube-bundle-VERSION-PLATFORM.tar)"
    )
    c.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="a verified model to carry (repeatable; default: the default model)",
    )
    c.add_argument("--no-model", action="store_true", help="carry no model file")
    c.add_argument(
        "--no-llm", action="store_true", help="leave out the local model runtime (llama.cpp)"
    )
    v = bsub.add_parser("verify", help="check a bundle's files against its checksums")
    v.set_defaults(handler=verify)
    v.add_argument("archive", type=Path)
    i = bsub.add_parser("install", help="verify, make a virtualenv from it, import its models")
    i.set_defaults(handler=install)
    i.add_argument("archive", type=Path)
    i.add_argument("--venv", type=Path, required=True, help="a new folder for the virtualenv")
    i.add_argument("--store", type=Path, help="model store (default: setting models.store)")


def _report(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _source() -> Path | None:
    """Where policies/ and deploy/ come from: this checkout, else the installed share folder."""
    here = Path(__file__).resolve().parents[2]
    return next(
        (d for d in (here, Path(sys.prefix) / "share" / "mcp-kube") if (d / "policies").is_dir()),
        None,
    )


def create(args: argparse.Namespace) -> int:
    import sysconfig

    import mcp_kube
    from mcp_kube import bundle
    from mcp_kube.llm import manifest as mf

    names = [] if args.no_model else args.model or [mf.by_role("default").name]
    models = [mf.get_manifest(n) for n in names]
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    out = args.output or Path(f"mcp-kube-bundle-{mcp_kube.__version__}-{platform}.tar")
    extras = () if args.no_llm else ("llm",)
    bundle.create(out, models=models, repo=_source(), extras=extras, report=_report)
    print(out)
    return 0


def verify(args: argparse.Namespace) -> int:
    from mcp_kube import bundle

    info = bundle.verify(args.archive)
    carried = ", ".join(m["name"] for m in info.get("models") or []) or "none"
    print(
        f"ok: {info['files']} files verified; mcp-kube {info['mcp_kube']} for "
        f"{info['python']} on {info['platform']}; {len(info['wheels'])} wheels; "
        f"models: {carried}"
    )
    return 0


def install(args: argparse.Namespace) -> int:
    from mcp_kube import bundle

    info = bundle.install(args.archive, args.venv, store=args.store, report=_report)
    print(f"installed: {args.venv / 'bin' / 'mcp-kube'} ({len(info['wheels'])} packages)")
    return 0
