"""The benchmark tables, rendered from a run's JSON (benchmarks/compare.py --out).

`make bench` writes them into BENCHMARKS.md between the markers below, so every figure there
comes from benchmarks/results/reference.json; tests/unit/test_benchmarks_table.py fails when
the two disagree. Both the JSON of the current compare.py and that of earlier versions (no
answer checks, B2 against the default-limited peer only, B4 memory growth) render; what a run
did not measure is left out, never filled in.

Usage: python benchmarks/report.py [JSON] [--write BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "results" / "reference.json"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
PEERS = {"kms": "kubernetes-mcp-server", "msk": "mcp-server-kubernetes"}
Row = tuple[str, str, str, str]
R = dict[str, Any]


def num(x: float) -> str:
    return f"{x:,}"


def ms(s: R) -> str:
    return f"{num(s['median_ms'])} ms ({num(s['min_ms'])}-{num(s['max_ms'])})"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def fmt_ratio(x: float) -> str:
    return f"{x:.3g}x"


def goal(x: float, limit: float, at_most: bool = True) -> str:
    met = x <= limit if at_most else x >= limit
    sign = "<=" if at_most else ">="
    return f"{fmt_ratio(x)} (goal {sign} {limit}x) {'met' if met else 'missed'}"


def _b1_cold(b: R) -> list[Row]:
    ours = b["ours"]["cold"]["median_ms"]
    checked = b["ours"].get("checked") and b["kubectl_jq"].get("checked")
    what = "checked against the fleet file" if checked else "answers not checked in this run"
    rows: list[Row] = [
        (
            f"B1 free GPUs per product, cold ({what})",
            ms(b["ours"]["cold"]),
            "kubectl + jq " + ms(b["kubectl_jq"]),
            goal(ratio(ours, b["kubectl_jq"]["median_ms"]), 0.25),
        )
    ]
    for who, limit in (("kms", 0.5), ("msk", None)):
        if who not in b:
            continue
        p = b[who]
        if "cold" in p:
            peer, cold = f"{PEERS[who]} {ms(p['cold'])}", p["cold"]["median_ms"]
        else:  # earlier JSON: one first call
            peer, cold = f"{PEERS[who]} {num(p['cold_ms'])} ms (1 run)", p["cold_ms"]
        if not p.get("checked"):
            peer += ", answer not checked"
        x = ratio(ours, cold)
        rows.append(("", "", peer, goal(x, limit) if limit else fmt_ratio(x)))
    return rows


def _b1_repeat(b: R) -> list[Row]:
    ours = b["ours"]["warm"]["median_ms"]
    rows: list[Row] = []
    for who in ("kms", "msk"):
        if who in b:
            w = b[who]["warm"]
            rows.append(("", "", f"{PEERS[who]} {ms(w)}", fmt_ratio(ratio(ours, w["median_ms"]))))
    label = "B1 repeat call (mcp-kube: from its watch caches; peers: list again)"
    first = ("", "", "", "") if not rows else rows.pop(0)
    return [(label, ms(b["ours"]["warm"]), first[2], first[3]), *rows]


def _call(c: R, cpu: bool = True) -> str:
    out = f"p50 {num(c['p50_ms'])} / p99 {num(c['p99_ms'])} ms, {num(c['calls_per_s'])}/s"
    if cpu and "server_cpu_ms_per_call" in c:
        out += f", server CPU {c['server_cpu_ms_per_call']} ms/call"
    return out


def _b2_row(kind: str, n: str, b: R) -> Row:
    o = b["ours"][kind][n]
    label = "cached read" if kind == "cached" else "API list"
    ours = f"`{b['ours'][kind]['tool']}` {_call(o)}"
    if "kms" not in b:
        return (f"B2 {label}, {n} client(s)", ours, "", "")
    k = b["kms"][kind][n]
    peer = f"tuned `{b['kms'][kind]['tool']}` {_call(k)}"
    if "kms_default" in b:
        peer += f"; at default limiter {_call(b['kms_default'][kind][n], cpu=False)}"
    verdict = "throughput " + goal(ratio(o["calls_per_s"], k["calls_per_s"]), 2.0, at_most=False)
    if "server_cpu_ms_per_call" in o:
        c = o["server_cpu_ms_per_call"]
        verdict += f"; CPU <= 1 ms/call {'met' if c <= 1 else 'missed'}"
    floor = b.get("bare_sdk", {}).get("floor", {}).get(n)
    verdict += _b2_bound(o, k, b.get("cpus"), floor)
    return (f"B2 {label}, {n} client(s)", ours, "kubernetes-mcp-server " + peer, verdict)


def _b2_bound(o: R, k: R, cpus: int | None, floor: R | None) -> str:
    """What the host allows any server on the SDK: the clients' and the API server's CPU per
    call of our calls, plus the bare SDK server's own (``floor``, same load), over the cores;
    and the clients run in one process, so at most one core's worth of their CPU per call."""
    if not cpus or "client_cpu_ms_per_call" not in o:
        return ""
    clients = o["client_cpu_ms_per_call"]
    sdk = floor.get("server_cpu_ms_per_call", 0.0) if floor else 0.0
    others = clients + o.get("apiserver_cpu_ms_per_call", 0.0) + sdk
    ceiling = cpus * 1000 / others if others else float("inf")
    one_process = 1000 / clients if clients else float("inf")
    parts = f"clients {clients}"
    if "apiserver_cpu_ms_per_call" in o:
        api = o["apiserver_cpu_ms_per_call"]
        parts += f" + kube-apiserver (its background work included) {api}"
    if sdk:
        parts += f" + the bare SDK server's {sdk}"
    cap = min(ceiling, one_process)
    reach = "within" if cap >= 2 * k["calls_per_s"] else "beyond"
    return (
        f"; host {o['host_busy_cores']} of {cpus} cores busy; {parts} ms CPU per call cap a "
        f"server on the SDK at {ceiling:,.0f}/s here, and the clients (one process) at "
        f"{one_process:,.0f}/s: 2x the peer ({2 * k['calls_per_s']:,.0f}/s) is {reach} "
        f"{cap:,.0f}/s"
    )


