"""Bad input: one line on stderr, the documented exit code, no traceback, nothing left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from venvpack.cli import main

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    code = exc.value.code
    err = capsys.readouterr().err
    return (code if isinstance(code, int) else 1), err


def assert_one_line(err: str) -> None:
    """Progress lines may come first; the failure itself is exactly one line, the last."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith(("venvpack: error:", "Error:"))]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0]


@pytest.mark.parametrize(
    ("python", "message"),
    [
        ("/nonexistent/python3", "no interpreter at /nonexistent/python3"),
        ("/bin/ls", "is not a Python interpreter"),
        ("3.1", "no CPython 3.1 found"),
        ("cpython@three", "cannot read Python request 'cpython@three': expected a path"),
        ("pypy@3.10", "'pypy@3.10' asks for PyPy; venvpack bundles CPython only"),
    ],
)
def test_bad_interpreter(
    python: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, err = run_cli(["build", "requests", "--python", python, "-o", str(out)], capsys)
    assert code == 3
    assert_one_line(err)
    assert message in err
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_python2_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    py2 = Path.home() / ".pyenv/versions/2.7.18/bin/python2.7"
    if not py2.exists():
        pytest.skip("no Python 2 on this machine")
    code, err = run_cli(["build", "x", "--python", str(py2), "-o", str(tmp_path / "o")], capsys)
    assert code == 3
    assert f"CPython 2.7.18 at {py2} is refused: venvpack needs CPython 3.9 or newer" in err


def test_existing_output_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("mine")
    code, err = run_cli(["build", "requests", "-o", str(out)], capsys)
    assert code == 2
    assert_one_line(err)
    assert "already exists (use --force" in err
    assert (out / "keep").read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prefix", "opt/x"], "--prefix must be an absolute path"),
        (["--name", "My App"], "invalid application name 'My App'"),
        (["-r", "/nonexistent/req.txt"], "does not exist"),
    ],
)
def test_bad_options(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["build", "requests", *args, "-o", str(tmp_path / "o")], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_nothing_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(["build", "-o", str(tmp_path / "o")], capsys)
    assert code == 2
    assert_one_line(err)
    assert "nothing to install" in err


def test_unknown_pyproject_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname="x"\n[tool.venvpack]\npyhton="3.12"\n'
    )
    code, err = run_cli(["build", "--project", str(tmp_path), "-o", str(tmp_path / "o")], capsys)
    assert code == 2
    assert_one_line(err)
    assert "unknown key tool.venvpack.pyhton" in err


def test_unwritable_location(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["build", "requests", "-o", "/proc/venvpack-test/out"], capsys)
    assert code != 0
    assert_one_line(err)
    assert "/proc" in err


def test_from_refuses_build_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(
        [
            "tar",
            "--from",
            str(tmp_path),
            "--name",
            "x",
            "--prefix",
            "/srv/x",
            "-o",
            str(tmp_path / "x.tar.zst"),
        ],
        capsys,
    )
    assert code == 2
    assert_one_line(err)
    assert "--name, --prefix cannot apply to it" in err


def test_from_needs_a_venvpack_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["tar", "--from", str(tmp_path), "-o", str(tmp_path / "x.tar.zst")], capsys)
    assert code == 2
    assert_one_line(err)
    assert "is not a venvpack environment" in err
    assert not (tmp_path / "x.tar.zst").exists()
