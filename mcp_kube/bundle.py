"""The offline install bundle: one archive a site carries through its transfer process.

``create`` (on a connected machine with mcp-kube installed) writes a tar with the wheels of
mcp-kube and everything it needs at run time, as installed here (so compiled parts such as
llama.cpp are the ones built and tested for this platform), the chosen model files with their
manifests, the policies, deploy/ and the Containerfile, plus ``SHA256SUMS`` over all of it.
``verify`` checks an archive against its sums and its layout; ``install`` verifies, then
creates a virtualenv from the wheels with pip ``--no-index`` and imports the models into the
store, where their own checksums are checked again. Neither touches the network.

Wheels come from the installed distributions: each one is packed again from its RECORD (files
outside site-packages, such as console scripts, are made again by pip from the metadata). A
project installed in editable mode is built from its checkout with its build backend, offline.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mcp_kube import __version__
from mcp_kube.errors import McpKubeError
from mcp_kube.llm.cpu import BuildInfo, CpuInfo, build_info, cpu_info, unservable_reason

__all__ = ["BundleError", "create", "install", "verify"]

FORMAT = 1
ROOT = "mcp-kube-bundle"
SUMS = "SHA256SUMS"
MAX_MEMBERS = 10_000
Report = Callable[[str], None]


class BundleError(McpKubeError):
    """A bundle cannot be made, is damaged or incomplete, or cannot be installed."""

    code = "bundle"


@dataclass(frozen=True)
class Contents:
    root: Path  # the folder that becomes the archive's top directory
    files: dict[str, str]  # relative path -> sha256


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _quiet(_msg: str) -> None:
    pass


# ---------------------------------------------------------------------------- wheels
def runtime_closure(root: str = "mcp-kube", extras: Iterable[str] = ("llm",)) -> list[Any]:
    """The installed distributions ``root[extras]`` needs at run time (markers evaluated for
    this interpreter), ``root`` first."""
    found: dict[str, tuple[Any, set[str]]] = {}
    order: list[str] = []
    todo: list[tuple[str, set[str]]] = [(root, set(extras))]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise BundleError(f"{name} is required but not installed here") from None
        old = found.get(key)
        if old is not None and wanted <= old[1]:
            continue
        extras_now = wanted | (old[1] if old else set())
        if old is None:
            order.append(key)
        found[key] = (dist, extras_now)
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in sorted(extras_now)] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            todo.append((req.name, set(req.extras)))
    return [found[k][0] for k in order]


def _is_editable(dist: Any) -> bool:
    raw = dist.read_text("direct_url.json")
    if not raw:
        return False
    try:
        return bool(json.loads(raw).get("dir_info", {}).get("editable"))
    except ValueError:
        return False


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def repack(dist: Any, out_dir: Path) -> Path:
    """A wheel made of an installed distribution's files (RECORD), as pip would install it."""
    info = next((f for f in dist.files or [] if f.parent.name.endswith(".dist-info")), None)
    if info is None:
        raise BundleError(f"{dist.metadata['Name']} has no RECORD to pack from")
    info_dir = info.parent.name
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")
    ]
    if not tags:
        raise BundleError(f"{dist.metadata['Name']}: its WHEEL file names no tag")
    name = canonicalize_name(dist.metadata["Name"]).replace("-", "_")
    parts = [t.split("-") for t in tags]  # e.g. py2-none-any + py3-none-any -> py2.py3-none-any
    tag = "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))
    target = out_dir / f"{name}-{dist.version}-{tag}.whl"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json", "uv_build.json"}
    rows: list[tuple[str, str, str]] = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(dist.files or [], key=str):
            rel = PurePosixPath(str(f))
            if rel.parts[0] == ".." or "__pycache__" in rel.parts or rel.suffix == ".pyc":
                continue
            if rel.parent.name == info_dir and rel.name in skip:
                continue
            path = Path(str(f.locate()))
            if not path.is_file():
                continue
            data = path.read_bytes()
            zf.writestr(str(rel), data)
            rows.append((str(rel), _record_hash(data), str(len(data))))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerows([*rows, (f"{info_dir}/RECORD", "", "")])
        zf.writestr(f"{info_dir}/RECORD", buf.getvalue())
    return target


def build_own_wheel(dist: Any, out_dir: Path) -> Path:
    """mcp-kube itself when installed from a checkout (editable): built by its backend."""
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    source = Path(url.removeprefix("file://"))
    if not (source / "pyproject.toml").is_file():
        raise BundleError(f"cannot find the checkout of {dist.metadata['Name']} at {source}")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(out_dir), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BundleError(f"building the mcp-kube wheel failed: {proc.stderr[-1500:]}")
    built = sorted(out_dir.glob("mcp_kube-*.whl"))
    if not built:
        raise BundleError("building the mcp-kube wheel produced no wheel")
    return built[-1]


