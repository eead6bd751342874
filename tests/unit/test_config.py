"""[tool.venvpack] settings: known keys only, typed, and flags win."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvpack.config import (
    BuildSpec,
    LinkMode,
    load_pyproject_settings,
    merge_pyproject,
    validate_name,
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
        ('pyhton = "3.12"', "unknown key tool.venvpack.pyhton"),
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
