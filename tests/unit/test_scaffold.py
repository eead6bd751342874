"""``venvpack init``: the section is appended (the rest of pyproject.toml stays byte for byte),
every setting it shows loads, and project text cannot add a key of its own."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from venvpack.cli import main
from venvpack.config import Pyproject, decide, read_pyproject
from venvpack.emit import format_names, format_options
from venvpack.errors import ConfigError
from venvpack.scaffold import init_project, toml_string

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"

# A "# key = value" line of the generated section: a setting shown with its default.
COMMENTED = re.compile(r"^# ([a-z-]+ = .*)$", re.MULTILINE)


def project(tmp_path: Path, pyproject: bytes | None = None) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(HELLO, root)
    (root / "Makefile").unlink()
    if pyproject is not None:
        (root / "pyproject.toml").write_bytes(pyproject)
    return root


def _read(root: Path) -> Pyproject:
    """The project's settings, checked as venvpack checks them."""
    return read_pyproject(root, format_options())


def uncomment(text: str) -> str:
    return COMMENTED.sub(r"\1", text)


@pytest.mark.parametrize(
    "variant", ["as-is", "crlf", "no-final-newline", "comments-and-odd-spacing"]
)
def test_section_is_appended_and_the_rest_is_untouched(tmp_path: Path, variant: str) -> None:
    original = (HELLO / "pyproject.toml").read_bytes()
    if variant == "crlf":
        original = original.replace(b"\n", b"\r\n")
    elif variant == "no-final-newline":
        original = original.rstrip(b"\n")
    elif variant == "comments-and-odd-spacing":
        original = b"# top comment\n" + original.replace(b" = ", b"   =   ") + b"# end\n"
    root = project(tmp_path, original)
    os.chmod(root / "pyproject.toml", 0o640)
    assert init_project(root) == [root / "pyproject.toml"]
    new = (root / "pyproject.toml").read_bytes()
    assert new.startswith(original)
    added = new[len(original) :]
    if variant == "crlf":
        assert b"\n" not in added.replace(b"\r\n", b"")
    assert _read(root).settings == {"name": "hello", **{f: {} for f in format_names()}}
    assert (root / "pyproject.toml").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in root.iterdir()) == [
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "src",
    ]


def test_every_setting_shown_is_valid(tmp_path: Path) -> None:
    """Uncommenting every setting gives a file venvpack's validator (unknown keys, types)
    accepts, and each format reads its own table."""
    root = project(tmp_path)
    init_project(root)
    path = root / "pyproject.toml"
    text = path.read_text()
    shown = COMMENTED.findall(text)
    assert len(shown) >= 15
    path.write_text(uncomment(text))
    settings = _read(root).settings
    assert settings["deb"]["maintainer"] == "Ada Example <ada@example.org>"
    assert settings["rpm"]["packager"] == "Ada Example <ada@example.org>"
    assert settings["prefix"] == "/opt/hello"
    assert settings["python"] == ">=3.9"
    pyproject = _read(root)
    formats = format_options()
    values = {fmt: decide(options, {}, (), pyproject, fmt) for fmt, options in formats.items()}
    assert values["deb"]["maintainer"] == "Ada Example <ada@example.org>"
    assert values["tar"]["compression"] == "zstd"


def test_the_maintainer_is_not_invented(tmp_path: Path) -> None:
    text = (HELLO / "pyproject.toml").read_text()
    text = text.replace('authors = [{ name = "Ada Example", email = "ada@example.org" }]', "")
    root = project(tmp_path, text.encode())
    init_project(root)
    section = (root / "pyproject.toml").read_text()[len(text) :]
    assert "a .deb needs one" in section
    assert "@" not in section
    assert "maintainer" not in _read(root).settings["deb"]


def test_hostile_project_text_cannot_add_a_key(tmp_path: Path) -> None:
    name = toml_string('x"\nprefix = "/etc"\n[tool.venvpack.deb]\nmaintainer = "e"')
    person = toml_string('Eve"\n[tool.venvpack.rpm]\nrequires = ["evil"]\n#')
    text = (HELLO / "pyproject.toml").read_text()
    text = text.replace('name = "hello"', f"name = {name}")
    text = text.replace('name = "Ada Example"', f"name = {person}")
    root = project(tmp_path, text.encode())
    (root / ".python-version").write_text('3.12"\nwith-tk = true\n')
    init_project(root)
    settings = _read(root).settings
    assert set(settings) == {"name", *format_names()}
    assert settings["name"] == 'x"\nprefix = "/etc"\n[tool-venvpack-deb]\nmaintainer = "e"'
    assert settings["deb"] == settings["rpm"] == settings["tar"] == {}
    # Uncommented, the shown values are still exactly the project's text, one key each.
    path = root / "pyproject.toml"
    path.write_text(uncomment(path.read_text()))
    settings = _read(root).settings
    assert settings["python"] == '3.12"'
    assert "with-tk" not in settings
    assert settings["rpm"]["packager"].startswith('Eve"\n[tool.venvpack.rpm]')
    assert "evil" not in str(settings["rpm"].get("requires"))


