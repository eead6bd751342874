"""Safe under faults: venvpack killed by SIGTERM, SIGHUP, SIGINT or SIGKILL at
several points of build, tar, deb and rpm leaves no process running, and the next command
writing to the same directory finds (or leaves) no staging directory.

Real processes throughout. A phase is recognised by what can be seen from outside: a
staging directory in the output directory, a child process (uv, a byte-compile worker,
rpmbuild) or the archive growing in the staging directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from builds import HELLO
from venvpack.build import build_environment
from venvpack.config import BuildSpec
from venvpack.manifest import BuiltEnv
from venvpack.output import is_staging_name

pytestmark = [pytest.mark.integration]

VENVPACK = [sys.executable, "-m", "venvpack"]
MAINTAINER = "Jane Doe <jane@example.org>"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> BuiltEnv:
    out = tmp_path_factory.mktemp("faults-env") / "hello"
    return build_environment(BuildSpec(requirements=(str(HELLO),), python="3.12"), out)


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    start: int
    """Start time in clock ticks: with the PID, it names one process even if PIDs are reused."""
    argv: tuple[str, ...]


def processes() -> dict[int, Proc]:
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read().decode("utf-8", "replace")
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv = tuple(a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a)
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        # After the command: state ppid pgrp session ... starttime is the 20th.
        proc = Proc(int(name), int(fields[1]), int(fields[2]), int(fields[19]), argv)
        if fields[0] != "Z":
            found[proc.pid] = proc
    return found


def descendants(pid: int) -> list[Proc]:
    """The processes below ``pid``, and those of its process group, alive now."""
    table = processes()
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: dict[int, Proc] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = table[child]
                todo.append(child)
    for proc in table.values():
        if proc.pgid == pid and proc.pid != pid:
            found[proc.pid] = proc
    return list(found.values())


def alive(procs: list[Proc]) -> list[Proc]:
    now = processes()
    return [p for p in procs if p.pid in now and now[p.pid].start == p.start]


def has_child(name: str) -> Callable[[subprocess.Popen[str], Path], bool]:
    """Phase: a descendant runs ``name`` (the base name of argv[0], or a word of argv)."""

    def check(proc: subprocess.Popen[str], out: Path) -> bool:
        for child in descendants(proc.pid):
            if child.argv and (
                os.path.basename(child.argv[0]) == name or any(name in a for a in child.argv)
            ):
                return True
        return False

    return check


def staging_appeared(proc: subprocess.Popen[str], out: Path) -> bool:
    return bool(staging(out))


def archive_growing(proc: subprocess.Popen[str], out: Path) -> bool:
    """Phase: a compressed archive was opened in a staging directory. (Its first bytes
    reach the disk only when the write buffer fills, after the first xz blocks; compressing
    the example takes several seconds, so one second in is well inside it.)"""
    for stage in staging(out):
        if any(path.suffix in (".xz", ".gz", ".zst") for path in stage.rglob("*")):
            time.sleep(1.0)
            return True
    return False


def staging(directory: Path) -> list[Path]:
    try:
        return [directory / n for n in os.listdir(directory) if is_staging_name(n)]
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------- the test


@dataclass(frozen=True)
class Case:
    command: tuple[str, ...]
    phase: str
    signum: int
    whole_group: bool = False
    """Send the signal to the process group, as a terminal does; else to venvpack's PID."""
    second: bool = False
    """Send a second SIGINT while the first is being handled."""

    @property
    def id(self) -> str:
        name = signal.Signals(self.signum).name
        extra = "-group" if self.whole_group else ""
        extra += "-twice" if self.second else ""
        return f"{self.command[0]}-{self.phase}-{name}{extra}"


