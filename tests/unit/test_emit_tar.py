"""The tarball emitter on a fake environment, read back with tarfile and GNU tar."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from fakes import fake_manifest
from venvpack.archive import Compression
from venvpack.emit import Emitter
from venvpack.emit.tar import TarEmitter
from venvpack.errors import ConfigError, EmitError
from venvpack.manifest import MANIFEST_PATH, BuiltEnv, Manifest

SDE = 1_700_000_000


def manifest(name: str = "hello", version: str = "1.2.3") -> Manifest:
    python = dataclasses.replace(fake_manifest().python, machine="aarch64")
    return fake_manifest(name=name, version=version, prefix=f"/opt/{name}", python=python)


@pytest.fixture
def env(tmp_path: Path) -> BuiltEnv:
    """A small environment-shaped tree (not a working one) with its manifest."""
    root = tmp_path / "build" / "env"
    (root / "python/bin").mkdir(parents=True)
    (root / "python/bin/python3.12").write_bytes(b"\x7fELF fake")
    (root / "python/bin/python3.12").chmod(0o755)
    (root / "bin").mkdir()
    (root / "bin/python").symlink_to("../python/bin/python3.12")
    (root / "bin/hello").write_text("#!/bin/sh\nexec true\n")
    (root / "bin/hello").chmod(0o775)
    (root / "lib/python3.12/site-packages").mkdir(parents=True)
    (root / "lib/python3.12/site-packages/hello.py").write_text("print('hi')\n")
    (root / "pyvenv.cfg").write_text("include-system-site-packages = false\n")
    built = BuiltEnv(root=root, manifest=manifest())
    built.save()
    return built


def read(path: Path) -> bytes:
    return zstandard.ZstdDecompressor().decompress(path.read_bytes())


def test_is_an_emitter() -> None:
    emitter: Emitter = TarEmitter()
    assert emitter.format == "tar"


@pytest.mark.parametrize(
    ("compression", "expected"),
    [
        (Compression.ZSTD, "hello-1.2.3-linux-aarch64.tar.zst"),
        (Compression.XZ, "hello-1.2.3-linux-aarch64.tar.xz"),
        (Compression.GZIP, "hello-1.2.3-linux-aarch64.tar.gz"),
        (Compression.NONE, "hello-1.2.3-linux-aarch64.tar"),
    ],
)
def test_filename(env: BuiltEnv, compression: Compression, expected: str) -> None:
    assert TarEmitter(compression).filename(env) == expected


def test_level_is_checked_when_the_emitter_is_made() -> None:
    with pytest.raises(ConfigError, match="level"):
        TarEmitter(Compression.GZIP, level=12)
    assert TarEmitter(Compression.XZ).level == Compression.XZ.default_level


def test_single_top_level_directory_named_after_the_app(env: BuiltEnv, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    progress: list[tuple[int, int]] = []
    emitter = TarEmitter(progress=lambda done, total: progress.append((done, total)))
    dest = emitter.emit(env, out / emitter.filename(env))

    assert dest == out / "hello-1.2.3-linux-aarch64.tar.zst"
    assert [p.name for p in out.iterdir()] == [dest.name]  # no temporary left behind
    data = read(dest)
    assert progress[-1] == (len(data), len(data))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        names = tf.getnames()
        assert names[0] == "hello"
        assert all(n == "hello" or n.startswith("hello/") for n in names)
        assert tf.getmember("hello/bin/python").linkname == "../python/bin/python3.12"
        assert tf.getmember("hello/bin/hello").mode == 0o755

    unpacked = tmp_path / "elsewhere"
    unpacked.mkdir()
    subprocess.run(["tar", "-xf", str(dest), "-C", str(unpacked)], check=True)
    assert os.listdir(unpacked) == ["hello"]
    assert BuiltEnv.load(unpacked / "hello").manifest == env.manifest
    assert (unpacked / "hello" / MANIFEST_PATH).is_file()


def test_same_bytes_twice_under_source_date_epoch(
    env: BuiltEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))
    a = TarEmitter().emit(env, tmp_path / "a.tar.zst")
    (env.root / "pyvenv.cfg").touch()  # a newer mtime is clamped all the same
    b = TarEmitter().emit(env, tmp_path / "b.tar.zst")
    assert a.read_bytes() == b.read_bytes()


def test_failure_leaves_the_previous_artifact_alone(env: BuiltEnv, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    dest = out / "hello.tar.zst"
    dest.write_bytes(b"previous")
    os.mkfifo(env.root / "lib/fifo")
    with pytest.raises(EmitError, match="fifo"):
        TarEmitter().emit(env, dest)
    assert [p.name for p in out.iterdir()] == ["hello.tar.zst"]
    assert dest.read_bytes() == b"previous"


@pytest.mark.parametrize("name", ["..", "a/b", ""])
def test_refuses_names_that_are_not_one_directory(tmp_path: Path, name: str) -> None:
    root = tmp_path / "env"
    root.mkdir()
    with pytest.raises(EmitError):
        TarEmitter().emit(BuiltEnv(root, manifest(name=name)), tmp_path / "x.tar.zst")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env"]
