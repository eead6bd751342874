"""Bad input: one line on stderr, the documented exit code, no traceback, nothing left."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fakes import fake_env_tree
from venvpack.cli import main
from venvpack.emit import format_names

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


# -------------------------------------------------------- text that is not text: undecodable input

MAINTAINER = "Jane Doe <jane@example.org>"
UNDECODABLE = "\udcff"  # what Python makes of the byte 0xff in argv (surrogateescape)


@pytest.fixture
def fake_env(tmp_path: Path) -> Path:
    return fake_env_tree(tmp_path / "env")


def leftovers(directory: Path, *expected: str) -> list[str]:
    return sorted(set(os.listdir(directory)) - set(expected))


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("deb", "--description"),
        ("deb", "--maintainer"),
        ("deb", "--homepage"),
        ("deb", "--depends"),
        ("deb", "--section"),
        ("deb", "--entry-point"),
        ("deb", "--service-command"),
        ("rpm", "--summary"),
        ("rpm", "--description"),
        ("rpm", "--license"),
        ("rpm", "--url"),
        ("rpm", "--release"),
        ("rpm", "--requires"),
        ("rpm", "--packager"),
        ("rpm", "--entry-point"),
        ("build", "--prefix"),
        ("tar", "--prefix"),
        ("deb", "--prefix"),
        ("rpm", "--name"),
        ("build", "--python"),
    ],
)
def test_undecodable_option_is_one_line(
    command: str,
    option: str,
    tmp_path: Path,
    fake_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    if option in ("--prefix", "--name", "--python"):
        args = [command, "six", option, f"/opt/x{UNDECODABLE}"]
    else:
        args = [command, "--from", str(fake_env), option, f"x {UNDECODABLE} y"]
    if command == "deb" and option != "--maintainer":
        args += ["--maintainer", MAINTAINER]
    code, err = run_cli([*args, "-o", str(out)], capsys)
    assert code == 2, err
    assert_one_line(err)
    assert f"venvpack: error: {option}: " in err
    assert "\\xff" in err
    assert "' is not valid UTF-8 text" in err
    assert leftovers(tmp_path, "env") == []


def test_undecodable_maintainer_from_the_environment(
    tmp_path: Path,
    fake_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEBFULLNAME", f"Jane {UNDECODABLE}")
    monkeypatch.setenv("DEBEMAIL", "jane@example.org")
    code, err = run_cli(["deb", "--from", str(fake_env), "-o", str(tmp_path / "o")], capsys)
    assert code == 2
    assert_one_line(err)
    assert "$DEBFULLNAME: 'Jane \\xff' is not valid UTF-8 text" in err
    assert leftovers(tmp_path, "env") == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "Expecting value"),
        (b"{", "Expecting property name"),
        (b"[]", "not a JSON object"),
        (b"\xff\xfe{}", "can't decode byte 0xff"),
        (b'{"schema": 1}', "no 'name' field"),
        (b'{"schema": 2}', "schema 2 is not 1"),
        (b"TAMPERED", "name must be a string, not int"),
        (b"COMMANDS", "commands[0] must be a string, not list"),
        (b"PYTHON", "argument after ** must be a mapping"),
        (b"[" * 100_000, "recursion"),
    ],
)
@pytest.mark.parametrize("command", format_names())
def test_tampered_manifest(
    command: str,
    content: bytes,
    reason: str,
    tmp_path: Path,
    fake_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = fake_env / ".venvpack/manifest.json"
    data = json.loads(manifest.read_text())
    tampered = {
        b"TAMPERED": {**data, "name": 5},
        b"COMMANDS": {**data, "commands": [["hello"]]},
        b"PYTHON": {**data, "python": 3.12},
    }
    if content in tampered:
        content = json.dumps(tampered[content]).encode()
    manifest.write_bytes(content)
    out = tmp_path / "out"
    args = [command, "--from", str(fake_env), "-o", str(out)]
    code, err = run_cli([*args, "--maintainer", MAINTAINER] if command == "deb" else args, capsys)
    assert code == 2, err
    assert_one_line(err)
    assert f"{manifest} is not a venvpack manifest: " in err
    assert reason in err
    assert leftovers(tmp_path, "env") == []


def test_tool_that_is_not_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text('tool = 5\n[project]\nname = "x"\n')
    code, err = run_cli(["build", "--project", str(tmp_path), "-o", str(tmp_path / "o")], capsys)
    assert code == 2
    assert_one_line(err)
    assert "[tool.venvpack] must be a table" in err
    assert leftovers(tmp_path, "pyproject.toml") == []


@pytest.mark.parametrize(
    ("command", "value", "message"),
    [
        ("rpm", str(2**32), "too large: at most 4294967295 (2106-02-07) here; this format stores"),
        ("rpm", "9" * 5000, "too large"),
        ("deb", "9" * 40, "too large: at most 253402300799 (9999-12-31)"),
        ("tar", str(10**12), "too large"),
        ("rpm", "-1", "whole, non-negative number of seconds, not '-1'"),
        ("deb", "1.5", "not '1.5'"),
        ("tar", "0x10", "not '0x10'"),
        ("rpm", "\uff11\uff12", "not '\uff11\uff12'"),
        ("tar", f"1{UNDECODABLE}", "not '1\\xff'"),
    ],
)
def test_bad_source_date_epoch(
    command: str,
    value: str,
    message: str,
    tmp_path: Path,
    fake_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    args = [command, "--from", str(fake_env), "-o", str(tmp_path / "out")]
    code, err = run_cli([*args, "--maintainer", MAINTAINER] if command == "deb" else args, capsys)
    assert code == 2, err
    assert_one_line(err)
    assert "SOURCE_DATE_EPOCH" in err
    assert message in err
    assert leftovers(tmp_path, "env") == []


@pytest.mark.parametrize("spec_only", [True, False])
def test_non_utf8_file_name_with_rpm(
    spec_only: bool, tmp_path: Path, fake_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(os.fsencode(fake_env / "lib") + b"/caf\xe9.txt", "wb") as handle:
        handle.write(b"x")
    out = tmp_path / "out"
    args = ["rpm", "--from", str(fake_env), "-o", str(out)]
    code, err = run_cli([*args, "--spec-only"] if spec_only else args, capsys)
    assert code == 7, err
    assert_one_line(err)
    assert "file name 'lib/caf\\xe9.txt' in " in err
    assert "is not UTF-8, which rpm requires" in err
    assert leftovers(out) == []


# --------------------------------------------------- outputs that would replace the sources or cwd


def test_build_over_the_project_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    shutil.copytree(HELLO, project)
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    monkeypatch.chdir(project)
    for output in (".", "..", str(project), "src/.."):
        code, err = run_cli(["build", "-o", output, "--force"], capsys)
        assert code == 2, err
        assert_one_line(err)
        assert "venvpack never replaces it" in err
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(["build", "--project", "proj", "-o", "proj", "--force"], capsys)
    assert code == 2
    assert "is the project directory" in err
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before
    assert sorted(os.listdir(tmp_path)) == ["proj"]


def test_build_force_replaces_only_an_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = run_cli(["build", "requests", "-o", str(out), "--force"], capsys)
    assert code == 2
    assert_one_line(err)
    assert "is a directory venvpack did not make; refusing to replace it" in err
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["dist", "bin", "."])
def test_output_inside_the_from_tree_is_refused(
    where: str, tmp_path: Path, fake_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(os.listdir(fake_env))
    out = fake_env / where
    code, err = run_cli(["tar", "--from", str(fake_env), "-o", str(out)], capsys)
    assert code == 2, err
    assert_one_line(err)
    assert "would be packed into the next artifact" in err
    assert sorted(os.listdir(fake_env)) == before


def test_tree_only_force_replaces_its_own_tree_only(
    tmp_path: Path, fake_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["deb", "--from", str(fake_env), "--maintainer", MAINTAINER, "--tree-only"]
    main([*args, "-o", str(out)])
    tree, sbom = sorted(out.iterdir())
    assert sbom.name == f"{tree.name}.cdx.json"
    (tree / "stale").write_text("from the first run")
    code, err = run_cli([*args, "-o", str(out)], capsys)
    assert code == 2
    assert "already exists (use --force" in err
    main([*args, "-o", str(out), "--force"])
    assert not (tree / "stale").exists()
    assert (tree / "DEBIAN/control").is_file()
    assert sorted(os.listdir(out)) == [tree.name, sbom.name]
    foreign = out / "hello-1.0.0-1.x86_64.rpmbuild"
    foreign.mkdir()
    (foreign / "notes").write_text("mine")
    code, err = run_cli(
        ["rpm", "--from", str(fake_env), "--spec-only", "-o", str(out), "--force"], capsys
    )
    assert code == 2
    assert "did not make" in err
    assert os.listdir(foreign) == ["notes"]


def test_default_output_in_a_project_directory_is_written_into(
    tmp_path: Path, fake_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output rule refuses replacing the project, not writing into it."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "hello"\n')
    monkeypatch.chdir(project)
    main(["tar", "--from", str(fake_env), "--compression", "gzip"])
    main(["deb", "--from", str(fake_env), "--maintainer", MAINTAINER, "--tree-only"])
    assert sorted(os.listdir(project)) == [
        "hello-1.0.0-linux-x86_64.tar.gz",
        "hello-1.0.0-linux-x86_64.tar.gz.cdx.json",
        "hello_1.0.0-1_amd64",
        "hello_1.0.0-1_amd64.cdx.json",
        "pyproject.toml",
    ]
