"""A build setting's declaration alone makes its flag, its ``[tool.venvpack]`` key and its
refusal with ``--from``."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from venvpack.cli import cli, main
from venvpack.config import read_pyproject
from venvpack.emit import format_names, format_options
from venvpack.errors import ConfigError
from venvpack.settings import BUILD_SETTINGS, Setting

SHAPING = [s for s in BUILD_SETTINGS if s.shapes_build]
KEYED = [s for s in BUILD_SETTINGS if s.pyproject_key is not None]


def _command(name: str) -> click.Command:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, name
    return command


def _given(setting: Setting, tmp_path: Path) -> list[str]:
    """Command-line words that give ``setting`` a value."""
    if setting.argument:
        return ["some-requirement"]
    if setting.is_flag:
        return [setting.flags[-1]]
    if setting.path == "file":
        path = tmp_path / "given.txt"
        path.write_text("")
        return [setting.flags[-1], str(path)]
    if setting.path == "dir":
        return [setting.flags[-1], str(tmp_path)]
    allowed = setting.allowed
    return [setting.flags[-1], allowed[-1] if allowed else "x"]


@pytest.mark.parametrize("command", ["build", *format_names()])
def test_every_building_command_has_every_build_setting(command: str) -> None:
    params = {param.name: param for param in _command(command).params}
    for setting in BUILD_SETTINGS:
        param = params[setting.name]
        if setting.argument:
            assert isinstance(param, click.Argument)
            continue
        assert isinstance(param, click.Option)
        assert tuple(param.opts) == setting.flags
        assert (param.hidden, param.multiple, param.is_flag) == (
            setting.hidden,
            setting.multiple,
            setting.is_flag,
        )


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(f'"{item}"' for item in value) + "]"
    return f'"{value}"'


@pytest.mark.parametrize("setting", KEYED, ids=lambda s: s.name)
def test_the_declaration_makes_the_pyproject_key(tmp_path: Path, setting: Setting) -> None:
    key = setting.pyproject_key
    assert key is not None
    good: object = {list: ["a"], bool: True}.get(setting.toml_type, "a")
    if setting.allowed:
        good = setting.allowed[0]
    text = f"[tool.venvpack]\n{key} = {_toml(good)}\n"
    (tmp_path / "pyproject.toml").write_text(text)
    assert read_pyproject(tmp_path, format_options()).settings == {key: good}
    bad = 5
    (tmp_path / "pyproject.toml").write_text(f"[tool.venvpack]\n{key} = {bad}\n")
    with pytest.raises(
        ConfigError,
        match=f"tool.venvpack.{key} must be (a string|an integer|true or false|a list of)",
    ):
        read_pyproject(tmp_path, format_options())


def test_settings_without_a_key_are_refused_in_pyproject(tmp_path: Path) -> None:
    for setting in BUILD_SETTINGS:
        if setting.pyproject_key is None and not setting.argument:
            key = setting.name.replace("_", "-")
            (tmp_path / "pyproject.toml").write_text(f"[tool.venvpack]\n{key} = true\n")
            with pytest.raises(ConfigError, match=f"unknown key tool.venvpack.{key}"):
                read_pyproject(tmp_path, format_options())


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    code = exc.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


@pytest.mark.parametrize("setting", SHAPING, ids=lambda s: s.name)
def test_from_refuses_what_shapes_a_build_by_its_flag(
    tmp_path: Path, setting: Setting, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "env"
    env.mkdir()
    words = _given(setting, tmp_path)
    # --max-glibc applies to a packed environment too: it is never named.
    argv = ["tar", "--from", str(env), *words, "--max-glibc", "2.31", "-o", str(tmp_path / "x")]
    code, err = _run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert f"built; {setting.flag} cannot apply to it" in err
    assert not (tmp_path / "x").exists()
