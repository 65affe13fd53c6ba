"""``mcp-kube testbed``: build, start, stop and drill the local simulated GPU cluster(s)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from mcp_kube.cli.common import SubParsers
from mcp_kube.errors import TestbedError

__all__ = ["register"]

_DIR_HELP = "run folder (default: $MCP_KUBE_TESTBED_DIR or ~/.cache/mcp-kube/testbed/run)"
_COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kueue",
)


def register(sub: SubParsers) -> None:
    tb = sub.add_parser(
        "testbed",
        help="build, start and stop the local simulated GPU cluster(s)",
        description=(
            "A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, "
            "kube-scheduler) with KWOK-simulated GPU nodes, built from pinned upstream Go "
            "modules and bound to 127.0.0.1 only."
        ),
    )
    tsub = tb.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = tsub.add_parser(
        "build", help="build the pinned binaries into the cache (skips cached ones)"
    )
    b.set_defaults(handler=build_binaries)
    b.add_argument("--force", action="store_true", help="rebuild even when cached")
    p = tsub.add_parser(
        "pin", help="rewrite testbed/go/kubernetes for a Kubernetes release (e.g. v1.36.3)"
    )
    p.set_defaults(handler=pin_release)
    p.add_argument("version", help="a k8s.io/kubernetes release tag, e.g. v1.36.3")
    _up_parser(tsub)
    d = tsub.add_parser("down", help="stop every testbed process and remove the run folder")
    d.set_defaults(handler=down)
    d.add_argument("--dir", type=Path, help=_DIR_HELP)
    d.add_argument("--keep-logs", action="store_true", help="keep component logs")
    _restart_parser(tsub)
    s = tsub.add_parser("status", help="show components, PIDs, ports, logs and the kubeconfig")
    s.set_defaults(handler=status)
    s.add_argument("--dir", type=Path, help=_DIR_HELP)
    s.add_argument("--json", action="store_true", help="print JSON")


def _up_parser(tsub: SubParsers) -> None:
    u = tsub.add_parser("up", help="start the control plane(s) and load the GPU fleet")
    u.set_defaults(handler=up)
    u.add_argument(
        "--profile", default="default", help="fleet profile: default | scale (%(default)s)"
    )
    u.add_argument(
        "--clusters", type=int, default=1, choices=(1, 2), help="control planes to start"
    )
    u.add_argument("--dir", type=Path, help=_DIR_HELP)
    u.add_argument(
        "--apiserver-port", type=int, default=0, help="port of the first API server (default: free)"
    )


def _restart_parser(tsub: SubParsers) -> None:
    r = tsub.add_parser(
        "restart",
        help="kill one component (as a crash would) and start it again, for outage drills",
    )
    r.set_defaults(handler=restart)
    r.add_argument("component", choices=_COMPONENTS)
    r.add_argument("--cluster", default="gpu-east", help="cluster name (%(default)s)")
    r.add_argument(
        "--down", type=float, default=0.0, metavar="SECONDS", help="time left down (%(default)s)"
    )
    r.add_argument("--dir", type=Path, help=_DIR_HELP)


def build_binaries(args: argparse.Namespace) -> int:
    from mcp_kube.testbed import build

    for name, path in build.build_all(force=args.force).items():
        print(f"{name}: {path}")
    return 0


def pin_release(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"v1\.\d+\.\d+", args.version):
        raise TestbedError(f"{args.version!r} is not a release tag like v1.36.3")
    from mcp_kube.testbed import pin

    print(f"wrote {pin.write_wrapper(args.version)}; now run 'mcp-kube testbed build'")
    return 0


def up(args: argparse.Namespace) -> int:
    from mcp_kube.testbed import cluster

    state = cluster.up(
        profile=args.profile,
        clusters=args.clusters,
        run_dir=args.dir,
        apiserver_port=args.apiserver_port,
    )
    contexts = ", ".join(c.context for c in state.clusters)
    print(f"kubeconfig: {state.kubeconfig} (clusters: {contexts})")
    print(f"export KUBECONFIG={state.kubeconfig}")
    from mcp_kube.testbed.telemetry import server_env

    env = server_env(state)
    if env:  # the server's metrics sources: `set -a; . FILE; set +a` before `mcp-kube serve`
        path = Path(state.run_dir) / "server.env"
        path.write_text("".join(f"{k}='{v}'\n" for k, v in env.items()))
        print(f"set -a; . {path}; set +a   # GPU metrics from the testbed's Prometheus")
    return 0


def down(args: argparse.Namespace) -> int:
    from mcp_kube.testbed import cluster

    cluster.down(args.dir, keep_logs=args.keep_logs)
    return 0


def restart(args: argparse.Namespace) -> int:
    from mcp_kube.testbed import cluster

    cluster.restart(args.dir, args.cluster, args.component, down_s=args.down)
    return 0


def status(args: argparse.Namespace) -> int:
    from mcp_kube.testbed import cluster

    info = cluster.status(args.dir)
    if args.json:
        print(json.dumps(info, indent=2))
    elif "clusters" not in info:
        print(f"no testbed in {info['run_dir']}")
    else:
        _print_status(info)
    return 0 if info.get("running") else 1


def _print_status(info: dict[str, Any]) -> None:
    print(f"kubeconfig: {info['kubeconfig']}  (started {info['started_at']})")
    for cl in info["clusters"]:
        print(
            f"{cl['name']}  {cl['server']}  contexts: {cl['context']}, "
            + ", ".join(cl["user_contexts"])
        )
        for c in cl["components"]:
            alive = "running" if c["running"] else "NOT RUNNING"
            ports = ",".join(f"{k}={v}" for k, v in c["ports"].items())
            print(f"  {c['name']:<24} pid {c['pid']:<8} {alive:<12} {ports:<24} {c['log']}")
