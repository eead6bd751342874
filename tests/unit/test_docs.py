"""The documentation keeps up with the code: every option of every command on its page with a
valid setting, every quoted error message still produced by ``src/``, every example
well-formed, every relative link pointing at a file."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import click
import pytest

from docs_examples import REPO, documents, examples, output_matches
from venvpack.cli import cli
from venvpack.config import read_pyproject
from venvpack.emit import format_names, format_options
from venvpack.settings import BUILD_SETTINGS

DOCS = REPO / "docs"
SRC = REPO / "src" / "venvpack"
# Examples shown but not run (each says why on its first line): changing this is a decision.
NOT_RUN = 8


def command_page(name: str) -> Path:
    """``docs/commands/<name>.md``, or ``docs/<name>.md`` for a command documented alone."""
    page = DOCS / "commands" / f"{name}.md"
    return page if page.exists() else DOCS / f"{name}.md"


def names_in(text: str, name: str) -> bool:
    """Whether the option or argument ``name`` appears in ``text`` as a word of its own."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


@pytest.mark.parametrize("name", cli.list_commands(click.Context(cli)))
def test_every_option_is_on_its_page(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    page = command_page(name)
    assert page.is_file(), f"venvpack {name} has no page (docs/commands/{name}.md)"
    text = page.read_text(encoding="utf-8")
    missing = []
    for param in command.params:
        if isinstance(param, click.Option) and param.hidden:
            continue
        if isinstance(param, click.Argument):
            wanted = [param.human_readable_name]
        else:
            wanted = [*param.opts, *param.secondary_opts]
        missing += [flag for flag in wanted if not names_in(text, flag)]
    assert not missing, f"{page.relative_to(REPO)} does not mention {', '.join(missing)}"


def test_group_options_are_on_the_index() -> None:
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    for param in cli.params:
        if isinstance(param, click.Option) and not param.hidden:
            for flag in param.opts:
                assert names_in(text, flag), f"docs/index.md does not mention {flag}"


def option_rows(page: Path) -> list[tuple[str, str]]:
    """(option cell, setting cell) of every row of the tables with a *setting* column."""
    rows: list[tuple[str, str]] = []
    columns: list[str] = []
    for line in page.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            columns = []
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if not columns:
            columns = cells
        elif "setting" in columns and not set(line) <= set("|-: "):
            rows.append((cells[0], cells[columns.index("setting")]))
    return rows


@pytest.mark.parametrize("name", ["build", *format_names()])
def test_settings_in_option_tables_are_real(name: str) -> None:
    """A setting a page names is one venvpack reads for that command, and a format option's
    setting is exactly the key the validator accepts for it."""
    options = format_options().get(name, ())
    valid = {s.pyproject_key for s in (*BUILD_SETTINGS, *options)}
    own = {flag: option.pyproject_key for option in options for flag in option.flags}
    rows = option_rows(command_page(name))
    assert len(rows) >= 5
    for option, setting in rows:
        found = re.match(r"`([a-z-]+)`", setting)
        if found is None:
            assert setting == "", f"{name}: setting of {option}: {setting!r}"
            continue
        key = found.group(1)
        assert key in valid, f"{name}: {option}: no setting {key}"
        for flag in re.findall(r"`(-[-\w]+)", option):
            if flag in own:
                assert key == own[flag], f"{name}: {flag} is set by {own[flag]}"


@cache
def source_messages() -> tuple[tuple[re.Pattern[str], int], ...]:
    """Every string literal and f-string in src/venvpack as a pattern (a replacement field
    matches any text), with the length of its fixed text."""
    patterns: list[tuple[re.Pattern[str], int]] = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                parts: list[str | None] = [node.value]
            elif isinstance(node, ast.JoinedStr):
                parts = [
                    v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else None
                    for v in node.values
                ]
            else:
                continue
            fixed = sum(len(p) for p in parts if p is not None)
            if fixed >= 8:
                regex = "".join(".*?" if p is None else re.escape(p) for p in parts)
                patterns.append((re.compile(regex, re.DOTALL), fixed))
    return tuple(patterns)


def produced(message: str, depth: int = 0) -> bool:
    """Whether the code can print ``message``: one literal matches it whole, or one matches
    a start of it and the rest (after a ``;`` or ``:``) is produced in the same way."""
    if any(p.fullmatch(message) for p, _ in source_messages()):
        return True
    if depth == 2:
        return False
    for cut in range(len(message) - 1, 7, -1):
        head, rest = message[:cut], message[cut:]
        tail = rest.lstrip(";:,. ")
        if tail == rest and rest[:1].isalnum() and head[-1:].isalnum():
            continue  # not at a word boundary
        if any(p.fullmatch(head) for p, _ in source_messages()) and produced(tail, depth + 1):
            return True
    return False


def quoted_messages() -> list[str]:
    """The lines of troubleshooting.md's text blocks that venvpack prints."""
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```text\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [block.splitlines()[0] for block in blocks if block.startswith("venvpack: ")]


def test_troubleshooting_quotes_many_messages() -> None:
    assert len(quoted_messages()) >= 20


@pytest.mark.parametrize("line", quoted_messages())
def test_troubleshooting_message_is_still_produced(line: str) -> None:
    if line.startswith("venvpack: error: "):
        assert produced(line.removeprefix("venvpack: error: ")), f"not in src/: {line}"
    else:  # a line printed as it is, like "venvpack: interrupted"
        assert any(line in p.read_text() for p in SRC.rglob("*.py")), line


def test_message_check_can_fail() -> None:
    assert produced("invalid glibc version '2.x': use MAJOR.MINOR, e.g. 2.31")
    assert not produced("invalid glibc version '2.x': use X.Y, e.g. 2.31")
    assert produced(
        "rpmbuild not found on PATH; install it (apt-get install rpm on "
        "Debian/Ubuntu, dnf install rpm-build on Fedora/RHEL), or use "
        "--spec-only to write the spec and build it elsewhere"
    )
    assert not produced("rpmbuild not found on PATH; install the rpm package")


def test_examples_are_well_formed() -> None:
    found = [e for d in documents() for e in examples(d)]
    not_run = [e for e in found if e.not_run is not None]
    assert all(e.commands for e in found), [str(e) for e in found if not e.commands]
    assert all(e.not_run for e in not_run), "a '# not run:' line must say why"
    assert len(found) - len(not_run) >= 10
    assert len(not_run) == NOT_RUN, "\n".join(f"{e}: {e.not_run}" for e in not_run)
    documented = {e.document for e in found}
    assert REPO / "README.md" in documented
    assert DOCS / "commands" / "build.md" in documented


def toml_blocks() -> list[tuple[str, str]]:
    found = []
    for page in [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"^```toml\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
            found.append((page.name, block))
    return found


@pytest.mark.parametrize(("page", "block"), toml_blocks())
def test_settings_shown_are_accepted(page: str, block: str, tmp_path: Path) -> None:
    """Every ```toml``` block of the docs passes venvpack's settings check."""
    (tmp_path / "pyproject.toml").write_text(block, encoding="utf-8")
    assert read_pyproject(tmp_path, format_options()).settings, page


def test_output_wildcards() -> None:
    assert output_matches(["a ... c", "...", "z"], "a b c\nx\ny\nz\n")
    assert output_matches(["a", "...", "z"], "a\nz")
    assert not output_matches(["a ... c"], "a b\nc\n")
    assert not output_matches(["a", "z"], "a\nb\nz\n")


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``page``."""
    found = set()
    for heading in re.findall(r"^#+ (.*)$", page.read_text(encoding="utf-8"), re.MULTILINE):
        found.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize(
    "page", [REPO / "README.md", *sorted(DOCS.rglob("*.md"))], ids=lambda p: p.name
)
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)]*))?\)", text):
        if "://" in target:
            continue
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.relative_to(REPO)}: {target}"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page.relative_to(REPO)}: {target}#{anchor}"
