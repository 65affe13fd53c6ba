"""Build llama-cpp-python from the pinned source archive (requirements/llama.lock) into a wheel.

    python requirements/build_llama.py --kind portable --out DIR   # what `make install` uses
    python requirements/build_llama.py --kind native --out DIR     # -march=native, for make bench

portable: no -march=native. ggml's CPU backend is built once per x86-64 level (x64, sse42,
sandybridge, haswell, skylakex, icelake, zen4, alderlake, ...) as loadable modules, and the
best one this CPU can run is picked when the model loads. The sapphirerapids variant (the only
one with AMX) is left out of the wheel: ggml's AMX matrix multiply crashes in the first
batched decode on AMX CPUs (llama.cpp issue #20824). The wheel carries llama_cpp/lib/
mcp_kube_build.json, which records the kind, the CMake flags and the variants it holds; the
doctor and the offline bundle read it.

The wheel is written to DIR once per (source hash, kind, this script) and reused while present.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "llama.lock"
COMMON = [
    "-DLLAVA_BUILD=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DGGML_OPENMP=ON",
]
FLAGS = {
    "portable": [
        "-DGGML_NATIVE=OFF",
        "-DGGML_BACKEND_DL=ON",
        "-DGGML_CPU_ALL_VARIANTS=ON",
        "-DGGML_BACKEND_DIR:STRING=llama_cpp/lib",  # STRING: kept relative to the wheel's root
    ],
    "native": ["-DGGML_NATIVE=ON"],
}
BUILD_FORMAT = 2  # bump when finish_wheel changes what goes into the wheel
# Appended to llama_cpp/llama_cpp.py of the portable wheel, right after libllama is loaded: every
# user of llama_cpp (the package's own OpenAI-compatible server, scripts, mcp-kube) then finds
# the CPU backend, without knowing that the build carries it as loadable variants.
REGISTER_VARIANTS = b"""

# Added by mcp-kube's portable build (requirements/build_llama.py): this build carries ggml's
# CPU code as one module per x86-64 level (lib/libggml-cpu-*.so); register the best one this
# CPU runs, in the libggml that libllama loaded (lib/libggml.so.<major>).
def _register_cpu_variants() -> None:
    lib = pathlib.Path(__file__).resolve().parent / "lib"
    # the soname's file (libggml.so.0), the shortest of libggml.so.0, libggml.so.0.25.3
    names = sorted((p.name for p in lib.glob("libggml.so.[0-9]*")), key=len)
    if not names or not any(lib.glob("libggml-cpu-*.so")):
        return
    ggml = ctypes.CDLL(str(lib / names[0]))
    if ggml.ggml_backend_reg_count() == 0:
        ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        ggml.ggml_backend_load_all_from_path(str(lib).encode())


