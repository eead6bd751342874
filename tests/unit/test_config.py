"""[tool.venvpack] settings: known keys only, typed, and one precedence rule for all."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest

from venvpack.config import (
    BuildSpec,
    LinkMode,
    Pyproject,
    build_spec,
    decide,
    read_pyproject,
    validate_name,
    validate_version,
)
from venvpack.emit import format_options, load_format
from venvpack.errors import ConfigError
from venvpack.settings import BUILD_SETTINGS


def _project(tmp_path: Path, table: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n[tool.venvpack]\n{table}\n')
    return tmp_path


def _read(project: Path) -> Pyproject:
    return read_pyproject(project, format_options())


def _spec(
    project: Path,
    flags: Mapping[str, Any] | None = None,
    given: Collection[str] = (),
    fmt: str | None = None,
) -> BuildSpec:
    """The BuildSpec of ``flags`` (``given`` on the command line) and the project's files."""
    pyproject = _read(project)
    values = decide(BUILD_SETTINGS, dict(flags or {}), given, pyproject, fmt)
    return build_spec({**values, "project": project}, pyproject)


def test_settings_apply_unless_given_as_flags(tmp_path: Path) -> None:
    project = _project(tmp_path, 'python = "3.12"\npython-link = "copy"\nprefix = "/srv/x"')
    merged = _spec(project, {"python": "3.11"}, given=["python"])
    assert merged.python == "3.11"
    assert merged.link_mode is LinkMode.COPY
    assert merged.prefix == "/srv/x"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('pyhton = "3.12"', "unknown key tool.venvpack.pyhton; did you mean python"),
        ('maintaner = "x"', r"unknown key tool.venvpack.maintaner; did you mean maintainer\?$"),
        ('[tool.venvpack.rpm]\nsumary = "x"', "unknown key tool.venvpack.rpm.sumary; did you"),
        ('[tool.venvpack.deb]\nsummary = "x"', "unknown key tool.venvpack.deb.summary"),
        ('[tool.venvpack.deb]\nentry-points = "x"', "tool.venvpack.deb.entry-points must be"),
        ("level = true", "tool.venvpack.level must be an integer"),
        ("[tool.venvpack.tar]\nlevel = true", "tool.venvpack.tar.level must be an integer"),
        ("[tool.venvpack.tar]\nprefix = 1", "tool.venvpack.tar.prefix must be a string"),
        ("[tool.venvpack.zip]\nlevel = 1", "unknown key tool.venvpack.zip"),
        ('deb = "x"', r"tool.venvpack.deb must be a table \(\[tool.venvpack.deb\]\)"),
        ("rpm = []", r"tool.venvpack.rpm must be a table"),
        ("with-tk = 1", "tool.venvpack.with-tk must be true or false"),
        ("python = [", "invalid TOML"),
    ],
)
def test_bad_settings(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _read(_project(tmp_path, table))


def test_bad_link_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="python-link must be one of symlink, copy, hardlink"):
        _read(_project(tmp_path, 'python-link = "junction"'))


