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


def test_launcher_is_a_sh_python_polyglot() -> None:
    header = launcher_header().decode()
    lines = header.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "realpath" in lines[1]
    assert "/usr/bin/env" not in header
    # For Python the three lines are one string literal followed by nothing.
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
    assert "VIRTUAL_ENV_PROMPT='x'\"'\"'; rm -rf / #'" in text
    fish = render("venv/activate.fish", prompt="a'b")
    assert "set -gx VIRTUAL_ENV_PROMPT 'a\\'b'" in fish


def test_symlink_mode_home_is_present_and_empty() -> None:
    # An empty home makes 3.11+ report the resolved interpreter as sys._base_executable.
    assert render_pyvenv_cfg([("home", ""), ("version", "3.12.1")]) == "home =\nversion = 3.12.1\n"
