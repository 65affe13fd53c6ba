"""The simulated dcgm-exporter: ``python -m mcp_kube.testbed.dcgm --profile P --port N --t0 T``.

One process per testbed cluster, on 127.0.0.1, single-threaded (a scrape is small): ``/metrics``
answers what :func:`mcp_kube.testbed.gpusim.exposition` says the fleet's GPUs read now, and
``/healthz`` answers ``ok`` for the readiness probe. Given the API server (``--server`` and the
admin's client certificate), GPUs follow the pods running now, as dcgm-exporter learns them
from the kubelet: a deleted pod frees its GPUs, a submitted job's pod gets some (busy); the
list is read at most every ``POD_TTL_S`` seconds, and the last one is kept while it fails.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from mcp_kube.errors import TestbedError
from mcp_kube.testbed import fleet, gpusim
from mcp_kube.testbed.rest import Rest

__all__ = ["LiveDevices", "main"]

POD_TTL_S = 10.0


class LiveDevices:
    """The devices of the fleet, held by the pods the API server lists as running."""

    def __init__(self, fl: fleet.Fleet, rest: Rest | None) -> None:
        self.fleet = fl
        self.rest = rest
        self.devices = gpusim.devices(fl)
        self.read_at = 0.0

    def __call__(self) -> list[gpusim.Device]:
        if self.rest is None or time.monotonic() - self.read_at < POD_TTL_S:
            return self.devices
        self.read_at = time.monotonic()
        try:
            pods = self.rest.get("/api/v1/pods", fieldSelector="status.phase=Running")["items"]
        except (TestbedError, KeyError, TypeError):
            return self.devices  # the API server is away: the GPUs keep their holders
        self.devices = gpusim.devices(self.fleet, gpusim.live_workloads(self.fleet, pods))
        return self.devices


def _handler(devs: Callable[[], list[gpusim.Device]], t0: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body = gpusim.exposition(devs(), time.time(), t0).encode()
                kind = "text/plain; version=0.0.4; charset=utf-8"
            elif self.path == "/healthz":
                body, kind = b"ok\n", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # a scrape every few seconds would fill the log

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="simulated dcgm-exporter of a testbed fleet")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--t0", type=float, required=True, help="testbed start, epoch seconds")
    parser.add_argument("--server", help="API server URL: GPUs follow its running pods")
    parser.add_argument("--ca", type=Path)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    args = parser.parse_args(argv)
    rest = None
    if args.server:
        rest = Rest(args.server, args.ca, args.cert, args.key, pool=1)
    devs = LiveDevices(fleet.load_fleet(args.profile), rest)
    server = HTTPServer(("127.0.0.1", args.port), _handler(devs, args.t0))
    server.serve_forever()


if __name__ == "__main__":
    main()
