"""The examples in the documentation, read from the Markdown files.

The convention (docs/index.md, "Examples"): a fenced block marked ```` ```console ```` is an
example. Each line starting with ``$ `` is a command (a trailing ``\\`` continues it on the
next line); the lines after it, up to the next command, are what it prints on stdout. An
output line ``...`` stands for any number of lines, and ``...`` inside a line for any text.
A command with no lines after it is only checked to succeed. A block whose first line is
``# not run: <reason>`` is shown to readers but not run by the tests (it needs root, say).

The examples of all documents run in one copy of ``examples/hello``, document after
document in :data:`ORDER` (then any other page, by name), so a page may use what an earlier
one made (the README's artifacts, ``build/env`` of ``docs/commands/build.md``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ORDER", "REPO", "Command", "Example", "documents", "examples", "output_matches"]

REPO = Path(__file__).resolve().parents[1]

ORDER = (
    "README.md",
    "docs/commands/build.md",
    "docs/commands/tar.md",
    "docs/commands/deb.md",
    "docs/commands/rpm.md",
    "docs/commands/inspect.md",
    "docs/commands/verify.md",
    "docs/commands/init.md",
)
"""Documents whose examples build on each other, in the order they run."""

NOT_RUN = "# not run:"


@dataclass(frozen=True)
class Command:
    line: int
    """Line number of the ``$ `` line in its document."""
    text: str
    expected: tuple[str, ...]
    """The output lines shown after it; empty: only its success is checked."""


@dataclass(frozen=True)
class Example:
    document: Path
    line: int
    """Line number of the opening fence."""
    commands: tuple[Command, ...]
    not_run: str | None
    """Why it is not run, or None when it is."""

    def __str__(self) -> str:
        return f"{self.document.relative_to(REPO)}:{self.line}"


def documents() -> list[Path]:
    """Every Markdown page with examples' convention: the README and docs/, in run order."""
    first = [REPO / name for name in ORDER if (REPO / name).is_file()]
    rest = sorted(p for p in (REPO / "docs").rglob("*.md") if p not in first)
    return first + rest


def examples(document: Path) -> list[Example]:
    """The ```` ```console ```` blocks of ``document``."""
    found: list[Example] = []
    lines = document.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```console":
            index += 1
            continue
        start = index
        body: list[tuple[int, str]] = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append((index + 1, lines[index]))
            index += 1
        if index == len(lines):
            raise ValueError(f"{document}:{start + 1}: console block is not closed")
        index += 1
        not_run = None
        if body and body[0][1].startswith(NOT_RUN):
            not_run = body[0][1][len(NOT_RUN) :].strip()
            body = body[1:]
        found.append(Example(document, start + 1, _commands(document, body), not_run))
    return found


def _commands(document: Path, body: Sequence[tuple[int, str]]) -> tuple[Command, ...]:
    commands: list[Command] = []
    text: list[str] = []
    line = 0
    expected: list[str] = []
    continued = False
    for number, content in body:
        if continued:
            text.append(content)
            continued = content.endswith("\\")
        elif content.startswith("$ "):
            if text:
                commands.append(Command(line, "\n".join(text), tuple(expected)))
            line, text, expected = number, [content[2:]], []
            continued = content.endswith("\\")
        elif text:
            expected.append(content)
        else:
            raise ValueError(f"{document}:{number}: output before the first '$ ' command")
    if text:
        commands.append(Command(line, "\n".join(text), tuple(expected)))
    return tuple(commands)


def output_matches(expected: Sequence[str], actual: str) -> bool:
    """Whether ``actual`` (stdout) is what ``expected`` shows, ``...`` as a wildcard."""
    pattern = ""
    for line in expected:
        if line == "...":
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += ".*".join(re.escape(part) for part in line.split("...")) + r"\n"
    text = actual if actual.endswith("\n") or not actual else actual + "\n"
    return re.fullmatch(pattern, text) is not None
