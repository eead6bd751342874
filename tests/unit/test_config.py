"""[tool.venvpack] settings: known keys only, typed, and flags win."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvpack.config import (
    BuildSpec,
    LinkMode,
    load_pyproject_settings,
    merge_pyproject,
    read_pyproject,
    validate_name,
    validate_version,
    with_project_defaults,
)
from venvpack.errors import ConfigError


def _project(tmp_path: Path, table: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n[tool.venvpack]\n{table}\n')
    return tmp_path


def test_settings_apply_unless_given_as_flags(tmp_path: Path) -> None:
    settings = load_pyproject_settings(
        _project(tmp_path, 'python = "3.12"\npython-link = "copy"\nprefix = "/srv/x"')
    )
    merged = merge_pyproject(BuildSpec(python="3.11"), settings, given=["python"])
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
        ("level = true", "tool.venvpack.level must be a int"),
        ("[tool.venvpack.tar]\nlevel = true", "tool.venvpack.tar.level must be a int"),
        ("[tool.venvpack.tar]\nprefix = 1", "tool.venvpack.tar.prefix must be a str"),
        ("[tool.venvpack.zip]\nlevel = 1", "unknown key tool.venvpack.zip"),
        ("with-tk = 1", "tool.venvpack.with-tk must be a bool"),
        ("python = [", "invalid TOML"),
    ],
)
def test_bad_settings(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pyproject_settings(_project(tmp_path, table))


def test_bad_link_mode(tmp_path: Path) -> None:
    settings = load_pyproject_settings(_project(tmp_path, 'python-link = "junction"'))
    with pytest.raises(ConfigError, match="python-link must be one of"):
        merge_pyproject(BuildSpec(), settings, given=[])


@pytest.mark.parametrize("name", ["hello", "my-app", "app2.0", "g++"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["My", "a", "-x", "x_y", "x y", "x\nPackage: evil", "xy\n", ""])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid application name"):
        validate_name(name)


def test_new_settings_are_typed_and_merged(tmp_path: Path) -> None:
    settings = load_pyproject_settings(
        _project(
            tmp_path,
            'version = "2.0"\nextras = ["net"]\ngroups = ["ops"]\nlock = false\n'
            'index-url = "https://pypi.example/simple"\nconstraints = ["c.txt"]\n'
            'find-links = ["wheels", "https://example.org/wheels/"]',
        )
    )
    spec = BuildSpec(project=tmp_path, extras=("cli",), version="3.0")
    merged = merge_pyproject(spec, settings, given=["version"])
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
        ('lock = "no"', "tool.venvpack.lock must be a bool"),
    ],
)
def test_bad_new_settings(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pyproject_settings(_project(tmp_path, table))


def test_project_defaults_python_version_file_then_requires_python(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nrequires-python = ">=3.10"\n'
        '[project.optional-dependencies]\nnet = ["idna"]\n'
    )
    spec = with_project_defaults(BuildSpec(project=tmp_path), given=[])
    assert (spec.python, spec.requires_python) == (None, ">=3.10")
    (tmp_path / ".python-version").write_text("# pinned by uv\n\ncpython@3.12\n3.11\n")
    spec = with_project_defaults(BuildSpec(project=tmp_path), given=[])
    assert (spec.python, spec.requires_python) == ("cpython@3.12", ">=3.10")
    # A flag wins over the pin file.
    spec = with_project_defaults(BuildSpec(project=tmp_path, python="3.13"), given=["python"])
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
