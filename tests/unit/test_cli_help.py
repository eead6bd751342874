"""The help: options listed by section, each once, defaults said one way, examples that
name only real commands and options, and --version."""

from __future__ import annotations

import re
import shlex

import click
import pytest
from click.testing import CliRunner

from venvpack import __version__
from venvpack.cli import SECTIONS, cli
from venvpack.emit import format_names, formats

CONTEXT = click.Context(cli)
COMMANDS = cli.list_commands(CONTEXT)


def command_of(name: str) -> click.Command:
    command = cli.get_command(CONTEXT, name)
    assert command is not None, name
    return command


def help_of(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def sections(text: str) -> dict[str, str]:
    """The help's sections by title ("Build options:" ... "Examples:")."""
    parts = re.split(r"^(\S[^\n]*):\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("name", [*format_names(), "build"])
def test_build_commands_group_their_options(name: str) -> None:
    found = sections(help_of(name))
    assert list(found)[:2] == ["Build options", "Output options"]
    assert "--python PY" in found["Build options"]
    assert "-o, --output PATH" in found["Output options"]
    assert "--json" in found["Output options"]
    assert "-q, --quiet" in found["Output options"]
    assert "--python" not in found["Output options"]
    assert list(found)[-1] == "Examples"


@pytest.mark.parametrize(
    "name", [f.name for f in formats() if any(o.name == "service_command" for o in f.options)]
)
def test_system_packages_have_metadata_install_and_service_sections(name: str) -> None:
    found = sections(help_of(name))
    assert [s for s in found if s in SECTIONS] == list(SECTIONS)
    assert "--service-command CMD" in found["Service options"]
    assert "--entry-point NAME" in found["Install options"]
    assert "--release, --revision TEXT" in found["Package metadata"]
    assert "--compression" not in found["Package metadata"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_listed_once_and_defaults_are_said_one_way(name: str) -> None:
    text = help_of(name)
    command = command_of(name)
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            listed = re.findall(rf"^  {re.escape(param.opts[0])}[ ,]", text, flags=re.MULTILINE)
            assert len(listed) == 1, (param.opts[0], text)
    assert "[default:" not in text
    assert "Default:" not in text


def test_every_format_option_has_a_known_section() -> None:
    for fmt in formats():
        for option in fmt.options:
            assert option.group in SECTIONS, option


@pytest.mark.parametrize("name", COMMANDS)
def test_examples_name_real_commands_and_options(name: str) -> None:
    examples = sections(help_of(name))["Examples"].strip().splitlines()
    assert examples
    checked = 0
    for line in examples:
        match = re.search(r"venvpack .*", line)
        assert match, line
        # Up to a comment or a pipe; ``out=$(venvpack ...)`` ends with a parenthesis.
        text = match.group(0).split(" #")[0].split("|")[0].replace(")", " ")
        words = shlex.split(text)
        command = command_of(words[1])
        names = {opt for p in command.params for opt in p.opts}
        for word in words[2:]:
            if word.startswith("-"):
                assert word in names, (line, word)
        checked += 1
    assert checked == len(examples)


def test_top_level_help_has_examples_and_points_to_completion() -> None:
    found = sections(help_of())
    assert "Commands" in found
    assert "docs/completion.md" in found["Examples"]
    for line in found["Examples"].splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "venvpack":
            assert words[1] in COMMANDS


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"venvpack, version {__version__}\n"
