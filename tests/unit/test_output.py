"""The output rule: staging directories, the reaper and atomic replacement of files and
directories (real files, real processes, no mocks)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from venvpack.errors import ConfigError, EmitError, OutputExistsError
from venvpack.output import (
    atomic_output,
    is_staging_name,
    reap,
    refuse_overlap,
    staging_dir,
)


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# --------------------------------------------------------------------------- staging, reaping


def test_staging_names_carry_the_pid(tmp_path: Path) -> None:
    stage = staging_dir(tmp_path)
    assert stage.name.startswith(f".venvpack-{os.getpid()}-")
    assert is_staging_name(stage.name)
    assert stat.S_IMODE(stage.stat().st_mode) == 0o700


def test_reaper_removes_only_dead_runs_own_directories(tmp_path: Path) -> None:
    dead = tmp_path / f".venvpack-{dead_pid()}-0123456789ab"
    (dead / "env/lib").mkdir(parents=True)
    (dead / "env/lib/big").write_bytes(b"x" * 1000)
    (dead / "env/ro").mkdir()
    (dead / "env/ro/f").write_text("x")
    (dead / "env/ro").chmod(0o500)  # rpmbuild leaves read-only directories
    live = tmp_path / f".venvpack-{os.getpid()}-0123456789ab"
    live.mkdir()
    parent = tmp_path / f".venvpack-{os.getppid()}-0123456789ab"
    parent.mkdir()
    foreign = [
        f".venvpack-{dead_pid()}-short",  # not our pattern
        f".venvpack-{dead_pid()}-0123456789ab.keep",
        "venvpack-1-0123456789ab",
        ".hello.tar.zst.tmp-1234",
        "my-project",
    ]
    for name in foreign:
        (tmp_path / name).mkdir()
    link = tmp_path / f".venvpack-{dead_pid()}-aaaaaaaaaaaa"
    link.symlink_to(tmp_path / "my-project")
    file = tmp_path / f".venvpack-{dead_pid()}-bbbbbbbbbbbb"
    file.write_text("not a directory")

    assert reap(tmp_path) == [dead]
    assert names(tmp_path) == sorted([live.name, parent.name, link.name, file.name, *foreign])


def test_a_new_staging_directory_reaps_stale_siblings(tmp_path: Path) -> None:
    stale = tmp_path / f".venvpack-{dead_pid()}-0123456789ab"
    stale.mkdir()
    stage = staging_dir(tmp_path)
    assert names(tmp_path) == [stage.name]


# --------------------------------------------------------------------------- files


def test_file_is_renamed_in_and_staging_removed(tmp_path: Path) -> None:
    dest = tmp_path / "art.tar.zst"
    old_umask = os.umask(0o022)
    try:
        with atomic_output(dest) as tmp:
            assert is_staging_name(tmp.parent.name)
            assert tmp.parent.parent == tmp_path
            tmp.write_bytes(b"new")
            assert not dest.exists()
    finally:
        os.umask(old_umask)
    assert dest.read_bytes() == b"new"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert names(tmp_path) == ["art.tar.zst"]


def test_file_is_replaced_only_when_asked(tmp_path: Path) -> None:
    dest = tmp_path / "art.deb"
    dest.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="already exists"), atomic_output(dest):
        pytest.fail("the block must not run")
    with atomic_output(dest, replace=True) as tmp:
        tmp.write_bytes(b"new")
        assert dest.read_bytes() == b"old"  # complete until the new one is renamed in
    assert dest.read_bytes() == b"new"
    assert names(tmp_path) == ["art.deb"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), EmitError("x")])
def test_failure_leaves_the_old_artifact_and_nothing_else(
    tmp_path: Path, exc: BaseException
) -> None:
    dest = tmp_path / "art.deb"
    dest.write_bytes(b"old")

    def fail() -> None:
        with atomic_output(dest, replace=True) as tmp:
            tmp.write_bytes(b"partial")
            raise exc

    with pytest.raises(type(exc)):
        fail()
    assert dest.read_bytes() == b"old"
    assert names(tmp_path) == ["art.deb"]


def test_output_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    dest = tmp_path / "art.rpm"

    def race() -> None:
        with atomic_output(dest) as tmp:
            tmp.write_bytes(b"second")
            dest.write_bytes(b"first")  # another run finished first

    with pytest.raises(OutputExistsError):
        race()
    assert dest.read_bytes() == b"first"
    assert names(tmp_path) == ["art.rpm"]


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_two_concurrent_writers_one_wins(tmp_path: Path, kind: str) -> None:
    dest = tmp_path / "out"
    both_written = threading.Barrier(2)
    outcomes: list[str] = []

    def write(label: str) -> None:
        try:
            with atomic_output(dest) as tmp:
                if kind == "file":
                    tmp.write_text(label)
                else:
                    tmp.mkdir()
                    (tmp / "who").write_text(label)
                both_written.wait(timeout=10)
            outcomes.append("won " + label)
        except OutputExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(label,)) for label in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) in (["refused", "won a"], ["refused", "won b"]), outcomes
    winner = next(o for o in outcomes if o.startswith("won"))[-1]
    content = dest.read_text() if kind == "file" else (dest / "who").read_text()
    assert content == winner
    assert names(tmp_path) == ["out"]


def test_two_concurrent_processes_one_wins(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    script = (
        "import sys, time; from pathlib import Path\n"
        "from venvpack.output import atomic_output\n"
        "from venvpack.errors import OutputExistsError\n"
        "try:\n"
        "    with atomic_output(Path(sys.argv[1])) as tmp:\n"
        "        tmp.mkdir(); time.sleep(1)\n"
        "except OutputExistsError: sys.exit(2)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(dest)]) for _ in range(2)]
    assert sorted(p.wait() for p in procs) == [0, 2]
    assert names(tmp_path) == ["out"]


# --------------------------------------------------------------------------- directories


def mine(path: Path) -> bool:
    return (path / "made-by-venvpack").is_file()


def test_directory_is_exchanged_and_the_old_one_removed(tmp_path: Path) -> None:
    dest = tmp_path / "tree"
    dest.mkdir()
    (dest / "made-by-venvpack").write_text("old")
    inode = dest.stat().st_ino
    with atomic_output(dest, replace=True, replaceable=mine) as tmp:
        tmp.mkdir()
        (tmp / "made-by-venvpack").write_text("new")
        assert (dest / "made-by-venvpack").read_text() == "old"
        assert dest.stat().st_ino == inode
    assert (dest / "made-by-venvpack").read_text() == "new"
    assert names(tmp_path) == ["tree"]


def test_a_foreign_directory_is_never_replaced(tmp_path: Path) -> None:
    dest = tmp_path / "src"
    dest.mkdir()
    (dest / "main.py").write_text("precious")
    for replaceable in (None, mine):
        with (
            pytest.raises(OutputExistsError, match="did not make"),
            atomic_output(dest, replace=True, replaceable=replaceable),
        ):
            pytest.fail("the block must not run")
    assert (dest / "main.py").read_text() == "precious"
    assert names(tmp_path) == ["src"]


def test_a_directory_that_turns_foreign_meanwhile_is_kept(tmp_path: Path) -> None:
    dest = tmp_path / "tree"

    def race() -> None:
        with atomic_output(dest, replace=True, replaceable=mine) as tmp:
            tmp.mkdir()
            dest.mkdir()
            (dest / "precious").write_text("x")

    with pytest.raises(OutputExistsError):
        race()
    assert names(dest) == ["precious"]
    assert names(tmp_path) == ["tree"]


def test_missing_parent_is_created(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "a/b/x.tar") as tmp:
        tmp.write_bytes(b"x")
    assert (tmp_path / "a/b/x.tar").read_bytes() == b"x"


def test_unwritable_parent_is_an_error() -> None:
    with pytest.raises(EmitError, match="cannot create"), atomic_output(Path("/proc/x/y.tar")):
        pytest.fail("the block must not run")


# --------------------------------------------------------------------------- overlaps


def test_refuse_overlap(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    protected = {"the project directory": project}
    for dest in (project, tmp_path, project / "." / ""):
        with pytest.raises(ConfigError, match="never replaces it"):
            refuse_overlap(dest, protected)
    refuse_overlap(project / "build/env", protected)  # inside is fine: written, not replaced
    (tmp_path / "link").symlink_to(project)
    with pytest.raises(ConfigError, match="is the project directory"):
        refuse_overlap(tmp_path / "link", protected)
    env = tmp_path / "env"
    with pytest.raises(ConfigError, match="packed into the next artifact"):
        refuse_overlap(env / "dist/x.tar", {}, inside={"the --from environment": env})
    refuse_overlap(tmp_path / "dist/x.tar", {}, inside={"the --from environment": env})
