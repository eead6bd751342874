"""The clean-root sandboxes themselves.

Every clean-root test of an artifact rests on these: if hiding did not hide, or the glibc root
quietly held libssl, a broken artifact would pass. So each test here checks both sides — the
thing works when present and is really gone when hidden or absent.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

import sandbox

pytestmark = pytest.mark.roots

PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
DEBIAN_PYTHON = Path("/usr/bin/python3.11")


@pytest.fixture(scope="module")
def pyenv_prefix() -> Path:
    """A pyenv CPython with a shared libpython and an absolute RUNPATH into pyenv."""
    for version in ("3.12.1", "3.11.7", "3.13.0"):
        prefix = PYENV_VERSIONS / version
        if (prefix / "bin" / "python3").exists():
            return prefix
    sandbox.unavailable(f"no pyenv CPython under {PYENV_VERSIONS}")


@pytest.fixture(scope="module")
def bwrap() -> None:
    if sandbox.missing_tools("bwrap"):
        sandbox.unavailable("bwrap not installed (apt-get install bubblewrap)")


# --------------------------------------------------------------------------- hidden_run


@pytest.mark.usefixtures("bwrap")
def test_pyenv_python_runs_until_pyenv_is_hidden(pyenv_prefix: Path) -> None:
    python = pyenv_prefix / "bin" / "python3"
    hide = sandbox.python_hide_list(pyenv_prefix)
    assert hide == [PYENV_VERSIONS.parent.resolve()]

    shown = sandbox.hidden_run([python, "-c", "import sys; print(sys.prefix)"], hide=[])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(pyenv_prefix)

    hidden = sandbox.hidden_run([python, "-c", "print(1)"], hide=hide)
    assert hidden.returncode != 0
    assert "No such file or directory" in hidden.stderr
    listing = sandbox.hidden_run(["ls", "-A", PYENV_VERSIONS.parent], hide=hide)
    assert listing.returncode == 0
    assert listing.stdout == ""


@pytest.mark.usefixtures("bwrap")
def test_debian_python_hidden_files_cannot_run() -> None:
    if not DEBIAN_PYTHON.exists():
        sandbox.unavailable(f"{DEBIAN_PYTHON} not installed")
    hide = sandbox.python_hide_list("/usr")
    assert {Path("/usr/lib/python3.11"), DEBIAN_PYTHON} <= set(hide)

    assert sandbox.hidden_run([DEBIAN_PYTHON, "-c", "1"], hide=[]).returncode == 0
    for command in (DEBIAN_PYTHON, Path("/usr/bin/python3")):  # a file, and a symlink to it
        result = sandbox.hidden_run([command, "-c", "1"], hide=hide)
        assert result.returncode != 0
        assert "Permission denied" in result.stderr
    via_shell = sandbox.hidden_run(
        ["sh", "-c", "python3 -c 1; echo rc=$?; ls -A /usr/lib/python3.11 | wc -l"], hide=hide
    )
    assert via_shell.stdout.split() in (["rc=126", "0"], ["rc=127", "0"])  # dash: not found


@pytest.mark.usefixtures("bwrap")
def test_binds_with_spaces_never_touch_the_host(tmp_path: Path) -> None:
    source = tmp_path / "src dir"
    source.mkdir()
    (source / "data").write_text("payload\n")
    top = f"vp sandbox probe {os.getpid()}"  # must not exist: its mount point is what we test
    assert not os.path.lexists(f"/opt/{top}")
    before = sorted(os.listdir("/opt"))
    dest = f"/opt/{top}/env"

    result = sandbox.hidden_run(
        ["sh", "-c", 'cat "$1/data"; stat -c %a "$(dirname "$1")"; ls -A /opt', "sh", dest],
        hide=[],
        binds={source: dest},
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["payload", "755"]
    assert sorted(lines[2:]) == sorted([*before, top])  # the real /opt is still there
    assert sorted(os.listdir("/opt")) == before  # ... and was not modified


@pytest.mark.usefixtures("bwrap")
def test_tmp_is_private_unless_bound(tmp_path: Path) -> None:
    (tmp_path / "mine").write_text("x")
    private = sandbox.hidden_run(["ls", "-A", "/tmp"], hide=[])
    assert private.stdout == ""
    bound = sandbox.hidden_run(["cat", tmp_path / "mine"], hide=[], binds={tmp_path: tmp_path})
    assert bound.stdout == "x"


# --------------------------------------------------------------------------- glibc root


def test_glibc_root_holds_only_libc(glibc_root_dir: Path) -> None:
    root = glibc_root_dir
    libdir = root / "usr" / "lib" / "x86_64-linux-gnu"
    names = {p.name for p in root.rglob("*")}
    assert "libc.so.6" in names
    for library in ("libssl", "libcrypto", "libffi", "libsqlite3", "libz.", "libselinux"):
        assert not [n for n in names if n.startswith(library)], library
    assert sandbox.python_traces(root) == []
    assert os.readlink(root / "bin") == "usr/bin"  # merged /usr as on the host
    assert os.readlink(root / "usr" / "bin" / "sh") == "dash"
    for tool in sandbox.REQUIRED_COREUTILS:
        assert (root / "usr" / "bin" / tool).is_file(), tool
    available = {p.name for p in libdir.iterdir()}
    for path in (root / "usr" / "bin").iterdir():
        if path.is_file() and not path.is_symlink():
            assert set(sandbox.elf_needed(path)) <= available, path


def test_glibc_root_runs_a_shell_and_has_no_python(glibc_root_dir: Path) -> None:
    result = sandbox.run_in_root(
        glibc_root_dir,
        ["/bin/sh", "-c", 'realpath /; command -v python3 || echo "no python3"; env'],
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["/", "no python3"]
    assert {f"{k}={v}" for k, v in sandbox.ROOT_ENV.items()} <= set(lines[2:])
    assert not [line for line in lines[2:] if line.startswith(("PYTHON", "VIRTUAL_ENV"))]


def test_glibc_root_stays_read_only(glibc_root_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("bound\n")
    before = sorted(os.listdir(glibc_root_dir))
    result = sandbox.run_in_root(
        glibc_root_dir,
        ["/bin/sh", "-c", 'cat "/opt/my app/f"; echo x > /usr/new'],
        binds={tmp_path: "/opt/my app"},
    )
    assert result.stdout == "bound\n"
    assert "Read-only file system" in result.stderr
    assert sorted(os.listdir(glibc_root_dir)) == before  # no mount point was created in it
    with pytest.raises(ValueError, match="fresh_copy"):
        sandbox.run_in_root(glibc_root_dir, ["true"], writable=True)


def test_spawn_pool_runs_in_glibc_root_but_ssl_does_not(
    glibc_root_dir: Path, pyenv_prefix: Path
) -> None:
    """A pyenv interpreter bound at its own path: the core runs on glibc alone (spawn pool and
    its POSIX semaphores in /dev/shm included), but ``_ssl`` finds no libssl — as intended."""
    code = (
        "import multiprocessing as mp\n"
        "if __name__ == '__main__':\n"
        "    with mp.get_context('spawn').Pool(2) as pool:\n"
        "        print(pool.map(abs, [-1, -2]))\n"
        "    try:\n"
        "        import ssl\n"
        "    except ImportError as error:\n"
        "        print(error)\n"
    )
    result = sandbox.run_in_root(
        glibc_root_dir,
        [pyenv_prefix / "bin" / "python3", "-c", code],
        binds={pyenv_prefix: pyenv_prefix},
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first == "[1, 2]"
    assert "libssl" in second


# --------------------------------------------------------------------------- debootstrap roots


@pytest.mark.parametrize("suite", ["bullseye", "bookworm", "trixie"])
def test_minbase_root_has_dpkg_and_no_python(suite: str, request: pytest.FixtureRequest) -> None:
    root: Path = request.getfixturevalue(f"{suite}_root")
    assert (root / "usr" / "bin" / "dpkg").is_file()
    assert sandbox.python_traces(root) == []
    result = sandbox.run_in_root(root, ["dpkg-query", "-W", "-f", "${Status}", "dpkg"])
    assert result.stdout == "install ok installed", result.stderr
    absent = sandbox.run_in_root(root, ["sh", "-c", "command -v python3 || echo none"])
    assert absent.stdout.strip() == "none"


def _tiny_deb(tmp_path: Path) -> Path:
    """A package whose postinst writes a file, to prove maintainer scripts run in the chroot."""
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr" / "bin").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: vp-sandbox-probe\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: venvpack tests <tests@invalid>\nDescription: sandbox probe\n"
    )
    postinst = tree / "DEBIAN" / "postinst"
    postinst.write_text('#!/bin/sh\nset -e\necho "configured $1" > /var/lib/vp-sandbox-probe\n')
    postinst.chmod(0o755)
    hello = tree / "usr" / "bin" / "vp-sandbox-probe"
    hello.write_text("#!/bin/sh\necho hello from the chroot\n")
    hello.chmod(0o755)
    debs = tmp_path / "debs"
    debs.mkdir()
    deb = debs / "vp-sandbox-probe_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def test_dpkg_installs_in_a_fresh_copy_only(
    bookworm_root: Path, fresh_root: Callable[[Path], Path], tmp_path: Path
) -> None:
    deb = _tiny_deb(tmp_path)
    with pytest.raises(ValueError, match="fresh_copy"):
        sandbox.run_in_chroot(bookworm_root, ["true"])
    root = fresh_root(bookworm_root)

    installed = sandbox.run_in_chroot(
        root, ["dpkg", "-i", f"/srv/my debs/{deb.name}"], binds={deb.parent: "/srv/my debs"}
    )
    assert installed.returncode == 0, installed.stderr
    after = sandbox.run_in_chroot(
        root, ["sh", "-c", "cat /var/lib/vp-sandbox-probe; vp-sandbox-probe"]
    )
    assert after.stdout.splitlines() == ["configured configure", "hello from the chroot"]
    purged = sandbox.run_in_chroot(root, ["dpkg", "--purge", "vp-sandbox-probe"])
    assert purged.returncode == 0, purged.stderr
    assert not (root / "usr" / "bin" / "vp-sandbox-probe").exists()
    assert not (bookworm_root / "var" / "lib" / "vp-sandbox-probe").exists()  # cache untouched
