"""`venvpack build` with every interpreter on this machine, proven where the source is gone.

For each pyenv CPython 3.9-3.13 and Debian's /usr/bin/python3.11: build an environment with
the example app, requests and pyyaml, move it to a path with a space, then run it with the
source interpreter hidden, and in a root that holds only glibc, dash and coreutils.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import sandbox
from venvpack.audit import find_leaks
from venvpack.build import build_environment
from venvpack.config import BuildSpec, Installer, LinkMode
from venvpack.elf import read_elf
from venvpack.graft import find_elf_files
from venvpack.interpreter import Interpreter, describe, find_interpreter
from venvpack.manifest import BuiltEnv
from venvpack.output import is_staging_name

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"

# Imports and a spawn pool: what "the runtime works" means for an application.
CHECK = """
import ssl, sqlite3, ctypes, zlib, lzma, bz2, decimal, uuid, hashlib, readline, json, sys, os
import yaml, requests, markupsafe
from multiprocessing import get_context
assert yaml.__with_libyaml__ or yaml.__version__
sqlite3.connect(":memory:").execute("select 1")
hashlib.sha256(b"x").hexdigest(); lzma.compress(b"x"); bz2.compress(b"x"); zlib.crc32(b"x")
ctypes.CDLL(None)
if __name__ == "__main__":
    with get_context("spawn").Pool(2) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
    # 3.9 and 3.10 report base_prefix as <root>/bin/../python: the same directory.
    print("OK", sys.prefix, os.path.normpath(sys.base_prefix))
