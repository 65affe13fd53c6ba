"""This machine's CPU, and which llama.cpp CPU code the installed build carries for it.

The portable build (requirements/build_llama.py) ships ggml's CPU backend once per x86-64
level as loadable modules, and ggml picks the best one this CPU can run when a model loads. The
build records what it carries in ``llama_cpp/lib/mcp_kube_build.json``; a native build records
the CPU flags of the machine it was compiled on, and runs only where all of them exist.
Nothing here imports ``llama_cpp``: the doctor and the offline bundle read the record, and the
model's own report comes from the model process.
"""

from __future__ import annotations

import importlib.util
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "VARIANT_FLAGS",
    "BuildInfo",
    "CpuInfo",
    "build_info",
    "cpu_info",
    "servable_variants",
    "unservable_reason",
]

_BASE = ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2")
_X512 = (*_BASE, "avx512f")
# ggml's x86 CPU variants (ggml/src/CMakeLists.txt) and the /proc/cpuinfo flags each needs.
VARIANT_FLAGS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("sse4_2",),
    "sandybridge": ("sse4_2", "avx"),
    "ivybridge": ("sse4_2", "avx", "f16c"),
    "piledriver": ("sse4_2", "avx", "f16c", "fma"),
    "haswell": _BASE,
    "skylakex": _X512,
    "cannonlake": (*_X512, "avx512vbmi"),
    "cascadelake": (*_X512, "avx512_vnni"),
    "icelake": (*_X512, "avx512vbmi", "avx512_vnni"),
    "cooperlake": (*_X512, "avx512_vnni", "avx512_bf16"),
    "zen4": (*_X512, "avx512vbmi", "avx512_vnni", "avx512_bf16"),
    "alderlake": (*_BASE, "avx_vnni"),
    "sapphirerapids": (*_X512, "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"),
}
# The instruction-set flags worth showing (and that a native build may depend on).
ISA_FLAGS = (
    "sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx_vnni", "avx512f", "avx512bw",
    "avx512vl", "avx512vbmi", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
    "amx_int8", "amx_bf16",
)  # fmt: skip


@dataclass(frozen=True)
class CpuInfo:
    machine: str
    model: str
    flags: frozenset[str]

    @property
    def isa(self) -> list[str]:
        return [f for f in ISA_FLAGS if f in self.flags]

    def describe(self) -> str:
        return f"{self.model or self.machine} ({' '.join(self.isa) or 'no SIMD flags seen'})"


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    model, flags = "", frozenset[str]()
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key == "flags" and not flags:
                flags = frozenset(value.split())
    except OSError:
        pass
    return CpuInfo(platform.machine(), model, flags)


@dataclass(frozen=True)
class BuildInfo:
    """What ``requirements/build_llama.py`` recorded in the wheel; kind ``unknown`` for a
    llama-cpp-python built some other way."""

    kind: str
    version: str
    machine: str
    cpu_variants: list[str] = field(default_factory=list)
    built_for_flags: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildInfo:
        return cls(
            kind=str(data.get("kind", "unknown")),
            version=str(data.get("version", "?")),
            machine=str(data.get("machine", "")),
            cpu_variants=[str(v) for v in data.get("cpu_variants", [])],
            built_for_flags=[str(v) for v in data.get("built_for_flags", [])],
            left_out={str(k): str(v) for k, v in dict(data.get("left_out", {})).items()},
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "machine": self.machine,
            "cpu_variants": self.cpu_variants,
            "built_for_flags": self.built_for_flags,
            "left_out": self.left_out,
        }


def llama_lib_dir() -> Path | None:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def build_info(lib_dir: Path | None = None) -> BuildInfo | None:
    """The installed build's record; None when llama-cpp-python is not installed."""
    lib = lib_dir or llama_lib_dir()
    if lib is None or not lib.is_dir():
        return None
    try:
        return BuildInfo.from_json(json.loads((lib / "mcp_kube_build.json").read_text()))
    except (OSError, ValueError):
        variants = sorted(p.name[len("libggml-cpu-") : -3] for p in lib.glob("libggml-cpu-*.so"))
        return BuildInfo("unknown", "?", "", cpu_variants=variants)


def servable_variants(build: BuildInfo, cpu: CpuInfo) -> list[str]:
    """The variants of ``build`` this CPU can run (a native build counts as one variant)."""
    if build.machine and cpu.machine and build.machine != cpu.machine:
        return []
    if build.kind == "native":
        needed = set(build.built_for_flags) & set(ISA_FLAGS)
        return ["native"] if needed <= cpu.flags else []
    known = [v for v in build.cpu_variants if v in VARIANT_FLAGS]
    return [v for v in known if set(VARIANT_FLAGS[v]) <= cpu.flags]


def best_variant(build: BuildInfo, cpu: CpuInfo) -> str | None:
    ok = servable_variants(build, cpu)
    if build.kind == "native":
        return ok[0] if ok else None
    return max(ok, key=lambda v: len(VARIANT_FLAGS[v]), default=None)


def unservable_reason(build: BuildInfo, cpu: CpuInfo) -> str | None:
    """Why no variant of ``build`` can run here, or None when one can (or nothing is known)."""
    if build.kind == "unknown" and not build.cpu_variants:
        return None
    if servable_variants(build, cpu):
        return None
    if build.machine and cpu.machine and build.machine != cpu.machine:
        return f"llama.cpp was built for {build.machine}, this machine is {cpu.machine}"
    if build.kind == "native":
        missing = sorted((set(build.built_for_flags) & set(ISA_FLAGS)) - cpu.flags)
        return (
            f"llama.cpp was built for its build host's CPU (-march=native) and needs "
            f"{', '.join(missing)}, which this CPU lacks: {cpu.describe()}"
        )
    return (
        f"none of llama.cpp's CPU variants ({', '.join(build.cpu_variants)}) runs on this "
        f"CPU: {cpu.describe()}"
    )
