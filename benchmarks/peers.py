"""The peers `make bench` compares with, built or installed at pinned versions, outside the
repository (under the mcp-kube cache folder), and reused once there.

- kubernetes-mcp-server (Go) v0.0.67, built from the wrapper module in benchmarks/peers/.
- mcp-server-kubernetes (npm) 4.1.7; it runs kubectl, so the testbed's kubectl goes first on
  its PATH.
- kubectl: the testbed's (built from k8s.io/kubernetes at the pinned version), and jq.

Usage: python benchmarks/peers.py   (builds what is missing, prints the paths as JSON)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mcp_kube.testbed.paths import COMPONENTS, binary_path, cache_dir

HERE = Path(__file__).resolve().parent
KMS_VERSION = "v0.0.67"
KMS_MODULE = "github.com/containers/kubernetes-mcp-server"
MSK_VERSION = "4.1.7"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def kms() -> Path:
    out = cache_dir() / "peers" / f"kubernetes-mcp-server-{KMS_VERSION}" / "kubernetes-mcp-server"
    if out.is_file():
        return out
    go = shutil.which("go")
    if go is None:
        raise SystemExit("Go is needed to build kubernetes-mcp-server for the benchmarks")
    _log(f"building kubernetes-mcp-server {KMS_VERSION} ...")
    t0 = time.monotonic()
    tmp = out.with_name(out.name + ".partial")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    ldflags = f"-s -w -X {KMS_MODULE}/pkg/version.Version={KMS_VERSION}"
    subprocess.run(
        [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp),
         f"{KMS_MODULE}/cmd/kubernetes-mcp-server"],
        cwd=HERE / "peers" / "kubernetes-mcp-server",
        env=dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false"),
        check=True,
    )  # fmt: skip
    os.replace(tmp, out)
    _log(f"built kubernetes-mcp-server in {time.monotonic() - t0:.0f}s")
    return out


def msk() -> Path:
    """The entry script of mcp-server-kubernetes (run with node)."""
    folder = cache_dir() / "npm" / f"mcp-server-kubernetes-{MSK_VERSION}"
    entry = folder / "node_modules" / "mcp-server-kubernetes" / "dist" / "index.js"
    if entry.is_file():
        return entry
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to install mcp-server-kubernetes for the benchmarks")
    _log(f"installing mcp-server-kubernetes {MSK_VERSION} ...")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"name": "mcp-kube-bench-peers", "private": true}\n')
    subprocess.run(
        [npm, "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
         "--loglevel=error", f"mcp-server-kubernetes@{MSK_VERSION}"],
        cwd=folder, env=dict(os.environ, NPM_CONFIG_UPDATE_NOTIFIER="false"), check=True,
    )  # fmt: skip
    return entry


def kubectl() -> Path:
    path = binary_path(next(c for c in COMPONENTS if c.name == "kubectl"))
    if not path.is_file():
        raise SystemExit("kubectl is not built yet: run `mcp-kube testbed build`")
    return path


def jq() -> Path:
    found = shutil.which("jq")
    if found is None:
        raise SystemExit("jq is needed for the kubectl + jq baseline (Debian: apt-get install jq)")
    return Path(found)


def main() -> int:
    print(
        json.dumps(
            {"kms": str(kms()), "msk": str(msk()), "kubectl": str(kubectl()), "jq": str(jq())},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
