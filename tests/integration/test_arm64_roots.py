"""Another machine's roots on this host: Debian arm64's files as a sysroot (its python3.11
runs under qemu-user with ``-L``), a glibc-only arm64 root whose programs binfmt_misc starts
inside bwrap, verify checking an aarch64 tarball and .rpm there, verify refusing in one line
when binfmt_misc cannot start aarch64 programs (test_platform.py reads each binfmt entry),
and a root Debian does not make for a machine refused in one line."""

from __future__ import annotations

import functools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import sandbox
from venvpack import platform
from venvpack.cli import main
from venvpack.elf import read_elf
from venvpack.errors import ToolMissingError
from venvpack.verify import verify_artifact

pytestmark = [pytest.mark.integration, pytest.mark.roots]

MACHINE = "aarch64"
HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


@dataclass(frozen=True)
class Arm64:
    sysroot: Path
    """Debian 12 arm64's required packages and python3.11, unpacked."""
    glibc: Path
    """verify's ``glibc`` root for aarch64: arm64's libc6, dash and libc-only coreutils."""


@pytest.fixture(scope="module")
def arm64() -> Arm64:
    problem = sandbox.foreign_problem(MACHINE)
    if problem:
        sandbox.unavailable(f"arm64 roots: {problem}")
    return Arm64(
        sysroot=sandbox.sysroot("bookworm", MACHINE, ("python3.11",)),
        glibc=sandbox.machine_root("glibc", MACHINE),
    )


def _pack(fmt: str, arm64: Arm64, out: Path) -> Path:
    """examples/hello built from the sysroot's python3.11 as ``fmt`` (the build's own tests
    check what it holds; here it is what verify is given)."""
    python = arm64.sysroot / "usr" / "bin" / "python3.11"
    argv = [sys.executable, "-m", "venvpack", fmt, "-q", "--python", str(python)]
    proc = subprocess.run(
        [*argv, "-o", str(out), str(HELLO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip())


@pytest.fixture(scope="module")
def tarball(arm64: Arm64, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pack("tar", arm64, tmp_path_factory.mktemp("arm64-tar"))


def test_sysroot_python_runs_under_qemu_with_its_libraries(arm64: Arm64) -> None:
    python = arm64.sysroot / "usr" / "bin" / "python3.11"
    assert read_elf(python).machine == "EM_AARCH64"
    code = (
        "import platform, ssl, sqlite3, ctypes, lzma, bz2, pyexpat, zlib, readline, curses; "
        "print(platform.machine(), ssl.OPENSSL_VERSION.split()[0])"
    )
    argv = [*platform.emulator(MACHINE), "-L", str(arm64.sysroot), str(python), "-c", code]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert (proc.returncode, proc.stdout) == (0, "aarch64 OpenSSL\n"), proc.stderr
    # What was unpacked is recorded: dpkg-query says which package a library comes from.
    owner = subprocess.run(
        ["dpkg-query", f"--admindir={arm64.sysroot / 'var/lib/dpkg'}", "-S", "libssl.so.3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert owner.startswith("libssl3:arm64: /usr/lib/aarch64-linux-gnu/libssl.so.3"), owner


def test_glibc_root_holds_arm64_glibc_only_and_runs_in_bwrap(arm64: Arm64) -> None:
    assert sandbox.python_traces(arm64.glibc) == []
    assert not (arm64.glibc / "usr" / "lib" / "x86_64-linux-gnu").exists()
    assert read_elf(arm64.glibc / "usr" / "bin" / "dash").machine == "EM_AARCH64"
    # The host's glibc root keeps its own name and place.
    assert arm64.glibc != sandbox.glibc_root()
    proc = sandbox.run_in_root(arm64.glibc, ["/bin/sh", "-c", 'echo "$(uname -m) $((6 * 7))"'])
    assert (proc.returncode, proc.stdout) == (0, "aarch64 42\n"), proc.stderr


def test_aarch64_tarball_passes_verify_in_the_arm64_glibc_root(tarball: Path) -> None:
    check = "python -c 'import platform, ssl, sqlite3, ctypes, lzma; print(platform.machine())'"
    report = verify_artifact(tarball, ["glibc"], run=[check], cache=sandbox.default_cache())
    assert report.ok, [c for c in report.checks if c.status != "ok"]
    steps = {(c.step, c.target) for c in report.checks}
    assert {("install", tarball.name), ("command", check), ("moved command", check)} <= steps


def test_aarch64_rpm_installs_in_the_arm64_glibc_root(arm64: Arm64, tmp_path: Path) -> None:
    """The host's rpm takes another machine's package only with --ignorearch; its scriptlets
    run in the root under emulation."""
    if sandbox.missing_tools("rpmbuild", "rpm"):
        sandbox.unavailable("rpm tools missing")
    rpm = _pack("rpm", arm64, tmp_path)
    check = "python -c 'import ssl, sqlite3'"
    report = verify_artifact(rpm, ["glibc"], run=[check], cache=sandbox.default_cache())
    assert report.ok, [c for c in report.checks if c.status != "ok"]
    assert ("install", rpm.name) in {(c.step, c.target) for c in report.checks}


def test_verify_says_in_one_line_how_to_enable_emulation(
    tarball: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Only the probe of the host's binfmt_misc is replaced: by an empty directory, as on a
    host where qemu-aarch64 was never registered."""
    empty = tmp_path / "binfmt_misc"
    empty.mkdir()
    probe = functools.partial(platform.emulation_problem, binfmt=empty)
    monkeypatch.setattr("venvpack.verify.emulation_problem", probe)
    with pytest.raises(SystemExit) as exit_:
        main(["verify", str(tarball)])
    err = capsys.readouterr().err
    assert exit_.value.code == 8
    assert err.count("\n") == 1, err
    assert err.startswith(f"venvpack: error: {tarball} is for aarch64: ")
    assert "update-binfmts --enable qemu-aarch64" in err


def test_a_root_debian_does_not_make_for_the_machine_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    """bookworm has no riscv64 packages: debootstrap's own reason, no traceback, nothing
    cached."""
    problem = sandbox.debootstrap_problem()
    if problem:
        sandbox.unavailable(problem)
    with pytest.raises(ToolMissingError) as refused:
        sandbox.sysroot("bookworm", "riscv64", (), tmp_path)
    assert str(refused.value) == (
        "cannot make a riscv64 bookworm sysroot: "
        "Invalid Release file, no entry for main/binary-riscv64/Packages"
    )
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []  # nor a half-made one