def _b2_floor(b: R) -> list[Row]:
    """The same load on a bare SDK server: the CPU per call no tool of an SDK server goes under."""
    f = b["bare_sdk"]["floor"]
    return [
        (
            f"B2 floor: bare mcp SDK server, `{f['tool']}`, {n} client(s)",
            "",
            _call(f[n]),
            "the SDK's own CPU per call (bounds the <= 1 ms goal)",
        )
        for n in ("1", "10", "50")
        if n in f
    ]


def _b2_api(b: R) -> list[Row]:
    """The list class's LIST straight at the API server: what any server making it can reach."""
    a, rows = b["api_alone"], []
    for n in ("1", "10", "50"):
        if n not in a:
            continue
        verdict = "the most calls/s any server making this LIST can answer here"
        if "kms" in b:
            twice = 2 * b["kms"]["list"][n]["calls_per_s"]
            reach = "within" if a[n]["calls_per_s"] >= twice else "beyond"
            verdict += f": 2x the peer ({twice:,.0f}/s) is {reach} it"
        rows.append(
            (
                f"B2 API list bound: the API server alone, {n} client(s)",
                "",
                f"the same consistent LIST (`{a['path']}`) from {n} thread(s), no MCP: "
                f"p50 {num(a[n]['p50_ms'])} ms, {num(a[n]['calls_per_s'])}/s",
                verdict,
            )
        )
    if "rv0_1" in a and "1" in a:
        r, c = a["rv0_1"], a["1"]
        rows.append(
            (
                "B2 API list bound: the same LIST from the API server's watch cache, 1 client",
                "",
                f"resourceVersion=0 (may be stale): p50 {num(r['p50_ms'])} ms, "
                f"{num(r['calls_per_s'])}/s",
                f"a consistent LIST waits {num(round(c['p50_ms'] - r['p50_ms'], 2))} ms of its "
                f"{num(c['p50_ms'])} ms p50 for a fresh read",
            )
        )
    return rows


def _b2(b: R) -> list[Row]:
    if b.get("format") == 2:
        rows = [_b2_row(kind, n, b) for kind in ("cached", "list") for n in ("1", "10", "50")]
        rows += _b2_api(b) if "api_alone" in b else []
        return rows + (_b2_floor(b) if "bare_sdk" in b else [])
    rows: list[Row] = []  # earlier JSON: a cached read against the default-limited peer
    for n in ("1", "10", "50"):
        o, k = b["ours"][n], b["kms"][n]
        ours = f"`gpu_inventory` (cached) {_call(o)}"
        if "ours_whoami" in b:
            ours += f"; `whoami` {_call(b['ours_whoami'][n])}"
        x = fmt_ratio(ratio(o["calls_per_s"], k["calls_per_s"]))
        rows.append(
            (
                f"B2 {n} client(s)",
                ours,
                f"kubernetes-mcp-server `namespaces_list` at default limiter {_call(k)}",
                f"throughput {x} against an untuned peer (not a fair ratio)",
            )
        )
    return rows