_register_cpu_variants()
"""
# Left out of the portable wheel, with the reason recorded in it.
LEFT_OUT = {"sapphirerapids": "AMX matrix multiply crashes on AMX CPUs (llama.cpp #20824)"}


def pinned() -> tuple[str, str]:
    text = LOCK.read_text()
    m = re.search(r"^llama-cpp-python==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})", text, re.M)
    if not m:
        sys.exit(f"{LOCK}: no 'llama-cpp-python==VERSION' with a sha256 hash")
    return m.group(1), m.group(2)


def fetch_source(version: str, digest: str, cache: Path) -> Path:
    sdist = cache / f"llama_cpp_python-{version}.tar.gz"
    if sdist.is_file() and hashlib.sha256(sdist.read_bytes()).hexdigest() == digest:
        return sdist
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "req.txt"
        req.write_text(f"llama-cpp-python=={version} --hash=sha256:{digest}\n")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--require-hashes",
                "-r",
                str(req),
                "-d",
                tmp,
            ],
            check=True,
        )
        shutil.move(str(Path(tmp) / sdist.name), sdist)
    return sdist


def _record_line(name: str, data: bytes) -> str:
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={h},{len(data)}"


def finish_wheel(wheel: Path, kind: str, cmake_args: list[str], out: Path) -> Path:
    """Rewrite the wheel without the left-out variants, with mcp_kube_build.json, and a
    RECORD that matches."""
    with zipfile.ZipFile(wheel) as zin:
        members = [(i, zin.read(i.filename)) for i in zin.infolist()]
    record = next(i.filename for i, _ in members if i.filename.endswith(".dist-info/RECORD"))
    variants, dropped, kept = [], {}, []
    for info, data in members:
        if kind == "portable" and info.filename == "llama_cpp/llama_cpp.py":
            data = data + REGISTER_VARIANTS
        m = re.fullmatch(r"llama_cpp/lib/libggml-cpu-([\w.]+)\.so", info.filename)
        if m and m.group(1) in LEFT_OUT and kind == "portable":
            dropped[m.group(1)] = LEFT_OUT[m.group(1)]
            continue
        if m:
            variants.append(m.group(1))
        if info.filename != record:
            kept.append((info, data))
    if kind == "portable" and not variants:
        raise SystemExit(
            f"{wheel.name} holds no libggml-cpu-*.so: the CPU variants were not packed"
        )
    build = {
        "kind": kind,
        "version": wheel.name.split("-")[1],
        "cmake_args": cmake_args,
        "cpu_variants": sorted(variants) if kind == "portable" else ["native"],
        "left_out": dropped,
        "patches": ["llama_cpp/llama_cpp.py registers the CPU variants at import"]
        if kind == "portable"
        else [],
        "machine": platform.machine(),
    }
    if kind == "native":
        build["built_for_flags"] = sorted(_cpu_flags())
    meta = ("llama_cpp/lib/mcp_kube_build.json", json.dumps(build, indent=1).encode() + b"\n")
    lines = [_record_line(i.filename, d) for i, d in kept] + [_record_line(*meta), f"{record},,"]
    target = out / wheel.name
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for info, data in kept:
            zout.writestr(info, data)
        zout.writestr(meta[0], meta[1])
        zout.writestr(record, "\n".join(lines) + "\n")
    tmp.replace(target)
    return target


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=sorted(FLAGS), default="portable")
    ap.add_argument("--out", type=Path, required=True, help="folder that keeps the built wheels")
    ap.add_argument("--print", action="store_true", help="only print the wheel's path if built")
    args = ap.parse_args()
    version, digest = pinned()
    # The folder's key: what the wheel is made of (source, flags, what is left out), not this
    # script's wording, so editing the script does not force a rebuild.
    recipe = json.dumps([BUILD_FORMAT, digest, COMMON, FLAGS[args.kind], sorted(LEFT_OUT)])
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    if args.kind == "native":  # a native build is only valid on the CPU it was built on
        key += "-" + hashlib.sha256(" ".join(sorted(_cpu_flags())).encode()).hexdigest()[:8]
    out = args.out / f"{version}-{args.kind}-{key}"
    done = sorted(out.glob("llama_cpp_python-*.whl"))
    if done:
        print(done[0])
        return 0
    if args.print:
        return 1
    sdist = fetch_source(version, digest, args.out / "src")
    cmake_args = COMMON + FLAGS[args.kind]
    env = dict(os.environ, CMAKE_ARGS=" ".join(cmake_args), FORCE_CMAKE="1")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    # a build folder kept beside the wheels: a rebuild with changed flags is incremental
    env["SKBUILD_BUILD_DIR"] = str(args.out / f"build-{args.kind}")
    t0 = time.monotonic()
    print(f"building llama-cpp-python {version} ({args.kind}); this takes minutes", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        log = args.out / f"build-{args.kind}.log"
        args.out.mkdir(parents=True, exist_ok=True)
        with log.open("w") as fh:
            rc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "-v",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "-w",
                    tmp,
                    str(sdist),
                ],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if rc:
            print(
                f"llama-cpp-python build failed (exit {rc}); full output in {log}", file=sys.stderr
            )
            return rc
        built = next(Path(tmp).glob("llama_cpp_python-*.whl"))
        out.mkdir(parents=True, exist_ok=True)
        wheel = finish_wheel(built, args.kind, cmake_args, out)
    print(f"llama-cpp-python {args.kind} build: {time.monotonic() - t0:.0f}s", file=sys.stderr)
    print(wheel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
