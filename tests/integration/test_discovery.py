"""``--python`` against the real interpreters on this machine.

pyenv holds CPython 2.7, 3.6-3.8 (refused, by name and reason) and 3.9-3.13 (accepted);
Debian adds /usr/bin/python3.11. Every test sets PATH, PYENV_ROOT and UV_PYTHON_INSTALL_DIR
itself, so what a developer has installed with uv or on their PATH does not change the answers.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest

from venvpack.build import choose_interpreter
from venvpack.cli import main
from venvpack.config import BuildSpec
from venvpack.errors import InterpreterError
from venvpack.interpreter import describe, find_interpreter

pytestmark = [pytest.mark.integration]

PYENV_ROOT = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
VERSIONS = PYENV_ROOT / "versions"
ARCH = platform.machine()
# The versions the brief of this machine promises; a test needing one that is absent skips.
NEWEST = "3.13.0"
SYSTEM_PATH = "/usr/bin:/bin"


def need(*versions: str) -> None:
    missing = [v for v in versions if not (VERSIONS / v).is_dir()]
    if missing:
        pytest.skip(f"pyenv lacks {', '.join(missing)}")


@pytest.fixture
def no_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine as pyenv and Debian made it: PATH without shims, an empty uv directory."""
    uv_dir = tmp_path / "no-uv"
    uv_dir.mkdir()
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    monkeypatch.setenv("PYENV_ROOT", str(PYENV_ROOT))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(uv_dir))
    monkeypatch.delenv("PYENV_VERSION", raising=False)
    return uv_dir


RESOLVED = [
    ("3", NEWEST),
    ("3.9", "3.9.18"),
    ("3.10", "3.10.13"),
    ("3.11", "3.11.7"),  # pyenv's 3.11.7 is newer than Debian's 3.11.2
    ("3.12", "3.12.1"),
    ("3.12.1", "3.12.1"),
    ("3.13", "3.13.0"),
    ("python3.12", "3.12.1"),
    ("cpython@3.12", "3.12.1"),
    ("cpython3.12", "3.12.1"),
    ("cpython-3.12", "3.12.1"),
    ("cp39", "3.9.18"),
    (f"cpython-3.12.1-linux-{ARCH}-gnu", "3.12.1"),
    (">=3.11", NEWEST),
    ("==3.12.*", "3.12.1"),
    (">=3.10,<3.12", "3.11.7"),
    ("~=3.11", NEWEST),
    (">=3.11,<3.13", "3.12.1"),
    (">=3.9", NEWEST),  # requires-python as projects write it
]


@pytest.mark.usefixtures("no_uv")
@pytest.mark.parametrize(("request_text", "version"), RESOLVED)
def test_spelling_resolves(request_text: str, version: str) -> None:
    need(version)
    found = find_interpreter(request_text)
    assert found.version == version
    assert found.source == "pyenv"
    short = ".".join(version.split(".")[:2])
    assert found.executable == VERSIONS / version / "bin" / f"python{short}"


@pytest.mark.usefixtures("no_uv")
def test_debian_python_by_exact_version() -> None:
    debian = Path("/usr/bin/python3.11")
    if not debian.exists():
        pytest.skip("no Debian python3.11")
    version = describe(debian).version
    found = find_interpreter(version)
    assert found.executable == debian
    assert found.source == "debian"


REFUSED = [
    ("3.8", "3.8.18", "python3.8"),
    ("cpython@3.8", "3.8.18", "python3.8"),
    ("python3.7", "3.7.16", "python3.7"),
    ("==3.6.*", "3.6.15", "python3.6"),
    ("2.7", "2.7.18", "python2.7"),
    ("<3.9", "3.8.18", "python3.8"),
]


@pytest.mark.usefixtures("no_uv")
@pytest.mark.parametrize(("request_text", "version", "exe"), REFUSED)
def test_refused_interpreter_is_named(request_text: str, version: str, exe: str) -> None:
    need(version)
    with pytest.raises(InterpreterError) as exc:
        find_interpreter(request_text)
    assert str(exc.value) == (
        f"CPython {version} at {VERSIONS / version / 'bin' / exe} is refused: "
        "venvpack needs CPython 3.9 or newer"
    )