# ---------------------------------------------------------------------------- create
def _pack_wheels(root: Path, extras: Iterable[str], report: Report) -> list[str]:
    """The wheels of this installation's runtime closure; returns their pins."""
    wheels = root / "wheels"
    wheels.mkdir(parents=True)
    pins = []
    for dist in runtime_closure(extras=extras):
        whl = build_own_wheel(dist, wheels) if _is_editable(dist) else repack(dist, wheels)
        pins.append(f"{dist.metadata['Name']}=={dist.version}")
        report(f"wheel {whl.name}")
    (root / "requirements.txt").write_text("\n".join(sorted(pins)) + "\n")
    return pins


def _pack_files(root: Path, models: list[Any], repo: Path | None, report: Report) -> None:
    """Verified model files with every manifest; policies, deploy/ and the Containerfile."""
    from mcp_kube.llm.manifest import check, default_manifest_dir

    (root / "models").mkdir()
    (root / "offline_models").mkdir()
    for manifest in models:
        path = check(manifest)  # only a verified file travels
        report(f"model {manifest.name} ({manifest.size:,} bytes)")
        shutil.copyfile(path, root / "models" / manifest.file)
    for yaml_file in sorted(default_manifest_dir().glob("*.yaml")):
        shutil.copyfile(yaml_file, root / "offline_models" / yaml_file.name)
    if repo is not None:
        for folder in ("policies", "deploy"):
            if (repo / folder).is_dir():
                shutil.copytree(repo / folder, root / folder)
        if (repo / "Containerfile").is_file():
            shutil.copyfile(repo / "Containerfile", root / "Containerfile")


