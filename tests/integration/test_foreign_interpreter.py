"""Finding another machine's interpreter: in its root by path or by version (``--sysroot``),
kept outside the root with ``--sysroot`` naming where its C library is (as a
python-build-standalone tree would be), and the one-line refusals around it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox
from venvpack.interpreter import find_interpreter

pytestmark = pytest.mark.roots

MACHINE = "aarch64"
MOVED = "/opt/moved"


@pytest.fixture(scope="module")
def sysroot() -> Path:
    problem = sandbox.foreign_problem(MACHINE)
    if problem:
        sandbox.unavailable(f"arm64 roots: {problem}")
    return sandbox.sysroot("bookworm", MACHINE, ("python3.11",))


def venvpack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvpack", *args], capture_output=True, text=True, check=False
    )


def test_a_version_is_looked_for_in_the_root(sysroot: Path) -> None:
    found = find_interpreter("3.11", sysroot=sysroot)
    assert found.machine == MACHINE
    assert found.executable == sysroot / "usr/bin/python3.11"
    assert found.sysroot is not None
    assert found.sysroot.path == sysroot
    assert found.source == "debian"
    # Paths the interpreter was built with are the root's, never this host's.
    assert found.libpl is not None
    assert sysroot in found.libpl.parents
    assert found.target_path(found.base_prefix) == Path("/usr")
    # Found from the path alone: the outermost directory holding its loader.
    by_path = find_interpreter(str(sysroot / "usr/bin/python3.11"))
    assert by_path.sysroot == found.sysroot


def test_a_tree_outside_its_root_runs_with_the_roots_libraries(
    sysroot: Path, tmp_path: Path
) -> None:
    """The interpreter and its stdlib kept elsewhere, the C library and the libraries its
    modules need in the root: the environment carries them and runs in a root holding only
    arm64's glibc."""
    tree = tmp_path / "tree/usr"
    (tree / "bin").mkdir(parents=True)
    shutil.copy2(sysroot / "usr/bin/python3.11", tree / "bin/python3.11")
    shutil.copytree(sysroot / "usr/lib/python3.11", tree / "lib/python3.11", symlinks=True)
    python = str(tree / "bin/python3.11")
    out = tmp_path / "out.tar"
    refused = venvpack("tar", "-q", "--python", python, "six", "-o", str(out))
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "no directory above it holds its loader" in refused.stderr
    assert "give --sysroot" in refused.stderr
    made = venvpack(
        "build", "-q", "--python", python, "--sysroot", str(sysroot), "six", "-o", str(out)
    )
    assert made.returncode == 0, made.stderr
    glibc = sandbox.machine_root("glibc", MACHINE)
    proc = sandbox.run_in_root(
        glibc,
        [
            f"{MOVED}/bin/python",
            "-c",
            "import ssl, sqlite3, six, sys; print(sys.prefix, six.__name__)",
        ],
        binds={out: MOVED},
    )
    assert (proc.returncode, proc.stdout) == (0, f"{MOVED} six\n"), proc.stderr
    for text in (str(tmp_path), str(sysroot)):
        leaked = subprocess.run(
            ["grep", "-rlF", text, str(out)], capture_output=True, text=True, check=False
        )
        assert leaked.stdout == "", f"{text} named in {leaked.stdout}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--installer", "pip"], "--installer pip cannot install wheels for aarch64"),
        (["--sysroot", "/nonexistent-root"], "is not a directory"),
    ],
)
def test_refusals_are_one_line(
    sysroot: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    python = str(sysroot / "usr/bin/python3.11")
    out = tmp_path / "env"
    proc = venvpack("build", "-q", "--python", python, *args, "six", "-o", str(out))
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr
    assert not out.exists()


def test_this_machines_interpreter_with_a_sysroot_is_refused(sysroot: Path, tmp_path: Path) -> None:
    proc = venvpack(
        "build", "-q", "--python", sys.executable, "--sysroot", str(sysroot), "six",
        "-o", str(tmp_path / "env"),
    )  # fmt: skip
    assert proc.returncode != 0
    assert "--sysroot is for an interpreter of another one" in proc.stderr
