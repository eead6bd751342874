"""The pack orchestration: one package model behind deb and rpm, checked before any build.

The table runs the same option sets through ``venvpack deb`` and ``venvpack rpm`` with a real
requirement, so a build would start if the options passed: both formats must give the same
verdict and the same exit code, and every refusal must come before any build work (no
interpreter is looked for, none is copied).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from fakes import fake_env_tree
from venvpack import build
from venvpack.cli import main
from venvpack.emit import FORMATS, format_names, load_format
from venvpack.errors import BuildError
from venvpack.pack import artifact_location

MAINTAINER = "Jane Doe <jane@example.org>"
SOME_FILE = str(Path(__file__).resolve())

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
    # Service packaging: users, files, configuration files, relations, versions.
    (["--user", "svc"], 6),
    (["--user", "svc", "--service-command", "hello"], 6),
    (["--user", "root"], 2),
    (["--user", "Svc"], 2),
    (["--user", "a" * 33], 2),
    (["--file", f"{SOME_FILE}:/usr/share/hello/x.py"], 6),
    (["--file", f"{SOME_FILE}:/usr/share/hello/x.py:0755"], 6),
    (["--file", f"{SOME_FILE}:/usr/share/hello/x.py:4755"], 2),
    (["--file", f"{SOME_FILE}:/usr/share/hello/x.py:rw"], 2),
    (["--file", f"{SOME_FILE}:relative/x"], 2),
    (["--file", f"{SOME_FILE}:/usr/share/my x"], 2),
    (["--file", f"{SOME_FILE}:/usr/share/%{{x}}"], 2),
    (["--file", f"{SOME_FILE}:/etc/hello.conf"], 2),
    (["--file", f"{SOME_FILE}:/usr/bin/evil"], 2),
    (["--file", "/nonexistent/x:/usr/share/x"], 2),
    (["--file", f"{SOME_FILE}"], 2),
    (["--config-file", f"{SOME_FILE}:/etc/hello/hello.conf"], 6),
    (["--config-file", f"{SOME_FILE}:/opt/hello.conf"], 2),
    (
        ["--config-file", f"{SOME_FILE}:/etc/h.conf", "--config-file", f"{SOME_FILE}:/etc/h.conf"],
        2,
    ),
    (["--provides", "hello-api"], 6),
    (["--provides", "hello-api (= 1.0)"], 6),
    (["--provides", "hello-api >= 1.0"], 2),
    (["--conflicts", "hello-old < 2"], 6),
    (["--conflicts", "a, b"], 2),
    (["--conflicts", "a\nb"], 2),
    (["--replaces", "hello-old (<< 2)"], 6),
    (["--recommends", "%(id)"], 2),
    (["--release", "2"], 6),
    (["--revision", "2~bpo1"], 6),
    (["--release", "1-2"], 2),
    (["--release", "1%{?dist}"], 2),
    (["--epoch", "2"], 6),
    (["--epoch", "-1"], 2),
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
    name = {"tar": "x.tar.zst", "deb": "x.deb", "rpm": "x.rpm", "oci": "x.tar"}[fmt]
    (tmp_path / name).write_bytes(b"old")
    maintainer = ["--maintainer", MAINTAINER] if fmt == "deb" else []
    code = _run([fmt, "hello-req", *maintainer, "-o", str(tmp_path / name)])
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert no_build == []
    assert (tmp_path / name).read_bytes() == b"old"


def test_every_format_is_a_command_from_the_registry() -> None:
    import click

    from venvpack.cli import cli

    ctx = click.Context(cli)
    for name in format_names():
        fmt = load_format(name)
        assert fmt.name == name
        assert name in cli.list_commands(ctx)
        command = cli.get_command(ctx, name)
        assert command is not None
        flags = {f for p in command.params for f in getattr(p, "opts", ())}
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


# --------------------------------------------------------------------------- output rules


@pytest.fixture
def fake_env(tmp_path: Path) -> Path:
    return fake_env_tree(tmp_path / "env")


@pytest.mark.parametrize(
    ("name", "described", "tar_flag"),
    [
        ("x.tar.zst", "Zstandard compressed data", "--zstd"),
        ("x.tar.gz", "gzip compressed data", "-z"),
        ("x.tgz", "gzip compressed data", "-z"),
        ("x.tar.xz", "XZ compressed data", "-J"),
        ("x.tar", "POSIX tar archive", ""),
    ],
)
def test_the_tarball_name_picks_the_compression(
    tmp_path: Path, fake_env: Path, name: str, described: str, tar_flag: str
) -> None:
    out = tmp_path / "out" / name
    main(["tar", "-q", "--from", str(fake_env), "-o", str(out)])
    assert out.is_file()
    kind = subprocess.run(["file", "-b", out], capture_output=True, text=True, check=True)
    assert kind.stdout.startswith(described), kind.stdout
    listing = subprocess.run(
        ["tar", *([tar_flag] if tar_flag else []), "-tf", out],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "hello/bin/hello" in listing.stdout.splitlines()
    # The same compression when the flag agrees with the name.
    flag = {".zst": "zstd", ".gz": "gzip", "tgz": "gzip", ".xz": "xz", "tar": "none"}
    compression = next(v for k, v in flag.items() if name.endswith(k))
    again = ["tar", "-q", "--from", str(fake_env), "-o", str(out), "--force"]
    main([*again, "--compression", compression])
    assert subprocess.run(["file", "-b", out], capture_output=True, text=True).stdout.startswith(
        described
    )


@pytest.mark.parametrize(
    ("name", "compression"),
    [("x.tar.gz", "zstd"), ("x.tgz", "xz"), ("x.tar", "gzip"), ("x.tar.zst", "none")],
)
def test_a_conflicting_compression_is_refused(
    tmp_path: Path,
    fake_env: Path,
    no_build: list[str],
    capsys: pytest.CaptureFixture[str],
    name: str,
    compression: str,
) -> None:
    out = tmp_path / name
    assert _run(["tar", "hello-req", "-o", str(out), "--compression", compression]) == 2
    err = capsys.readouterr().err
    assert f"--compression {compression} contradicts the output name" in err
    assert no_build == []
    assert _run(["tar", "--from", str(fake_env), "-o", str(out), "--compression", compression])
    assert not out.exists()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_an_output_named_like_a_version_is_a_directory(
    tmp_path: Path, fake_env: Path, fmt: str
) -> None:
    out = tmp_path / "out" / "3.2.3"
    maintainer = ["--maintainer", MAINTAINER] if fmt == "deb" else []
    spec_only = ["--spec-only"] if fmt == "rpm" else []  # no rpmbuild in the unit tier
    main([fmt, "-q", "--from", str(fake_env), "-o", str(out), *maintainer, *spec_only])
    assert out.is_dir()
    artifact, sbom = sorted(out.iterdir(), key=lambda p: p.name.endswith(".cdx.json"))
    assert artifact.name.startswith("hello")
    assert sbom.name == f"{artifact.name}.cdx.json"  # every artifact has its SBOM beside it


def test_tree_and_spec_outputs_are_always_directories(tmp_path: Path, fake_env: Path) -> None:
    """--tree-only and --spec-only write a directory venvpack names: -o is where."""
    out = tmp_path / "x.deb"
    main(
        [
            "deb",
            "-q",
            "--from",
            str(fake_env),
            "-o",
            str(out),
            "--maintainer",
            MAINTAINER,
            "--tree-only",
        ]
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "hello_1.0.0-1_amd64",
        "hello_1.0.0-1_amd64.cdx.json",
    ]


# --------------------------------------------------------------------------- pyproject


def test_format_settings_from_pyproject_and_flags_win(
    tmp_path: Path, fake_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[tool.venvpack] is shared, [tool.venvpack.<format>] wins over it, a flag over both."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "hello.toml").write_text("x = 1\n")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "hello"\n'
        "[tool.venvpack]\n"
        'compression = "gzip"\n'
        f'maintainer = "{MAINTAINER}"\n'
        'release = "5"\n'
        "[tool.venvpack.tar]\n"
        'compression = "xz"\n'
        "[tool.venvpack.deb]\n"
        "tree-only = true\n"
        'config-files = ["hello.toml:/etc/hello/hello.toml"]\n'
    )
    monkeypatch.chdir(project)
    out = tmp_path / "out"
    main(["tar", "-q", "--from", str(fake_env), "-o", str(out)])
    main(["tar", "-q", "--from", str(fake_env), "-o", str(out), "--compression", "none"])
    main(["deb", "-q", "--from", str(fake_env), "-o", str(out)])
    assert sorted(p.name for p in out.iterdir()) == [
        "hello-1.0.0-linux-x86_64.tar",
        "hello-1.0.0-linux-x86_64.tar.cdx.json",
        "hello-1.0.0-linux-x86_64.tar.xz",
        "hello-1.0.0-linux-x86_64.tar.xz.cdx.json",
        "hello_1.0.0-5_amd64",  # the tree (tree-only), revision 5 from the shared table
        "hello_1.0.0-5_amd64.cdx.json",
    ]
    tree = out / "hello_1.0.0-5_amd64"
    assert (tree / "etc/hello/hello.toml").read_text() == "x = 1\n"  # relative to the project
    assert "/etc/hello/hello.toml\n" in (tree / "DEBIAN/conffiles").read_text()


def test_a_bad_format_setting_is_one_line_before_building(
    tmp_path: Path, no_build: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "hello"\n[tool.venvpack.rpm]\nentry-point = ["x"]\n'
    )
    code = _run(["rpm", "--project", str(tmp_path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "unknown key tool.venvpack.rpm.entry-point; did you mean entry-points?" in err
    assert no_build == []
