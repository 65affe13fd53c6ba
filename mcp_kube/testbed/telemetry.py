"""GPU telemetry of one testbed cluster: a simulated dcgm-exporter scraped by a Prometheus.

Why this shape: sites read GPU utilization from dcgm-exporter through Prometheus, so the
testbed runs the real Prometheus (built like the other components) against an exporter that
plays the fleet file's utilization patterns (:mod:`.gpusim`). History is what makes idle GPUs
and efficiency answerable at once: before Prometheus starts, ``promtool tsdb
create-blocks-from openmetrics`` writes the fleet's last ``history_h`` hours into its data
folder. Blocks are stamped with absolute times, so they are generated at each start.
Both processes are recorded like the control plane's, so ``status`` shows them and ``down``
stops them; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mcp_kube.errors import ComponentFailed
from mcp_kube.testbed import gpusim
from mcp_kube.testbed.build import Report
from mcp_kube.testbed.fleet import Fleet, load_fleet
from mcp_kube.testbed.paths import COMPONENTS, binary_path
from mcp_kube.testbed.pki import Pki
from mcp_kube.testbed.processes import Proc, free_port, http_ok, start, wait
from mcp_kube.testbed.state import ClusterState, ComponentState, TestbedState, save_state

__all__ = [
    "EXPORTER",
    "JOB",
    "PROBES",
    "PROMETHEUS",
    "prometheus_url",
    "server_env",
    "start_telemetry",
    "wait_telemetry",
]

EXPORTER = "dcgm-exporter"
PROMETHEUS = "prometheus"
JOB = "dcgm-exporter"  # the scrape job, also stamped on the backfilled history
READY_TIMEOUT_S = 60.0


def _binary(name: str) -> str:
    return str(binary_path(next(c for c in COMPONENTS if c.name == name)))


def server_env(state: TestbedState) -> dict[str, str]:
    """The settings that point an mcp-kube server at the testbed's Prometheus servers (and
    the fleets' GPU prices), as environment variables; empty without telemetry."""
    sources: dict[str, dict[str, object]] = {}
    prices: dict[str, float] = {}
    for cs in state.clusters:
        url = prometheus_url(cs)
        tel = load_fleet(cs.profile).telemetry
        if url is None or tel is None:
            continue
        sources[cs.name] = {"url": url, "timeout_s": 10}
        prices |= tel.prices
    if not sources:
        return {}
    return {
        "MCP_KUBE_CLUSTERS__METRICS": json.dumps(sources, separators=(",", ":")),
        "MCP_KUBE_CLUSTERS__GPU_PRICES": json.dumps(prices, separators=(",", ":")),
    }


def prometheus_url(cs: ClusterState) -> str | None:
    """The URL of the cluster's Prometheus, if the testbed runs one."""
    comp = next((c for c in cs.components if c.name == PROMETHEUS), None)
    return f"http://127.0.0.1:{comp.ports['web']}" if comp else None


def _backfill(fl: Fleet, t0: float, instance: str, data: Path, log: Path) -> int:
    """Write the history blocks into ``data``; returns the number of series."""
    assert fl.telemetry is not None
    devs = gpusim.devices(fl)
    source = data.parent / "history.om"
    extra = {"instance": instance, "job": JOB}
    with source.open("w") as out:
        for chunk in gpusim.openmetrics_history(
            devs, t0, fl.telemetry.history_h, fl.telemetry.history_step_s, extra
        ):
            out.write(chunk)
    args = [_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics"]
    args += ["--max-block-duration=24h", str(source), str(data)]
    with log.open("ab") as out:
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=False)
    source.unlink()
    if done.returncode != 0:
        raise ComponentFailed(f"backfilling the metrics history failed; its log: {log}")
    return len(devs) * len(gpusim.METRICS)


def _config(fl: Fleet, exporter_port: int) -> dict[str, object]:
    assert fl.telemetry is not None
    every = f"{fl.telemetry.scrape_interval_s}s"
    return {
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "scrape_configs": [
            {
                "job_name": JOB,
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }


PROBES = {EXPORTER: "/healthz", PROMETHEUS: "/-/ready"}  # plain HTTP on 127.0.0.1


def wait_telemetry(proc: Proc, comp: ComponentState) -> None:
    """Wait until a telemetry component answers its probe (also after a ``restart``)."""
    probe = PROBES[comp.name]
    url = f"http://127.0.0.1:{next(iter(comp.ports.values()))}{probe}"
    wait(f"{comp.name} {probe}", lambda: http_ok(url), [(proc, comp)], READY_TIMEOUT_S)


def _launch(
    state: TestbedState, cs: ClusterState, name: str, args: list[str], ports: dict[str, int]
) -> ComponentState:
    folder = Path(cs.folder)
    proc, comp = start(name, args, folder / "logs" / f"{name}.log", ports)
    cs.components.append(comp)
    save_state(state)
    wait_telemetry(proc, comp)
    return comp


def start_telemetry(state: TestbedState, cs: ClusterState, fl: Fleet, report: Report) -> None:
    """Start the exporter, backfill the history, start Prometheus (fleets with telemetry)."""
    if fl.telemetry is None:
        return
    began = time.monotonic()
    t0 = time.time()
    folder = Path(cs.folder) / "telemetry"
    data = folder / "prometheus-data"
    data.mkdir(parents=True)
    exporter_port, web_port = free_port(), free_port()
    exporter = [sys.executable, "-m", "mcp_kube.testbed.dcgm", "--profile", cs.profile]
    exporter += ["--port", str(exporter_port), "--t0", f"{t0:.3f}", "--server", cs.server]
    pki = Path(cs.folder) / "pki"
    cert, key = Pki.load(pki).clients["admin"]
    exporter += ["--ca", str(Pki.load(pki).ca_cert), "--cert", str(cert), "--key", str(key)]
    _launch(state, cs, EXPORTER, exporter, {"http": exporter_port})
    instance = f"127.0.0.1:{exporter_port}"
    series = _backfill(fl, t0, instance, data, Path(cs.folder) / "logs" / "promtool.log")
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(_config(fl, exporter_port)))
    prom = [_binary(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={data}"]
    prom += [f"--web.listen-address=127.0.0.1:{web_port}", "--storage.tsdb.retention.time=3d"]
    _launch(state, cs, PROMETHEUS, prom, {"web": web_port})
    report(
        f"[{fl.cluster}] telemetry ready in {time.monotonic() - began:.1f}s: {series} series "
        f"x {fl.telemetry.history_h:g} h backfilled, Prometheus http://127.0.0.1:{web_port}"
    )
