"""pyvenv.cfg, launchers and activate scripts as rendered text."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvpack.relocate import _script_body, launcher_header
from venvpack.templates import render
from venvpack.venv import render_pyvenv_cfg


def test_pyvenv_cfg_keeps_order() -> None:
    text = render_pyvenv_cfg([("include-system-site-packages", "false"), ("version", "3.12.1")])
    assert text == "include-system-site-packages = false\nversion = 3.12.1\n"


def test_pyvenv_cfg_refuses_line_breaks() -> None:
    with pytest.raises(ValueError, match="line break"):
        render_pyvenv_cfg([("home", "/opt/x\nhome = /evil")])


@pytest.mark.parametrize("floor", [None, "2.17", "2.36"])
def test_launcher_is_a_sh_python_polyglot(floor: str | None) -> None:
    header = launcher_header(floor).decode()
    lines = header.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "realpath" in (lines[1] if floor in (None, "2.17") else lines[-2])
    assert ("needs glibc ≥ 2.36" in header) == (floor == "2.36")
    assert "/usr/bin/env" not in header
    # For Python the lines are one string literal followed by nothing.
    compile(header + "import sys\n", "launcher", "exec")


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (b"#!/b/env/bin/python\nimport x\n", b"import x\n"),
        (b"#!/b/env/bin/python3.12 \nimport x\n", b"import x\n"),
        (
            b"#!/bin/sh\n'''exec' \"/b/env/bin/python\" \"$0\" \"$@\"\n' '''\nimport x\n",
            b"import x\n",
        ),
        (b"#!/usr/bin/python3\nimport x\n", None),
        (b"#!/b/environment/bin/python\nimport x\n", None),
        (b"echo not a script\n", None),
    ],
)
def test_script_body_detects_only_interpreters_in_the_tree(
    script: bytes, expected: bytes | None
) -> None:
    assert _script_body(script, Path("/b/env")) == expected


def test_activate_quotes_the_prompt() -> None:
    text = render("venv/activate", prompt="x'; rm -rf / #")
    assert "VIRTUAL_ENV_PROMPT='x__ rm -rf / _'" in text
    fish = render("venv/activate.fish", prompt="a'b c")
    assert "set -gx VIRTUAL_ENV_PROMPT 'a_b c'" in fish


@pytest.mark.parametrize("prompt", ["$(touch pwned)", "`id`", "a\\$(id)", "!!%F{red}", "x'\"y;z"])
def test_activate_prompt_cannot_run_at_every_prompt(prompt: str) -> None:
    # PS1 is expanded each time it is shown, after the quoting is gone
    sh = render("venv/activate", prompt=prompt)
    fish = render("venv/activate.fish", prompt=prompt)
    line = next(x for x in sh.splitlines() if x.startswith("VIRTUAL_ENV_PROMPT="))
    value = line.partition("=")[2].strip("'")
    assert not set(value) & set("$`\\!%'\"();")
    assert f"set -gx VIRTUAL_ENV_PROMPT '{value}'" in fish


def test_symlink_mode_home_is_present_and_empty() -> None:
    # An empty home makes 3.11+ report the resolved interpreter as sys._base_executable.
    assert render_pyvenv_cfg([("home", ""), ("version", "3.12.1")]) == "home =\nversion = 3.12.1\n"
