"""The offline bundle: created from this installation, verified, refused when damaged, and
installed into a fresh virtualenv inside a network namespace with only loopback (`unshare -n`),
where mcp-kube works and its model loads."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mcp_kube.bundle import BundleError, install
from mcp_kube.llm.cpu import CpuInfo
from mcp_kube.llm.manifest import get_manifest

from .mcp_helpers import cannot_run

MCP_KUBE = str(Path(sys.executable).parent / "mcp-kube")
MODEL = "smollm2-135m-instruct-q4_1"  # the smallest verified model: the plumbing is tested


def offline(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "-n", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode:
        cannot_run("unshare -n is not permitted here")
    subprocess.run(
        [MCP_KUBE, "models", "install", MODEL], capture_output=True, check=True, timeout=300
    )
    out = tmp_path_factory.mktemp("bundle") / "mcp-kube-bundle.tar"
    made = subprocess.run(
        [MCP_KUBE, "bundle", "create", "--output", str(out), "--model", MODEL],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return out


def test_a_bundle_holds_wheels_model_policies_deploy_and_checksums(bundle: Path) -> None:
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    wheels = [n for n in names if n.endswith(".whl")]
    assert any("/mcp_kube-" in n for n in wheels)
    assert any("/llama_cpp_python-" in n for n in wheels)  # the runtime built for this platform
    assert not any("/pytest-" in n or "/ruff-" in n for n in wheels)  # no development tools
    model = f"models/{get_manifest(MODEL).file}"
    for part in ("SHA256SUMS", "bundle.json", "requirements.txt", "policies/default.yaml",
                 "deploy/base/kustomization.yaml", model):  # fmt: skip
        assert f"mcp-kube-bundle/{part}" in names, part
    verified = offline(MCP_KUBE, "bundle", "verify", str(bundle))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("ok: ")


def test_a_bundle_records_its_cpu_variants_and_refuses_a_cpu_none_serves(
    bundle: Path, tmp_path: Path
) -> None:
    with tarfile.open(bundle) as tar:
        f = tar.extractfile("mcp-kube-bundle/bundle.json")
        assert f is not None
        record = json.load(f)["llama_cpp"]
    assert record["kind"] == "portable"
    assert {"x64", "haswell", "skylakex", "zen4"} <= set(record["cpu_variants"])
    assert "sapphirerapids" not in record["cpu_variants"]  # the AMX code stays out
    other = CpuInfo("aarch64", "an ARM server", frozenset({"asimd"}))
    with pytest.raises(BundleError, match="built for x86_64, this machine is aarch64"):
        install(bundle, tmp_path / "venv", cpu=other)
    assert not (tmp_path / "venv").exists()  # refused before anything was written


def _rewrite(src: Path, dest: Path, change: str, extra: tarfile.TarInfo | None = None) -> None:
    """A copy of the bundle with one file's content changed (and maybe one member added)."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for m in tin:
            f = tin.extractfile(m) if m.isfile() else None
            if f is not None and m.name.endswith(change):
                data = f.read() + b"\n# changed in transit\n"
                m.size = len(data)
                tout.addfile(m, io.BytesIO(data))
            else:
                tout.addfile(m, f)
        if extra is not None:
            tout.addfile(extra, io.BytesIO(b"x"))


def test_a_damaged_or_unsafe_bundle_is_refused(bundle: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed.tar"
    _rewrite(bundle, changed, "policies/default.yaml")
    out = offline(MCP_KUBE, "bundle", "verify", str(changed))
    assert out.returncode == 2
    assert "checksum mismatch: policies/default.yaml" in out.stderr
    escape = tarfile.TarInfo("mcp-kube-bundle/../../etc/evil")
    escape.size = 1
    unsafe = tmp_path / "unsafe.tar"
    _rewrite(bundle, unsafe, "no-such-file", escape)
    out = offline(MCP_KUBE, "bundle", "install", str(unsafe), "--venv", str(tmp_path / "v"))
    assert out.returncode == 2
    assert "unsafe or foreign path" in out.stderr
    assert not (tmp_path / "v").exists()  # nothing was installed


def test_install_without_network_gives_a_working_mcp_kube_and_a_verified_model(
    bundle: Path, tmp_path: Path
) -> None:
    venv, store = tmp_path / "venv", tmp_path / "models"
    out = offline(
        MCP_KUBE, "bundle", "install", str(bundle), "--venv", str(venv), "--store", str(store)
    )
    assert out.returncode == 0, out.stderr
    cli = str(venv / "bin" / "mcp-kube")
    assert offline(cli, "--help").returncode == 0
    verified = offline(cli, "models", "verify", MODEL, "--store", str(store))
    assert verified.returncode == 0, verified.stderr
    policies = venv / "share" / "mcp-kube" / "policies"
    tested = offline(cli, "policy", "test", str(policies / "tests"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    generate = (
        "import sys; from llama_cpp import Llama; "
        "m = Llama(model_path=sys.argv[1], n_ctx=256, verbose=False); "
        "print(m.create_completion('Kubernetes is', max_tokens=4)['choices'][0]['text'])"
    )
    model = store / get_manifest(MODEL).file
    ran = offline(str(venv / "bin" / "python"), "-c", generate, str(model))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip()  # the offline runtime generated text
