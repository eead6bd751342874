"""Correct at the target: what CPython's own tests found a packed interpreter doing
wrong in a root that holds only glibc, each as a regression test.

The environments are built from pyenv's CPython 3.9 to 3.13 and Debian's python3.11, and
moved before use; every check runs in the glibc-only root (``sandbox.run_in_root``), where
nothing of the build host exists, at the install prefix or anywhere else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import sandbox
from venvpack.build import build_environment
from venvpack.config import BuildSpec
from venvpack.elf import read_elf
from venvpack.platform import system_libraries
from venvpack.settings import LinkMode

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
PREFIX = "/opt/hello"
"""The install prefix (the default ``/opt/<name>``): where the compiled-in fallbacks point."""
ELSEWHERE = "/srv/moved env"
"""Anywhere else: what works from any location is checked here."""

PROBE = "import sys, encodings, os; print(os.path.normpath(sys.base_prefix), sys.prefix)"
DEBIAN_PYTHON = Path("/usr/bin/python3.11")
INTERPRETERS = ("3.9", "3.10", "3.11", "3.12", "3.13", "debian")
"""The six interpreters the build tests use."""


def _python(name: str) -> str:
    if name != "debian":
        return _pyenv(name)
    if not DEBIAN_PYTHON.exists():
        pytest.skip("needs Debian's python3.11")
    return str(DEBIAN_PYTHON)


def _pyenv(minor: str) -> str:
    found = sorted(PYENV_VERSIONS.glob(f"{minor}.*"))
    if not found:
        pytest.skip(f"needs pyenv's CPython {minor}")
    return str(found[-1] / "bin" / f"python{minor}")


def _build(tmp: Path, python: str, **options: object) -> Path:
    out = tmp / "build"
    build_environment(BuildSpec(requirements=(str(HELLO),), python=python, **options), out)  # type: ignore[arg-type]
    moved = tmp / "moved"
    os.rename(out, moved)
    return moved


@pytest.fixture(scope="module", params=INTERPRETERS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("target"), _python(str(request.param)))


def _from_pyenv(env: Path) -> bool:
    return (env / ".venvpack/manifest.json").read_text().count('"source": "pyenv"') == 1


def _sh(root: Path, env: Path, script: str, at: str = PREFIX) -> subprocess.CompletedProcess[str]:
    return sandbox.run_in_root(root, ["/bin/sh", "-c", script], binds={env: at})


def _short(env: Path) -> str:
    return next((env / "python" / "bin").glob("python3.*")).name


@pytest.mark.parametrize("copies", [False, True], ids=["symlinks", "copies"])
@pytest.mark.parametrize("python", ["bin/python", "python/bin/{short}"])
def test_python_m_venv_makes_a_working_venv(
    env: Path, glibc_root_dir: Path, python: str, copies: bool
) -> None:
    """IDEs, tox, nox, pre-commit and pipx run ``<env>/bin/python -m venv``: the new venv's
    ``home`` must be the bundled interpreter's directory, and a copied binary must start,
    wherever the environment is. (3.9 and 3.10 report ``<env>/bin/python`` as
    ``sys._base_executable`` whatever ``pyvenv.cfg`` says, so their ``--copies`` venv made
    through ``bin/python`` gets ``home = <env>/bin``: the interpreter's own entry point
    finds ``<env>/python`` from there.)"""
    at = ELSEWHERE
    exe = f"{at}/{python.format(short=_short(env))}"
    flags = "--copies --without-pip" if copies else "--without-pip"
    result = _sh(
        glibc_root_dir,
        env,
        f"'{exe}' -m venv {flags} /tmp/v && /tmp/v/bin/python -c '{PROBE}'",
        at=at,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"{at}/python /tmp/v"


def test_venv_envbuilder_from_the_environment(env: Path, glibc_root_dir: Path) -> None:
    code = "import venv; venv.EnvBuilder(symlinks=False).create('/tmp/w')"
    exe = f"{ELSEWHERE}/python/bin/{_short(env)}"
    result = _sh(
        glibc_root_dir,
        env,
        f"'{exe}' -c \"{code}\" && /tmp/w/bin/python -c '{PROBE}'",
        at=ELSEWHERE,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"{ELSEWHERE}/python /tmp/w"


@pytest.mark.parametrize("at", [PREFIX, ELSEWHERE], ids=["prefix", "elsewhere"])
def test_curses_finds_terminfo(env: Path, glibc_root_dir: Path, at: str) -> None:
    """At the prefix through the directory compiled into ncurses; elsewhere through the
    TERMINFO_DIRS fallback the interpreter adds (after any the user set)."""
    code = "import curses; curses.setupterm('xterm'); print(curses.tigetnum('colors'))"
    result = _sh(glibc_root_dir, env, f"TERMINFO_DIRS=/nowhere '{at}/bin/python' -c \"{code}\"", at)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "8"
    for name in ("xterm", "xterm-256color", "screen", "tmux", "linux", "vt100", "dumb"):
        assert (env / "python/share/terminfo" / name[0] / name).is_file(), name


def test_daemon_threads_at_shutdown_do_not_abort(env: Path, glibc_root_dir: Path) -> None:
    """glibc dlopens libgcc_s.so.1 for pthread_exit; the environment carries it."""
    assert (env / "python/lib/libgcc_s.so.1").is_file()
    script = (
        "import threading, time\n"
        "def spin():\n"
        "    while True: time.sleep(0.001)\n"
        "for _ in range(4): threading.Thread(target=spin, daemon=True).start()\n"
        "time.sleep(0.05)\n"
    )
    runs = "; ".join([f"'{ELSEWHERE}/bin/python' -c \"$S\" && n=$((n+1))"] * 30)
    result = _sh(glibc_root_dir, env, f"S='{script}'; n=0; {runs}; echo $n", at=ELSEWHERE)
    assert result.stdout.split()[-1] == "30", result.stderr


@pytest.mark.parametrize("at", [PREFIX, ELSEWHERE], ids=["prefix", "elsewhere"])
def test_started_with_an_argv0_that_resolves_nowhere(
    env: Path, glibc_root_dir: Path, at: str
) -> None:
    """exec -a other, from /, as CPython's test_executable_without_cwd does: getpath cannot
    find the file from argv[0]; the interpreter takes its home from /proc/self/exe."""
    code = (
        "import subprocess, sys; r = subprocess.run(['other', '-c', 'import encodings, sys; "
        "print(repr(sys.executable), sys.prefix)'], executable=sys.argv[1], cwd='/', "
        "capture_output=True, text=True); print(r.stdout.strip() or r.stderr)"
    )
    exe = f"{at}/python/bin/{_short(env)}"
    result = _sh(glibc_root_dir, env, f"'{at}/bin/python' -c \"{code}\" '{exe}'", at)
    assert result.stdout.strip() == f"'' {at}/python", result.stdout + result.stderr


@pytest.mark.parametrize(
    ("python", "link"),
    [*((name, LinkMode.COPY) for name in INTERPRETERS), ("3.12", LinkMode.HARDLINK)],
)
def test_a_real_bin_python_runs_where_the_tree_is_moved(
    tmp_path: Path, glibc_root_dir: Path, python: str, link: LinkMode
) -> None:
    """The copy and hardlink modes (bin/python a real file, for IDEs): ``pyvenv.cfg`` names
    the install prefix, yet the moved tree runs as itself, commands included."""
    env = _build(tmp_path, _python(python), link_mode=link)
    assert not (env / "bin/python").is_symlink()
    result = _sh(
        glibc_root_dir,
        env,
        f"'{ELSEWHERE}/bin/python' -c '{PROBE}' && '{ELSEWHERE}/bin/hello'",
        at=ELSEWHERE,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{ELSEWHERE}/python {ELSEWHERE}"


def test_interpreter_no_longer_names_the_source_and_keeps_its_version(env: Path) -> None:
    """The configure-time prefix is in the static interpreter (libpython3.X.a linked in)."""
    if not _from_pyenv(env):
        pytest.skip("pyenv's interpreters name their prefix; Debian's is /usr")
    assert not list((env / "python/lib").glob("libpython3.*.so*"))  # not without --keep-dev
    data = (env / "python/bin" / _short(env)).read_bytes()
    assert str(PYENV_VERSIONS).encode() not in data
    assert f"{PREFIX}/python\0".encode() in data
    result = subprocess.run(
        [env / "bin/python", "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr  # the merged PY_VERSION tail survived


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_extension_built_later_against_keep_dev_survives_a_move(tmp_path: Path) -> None:
    env = _build(tmp_path, _pyenv("3.12"), keep_dev=True)
    src = tmp_path / "ext.c"
    src.write_text(
        "#include <Python.h>\n"
        'static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "ext", NULL, -1, NULL};\n'
        "PyMODINIT_FUNC PyInit_ext(void) { return PyModule_Create(&m); }\n"
    )
    build = (
        "import shlex, subprocess, sys, sysconfig as s\n"
        "site = s.get_paths()['purelib']\n"
        "cmd = shlex.split(s.get_config_var('LDSHARED'))\n"
        "cmd += shlex.split(s.get_config_var('CFLAGS'))\n"
        "cmd += ['-fPIC', '-I' + s.get_paths()['include'], sys.argv[1],\n"
        "        '-o', site + '/ext' + s.get_config_var('EXT_SUFFIX')]\n"
        "subprocess.run(cmd, check=True)\n"
    )
    subprocess.run([env / "bin/python", "-c", build, src], check=True)
    ext = next((env / "lib").glob("python3.12/site-packages/ext.*.so"))
    for entry in read_elf(ext).rpath + read_elf(ext).runpath:
        assert entry.startswith("$ORIGIN"), entry
    moved = tmp_path / "again"
    os.rename(env, moved)
    result = sandbox.run_in_root(
        sandbox.glibc_root(), [f"{PREFIX}/bin/python", "-c", "import ext"], binds={moved: PREFIX}
    )
    assert result.returncode == 0, result.stderr
    for name in ("Makefile",):
        config = next((moved / "python/lib/python3.12").glob(f"config-3.12-*/{name}"))
        assert "/tmp/python-build" not in config.read_text()


@pytest.mark.skipif(not Path("/usr/bin/python3.11").exists(), reason="needs Debian's python3.11")
def test_debian_runtime_stays_in_its_tree_and_runs_ensurepip(
    tmp_path: Path, glibc_root_dir: Path
) -> None:
    env = _build(tmp_path, "/usr/bin/python3.11")
    for dirpath, dirnames, filenames in os.walk(env):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                target = Path(os.path.normpath(path.parent / os.readlink(path)))
                assert env in target.parents, (path, os.readlink(path))
    assert not (env / "python/lib/python3.11/sitecustomize.py").exists()
    check = "import sysconfig as s; print(s.get_config_var('LIBDIR'), s.get_config_var('BINDIR'))"
    result = _sh(
        glibc_root_dir,
        env,
        f"{PREFIX}/bin/python -m ensurepip && {PREFIX}/bin/python -m pip --version "
        f'&& {PREFIX}/bin/python -c "{check}"',
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2].startswith("pip ")
    assert lines[-1] == f"{PREFIX}/python/lib/x86_64-linux-gnu {PREFIX}/python/bin"


def test_a_copy_of_the_interpreter_needs_only_the_c_library(env: Path) -> None:
    """``python -m venv --copies`` copies the executable alone: libpython, and Debian's zlib
    and expat, are linked into it, not found through ``$ORIGIN/../lib``."""
    info = read_elf(env / "python/bin" / _short(env))
    assert set(info.needed) <= system_libraries(), info.needed


def test_static_interpreter_exports_what_libpython_does(env: Path) -> None:
    """Extension modules resolve the C API from the executable: every symbol the source's
    shared libpython exports must be there (linked with --whole-archive)."""
    if not _from_pyenv(env):
        pytest.skip("Debian's python3.11 has no shared libpython to compare with")
    short = _short(env)
    source = next(PYENV_VERSIONS.glob(f"{short[6:]}.*/lib/lib{short}.so.1.0"))
    assert _exported(env / "python/bin" / short) >= _exported(source)


def _exported(path: Path) -> set[str]:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", path], capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[2] for line in out.splitlines() if line.split()[1] in "TDB"}