@pytest.mark.parametrize("name", ["hello", "my-app", "app2.0", "g++"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["My", "a", "-x", "x_y", "x y", "x\nPackage: evil", "xy\n", ""])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid application name"):
        validate_name(name)


def test_new_settings_are_typed_and_merged(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        'version = "2.0"\nextras = ["net"]\ngroups = ["ops"]\nlock = false\n'
        'index-url = "https://pypi.example/simple"\nconstraints = ["c.txt"]\n'
        'find-links = ["wheels", "https://example.org/wheels/"]',
    )
    merged = _spec(project, {"extras": ("cli",), "version": "3.0"}, given=["extras", "version"])
    assert merged.version == "3.0"  # the flag wins
    assert merged.extras == ("net", "cli")  # lists add up
    assert merged.groups == ("ops",)
    assert merged.use_lock is False
    assert merged.index_url == "https://pypi.example/simple"
    # Paths in pyproject.toml are relative to the project, not to where venvpack runs.
    assert merged.constraints == (tmp_path / "c.txt",)
    assert merged.find_links == (str(tmp_path / "wheels"), "https://example.org/wheels/")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("extras = [1]", "tool.venvpack.extras must be a list of strings"),
        ('lock = "no"', "tool.venvpack.lock must be true or false"),
    ],
)
def test_bad_new_settings(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _read(_project(tmp_path, table))


def test_project_defaults_python_version_file_then_requires_python(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nrequires-python = ">=3.10"\n'
        '[project.optional-dependencies]\nnet = ["idna"]\n'
    )
    spec = _spec(tmp_path)
    assert (spec.python, spec.requires_python) == (None, ">=3.10")
    (tmp_path / ".python-version").write_text("# pinned by uv\n\ncpython@3.12\n3.11\n")
    spec = _spec(tmp_path)
    assert (spec.python, spec.requires_python) == ("cpython@3.12", ">=3.10")
    # A flag wins over the pin file.
    spec = _spec(tmp_path, {"python": "3.13"}, given=["python"])
    assert spec.python == "3.13"
    assert read_pyproject(tmp_path).optional_dependencies == ("net",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[project]\nname = 5\n", "project.name must be a string"),
        ("[project]\nrequires-python = 3.9\n", "requires-python must be a string"),
        ("tool = 5\n", r"\[tool.venvpack\] must be a table"),
    ],
)
def test_bad_project_tables(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_pyproject(tmp_path)


@pytest.mark.parametrize("version", ["1.0", "2!1.0rc1", "1.0.post2.dev3", "1.0+local.7"])
def test_valid_versions(version: str) -> None:
    assert validate_version(version) == version


@pytest.mark.parametrize("version", ["", "one", "1.0\nX: y", " 1.0", "1.0-1-1"])
def test_invalid_versions(version: str) -> None:
    with pytest.raises(ConfigError, match="invalid version"):
        validate_version(version)


# --------------------------------------------------------------------------- one precedence rule

_LEVELS = ("flag", "format table", "shared table", "metadata", "default")


def _levels_project(tmp_path: Path, levels: Collection[str]) -> Path:
    """A project whose files set ``python``, ``extras`` and the deb ``section`` at each of
    ``levels`` (to a value naming the level)."""
    shared = ['python = "shared"', 'extras = ["shared"]', 'section = "shared"']
    deb = ['python = "deb"', 'extras = ["deb"]', 'section = "deb"']
    text = '[project]\nname = "x"\n[tool.venvpack]\n'
    text += "\n".join(shared) + "\n" if "shared table" in levels else ""
    text += "[tool.venvpack.deb]\n" + "\n".join(deb) + "\n" if "format table" in levels else ""
    (tmp_path / "pyproject.toml").write_text(text)
    if "metadata" in levels:
        (tmp_path / ".python-version").write_text("3.99\n")
    return tmp_path


@pytest.mark.parametrize("top", range(len(_LEVELS)))
def test_each_level_beats_the_next(tmp_path: Path, top: int) -> None:
    """Flag, then [tool.venvpack.<format>], then [tool.venvpack], then the project's
    metadata, then the default: for a build setting, a format's option and a list alike."""
    levels = _LEVELS[top:]
    project = _levels_project(tmp_path, levels)
    settings = (*BUILD_SETTINGS, *load_format("deb").options)
    flags = {"python": "flag", "extras": ("flag",), "section": "flag"} if top == 0 else {}
    values = decide(settings, flags, set(flags), _read(project), "deb")
    expected_python: dict[str, str | None] = {"flag": "flag", "format table": "deb"}
    expected_python.update({"shared table": "shared", "metadata": "3.99", "default": None})
    assert values["python"] == expected_python[levels[0]]
    expected_section = {"flag": "flag", "format table": "deb", "shared table": "shared"}
    assert values["section"] == expected_section.get(levels[0], "misc")
    # A list: the format table's replaces [tool.venvpack]'s; the flags come after either.
    tables = [t for t in ("format table", "shared table") if t in levels]
    listed = ("deb",) if "format table" in tables else ("shared",) if tables else ()
    assert values["extras"] == listed + (("flag",) if top == 0 else ())


def test_a_format_table_counts_only_for_its_format(tmp_path: Path) -> None:
    project = _levels_project(tmp_path, ("format table", "shared table"))
    assert _spec(project, fmt="deb").python == "deb"
    assert _spec(project, fmt="rpm").python == "shared"
    assert _spec(project).python == "shared"
    # Every format's table is checked, whichever format runs.
    (project / "pyproject.toml").write_text('[tool.venvpack.rpm]\nsection = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown key tool.venvpack.rpm.section"):
        _spec(project, fmt="deb")


def test_paths_in_settings_are_relative_to_the_project(tmp_path: Path) -> None:
    project = _project(tmp_path, 'config-files = ["app.toml:/etc/app/app.toml"]')
    values = decide(load_format("deb").options, {}, (), _read(project), "deb")
    assert values["config_files"] == (f"{tmp_path / 'app.toml'}:/etc/app/app.toml",)


def test_checks_apply_to_settings_as_to_flags(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--prefix must be an absolute path"):
        _spec(_project(tmp_path, 'prefix = "srv/x"'))
    with pytest.raises(ConfigError, match="invalid application name"):
        _spec(_project(tmp_path, 'name = "X Y"'))
    with pytest.raises(ConfigError, match=r"tool\.venvpack\.tar\.compression must be one of"):
        _read(_project(tmp_path, '[tool.venvpack.tar]\ncompression = "lz4"'))


def test_metadata_is_read_without_formats(tmp_path: Path) -> None:
    """Only the project's metadata is wanted: format tables are not checked then."""
    project = _project(tmp_path, '[tool.venvpack.deb]\nmaintaner = "x"')
    assert read_pyproject(project).name == "x"
    with pytest.raises(ConfigError, match="did you mean maintainer"):
        _read(project)


def test_link_mode_becomes_its_enum(tmp_path: Path) -> None:
    assert _spec(_project(tmp_path, 'python-link = "hardlink"')).link_mode is LinkMode.HARDLINK
    assert _spec(_project(tmp_path, "")).link_mode is LinkMode.SYMLINK
