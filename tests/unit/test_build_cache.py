"""What venvpack keeps between builds: the static interpreter it links from pyenv's
``libpython3.X.a`` (the pyc cache is tested with byte-compiling, in test_relocate.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from venvpack.interpreter import find_interpreter
from venvpack.runtime import build_cache, copy_runtime

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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENVPACK_CACHE", str(tmp_path / "cache"))
    interp = find_interpreter(str(PYENV_312 / "bin/python3.12"))

    first = copy_runtime(interp, tmp_path / "a" / "python", with_tk=False, keep_dev=False)
    kept = list((tmp_path / "cache" / "static-python").glob("*/python3.12"))
    assert len(kept) == 1
    out = subprocess.run(
        [first.executable, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("3.12.1")

    # The second build copies what the cache holds: a stand-in there shows up in the tree.
    stand_in = Path(shutil.which("true") or "/bin/true").read_bytes()
    kept[0].write_bytes(stand_in)
    second = copy_runtime(interp, tmp_path / "b" / "python", with_tk=False, keep_dev=False)
    assert second.executable.read_bytes() == stand_in

    # No cache: linked again.
    monkeypatch.setenv("VENVPACK_CACHE", "")
    third = copy_runtime(interp, tmp_path / "c" / "python", with_tk=False, keep_dev=False)
    assert third.executable.read_bytes() == first.executable.read_bytes()