def _spread(s: R) -> str:
    """`` (runs 3: 85.1-90.2)``: the p50 of each run, where B3 ran more than once."""
    if s.get("runs", 1) < 2:
        return ""
    return f" (runs {s['runs']}: {num(s['p50_min_us'])}-{num(s['p50_max_us'])})"


def _b3(b: R) -> list[Row]:
    rows: list[Row] = []
    for name, sets in b.items():
        for kind, s in sets.items():
            what = "submit_job review" if kind == "submit_review" else f"{kind} decision"
            rows.append(
                (
                    f"B3 {name.rsplit('/', 1)[-1]} policies, {what}",
                    f"p50 {num(s['p50_us'])} us{_spread(s)}, p99 {num(s['p99_us'])} us, "
                    f"{num(s['per_s'])}/s",
                    "",
                    "<= 100 us: " + ("met" if s["p50_us"] <= 100 else "missed"),
                )
            )
    return rows


def _b4(b: R) -> list[Row]:
    o, k = b["ours"], b["kubectl"]
    if "peak_rss_mib" in o:
        ours = f"{ms(o)}, server peak RSS {num(o['peak_rss_mib'])} MiB"
        ours += f" (idle {num(o['idle_rss_mib'])} MiB)" if "idle_rss_mib" in o else ""
        theirs = f"kubectl logs --tail {ms(k)}, its peak RSS {num(k['peak_rss_mib'])} MiB"
    else:  # earlier JSON: growth, and the benchmark process's own high-water mark
        ours = f"{ms(o)}, server RSS growth +{num(o['rss_growth_mib'])} MiB"
        theirs = (
            f"kubectl logs --tail {ms(k)}; its memory not measured (the "
            f"{num(k['peak_rss_mib'])} MiB recorded is the benchmark process's high-water mark)"
        )
    label = f"B4 last 10,000 lines of a {b['log_bytes'] / 1e9:g} GB log"
    label += f" (median of {o['runs']} pairs)" if o.get("runs", 3) != 3 else ""
    return [(label, ours, theirs, "wall " + goal(ratio(o["median_ms"], k["median_ms"]), 1.0))]


def _runs(values: list[float] | None) -> str:
    """`` (runs 6: 5.91-13.58)``: the lowest and highest of the runs a median was taken of."""
    return f" (runs {len(values)}: {min(values)}-{max(values)})" if values else ""


def _b5(b: R) -> list[Row]:
    agent, raw = _runs(b.get("agent_runs")), _runs(b.get("raw_runs"))
    return [
        (
            "B5 agent decode speed",
            f"{b['agent_decode_tok_s']} tok/s{agent}; first tool call "
            f"{b['first_tool_call_s_median']} s",
            f"raw llama-cpp-python {b['raw_llama_cpp_decode_tok_s']} tok/s{raw}",
            goal(b["ratio"] or 0.0, 0.95, at_most=False),
        )
    ]


def _b6(b: R) -> list[Row]:
    peers = "; ".join(f"{PEERS[w]} {ms(b[w])}" for w in ("kms", "msk") if w in b)
    if "bare_sdk" not in b:  # earlier JSON: no bare SDK server in the run
        met = "met" if b["ours"]["median_ms"] <= 1500 else "missed"
        return [("B6 cold start to tools/list", ms(b["ours"]), peers, f"<= 1.5 s: {met}")]
    bare = f"bare mcp SDK server {ms(b['bare_sdk'])}" + (f"; {peers}" if peers else "")
    x = ratio(b["ours"]["median_ms"], b["bare_sdk"]["median_ms"])
    verdict = "vs bare SDK " + goal(x, 1.15)
    if "start_split" in b:
        sp = b["start_split"]
        top = ", ".join(f"{k} {num(v)}" for k, v in sp["extra_by_package_ms"].items())
        verdict += (
            f"; imports under -X importtime (one start each): bare {num(sp['bare_imports_ms'])} "
            f"ms, mcp-kube the same {num(sp['shared_imports_ms'])} ms plus "
            f"{num(sp['extra_imports_ms'])} ms ({top})"
        )
    return [("B6 cold start to tools/list", ms(b["ours"]), bare, verdict)]


