"""``inspect`` and ``verify`` on artifacts nobody trusts: contained, one line, schema-valid.

Every artifact of ``hostile.py``'s corpus -- writes and reads through symlinks, bombs, a
sparse member, corrupt streams, bad ELF files, terminal escapes, device nodes, fifos,
absolute and ``..`` names, as tarballs, .debs and .rpms -- goes through the real command
(``venvpack inspect ART`` and ``ART --json``, side by side) with ``TMPDIR`` pointed at a
directory of the test's own. Whatever the artifact, afterwards:

- a watched directory on the host (names, contents, modes, link targets) is as it was, and
  nothing is left in ``TMPDIR`` or next to it;
- stderr is at most one line, ``venvpack: error: ...``, never a traceback, never a temp path;
- stdout and stderr hold no control character but newline;
- ``--json`` output follows the shipped schema whenever there is a report (exit 0 or 1).

Refused artifacts (structurally hostile, corrupt, over the limits) exit 9 with empty stdout.
While a command runs, its ``TMPDIR`` disk use and memory are watched, and it is killed past
a cap, so a reader that follows a bomb fails the test instead of filling the disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import hostile
import sandbox
from hostile import CASES, FORMATS, Corpus, Host, Member, snapshot
from venvpack.inspect import schema_text

pytestmark = [pytest.mark.integration]

VENVPACK = Path(sys.executable).parent / "venvpack"
TIMEOUT = 60.0
DISK_CAP = 1536 << 20
"""Kill a command whose TMPDIR holds more than this (the data limit is 1 GiB)."""
RSS_CAP = 1 << 30
"""Kill a command using more memory than this (reading /dev/zero must not grow it)."""
SPARSE_DISK = 64 << 20
"""What a 10 GiB sparse member may take on disk while it is read."""
ESCAPED_FORMS = ("\\x1b", "\\033", "\\e", "\\u001b", "^[")
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
STRAY = Path("/tmp/x-venvpack-hostile")
"""Where ``special-absolute-tmp`` would land."""


def _formats(*names: str) -> list[Any]:
    """Formats as parameters; the rpm needs rpmbuild (marker ``packaging``)."""
    return [
        pytest.param(f, marks=pytest.mark.packaging, id=f) if f == "rpm" else pytest.param(f, id=f)
        for f in names
    ]


def _cases(group: str, *, refused: bool | None = None, formats: Sequence[str] = ()) -> list[Any]:
    """(case, format) parameters for every case of ``group`` (its own formats, or the
    subset ``formats`` of them)."""
    params = []
    for case in CASES.values():
        if case.group != group or (refused is not None and (case.expect == (9,)) != refused):
            continue
        for fmt in case.formats:
            if formats and fmt not in formats:
                continue
            marks = [pytest.mark.packaging] if fmt == "rpm" else []
            params.append(pytest.param(case.name, fmt, marks=marks, id=f"{case.name}-{fmt}"))
    return params


SOME = ("tar", "tar.zst", "deb-xz", "rpm")
"""Where the format matters less than the content: one of each kind, every compressor."""


# -- running venvpack -------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_disk: int
    """Peak bytes allocated under TMPDIR (sparse holes take none)."""
    max_rss: int
    killed: str | None
    """Why the command was killed (timeout, disk, memory), None when it finished."""

    def explain(self) -> str:
        return (
            f"{' '.join(self.argv[1:])}: exit {self.returncode} after {self.seconds:.1f}s, "
            f"killed={self.killed}, disk={self.max_disk >> 20} MiB, rss={self.max_rss >> 20} "
            f"MiB\nstdout: {self.stdout[:2000]!r}\nstderr: {self.stderr[-3000:]!r}"
        )


def _disk_use(top: Path, budget: float = 2.0) -> int:
    """Bytes allocated under ``top``; stops counting after ``budget`` seconds."""
    total = 0
    start = time.monotonic()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):  # gone since listed
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
        if time.monotonic() - start > budget:
            break
    return total


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Runner:
    """Runs venvpack commands with a private TMPDIR and checks what they leave behind."""

    def __init__(self, base: Path, host: Host) -> None:
        self.base = base
        self.host = host
        self.tmpdir = base / "tmp"
        self.cwd = base / "cwd"
        self.tmpdir.mkdir(parents=True)
        self.cwd.mkdir()
        host.reset()
        if STRAY.exists():
            STRAY.unlink()
        self.before = snapshot(host.watched)

    def run(self, *argv_lists: Sequence[str], timeout: float = TIMEOUT) -> list[Result]:
        """Run each command (side by side), watching TMPDIR's disk use and their memory."""
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "FORCE_COLOR")}
        env.update(TMPDIR=str(self.tmpdir), NO_COLOR="1", COLUMNS="100")
        started = time.monotonic()
        procs = []
        for i, args in enumerate(argv_lists):
            argv = (str(VENVPACK), *args)
            out = (self.base / f"out{i}").open("w+b")
            err = (self.base / f"err{i}").open("w+b")
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,  # kept open and empty: reading fd 0 would block
                stdout=out,
                stderr=err,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
            procs.append((argv, proc, out, err))
        max_disk = 0
        max_rss = [0] * len(procs)
        killed: list[str | None] = [None] * len(procs)
        ended: list[float] = [0.0] * len(procs)
        while True:
            running = [i for i, (_, p, _, _) in enumerate(procs) if p.poll() is None]
            for i in range(len(procs)):
                if i not in running and not ended[i]:
                    ended[i] = time.monotonic() - started
            if not running:
                break
            disk = _disk_use(self.tmpdir)
            max_disk = max(max_disk, disk)
            elapsed = time.monotonic() - started
            for i in running:
                proc = procs[i][1]
                max_rss[i] = max(max_rss[i], _rss(proc.pid))
                reason = (
                    "timeout"
                    if elapsed > timeout
                    else "disk"
                    if disk > DISK_CAP
                    else "memory"
                    if max_rss[i] > RSS_CAP
                    else None
                )
                if reason:
                    killed[i] = reason
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            time.sleep(0.1)
        results = []
        for i, (argv, proc, out, err) in enumerate(procs):
            assert proc.stdin is not None
            proc.stdin.close()
            out.seek(0)
            err.seek(0)
            results.append(
                Result(
                    argv=argv,
                    returncode=proc.returncode,
                    stdout=out.read().decode("utf-8", "backslashreplace"),
                    stderr=err.read().decode("utf-8", "backslashreplace"),
                    seconds=ended[i],
                    max_disk=max_disk,
                    max_rss=max_rss[i],
                    killed=killed[i],
                )
            )
            out.close()
            err.close()
        return results

    def inspect(self, artifact: Path, *extra: str, timeout: float = TIMEOUT) -> InspectRuns:
        """``inspect ART`` and ``inspect ART --json`` side by side, both checked in common."""
        text, as_json = self.run(
            ["inspect", str(artifact), *extra],
            ["inspect", str(artifact), "--json", *extra],
            timeout=timeout,
        )
        for result in (text, as_json):
            self.check_output(result)
        assert text.returncode == as_json.returncode, (text.explain(), as_json.explain())
        report = None
        if as_json.returncode in (0, 1):
            report = json.loads(as_json.stdout)
            jsonschema.validate(report, SCHEMA)
        self.check_left_alone()
        return InspectRuns(text, as_json, report)

    def check_output(self, result: Result) -> None:
        """Every command: finished, at most one stderr line (exactly one ``venvpack: error:``
        line on failure), no traceback, no temp path, no control character."""
        assert result.killed is None, result.explain()
        assert "Traceback" not in result.stderr, result.explain()
        lines = result.stderr.splitlines()
        if result.returncode != 0:
            assert len(lines) == 1, result.explain()
            assert lines[0].startswith("venvpack: error: "), result.explain()
        else:
            assert len(lines) <= 1, result.explain()
        for stream in (result.stdout, result.stderr):
            assert "venvpack-inspect-" not in stream, result.explain()
            assert str(self.tmpdir) not in stream, result.explain()
            found = CONTROL.search(stream)
            assert found is None, (found, result.explain())

    def check_left_alone(self) -> None:
        """The watched directory as it was; nothing in TMPDIR, beside it, or in /tmp."""
        assert snapshot(self.host.watched) == self.before, "the watched directory changed"
        assert sorted(os.listdir(self.tmpdir)) == [], os.listdir(self.tmpdir)
        assert sorted(os.listdir(self.cwd)) == []
        assert sorted(
            p.name for p in self.base.iterdir() if not p.name.startswith(("out", "err"))
        ) == [
            "cwd",
            "tmp",
        ]
        assert not STRAY.exists()

    def cleanup(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        if STRAY.exists():
            STRAY.unlink()


@dataclass(frozen=True)
class InspectRuns:
    text: Result
    json: Result
    report: dict[str, Any] | None


def assert_refused(result: Result) -> None:
    """Exit 9, nothing on stdout, one line on stderr (checked by Runner.check_output)."""
    assert result.returncode == 9, result.explain()
    assert result.stdout == "", result.explain()


SCHEMA = json.loads(schema_text())


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    """The host paths hostile artifacts aim at: outside the corpus and every TMPDIR."""
    return Host.make(tmp_path_factory.mktemp("host"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory, host: Host) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("corpus"), host)


@pytest.fixture
def artifact(corpus: Corpus, case: str, fmt: str) -> Path:
    if fmt == "rpm" and shutil.which("rpmbuild") is None:
        sandbox.unavailable("the rpm corpus needs rpmbuild (apt-get install rpm)")
    return corpus.artifact(case, fmt)


@pytest.fixture
def runner(tmp_path: Path, host: Host) -> Iterator[Runner]:
    runner = Runner(tmp_path / "run", host)
    yield runner
    runner.cleanup()
    host.reset()


# -- inspect: refused -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "fmt"),
    _cases("symlink-write")
    + _cases("symlink-read", refused=True)
    + _cases("special")
    + _cases("corrupt"),
)
def test_hostile_or_corrupt_artifact_is_refused(runner: Runner, artifact: Path) -> None:
    runs = runner.inspect(artifact)
    assert_refused(runs.text)
    assert_refused(runs.json)


