"""What venvpack keeps between builds: the static interpreter it links from pyenv's
``libpython3.X.a`` (the pyc cache is tested with byte-compiling, in test_relocate.py)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from venvpack.cache import build_cache, write_entry
from venvpack.interpreter import find_interpreter
from venvpack.runtime import copy_runtime, prune_build_cache

PYENV_312 = Path.home() / ".pyenv/versions/3.12.1"
ARCHIVE = PYENV_312 / "lib/python3.12/config-3.12-x86_64-linux-gnu/libpython3.12.a"

pytestmark = pytest.mark.skipif(
    not ARCHIVE.exists() or shutil.which("cc") is None,
    reason="needs pyenv's CPython 3.12.1 with its static libpython, and a C compiler",
)


def test_cache_location_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENVPACK_CACHE", str(tmp_path / "c"))
    assert build_cache("pyc") == tmp_path / "c" / "pyc"
    monkeypatch.setenv("VENVPACK_CACHE", "")
    assert build_cache("pyc") is None
    monkeypatch.delenv("VENVPACK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert build_cache("pyc") == tmp_path / "xdg" / "venvpack" / "pyc"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the spec says
    assert build_cache("pyc") == Path.home() / ".cache" / "venvpack" / "pyc"


def test_static_interpreter_is_linked_once_and_then_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("VENVPACK_CACHE", str(tmp_path / "cache"))
    interp = find_interpreter(str(PYENV_312 / "bin/python3.12"))

    first = copy_runtime(interp, tmp_path / "a" / "python", with_tk=False, keep_dev=False)
    kept = list((tmp_path / "cache" / "static-python").glob("*/*"))
    assert len(kept) == 1
    stored = kept[0].read_bytes()
    assert kept[0].name == hashlib.sha256(stored).hexdigest()  # filed under its digest
    linked = first.executable.read_bytes()
    out = subprocess.run(
        [first.executable, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("3.12.1")

    # The second build copies what the cache holds, when it still matches its digest.
    os.utime(kept[0], (0, 0))
    second = copy_runtime(interp, tmp_path / "b" / "python", with_tk=False, keep_dev=False)
    assert second.executable.read_bytes() == linked
    assert kept[0].stat().st_mtime > 0  # a hit marks the entry as in use

    # A stand-in put there (or the interpreter cut short) is removed and linked again.
    stand_in = Path(shutil.which("true") or "/bin/true").read_bytes()
    for damaged in (stand_in, linked[: len(linked) // 2]):
        kept[0].write_bytes(damaged)
        with caplog.at_level(logging.DEBUG, logger="venvpack"):
            again = copy_runtime(interp, tmp_path / "d" / "python", with_tk=False, keep_dev=False)
        assert again.executable.read_bytes() == linked
        assert kept[0].read_bytes() == stored
        assert "does not match the digest it is filed under" in caplog.text
        shutil.rmtree(tmp_path / "d")
    assert [p.name for p in kept[0].parent.iterdir()] == [kept[0].name]  # no part file

    # No cache: linked again.
    monkeypatch.setenv("VENVPACK_CACHE", "")
    third = copy_runtime(interp, tmp_path / "c" / "python", with_tk=False, keep_dev=False)
    assert third.executable.read_bytes() == first.executable.read_bytes()


def test_prune_removes_what_no_build_used_for_a_month(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENVPACK_CACHE", str(tmp_path / "cache"))
    now = time.time()
    day = 86400.0

    def entry(rel: str, age_days: float) -> Path:
        path = tmp_path / "cache" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (now - age_days * day, now - age_days * day))
        return path

    old_pyc = entry("pyc/ab/old.pyc", 40)
    new_pyc = entry("pyc/ab/new.pyc", 2)
    old_static = entry("static-python/k1/" + "1" * 64, 31)
    new_static = entry("static-python/k2/" + "2" * 64, 29)
    root = entry("roots/glibc/old-but-not-a-build-cache", 400)
    # Part files a killed build left: gone after a day, not after the month entries get.
    parts = [entry("pyc/cd/tmpab12.tmp", 2), entry("static-python/k3/.tmp-x1y2", 1.5)]
    fresh_part = entry("pyc/cd/tmpcd34.tmp", 0)

    assert prune_build_cache(now=now) == 4
    assert not any(part.exists() for part in parts)
    assert fresh_part.exists()  # a build may be writing it right now
    assert not old_pyc.exists()
    assert not old_static.parent.exists()
    assert [new_pyc.exists(), new_static.exists(), root.exists()] == [True, True, True]

    # At most once a day: an entry aged meanwhile waits for the next day's run.
    os.utime(new_pyc, (now - 45 * day, now - 45 * day))
    assert prune_build_cache(now=now + 3600) == 0
    # Two days on, the static interpreter unused for 29 days has aged past the month too,
    # and the part file nobody renamed is a killed build's.
    assert prune_build_cache(now=now + 2 * day) == 3
    assert not fresh_part.exists()
    assert not new_pyc.exists()
    assert not new_static.exists()

    monkeypatch.setenv("VENVPACK_CACHE", "")  # no cache: nothing to do
    assert prune_build_cache(now=now) == 0


def test_a_cache_entry_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    place = tmp_path / "kind" / "entry"
    write_entry(place, "first")
    write_entry(place, "second")  # replaced, never appended to
    assert place.read_text() == "second"
    blocked = tmp_path / "kind" / "a-directory"
    (blocked / "inside").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        write_entry(blocked, "text")  # the rename onto a directory fails
    assert sorted(p.name for p in place.parent.iterdir()) == ["a-directory", "entry"]