PHASES = {
    "staging": staging_appeared,
    "install": has_child("uv"),
    "compile": has_child("compileall"),
    "compress": archive_growing,
    "rpmbuild": has_child("rpmbuild"),
}
BUILD = ("build", str(HELLO), "--python", "3.12")
CASES = [
    Case(BUILD, "staging", signal.SIGKILL),
    Case(BUILD, "install", signal.SIGHUP),
    Case(BUILD, "install", signal.SIGKILL),
    Case(BUILD, "compile", signal.SIGTERM),
    Case(BUILD, "compile", signal.SIGINT),  # to venvpack alone: its workers go too
    Case(BUILD, "compile", signal.SIGKILL),
    Case(("tar", str(HELLO), "--python", "3.12"), "compile", signal.SIGTERM),
    Case(("tar", "--compression", "xz"), "compress", signal.SIGTERM),
    Case(("tar", "--compression", "xz"), "compress", signal.SIGHUP),
    Case(("tar", "--compression", "xz"), "compress", signal.SIGKILL),
    Case(("tar", "--compression", "xz", "--level", "9"), "compress", signal.SIGINT, True, True),
    # xz, not the default gzip: compressing the example takes several seconds, not one.
    Case(("deb", "--maintainer", MAINTAINER, "--compression", "xz"), "compress", signal.SIGTERM),
    Case(("deb", "--maintainer", MAINTAINER, "--compression", "xz"), "compress", signal.SIGKILL),
    Case(("deb", "--maintainer", MAINTAINER, "--tree-only"), "staging", signal.SIGKILL),
    Case(("rpm",), "rpmbuild", signal.SIGTERM),
    Case(("rpm",), "rpmbuild", signal.SIGHUP),
    Case(("rpm",), "rpmbuild", signal.SIGKILL),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_killed_run_leaves_nothing(case: Case, env: BuiltEnv, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    args = [*VENVPACK, *case.command]
    if case.command[0] == "build":
        args += ["-o", str(out / "env")]
    else:
        if "--python" not in case.command:
            args += ["--from", str(env.root)]
        args += ["-o", str(out)]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        reached = PHASES[case.phase]
        deadline = time.monotonic() + 120
        while not reached(proc, out):
            assert proc.poll() is None, f"venvpack ended before {case.phase}: {proc.stderr}"
            assert time.monotonic() < deadline, f"{case.phase} never came"
            time.sleep(0.02)
        tree = descendants(proc.pid)
        assert proc.poll() is None, f"venvpack finished before it was killed: {case.phase}"
        if case.whole_group:
            os.killpg(proc.pid, case.signum)
        else:
            os.kill(proc.pid, case.signum)
        if case.second:
            time.sleep(0.2)
            os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    if case.signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + case.signum, err
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1] == "venvpack: interrupted", err
        assert staging(out) == []
        assert not (out / "env").exists()
    # After SIGKILL, children die with venvpack (PDEATHSIG) but grandchildren (rpmbuild's
    # shell extracting the tree, uv's build backend) finish their step on their own: on a
    # loaded machine that can take longer than an orderly stop.
    grace = 60 if case.signum == signal.SIGKILL else 15
    deadline = time.monotonic() + grace
    while alive(tree + descendants(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(tree + descendants(proc.pid)) == [], "processes of the killed run remain"

    # The next run writing to the same directory reaps what SIGKILL left.
    after = subprocess.run(
        [*VENVPACK, "tar", "--from", str(env.root), "--compression", "gzip", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert after.returncode == 0, after.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "hello-1.0.0-linux-x86_64.tar.gz",
        "hello-1.0.0-linux-x86_64.tar.gz.cdx.json",
    ]


# --------------------------------------------------------------------------- item 13, real build


def _wheel(directory: Path) -> Path:
    """A wheel whose .pth file is latin-1 (``site`` reads it in the locale's encoding)."""
    files = {
        "latin1.pth": b"# caf\xe9: written on a latin-1 system\n",
        "latin1-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: latin1\nVersion: 1.0\n",
        "latin1-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    rows = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{name},sha256={digest},{len(data)}\n")
    rows.append("latin1-1.0.dist-info/RECORD,,\n")
    files["latin1-1.0.dist-info/RECORD"] = "".join(rows).encode()
    wheel = directory / "latin1-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def test_latin1_pth_builds(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    out = tmp_path / "env"
    result = subprocess.run(
        [*VENVPACK, "build", str(wheel), "--python", "3.12", "--no-index", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    pth = out / "lib/python3.12/site-packages/latin1.pth"
    assert pth.read_bytes() == b"# caf\xe9: written on a latin-1 system\n"