@pytest.mark.parametrize(("case", "fmt"), _cases("bomb"))
def test_bomb_is_refused_within_the_limits(runner: Runner, artifact: Path) -> None:
    """2 GiB in one member, 1.5 GiB in 1,536 files, 1,000,001 members: each refused early
    (past 128 MiB, at most 64 times the compressed bytes read; past 10,000 members, 32
    compressed bytes each), having written little (the limits are artifact.Limits)."""
    runs = runner.inspect(artifact)
    assert_refused(runs.text)
    assert_refused(runs.json)
    for result in (runs.text, runs.json):
        assert result.max_disk <= 256 << 20, result.explain()  # the 128 MiB floor, and slack
        assert result.seconds < 30, result.explain()


# -- inspect: reported ------------------------------------------------------------------


def test_good_environment_passes_in_every_format(runner: Runner, corpus: Corpus) -> None:
    """The corpus's writers make artifacts venvpack reads: the baseline for the rest."""
    for fmt in FORMATS:
        if fmt == "rpm" and shutil.which("rpmbuild") is None:
            continue
        runs = runner.inspect(corpus.artifact("good", fmt))
        assert runs.text.returncode == 0, runs.text.explain()
        assert runs.report is not None
        assert runs.report["self_contained"] is True


@pytest.mark.parametrize(("case", "fmt"), _cases("symlink-read", refused=False, formats=SOME))
def test_symlinks_are_reported_never_followed(
    runner: Runner, host: Host, artifact: Path, case: str
) -> None:
    runs = runner.inspect(artifact)
    assert runs.text.returncode == 1, runs.text.explain()
    assert runs.report is not None
    codes = {p["code"] for p in runs.report["problems"]}
    assert "symlink-outside" in codes, runs.report["problems"]
    assert "[symlink-outside]" in runs.text.stdout
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    hostname = hostname or socket.gethostname()
    for result in (runs.text, runs.json):
        assert host.secret not in result.stdout + result.stderr, result.explain()
        if len(hostname) >= 6:  # a short name could appear by chance
            assert hostname not in result.stdout + result.stderr, result.explain()
        assert result.max_rss < RSS_CAP // 2, result.explain()
    if case in ("read-lib-dir", "read-usr-lib"):
        assert runs.report["distributions"] == []


