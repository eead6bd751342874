"""The pack orchestration: one package model behind deb and rpm, checked before any build.

The table runs the same option sets through ``venvpack deb`` and ``venvpack rpm`` with a real
requirement, so a build would start if the options passed: both formats must give the same
verdict and the same exit code, and every refusal must come before any build work (no
interpreter is looked for, none is copied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from venvpack import build
from venvpack.cli import main
from venvpack.emit import FORMATS, load_format
from venvpack.errors import BuildError
from venvpack.pack import artifact_location

MAINTAINER = "Jane Doe <jane@example.org>"

# (option set, expected exit code): 6 means "valid, reached the build" (stopped there).
CASES: list[tuple[list[str], int]] = [
    ([], 6),
    (["--prefix", "/srv/hello"], 6),
    (["--prefix", "/usr/bin/app"], 2),
    (["--prefix", "/srv/my app"], 2),
    (["--prefix", "/opt"], 2),
    (["--prefix", "/opt/./x"], 2),
    (["--prefix", "/opt/x/"], 2),
    (["--prefix", "/opt/%{x}"], 2),
    (["--prefix", "opt/x"], 2),
    (["--name", "hello", "--prefix", "/usr/local/bin/hello"], 2),
    (["--entry-point", "hello"], 6),
    (["--entry-point", "a+b"], 6),
    (["--entry-point", "+x"], 2),
    (["--entry-point", "a b"], 2),
    (["--entry-point", "../x"], 2),
    (["--entry-point", "-x"], 2),
    (["--entry-point", "x\n"], 2),
    (["--entry-point", "hello", "--no-bin-links"], 2),
    (["--no-bin-links"], 6),
    (["--service-command", "hello --port 80"], 6),
    (["--service-command", "hello 'unbalanced"], 2),
    (["--service-command", "  "], 2),
    (["--description", "Says hello\nTo everyone."], 6),
    (["--description", "fine\n%include /etc/passwd"], 2),
    (["--description", "fine\n%(touch /tmp/x)"], 2),
    (["--description", "fine\n# a comment"], 2),
    (["--description", "x" * 81], 2),
    (["--description", "\nno synopsis"], 2),
    (["--description", "bell\x07"], 2),
    (["--homepage", "https://example.org/x\nX-Evil: 1"], 2),
    (["--homepage", "not a url"], 2),
    (["--maintainer", "Jane\nDoe <jane@example.org>"], 2),
    (["--name", "MyApp"], 2),
    (["--name", "a/b"], 2),
    (["--version", "1.0 %(id)"], 2),
    (["--version", "../../x"], 2),
]


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every step of build work instead of doing it; the build stops with exit 6."""
    calls: list[str] = []

    def interpreter(*args: Any, **kwargs: Any) -> Any:
        calls.append("choose_interpreter")
        raise BuildError("stopped before the build")

    def copy(*args: Any, **kwargs: Any) -> Any:
        calls.append("copy_runtime")
        raise AssertionError("no interpreter may be copied here")

    monkeypatch.setattr(build, "choose_interpreter", interpreter)
    monkeypatch.setattr(build, "copy_runtime", copy)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    return calls


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize(("options", "expected"), CASES, ids=[repr(c[0])[:60] for c in CASES])
def test_deb_and_rpm_agree_before_building(
    tmp_path: Path,
    no_build: list[str],
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    expected: int,
) -> None:
    verdicts = {}
    for fmt in ("deb", "rpm"):
        out = tmp_path / fmt
        extra = ["--maintainer", MAINTAINER] if "--maintainer" not in options else []
        code = _run([fmt, "hello-req", "-q", "-o", str(out), *extra, *options])
        err = capsys.readouterr().err
        verdicts[fmt] = code
        assert err.startswith("venvpack: error: "), err
        assert err.count("\n") == 1, err
        assert not out.exists() or not any(out.iterdir())
    assert verdicts == {"deb": expected, "rpm": expected}
    assert "copy_runtime" not in no_build
    if expected != 6:
        assert no_build == [], "refused only after build work started"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_existing_output_is_refused_before_building(
    tmp_path: Path, no_build: list[str], capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    name = {"tar": "x.tar.zst", "deb": "x.deb", "rpm": "x.rpm"}[fmt]
    (tmp_path / name).write_bytes(b"old")
    maintainer = ["--maintainer", MAINTAINER] if fmt == "deb" else []
    code = _run([fmt, "hello-req", *maintainer, "-o", str(tmp_path / name)])
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert no_build == []
    assert (tmp_path / name).read_bytes() == b"old"


def test_every_format_is_a_command_from_the_registry() -> None:
    from venvpack.cli import cli

    for name in FORMATS:
        fmt = load_format(name)
        assert fmt.name == name
        assert name in cli.commands
        flags = {f for p in cli.commands[name].params for f in getattr(p, "opts", ())}
        assert {f for option in fmt.options for f in option.flags} <= flags


@pytest.mark.parametrize(
    ("output", "extensions", "named"),
    [
        ("app.deb", (".deb",), "app.deb"),
        ("out/3.2.3", (".deb",), None),
        ("out/app.tar.gz", (".tar.gz", ".tar"), "app.tar.gz"),
        ("out/.deb", (".deb",), None),
        ("dist", (".deb",), None),
        ("app.deb", (), None),
    ],
)
def test_artifact_location(
    tmp_path: Path, output: str, extensions: tuple[str, ...], named: str | None
) -> None:
    directory, name = artifact_location(tmp_path / output, extensions)
    assert name == named
    expected = (tmp_path / output).parent if named else tmp_path / output
    assert directory == expected