def create(
    output: Path,
    *,
    models: list[Any],
    repo: Path | None,
    extras: Iterable[str] = ("llm",),
    report: Report = _quiet,
) -> Path:
    """Write the bundle to ``output`` (a .tar). ``models``: verified manifests to carry;
    ``repo``: where policies/, deploy/ and the Containerfile come from."""
    started = time.monotonic()
    llama_build = build_info()
    if llama_build is not None:
        report(
            f"llama.cpp {llama_build.kind} build, CPU variants: "
            f"{', '.join(llama_build.cpu_variants) or 'unknown'}"
        )
    with tempfile.TemporaryDirectory(prefix="mcpk-bundle-") as tmp:
        root = Path(tmp) / ROOT
        pins = _pack_wheels(root, extras, report)
        _pack_files(root, models, repo, report)
        files = {
            str(p.relative_to(root)): _sha256(p) for p in sorted(root.rglob("*")) if p.is_file()
        }
        description = {
            "format": FORMAT,
            "mcp_kube": __version__,
            "python": f"cp{sys.version_info.major}{sys.version_info.minor}",
            "platform": sysconfig.get_platform(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wheels": sorted(pins),
            "models": [{"name": m.name, "file": m.file} for m in models],
            "llama_cpp": llama_build.as_json() if llama_build else None,
        }
        (root / "bundle.json").write_text(json.dumps(description, indent=2) + "\n")
        files["bundle.json"] = _sha256(root / "bundle.json")
        (root / SUMS).write_text("".join(f"{h}  {p}\n" for p, h in sorted(files.items())))
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(output.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(root, arcname=ROOT)
        os.replace(partial, output)
    report(
        f"bundle {output} ({output.stat().st_size:,} bytes) in {time.monotonic() - started:.0f}s"
    )
    return output


# ---------------------------------------------------------------------------- verify
def _members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for i, m in enumerate(tar):
        if i >= MAX_MEMBERS:
            raise BundleError(f"more than {MAX_MEMBERS} entries: not a bundle")
        name = PurePosixPath(m.name)
        if name.is_absolute() or ".." in name.parts or name.parts[0] != ROOT:
            raise BundleError(f"unsafe or foreign path in the archive: {m.name!r}")
        if not (m.isfile() or m.isdir()):
            raise BundleError(f"links and special files are not allowed: {m.name!r}")
        members.append(m)
    return members


def verify(archive: Path) -> dict[str, Any]:
    """Check every file against SHA256SUMS, and that nothing is missing or extra. Returns the
    bundle's description (bundle.json)."""
    if not archive.is_file():
        raise BundleError(f"no bundle at {archive}")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {m.name: m for m in _members(tar) if m.isfile()}
            sums_member = members.get(f"{ROOT}/{SUMS}")
            if sums_member is None:
                raise BundleError(f"{SUMS} is missing: not a bundle, or damaged")
            sums = _read_member(tar, sums_member).decode()
            expected: dict[str, str] = {}
            for line in sums.splitlines():
                digest, _, path = line.partition("  ")
                expected[f"{ROOT}/{path}"] = digest
            listed, present = set(expected), set(members) - {f"{ROOT}/{SUMS}"}
            if missing := sorted(listed - present):
                raise BundleError(f"files listed in {SUMS} are missing: {missing[:5]}")
            if extra := sorted(present - listed):
                raise BundleError(f"files not listed in {SUMS}: {extra[:5]}")
            for name in sorted(listed):
                h = hashlib.sha256()
                f = tar.extractfile(members[name])
                assert f is not None
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                if h.hexdigest() != expected[name]:
                    raise BundleError(
                        f"checksum mismatch: {name.removeprefix(ROOT + '/')} "
                        f"(expected {expected[name][:12]}…, got {h.hexdigest()[:12]}…)"
                    )
            info: dict[str, Any] = json.loads(_read_member(tar, members[f"{ROOT}/bundle.json"]))
    except (tarfile.TarError, OSError, ValueError) as e:
        raise BundleError(f"cannot read the bundle {archive}: {e}") from None
    if info.get("format") != FORMAT:
        raise BundleError(f"bundle format {info.get('format')!r} is not {FORMAT}")
    info["files"] = len(expected)
    return info


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int = 4 << 20) -> bytes:
    if member.size > limit:
        raise BundleError(f"{member.name} is larger than {limit} bytes")
    f = tar.extractfile(member)
    if f is None:
        raise BundleError(f"cannot read {member.name}")
    return f.read()


# ---------------------------------------------------------------------------- install
def install(
    archive: Path,
    venv: Path,
    *,
    store: Path | None = None,
    report: Report = _quiet,
    cpu: CpuInfo | None = None,
) -> dict[str, Any]:
    """Verify, then make ``venv`` from the bundle's wheels (pip --no-index) and import its
    models into ``store`` (checked against their manifests). Policies and deploy/ are copied
    to ``venv/share/mcp-kube``. A bundle whose llama.cpp has no CPU code for this machine's
    CPU (``cpu``, default: this one) is refused before anything is written."""
    info = verify(archive)
    this = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if info.get("python") != this or info.get("platform") != sysconfig.get_platform():
        raise BundleError(
            f"this bundle is for {info.get('python')} on {info.get('platform')}; "
            f"this machine runs {this} on {sysconfig.get_platform()}"
        )
    check_cpu(info, cpu or cpu_info())
    if venv.exists() and any(venv.iterdir()):
        raise BundleError(f"{venv} exists and is not empty: choose a new folder")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mcpk-bundle-") as tmp:
        with tarfile.open(archive, "r:*") as tar:
            _members(tar)  # refuse anything unsafe before extracting
            tar.extractall(tmp, filter="data")
        root = Path(tmp) / ROOT
        report(f"verified {info['files']} files; creating {venv}")
        _run([sys.executable, "-m", "venv", str(venv)], "creating the virtualenv")
        python = venv / "bin" / "python"
        _run(
            [str(python), "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check",
             "--find-links", str(root / "wheels"), "-r", str(root / "requirements.txt")],
            "installing the wheels",
        )  # fmt: skip
        share = venv / "share" / "mcp-kube"
        share.mkdir(parents=True, exist_ok=True)
        for folder in ("policies", "deploy", "offline_models"):
            if (root / folder).is_dir():
                shutil.copytree(root / folder, share / folder, dirs_exist_ok=True)
        cli = [str(venv / "bin" / "mcp-kube"), "models", "import"]
        where = ["--store", str(store)] if store is not None else []
        for model in info.get("models") or []:
            report(f"importing {model['name']}")
            path = root / "models" / PurePosixPath(model["file"]).name
            _run([*cli, model["name"], str(path), *where], f"importing {model['name']}")
    report(f"installed in {time.monotonic() - started:.0f}s")
    return info


def check_cpu(info: dict[str, Any], cpu: CpuInfo) -> None:
    """Refuse a bundle whose llama.cpp build carries no CPU code this CPU can run."""
    record = info.get("llama_cpp")
    if not record:
        return
    build = BuildInfo.from_json(record)
    reason = unservable_reason(build, cpu)
    if reason:
        raise BundleError(
            f"this bundle's llama.cpp cannot run on this machine: {reason}. Make the bundle "
            f"from an installation with the portable build ('make install' builds it), or "
            f"serve the model elsewhere and use --endpoint"
        )


def _run(args: list[str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BundleError(f"{what} failed: {(proc.stderr or proc.stdout)[-1500:]}")
