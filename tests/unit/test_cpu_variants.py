"""Which llama.cpp CPU code runs on which CPU, and the bundle's refusal of a CPU it cannot serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_kube.bundle import BundleError, check_cpu
from mcp_kube.llm.cpu import (
    VARIANT_FLAGS,
    BuildInfo,
    CpuInfo,
    best_variant,
    build_info,
    cpu_info,
    servable_variants,
    unservable_reason,
)

PORTABLE = BuildInfo(
    "portable", "0.3.36", "x86_64",
    cpu_variants=[v for v in VARIANT_FLAGS if v != "sapphirerapids"],
    left_out={"sapphirerapids": "AMX"},
)  # fmt: skip
SPR_FLAGS = set(VARIANT_FLAGS["sapphirerapids"]) | {"avx512bw", "avx512vl", "amx_bf16"}


def cpu(*flags: str, machine: str = "x86_64") -> CpuInfo:
    return CpuInfo(machine, "test CPU", frozenset(flags))


def test_an_amx_cpu_gets_the_best_variant_without_amx() -> None:
    assert best_variant(PORTABLE, cpu(*SPR_FLAGS)) == "zen4"  # AVX-512 VNNI/BF16, no AMX


def test_an_old_cpu_gets_a_variant_it_can_run() -> None:
    assert best_variant(PORTABLE, cpu("sse4_2", "avx")) == "sandybridge"
    assert best_variant(PORTABLE, cpu()) == "x64"
    assert best_variant(PORTABLE, cpu(*VARIANT_FLAGS["haswell"])) == "haswell"


def test_a_native_build_runs_only_where_its_flags_exist() -> None:
    native = BuildInfo("native", "0.3.36", "x86_64", ["native"], ["avx2", "avx512f", "fpu"])
    assert servable_variants(native, cpu("avx2", "avx512f")) == ["native"]
    reason = unservable_reason(native, cpu("avx2"))
    assert reason is not None
    assert "avx512f" in reason
    assert "-march=native" in reason


def test_an_avx512_only_bundle_refuses_an_avx2_cpu() -> None:
    only = BuildInfo("portable", "0.3.36", "x86_64", ["skylakex", "icelake"])
    reason = unservable_reason(only, cpu(*VARIANT_FLAGS["haswell"]))
    assert reason is not None
    assert "skylakex, icelake" in reason
    with pytest.raises(BundleError, match="cannot run on this machine"):
        check_cpu({"llama_cpp": only.as_json()}, cpu(*VARIANT_FLAGS["haswell"]))
    check_cpu({"llama_cpp": only.as_json()}, cpu(*VARIANT_FLAGS["skylakex"]))  # accepted


def test_another_architecture_is_refused() -> None:
    with pytest.raises(BundleError, match="built for x86_64, this machine is aarch64"):
        check_cpu({"llama_cpp": PORTABLE.as_json()}, cpu(machine="aarch64"))


def test_a_bundle_without_a_record_is_not_refused() -> None:
    check_cpu({}, cpu())
    check_cpu({"llama_cpp": None}, cpu())


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nmodel name\t: Xeon Test\nflags\t\t: fpu avx2 amx_int8\n\n"
                 "processor\t: 1\nmodel name\t: Xeon Test\nflags\t\t: fpu\n")  # fmt: skip
    info = cpu_info(f)
    assert info.model == "Xeon Test"
    assert {"avx2", "amx_int8"} <= info.flags
    assert info.isa == ["avx2", "amx_int8"]


def test_the_record_round_trips(tmp_path: Path) -> None:
    (tmp_path / "mcp_kube_build.json").write_text(
        '{"kind": "portable", "version": "1", "machine": "x86_64", "cpu_variants": ["x64"]}'
    )
    assert build_info(tmp_path) == BuildInfo("portable", "1", "x86_64", ["x64"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "libggml-cpu-haswell.so").write_bytes(b"")
    assert build_info(other) == BuildInfo("unknown", "?", "", ["haswell"])