"""


def interpreters() -> list[str]:
    found = []
    for minor in range(9, 14):
        versions = sorted(PYENV_VERSIONS.glob(f"3.{minor}.*"))
        if versions:
            found.append(str(versions[-1] / "bin" / f"python3.{minor}"))
    if Path("/usr/bin/python3.11").exists():
        found.append("/usr/bin/python3.11")
    return found


@dataclass(frozen=True)
class Built:
    env: BuiltEnv
    path: Path
    """Where the environment lives after being moved."""
    build_path: Path
    interp: Interpreter


def _label(python: str) -> str:
    return "debian-3.11" if python.startswith("/usr/") else "pyenv-" + Path(python).name[6:]


@pytest.fixture(scope="module", params=interpreters(), ids=_label)
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    python = str(request.param)
    base = tmp_path_factory.mktemp("build")
    out = base / "env"
    spec = BuildSpec(requirements=(str(HELLO), "requests", "pyyaml"), python=python)
    build_environment(spec, out)
    moved = base / "moved here" / "my env"
    moved.parent.mkdir()
    os.rename(out, moved)
    return Built(
        env=BuiltEnv.load(moved), path=moved, build_path=out, interp=describe(Path(python))
    )


def test_expected_interpreters_are_present() -> None:
    labels = [_label(p) for p in interpreters()]
    if os.environ.get("CI"):
        assert len(labels) == 6, labels


def test_runs_with_source_interpreter_hidden(built: Built, tmp_path: Path) -> None:
    hide = sandbox.python_hide_list(built.interp.base_prefix)
    assert hide
    result = sandbox.hidden_run([built.path / "bin/python", "-c", CHECK], hide=hide, tmp=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK {built.path} {built.path / 'python'}")

    # The console script, also through a symlink elsewhere, as /usr/bin/<cmd> would be.
    link = tmp_path / "usr-bin" / "hello"
    link.parent.mkdir()
    link.symlink_to(built.path / "bin" / "hello")
    for command in (built.path / "bin" / "hello", link):
        result = sandbox.hidden_run([command], hide=hide, tmp=False, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"hello from {built.path}" in result.stdout


def test_runs_in_a_glibc_only_root(built: Built, glibc_root_dir: Path) -> None:
    inside = "/opt/my app"
    result = sandbox.run_in_root(
        glibc_root_dir, [f"{inside}/bin/python", "-c", CHECK], binds={built.path: inside}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK {inside} {inside}/python")
    result = sandbox.run_in_root(
        glibc_root_dir, [f"{inside}/bin/hello"], binds={built.path: inside}
    )
    assert result.returncode == 0, result.stderr
    assert "markupsafe" in result.stdout


def test_no_build_host_paths_in_the_tree(built: Built) -> None:
    prefix = str(built.interp.base_prefix)
    compiled_in = subprocess.run(
        [
            built.interp.executable,
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('abs_builddir'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    needles = [str(built.build_path), str(built.interp.stdlib), str(built.interp.executable)]
    if (
        compiled_in.startswith("/") and compiled_in != "/"
    ):  # pyenv's /tmp/python-build.*, Debian's /build/...
        needles.append(compiled_in)
    if prefix not in ("/usr", "/usr/local"):
        needles.append(prefix)
    # ELF files included: libpython's configure-time prefix and the compile directory in
    # C extensions' __FILE__ strings are overwritten at build time.
    assert find_leaks(built.path, needles) == []


def test_every_runpath_is_relative_and_inside(built: Built) -> None:
    for path in find_elf_files(built.path):
        info = read_elf(path)
        for entry in info.rpath + info.runpath:
            assert entry.startswith("$ORIGIN"), (path, entry)
            resolved = Path(os.path.normpath(entry.replace("$ORIGIN", str(path.parent))))
            assert built.path in resolved.parents or resolved == built.path, (path, entry)


def test_runtime_is_pruned_and_ships_hash_based_pycs(built: Built) -> None:
    short = built.interp.short_version
    stdlib = built.path / "python" / "lib" / f"python{short}"
    for gone in ("test", "idlelib", "turtledemo", "tkinter", "EXTERNALLY-MANAGED"):
        assert not (stdlib / gone).exists(), gone
    assert list((stdlib / "site-packages").iterdir()) == []
    assert not list(built.path.rglob("*.a"))
    assert not list(stdlib.glob("lib-dynload/_testcapi.*"))
    assert not list(built.path.rglob("*.opt-1.pyc"))
    pyc = next((stdlib / "__pycache__").glob("os.*.pyc"))
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b11, "checked hash-based pyc expected"
    site = built.path / "lib" / f"python{short}" / "site-packages"
    assert list(site.glob("yaml/__pycache__/*.pyc"))


# Imported on a read-only install: stdlib packages of every kind and the installed ones.
READ_ONLY_IMPORTS = (
    "import json, decimal, asyncio, email.mime.text, http.client, logging.handlers, argparse,"
    " typing, dataclasses, sqlite3, ssl, unittest, xml.etree.ElementTree, importlib.metadata,"
    " concurrent.futures, sysconfig, yaml, requests, markupsafe"
)


def test_read_only_install_compiles_nothing_at_run_time(built: Built) -> None:
    """Installed read-only under /opt (as a package is), the app and the imports it and
    Python make load every module from a pyc venvpack wrote: with ``-v``, Python names the
    file each code object came from, and says when it could not write a pyc."""
    if shutil.which("bwrap") is None:
        pytest.skip("needs bwrap")
    at = "/opt/read-only app"
    sandbox_args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    sandbox_args += ["--tmpfs", "/tmp", "--tmpfs", "/opt", "--ro-bind", str(built.path), at]
    sandbox_args += ["--unshare-net", "--die-with-parent", "--setenv", "PYTHONVERBOSE", "1"]
    for argv in ([f"{at}/bin/python", "-c", READ_ONLY_IMPORTS], [f"{at}/bin/hello"]):
        result = subprocess.run(
            [*sandbox_args, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr[-2000:]
        loaded = re.findall(r"^# code object from '?(.*?)'?$", result.stderr, re.MULTILINE)
        assert len(loaded) > 50, result.stderr[-2000:]
        from_source = [path for path in loaded if not path.endswith(".pyc")]
        assert not from_source, f"compiled at run time: {from_source[:5]}"
        assert not re.findall(r"^# could not create .*", result.stderr, re.MULTILINE)


def test_manifest_describes_the_environment(built: Built) -> None:
    m = built.env.manifest
    assert m.name == "hello"
    assert m.version == "1.0.0"
    assert m.prefix == "/opt/hello"
    assert m.link_mode == "symlink"
    assert m.python.version == built.interp.version
    assert m.commands == ("hello",)
    names = {d.name for d in m.distributions}
    assert {"hello", "requests", "pyyaml", "markupsafe", "certifi"} <= names
    sonames = {g.soname for g in m.grafted}
    assert {"libssl.so.3", "libcrypto.so.3", "libffi.so.8", "libsqlite3.so.0"} <= sonames
    for graft in m.grafted:
        assert (built.path / graft.path).is_file()
    floor = tuple(int(p) for p in m.glibc_floor.split("."))
    assert (2, 17) <= floor <= (2, 99)
    assert str(built.build_path) not in (built.path / ".venvpack/manifest.json").read_text()


def test_activate_finds_the_moved_environment(built: Built) -> None:
    script = 'source "$1/bin/activate" && echo "$VIRTUAL_ENV" && command -v python && deactivate'
    result = subprocess.run(
        ["bash", "-c", script, "bash", str(built.path)], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == [str(built.path), str(built.path / "bin/python")]


@pytest.mark.parametrize(
    ("python", "mode"), [("3.12", LinkMode.COPY), ("/usr/bin/python3.11", LinkMode.HARDLINK)]
)
def test_copy_and_hardlink_modes_run_at_their_prefix(
    python: str, mode: LinkMode, tmp_path: Path, glibc_root_dir: Path
) -> None:
    prefix = "/opt/my app"
    out = tmp_path / "env"
    spec = BuildSpec(
        requirements=(str(HELLO), "requests", "pyyaml"),
        python=python,
        link_mode=mode,
        prefix=prefix,
    )
    build_environment(spec, out)
    exe = out / "bin" / "python"
    assert exe.is_file()
    assert not exe.is_symlink()
    assert out in Path(os.path.realpath(exe)).parents
    if mode is LinkMode.HARDLINK:
        assert exe.stat().st_ino == (out / "python/bin/python3.11").stat().st_ino
    assert f"home = {prefix}/python/bin" in (out / "pyvenv.cfg").read_text()
    interp = find_interpreter(python)
    result = sandbox.hidden_run(
        [f"{prefix}/bin/python", "-c", CHECK],
        hide=sandbox.python_hide_list(interp.base_prefix),
        binds={out: prefix},
        tmp=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK {prefix} {prefix}/python")
    result = sandbox.run_in_root(glibc_root_dir, [f"{prefix}/bin/hello"], binds={out: prefix})
    assert result.returncode == 0, result.stderr


def test_pip_fallback_builds_a_working_environment(tmp_path: Path, glibc_root_dir: Path) -> None:
    out = tmp_path / "env"
    spec = BuildSpec(requirements=(str(HELLO),), python="3.10", installer=Installer.PIP)
    env = build_environment(spec, out)
    assert (
        out / "lib/python3.10/site-packages/hello-1.0.0.dist-info/INSTALLER"
    ).read_text().strip() == "pip"
    assert env.manifest.commands == ("hello",)
    result = sandbox.run_in_root(glibc_root_dir, ["/opt/x/bin/hello"], binds={out: "/opt/x"})
    assert result.returncode == 0, result.stderr
    assert "hello from /opt/x" in result.stdout


def _venvpack(*args: str) -> list[str]:
    return [sys.executable, "-m", "venvpack", *args]


def test_unresolvable_requirement(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        _venvpack(
            "build", "no-such-distribution-venvpack-test", "--no-index", "-q", "-o", str(out)
        ),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    # One summary line, then uv's own explanation indented under it.
    first, *detail = result.stderr.strip().splitlines()
    assert first.startswith("venvpack: error: installing")
    assert all(line.startswith("    ") or not line.strip() for line in detail)
    assert "no-such-distribution-venvpack-test" in result.stderr
    assert os.listdir(tmp_path) == []


def _temp_siblings(parent: Path) -> list[str]:
    return [n for n in os.listdir(parent) if is_staging_name(n)]


def test_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _venvpack("build", "requests", "pyyaml", "--python", "3.12", "-o", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not _temp_siblings(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well inside copying or installing
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "venvpack: interrupted"
    assert os.listdir(tmp_path) == []
