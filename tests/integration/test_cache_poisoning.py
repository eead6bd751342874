"""A cache that cannot lie: what one build keeps for the next (a module's pyc, the static
interpreter) and someone else then altered -- a shared CI cache with a planted code object
under the real 16-byte header, another program in place of the interpreter -- never reaches
the next build's environment. The build throws the entries away, says so with ``-v``,
compiles and links again, and the application runs its own code.

The example application is built twice with ``venvpack build`` (a real process, its cache in
a temporary directory through ``VENVPACK_CACHE``), the cache poisoned in between.
"""

from __future__ import annotations

import hashlib
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builds import HELLO

pytestmark = [pytest.mark.integration]

VENVPACK = [sys.executable, "-m", "venvpack"]
PLANTED = "planted by whoever could write the cache"


def _build(out: Path, cache: Path) -> str:
    """Build the example into ``out`` with ``cache``; its verbose log."""
    env = {**os.environ, "VENVPACK_CACHE": str(cache)}
    result = subprocess.run(
        [*VENVPACK, "build", "--project", str(HELLO), "--python", "3.12", "-v", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def _run_hello(env: Path) -> str:
    return subprocess.run(
        [env / "bin" / "hello"], capture_output=True, text=True, check=True, cwd="/"
    ).stdout


def _pyc_of_hello(env: Path) -> Path:
    found = list((env / "lib").glob("python3.12/site-packages/hello/__pycache__/*.pyc"))
    assert len(found) == 1, found
    return found[0]


def test_poisoned_cache_entries_never_reach_the_environment(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = tmp_path / "first"
    _build(first, cache)
    assert _run_hello(first).startswith(f"hello from {first}")
    real_pyc = _pyc_of_hello(first).read_bytes()

    # The pyc cache entry of hello/__init__.py (the entry is the pyc's SHA-256, then the
    # pyc): its code object is replaced by one printing PLANTED, header and digest kept,
    # as someone writing into a shared cache would leave it.
    entries = [e for e in (cache / "pyc").rglob("*.entry") if e.read_bytes()[32:] == real_pyc]
    assert len(entries) == 1
    planted_src = tmp_path / "planted" / "hello.py"
    planted_src.parent.mkdir()
    planted_src.write_text(f"def main():\n    print({PLANTED!r})\n    return 0\n")
    planted_pyc = tmp_path / "planted" / "hello.pyc"
    py_compile.compile(str(planted_src), str(planted_pyc), doraise=True)
    entry = entries[0].read_bytes()
    entries[0].write_bytes(entry[:32] + real_pyc[:16] + planted_pyc.read_bytes()[16:])

    # The kept static interpreter: another program under its name.
    kept = list((cache / "static-python").glob("*/*"))
    assert len(kept) == 1, "the build links a static interpreter and keeps it"
    real_interpreter = (first / "python" / "bin" / "python3.12").read_bytes()
    kept[0].write_bytes(Path(shutil.which("true") or "/bin/true").read_bytes())

    second = tmp_path / "second"
    log = _build(second, cache)
    output = _run_hello(second)
    assert PLANTED not in output
    assert output.startswith(f"hello from {second}")
    assert "pyc cache: 1 entry did not match the digest stored with it" in log
    assert "does not match the digest it is filed under" in log
    # Compiled and linked again: the same bytes as the first build's, and the cache holds
    # the real entries again.
    assert _pyc_of_hello(second).read_bytes() == real_pyc
    assert (second / "python" / "bin" / "python3.12").read_bytes() == real_interpreter
    assert entries[0].read_bytes() == hashlib.sha256(real_pyc).digest() + real_pyc
    assert hashlib.sha256(kept[0].read_bytes()).hexdigest() == kept[0].name