@pytest.mark.parametrize(("case", "fmt"), _cases("sparse"))
def test_sparse_member_stays_sparse(runner: Runner, artifact: Path) -> None:
    """10 GiB apparent, a few KiB of data: read in seconds, never written out."""
    runs = runner.inspect(artifact)
    for result in (runs.text, runs.json):
        assert result.returncode in (0, 1), result.explain()
        assert result.max_disk < SPARSE_DISK, result.explain()
        assert result.seconds < 30, result.explain()


@pytest.mark.parametrize(("case", "fmt"), _cases("bad-elf", formats=SOME))
def test_bad_elf_files_give_one_line_or_a_report(runner: Runner, artifact: Path) -> None:
    runs = runner.inspect(artifact)
    for result in (runs.text, runs.json):
        assert result.returncode in (1, 9), result.explain()
        if result.returncode == 9:
            assert result.stdout == "", result.explain()


@pytest.mark.parametrize(("case", "fmt"), _cases("escapes", formats=SOME))
def test_terminal_escapes_are_escaped(runner: Runner, artifact: Path) -> None:
    """No raw ESC or BEL reaches the terminal (Runner.check_output); the escaped form does."""
    runs = runner.inspect(artifact)
    assert runs.text.returncode == 1, runs.text.explain()
    assert any(form in runs.text.stdout for form in ESCAPED_FORMS), runs.text.explain()
    assert runs.report is not None
    names = {d["name"] for d in runs.report["distributions"]}
    assert any(name.startswith("evil") for name in names), names