def _b7(b: R) -> list[Row]:
    what = f"{num(b['cached_pods'])} pods + {num(b['cached_nodes'])} nodes cached"
    per = b["per_10k_pods_mib"]
    met = "met" if per is not None and per <= 40 else "missed"
    return [
        (
            f"B7 server memory, {what}",
            f"RSS idle {num(b['idle_rss_mib'])} MiB, warm {num(b['warm_rss_mib'])} MiB, "
            f"peak {num(b['peak_rss_mib'])} MiB",
            "",
            f"+{num(per)} MiB per 10,000 pods (goal <= 40 MiB): {met}",
        )
    ]


def _b8(b: R) -> list[Row]:
    idle, util = b["idle_gpus"], b["gpu_utilization"]
    extra = ", ".join(f"{k} {num(v)}" for k, v in b["testbed_extra_rss_mib"].items())
    met = "met" if idle["p50_ms"] <= 500 else "missed"
    return [
        (
            "B8 idle_gpus / gpu_utilization, warm (Prometheus)",
            f"p50 {num(idle['p50_ms'])} ms / {num(util['p50_ms'])} ms "
            f"(p95 {num(idle['p95_ms'])} / {num(util['p95_ms'])} ms)",
            f"testbed telemetry + Kueue RSS {num(b['testbed_extra_rss_total_mib'])} MiB ({extra})",
            f"idle_gpus p50 <= 500 ms: {met}",
        )
    ]


def _llama(b: R) -> list[Row]:
    def tok(f: R) -> str:
        return f"decode {f['decode_tokens_per_s']} tok/s, prompt {f['prompt_tokens_per_s']} tok/s"

    same = "same answer" if b.get("same_answer") else "answers differ"
    earlier = f"; measured in {b['measured_in']}" if b.get("measured_in") else ""
    return [
        (
            f"llama.cpp portable build ({b['model']}, {b['runs']} rounds{earlier})",
            tok(b["portable"]),
            f"native (-march=native) build {tok(b['native'])}",
            f"decode {b['decode_ratio']}x, prompt {b['prompt_ratio']}x; {same}",
        )
    ]


SECTIONS = (
    ("b1", _b1_cold),
    ("b1", _b1_repeat),
    ("b2", _b2),
    ("b3", _b3),
    ("b4", _b4),
    ("b5", _b5),
    ("b6", _b6),
    ("b7", _b7),
    ("b8", _b8),
    ("llama_builds", _llama),
)


def _intro(r: R) -> str:
    m = r.get("machine", {})
    peers = ", ".join(f"{k} {v}" for k, v in r.get("peers", {}).items())
    profile = r.get("profile", "scale")
    return (
        f"Run on the `{profile}` testbed profile, {m.get('cpus')} CPUs "
        + (f"of {m['cpu_model']} " if m.get("cpu_model") else "")
        + f"({m.get('platform')}, Python {m.get('python')}); peers: {peers}. "
        f"Each figure is the median of {r.get('runs')} runs (min-max in brackets) unless "
        "stated; ratios are mcp-kube's figure over the other's."
    )


def render(r: R) -> str:
    """The Markdown block: a sentence on the run, then one table."""
    rows: list[Row] = [("benchmark", "mcp-kube", "compared with", "ratio / goal")]
    for key, fn in SECTIONS:
        if key in r:
            rows += fn(r[key])
    lines = [_intro(r), ""]
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("|---|---|---|---|")
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    for key, why in r.get("failed", {}).items():
        lines.append(f"\n{key.upper()} failed in this run: {why}")
    return "\n".join(lines)


def splice(markdown: str, block: str) -> str:
    """Replace what lies between the markers."""
    head, sep, rest = markdown.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"the markers {BEGIN} / {END} are missing")
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def block_of(markdown: str) -> str:
    return markdown.partition(BEGIN)[2].partition(END)[0].strip("\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("json", type=Path, nargs="?", default=REFERENCE)
    ap.add_argument("--write", type=Path, help="Markdown file with the markers to update")
    args = ap.parse_args()
    block = render(json.loads(args.json.read_text()))
    if args.write:
        args.write.write_text(splice(args.write.read_text(), block))
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