def test_nothing_found_says_where_it_looked(no_uv: Path) -> None:
    with pytest.raises(InterpreterError) as exc:
        find_interpreter("3.1")
    assert str(exc.value) == (
        f"no CPython 3.1 found (looked on PATH, in pyenv at {VERSIONS}, "
        f"in uv's managed pythons at {no_uv}, in /usr/bin)"
    )


def test_uv_managed_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uv's directory with a real install and its minor-version alias, in a custom place."""
    need("3.12.1")
    uv_dir = tmp_path / "managed"
    uv_dir.mkdir()
    key = f"cpython-3.12.1-linux-{ARCH}-gnu"
    (uv_dir / key).symlink_to(VERSIONS / "3.12.1")
    (uv_dir / f"cpython-3.12-linux-{ARCH}-gnu").symlink_to(key)
    (uv_dir / ".lock").write_text("")
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    monkeypatch.setenv("PYENV_ROOT", str(PYENV_ROOT))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(uv_dir))
    for spelling in ("cpython@3.12", "3.12.1", key):
        found = find_interpreter(spelling)
        assert found.version == "3.12.1"
        # the same binary is also pyenv's; found in uv's directory, it is uv's
        assert found.source == "uv", spelling
        assert found.base_prefix == uv_dir / key
    # with the variable gone the directory is not uv's, and pyenv's own copy is found
    monkeypatch.delenv("UV_PYTHON_INSTALL_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "empty"))
    assert find_interpreter("cpython@3.12").source == "pyenv"


def test_pyenv_shims_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only shims on PATH (pyenv's own directory hidden): the probe resolves them."""
    shims = PYENV_ROOT / "shims"
    if not (shims / "python3").exists():
        pytest.skip("no pyenv shims")
    need("3.12.1")
    # bash, which the shims run under, is found through /usr/bin.
    monkeypatch.setenv("PATH", f"{shims}:{SYSTEM_PATH}")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv"))
    monkeypatch.setenv("PYENV_VERSION", "3.12.1")
    for spelling in ("3.12", "3", "python3.12", ">=3.12"):
        found = find_interpreter(spelling)
        assert found.executable == VERSIONS / "3.12.1" / "bin" / "python3.12", spelling
        assert found.source == "pyenv"
    # the shim of a version pyenv has not selected is no interpreter; Debian's is
    assert find_interpreter("3.11").executable == Path("/usr/bin/python3.11")


def test_explicit_paths(no_uv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("3.10.13")
    exe = VERSIONS / "3.10.13" / "bin" / "python3.10"
    assert find_interpreter(str(exe)).version == "3.10.13"
    assert find_interpreter(str(VERSIONS / "3.10.13")).executable == exe
    monkeypatch.chdir(VERSIONS / "3.10.13")
    assert find_interpreter("./bin/python3.10").executable == exe
    monkeypatch.setenv("HOME", str(VERSIONS))
    assert find_interpreter("~/3.10.13/bin/python3").executable == exe


def test_probe_reports_default_builds(no_uv: Path) -> None:
    """Free-threaded and debug detection must not refuse the ordinary builds."""
    for version in ("3.9.18", "3.13.0"):
        need(version)
        short = ".".join(version.split(".")[:2])
        assert describe(VERSIONS / version / "bin" / f"python{short}").version == version


def test_cli_refuses_python_38(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_uv: Path
) -> None:
    need("3.8.18")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["build", "requests", "--python", "3.8", "-o", str(out)])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"venvpack: error: CPython 3.8.18 at {VERSIONS}/3.8.18/bin/python3.8 is refused: "
        "venvpack needs CPython 3.9 or newer"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-uv"]


def test_requires_python_chooses_and_checks_the_interpreter() -> None:
    """No --python: the running Python when it satisfies requires-python, else the newest
    that does; an explicit choice that does not satisfy it is refused before any build."""
    running = describe(Path(sys.executable))
    major, minor = running.version_info[:2]
    spec = BuildSpec(requires_python=f">={major}.{minor}")
    assert choose_interpreter(spec).executable == running.executable
    above = f">{major}.{minor}.99"
    chosen = choose_interpreter(BuildSpec(requires_python=above))
    assert chosen.version_info[:2] > (major, minor)
    with pytest.raises(InterpreterError, match=r"does not satisfy the project's requires-python"):
        choose_interpreter(BuildSpec(python=f"{major}.{minor}", requires_python=above))
