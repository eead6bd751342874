"""Shell completion as docs/completion.md tells users to set it up, in the real shells:
bash (the completion function with COMP_WORDS), zsh (typed with Tab in an interactive
shell on a pseudo-terminal, compinit loaded) and fish (``complete -C``). CI installs zsh and
fish (.ci/run); without them the tests skip on a developer machine and fail under CI."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sandbox

BIN = Path(sys.executable).parent
"""Where the venvpack console script is installed (the completion scripts run it)."""


def shell_env(tmp_path: Path) -> dict[str, str]:
    if not (BIN / "venvpack").is_file():
        pytest.fail(f"no venvpack script in {BIN}: pip install -e . first")
    return {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TERM": "xterm",
        "LC_ALL": "C.UTF-8",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }


def need(shell: str) -> str:
    found = shutil.which(shell)
    if found is None:
        sandbox.unavailable(f"{shell} is not installed (apt-get install {shell})")
    return found


def bash_complete(words: list[str], tmp_path: Path) -> list[str]:
    """COMPREPLY after completing the last of ``words`` with the sourced bash script."""
    script = (
        'eval "$(_VENVPACK_COMPLETE=bash_source venvpack)" && '
        'COMP_WORDS=("$@") && COMP_CWORD=$(($# - 1)) && '
        '_venvpack_completion venvpack && printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        [need("bash"), "-c", script, "bash", *words],
        env=shell_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["venvpack", "de"], ["deb"]),
        (["venvpack", "i"], ["init", "inspect"]),
        (["venvpack", "deb", "--mainta"], ["--maintainer"]),
        (["venvpack", "tar", "--compre"], ["--compression"]),
        (["venvpack", "tar", "--compression", "g"], ["gzip"]),
        (["venvpack", "build", "--python-link", ""], ["symlink", "copy", "hardlink"]),
    ],
)
def test_bash(words: list[str], expected: list[str], tmp_path: Path) -> None:
    assert bash_complete(words, tmp_path) == expected


def test_bash_registers_the_function(tmp_path: Path) -> None:
    script = 'eval "$(_VENVPACK_COMPLETE=bash_source venvpack)" && complete -p venvpack'
    result = subprocess.run(
        [need("bash"), "-c", script], env=shell_env(tmp_path), capture_output=True, text=True
    )
    assert result.stdout.strip() == "complete -o nosort -F _venvpack_completion venvpack"


def fish_complete(line: str, tmp_path: Path) -> list[str]:
    script = '_VENVPACK_COMPLETE=fish_source venvpack | source; complete -C "$argv[1]"'
    result = subprocess.run(
        [need("fish"), "--no-config", "-c", script, line],
        env=shell_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [entry.split("\t")[0] for entry in result.stdout.splitlines()]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("venvpack de", ["deb"]),
        ("venvpack deb --mainta", ["--maintainer"]),
        ("venvpack tar --compression x", ["xz"]),
    ],
)
def test_fish(line: str, expected: list[str], tmp_path: Path) -> None:
    assert fish_complete(line, tmp_path) == expected


class Terminal:
    """An interactive shell on a pseudo-terminal: what a user types, what the shell draws."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the shell
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        self.seen = b""

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait_for(self, expected: str, timeout: float = 30.0) -> bool:
        """Read what the shell draws until ``expected`` appears (True) or time runs out."""
        deadline = time.monotonic() + timeout
        while expected.encode() not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:
                    break
        return expected.encode() in self.seen

    def close(self) -> None:
        os.close(self.fd)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)


def test_zsh_completes_at_the_prompt(tmp_path: Path) -> None:
    zsh = need("zsh")
    term = Terminal([zsh, "-f", "-i"], shell_env(tmp_path), tmp_path)
    try:
        term.type(
            "PS1='ready> '; autoload -U compinit && compinit -u -D && "
            'eval "$(_VENVPACK_COMPLETE=zsh_source venvpack)" && print setup-$((6*7))\n'
        )
        assert term.wait_for("setup-42"), term.seen
        term.seen = b""
        term.type("venvpack de\t")
        assert term.wait_for("venvpack deb"), term.seen
        term.type("\x15")  # Ctrl-U: clear the line
        term.seen = b""
        term.type("venvpack deb --mainta\t")
        assert term.wait_for("--maintainer"), term.seen
    finally:
        term.close()