def _glibc_225_library(dest: Path) -> None:
    """A shared library needing nothing newer than GLIBC_2.2.5 (puts, x86-64's first)."""
    source = dest.with_suffix(".c")
    source.write_text('#include <stdio.h>\nint hello(void) { return puts("hi"); }\n')
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-o", str(dest), str(source)],
        check=True,
        capture_output=True,
    )
    source.unlink()
    symbols = subprocess.run(
        ["objdump", "-T", str(dest)], check=True, capture_output=True, text=True
    ).stdout
    assert set(re.findall(r"GLIBC_[0-9.]+", symbols)) == {"GLIBC_2.2.5"}, symbols


def test_glibc_2_2_5_floor_follows_the_schema(runner: Runner, tmp_path: Path) -> None:
    if shutil.which("gcc") is None or shutil.which("objdump") is None:
        sandbox.unavailable("needs gcc and objdump (apt-get install gcc binutils)")
    if os.uname().machine != "x86_64":
        pytest.skip("GLIBC_2.2.5 is x86-64's first symbol version")
    top = tmp_path / "env"
    hostile._lay_out(hostile.env_members(), top)
    lib = top / hostile.SITE / "hello" / "_native.cpython-312-x86_64-linux-gnu.so"
    _glibc_225_library(lib)
    tarball = tmp_path / "old.tar.zst"
    members = [
        *hostile.env_members(),
        Member(str(lib.relative_to(top)), data=lib.read_bytes(), mode=0o755),
    ]
    hostile.write_artifact(tarball, members, "tar.zst")
    for path in (top / "app", tarball):
        runs = runner.inspect(path)
        assert runs.json.returncode in (0, 1), runs.json.explain()
        assert runs.report is not None
        assert runs.report["glibc"]["floor"] is not None, runs.report["glibc"]
        assert runs.report["glibc"]["file"] == str(lib.relative_to(top / "app"))


# -- verify -----------------------------------------------------------------------------

VERIFY_CASES = [
    (case, fmt)
    for case in (
        "write-abs-symlink",
        "write-rel-symlink",
        "write-hardlink",
        "cut-half",
        "special-chr",
        "special-fifo",
        "special-absolute",
        "special-dotdot",
    )
    for fmt in ("tar.zst", "deb-zst", "rpm")
] + [("garbage", "tar.zst"), ("garbage", "rpm"), ("deb-data-cut", "deb-xz")]


@pytest.mark.roots
@pytest.mark.parametrize(
    ("case", "fmt"),
    [
        pytest.param(c, f, marks=[pytest.mark.packaging] if f == "rpm" else [], id=f"{c}-{f}")
        for c, f in VERIFY_CASES
    ],
)
def test_verify_refuses_before_installing(runner: Runner, artifact: Path) -> None:
    """verify reads the artifact (contained) before it installs anything: refused early."""
    if os.geteuid() != 0:
        sandbox.unavailable("verify runs as root")
    if sandbox.missing_tools("bwrap"):
        sandbox.unavailable("verify needs bwrap (apt-get install bubblewrap)")
    (result,) = runner.run(["verify", str(artifact)], timeout=180)
    runner.check_output(result)
    assert_refused(result)
    runner.check_left_alone()


# -- usage errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["inspect", "/no/such/file"], id="inspect-missing-file"),
        pytest.param(["inspect"], id="inspect-no-argument"),
        pytest.param(["verify", "{dir}"], id="verify-directory"),
        pytest.param(["verify", "--bogus", "x"], id="verify-unknown-option"),
    ],
)
def test_usage_errors_are_one_line(runner: Runner, args: list[str]) -> None:
    argv = [a.replace("{dir}", str(runner.host.watched)) for a in args]
    (result,) = runner.run(argv)
    assert result.returncode == 2, result.explain()
    assert result.stdout == "", result.explain()
    runner.check_output(result)
    runner.check_left_alone()