def test_a_project_without_a_name_gets_a_commented_one(tmp_path: Path) -> None:
    root = tmp_path / "My_Tool"
    root.mkdir()
    (root / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n')
    init_project(root)
    assert '\n# name = "my-tool"\n' in (root / "pyproject.toml").read_text()
    assert _read(root).settings == {f: {} for f in format_names()}


def test_toml_string_escapes_every_control_character() -> None:
    assert toml_string('a"b\\c\n\x00\x7f\té') == '"a\\"b\\\\c\\n\\u0000\\u007F\\té"'


def test_python_version_file_is_the_default_shown(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / ".python-version").write_text("# pin\n3.12\n")
    init_project(root)
    text = (root / "pyproject.toml").read_text()
    assert 'the one .python-version names, "3.12"' in text
    assert '# python = "3.12"' in text


@pytest.mark.parametrize(
    "existing",
    [
        '[tool.venvpack]\nname = "x"\n',
        '[tool.venvpack.deb]\nsection = "web"\n',
        'tool.venvpack.name = "x"\n',
    ],
)
def test_an_existing_section_is_refused(tmp_path: Path, existing: str) -> None:
    original = existing + (HELLO / "pyproject.toml").read_text()
    root = project(tmp_path, original.encode())
    with pytest.raises(ConfigError, match=r"already has a \[tool.venvpack\] section"):
        init_project(root, makefile=True)
    assert (root / "pyproject.toml").read_text() == original
    assert not (root / "Makefile").exists()


def test_an_inline_tool_table_is_refused_untouched(tmp_path: Path) -> None:
    original = 'tool = { black = { line-length = 90 } }\n[project]\nname = "x"\n'
    root = project(tmp_path, original.encode())
    with pytest.raises(ConfigError, match=r"cannot append a \[tool\.venvpack\] section"):
        init_project(root)
    assert (root / "pyproject.toml").read_text() == original
    assert not [p for p in root.iterdir() if p.name.startswith(".venvpack")]


def test_no_pyproject_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no pyproject\.toml in"):
        init_project(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_makefile_is_written_and_never_replaced(tmp_path: Path) -> None:
    root = project(tmp_path)
    original = (root / "pyproject.toml").read_bytes()
    (root / "Makefile").write_text("all:\n")
    with pytest.raises(ConfigError, match="Makefile already exists"):
        init_project(root, makefile=True)
    assert (root / "Makefile").read_text() == "all:\n"
    assert (root / "pyproject.toml").read_bytes() == original  # checked before writing
    (root / "Makefile").unlink()
    assert init_project(root, makefile=True) == [root / "pyproject.toml", root / "Makefile"]
    makefile = (root / "Makefile").read_text()
    assert f"\n{' '.join(format_names())}:\n\t" in makefile
    assert "$(VENVPACK) $@ -q --force -o $(DIST)" in makefile


def test_cli_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path)
    monkeypatch.chdir(root)
    main(["init", "--makefile"])  # exits only on failure
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "venvpack: wrote pyproject.toml\nvenvpack: wrote Makefile\n"
    with pytest.raises(SystemExit) as exc:
        main(["init"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("venvpack: error: pyproject.toml already has a [tool.venvpack]")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_sudo_init_keeps_the_files_owner(tmp_path: Path) -> None:
    """``sudo venvpack init`` replaces the file by a new one, which must still be the user's."""
    root = project(tmp_path)
    path = root / "pyproject.toml"
    os.chown(path, 4321, 4322)
    path.chmod(0o640)
    init_project(root)
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (4321, 4322, 0o640)
    assert "[tool.venvpack]" in path.read_text()


def test_a_hard_linked_pyproject_is_refused_untouched(tmp_path: Path) -> None:
    root = project(tmp_path)
    path = root / "pyproject.toml"
    other = tmp_path / "shared-pyproject.toml"
    os.link(path, other)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="has 2 hard links; venvpack init replaces the file"):
        init_project(root)
    assert path.read_bytes() == before
    assert path.stat().st_nlink == 2
