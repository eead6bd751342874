"""The command line: flags become a BuildSpec, errors become one line and an exit code.

This is the only module that prints errors or exits. Exit codes: 0 success, 1 generic
venvpack error or a problem found by inspect or verify, 2 bad usage or configuration,
3 interpreter, 4 install, 5 ELF, 6 build, 7 emit, 8 missing tool, 9 unreadable or hostile
artifact (inspect, verify); interrupted: 130 (SIGINT),
143 (SIGTERM), 129 (SIGHUP).
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

import click

from venvpack import __version__, ui
from venvpack.config import (
    Pyproject,
    build_spec,
    check_text,
    check_values,
    decide,
    read_pyproject,
)
from venvpack.emit import (
    INSTALL,
    METADATA,
    OUTPUT,
    SERVICE,
    Format,
    format_names,
    format_options,
    formats,
    load_format,
)
from venvpack.errors import ConfigError, VenvpackError
from venvpack.interrupt import Interrupted, checkpoint, orderly_signals
from venvpack.output import refuse_overlap
from venvpack.settings import BUILD, BUILD_SETTINGS, Setting

if TYPE_CHECKING:
    from venvpack.result import Result

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])


SECTIONS = (BUILD, OUTPUT, METADATA, INSTALL, SERVICE)
"""The order of the help's option sections; options of no section ("Options") come last."""


def _listed(words: Sequence[str], last: str) -> str:
    """``a, b and c``."""
    return ", ".join(words[:-1]) + f" {last} {words[-1]}" if len(words) > 1 else "".join(words)


def registry_text(text: str) -> str:
    """``text`` with the registered formats put in: ``{formats}`` (``tar, deb and rpm``),
    ``{any format}`` (``tar, deb or rpm``), ``{artifacts}`` (``a tarball, a .deb or an
    .rpm``). Help texts that list formats say them so: a format registered at run time is in
    every list."""
    names = format_names()
    nouns = [fmt.noun for fmt in formats()]
    text = text.replace("{formats}", _listed(names, "and"))
    text = text.replace("{any format}", _listed(names, "or"))
    return text.replace("{artifacts}", _listed(nouns, "or"))


class GroupedOption(click.Option):
    """An option listed under one section of the help (:class:`GroupedCommand`); its help
    may list the formats (:func:`registry_text`)."""

    def __init__(self, *args: Any, group: str = "Options", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        return None if record is None else (record[0], registry_text(record[1]))


def _option(group: str, *decls: str, **kwargs: Any) -> Callable[[F], F]:
    """``click.option`` for an option of the help section ``group``."""
    return click.option(*decls, cls=GroupedOption, group=group, **kwargs)


Examples = Union[Sequence[str], Callable[[], Sequence[str]]]
"""Command lines for a help's Examples section, or a function making them (from the registry,
when the help is shown)."""


class _Examples:
    """An "Examples" section after the options: command lines, as written (not re-wrapped)."""

    examples: Examples = ()

    def format_examples(self, formatter: click.HelpFormatter) -> None:
        examples = self.examples() if callable(self.examples) else self.examples
        if examples:
            with formatter.section("Examples"):
                for line in examples:
                    indent = " " * formatter.current_indent if line else ""
                    formatter.write(f"{indent}{line}\n")


class GroupedCommand(_Examples, click.Command):
    """A command whose help lists its options by section (build, output, package metadata,
    install, service: :attr:`GroupedOption.group`), then examples. Its help text may list
    the formats (:func:`registry_text`)."""

    def __init__(self, *args: Any, examples: Examples = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.examples = examples if callable(examples) else tuple(examples)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with _registry_help(self):
            super().format_help_text(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        with _registry_help(self):
            return super().get_short_help_str(limit)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                sections.setdefault(getattr(param, "group", "Options"), []).append(record)
        # One column width for every section, so the help reads as one table.
        width = min(max(len(term) for rows in sections.values() for term, _ in rows), 30)
        order = [*SECTIONS, *(name for name in sections if name not in SECTIONS)]
        for name in order:
            if name in sections:
                with formatter.section(name):
                    formatter.write_dl([(t.ljust(width), text) for t, text in sections[name]])

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.format_examples(formatter)
        super().format_epilog(ctx, formatter)


@contextmanager
def _registry_help(command: click.Command) -> Iterator[None]:
    """``command``'s help text lists the registered formats while the block runs."""
    text = command.help
    command.help = registry_text(text) if text else text
    try:
        yield
    finally:
        command.help = text


class ExamplesGroup(_Examples, click.Group):
    """The top-level group: its commands, then examples.

    The commands are asked of the registry when the CLI runs (:meth:`list_commands`,
    :meth:`get_command`): besides the fixed ones (build, inspect, verify, init), one per
    registered format, made on first use, so a format registered after import has its
    ``venvpack <name>`` command, in help and completion too."""

    def __init__(self, *args: Any, examples: Examples = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.examples = examples if callable(examples) else tuple(examples)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *format_names()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in format_names():
            fmt = load_format(cmd_name)
            made = _format_commands.get(cmd_name)
            if made is None or made[0] is not fmt:
                made = _format_commands[cmd_name] = (fmt, format_command(fmt))
            return made[1]
        return None

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with _registry_help(self):
            super().format_help_text(ctx, formatter)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.format_examples(formatter)
        super().format_epilog(ctx, formatter)


def build_options(func: F) -> F:
    """The options every command that builds an environment accepts (:data:`BUILD_SETTINGS`)."""
    for setting in reversed(BUILD_SETTINGS):
        func = _click_option(setting)(func)
    return func


def _click_option(setting: Setting) -> Callable[[F], F]:
    """The click option (or argument) a setting declares."""
    if setting.argument:
        return click.argument(setting.name, nargs=-1 if setting.multiple else 1)
    text = setting.help
    if setting.show_default:
        text = f"{text.rstrip('.')} (default: {setting.default})."
    kwargs: dict[str, Any] = {"help": text, "hidden": setting.hidden}
    if setting.is_flag:
        kwargs["is_flag"] = True
        if setting.flag_value is not True:
            kwargs.update(flag_value=setting.flag_value, default=setting.default)
        return _option(setting.group, *setting.flags, setting.name, **kwargs)
    kwargs["default"] = setting.default
    kwargs["multiple"] = setting.multiple
    kwargs["metavar"] = setting.metavar
    allowed = setting.allowed
    if allowed:
        kwargs["type"] = click.Choice(allowed)
    elif setting.path == "file":
        kwargs["type"] = click.Path(exists=True, dir_okay=False, path_type=Path)
    elif setting.path == "dir":
        kwargs["type"] = click.Path(file_okay=False, path_type=Path)
    else:
        kwargs["type"] = setting.type
    return _option(setting.group, *setting.flags, setting.name, **kwargs)


def output_options(*, json_help: str | None) -> Callable[[F], F]:
    """-q, -v, --debug (and --json, when ``json_help`` says what it prints): how much goes
    to stderr, and the form of what goes to stdout (docs/output.md)."""

    def decorate(func: F) -> F:
        options = [
            _option(
                OUTPUT, "-q", "--quiet", is_flag=True, help="Print nothing on stderr but errors."
            ),
            _option(
                OUTPUT,
                "-v",
                "--verbose",
                is_flag=True,
                help="Also print each step's detail (the installer's output, commands run).",
            ),
            _option(
                OUTPUT, "--debug", is_flag=True, help="Show an error's traceback too (implies -v)."
            ),
        ]
        if json_help is not None:
            options.append(_option(OUTPUT, "--json", "as_json", is_flag=True, help=json_help))
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


_RESULT_JSON = (
    "Print one JSON object describing the result on stdout instead of its path "
    "(schema result-1, docs/output.md)."
)
_DEBUG = False
"""--debug was given: errors show their traceback (set by :func:`output_settings`)."""


def output_settings(opts: dict[str, Any]) -> ui.Verbosity:
    """Take -q, -v and --debug out of ``opts``: the verbosity of stderr."""
    global _DEBUG
    quiet, verbose, debug = (bool(opts.pop(k, False)) for k in ("quiet", "verbose", "debug"))
    _DEBUG = debug
    if quiet and (verbose or debug):
        raise ConfigError("-q cannot be combined with -v or --debug")
    if quiet:
        return ui.Verbosity.QUIET
    return ui.Verbosity.VERBOSE if verbose or debug else ui.Verbosity.NORMAL


BUILD_STEPS = ("runtime", "install", "graft", "relocate", "audit")
"""The steps of a build, as :func:`venvpack.ui.stage` names them."""


def emit_options(fmt: Format) -> Callable[[F], F]:
    """The options of every format's command (where the artifact goes); ``-o``'s help names
    ``fmt``'s extensions."""
    extensions = fmt.extensions({})
    where = (
        f"The artifact's file name when it ends with the format's extension "
        f"({', '.join(extensions)}), else a directory for it"
        if extensions
        else "A directory for the artifact"
    )
    return lambda func: _emit_options(func, where)


def _emit_options(func: F, where: str) -> F:
    options = [
        _option(
            OUTPUT,
            "--from",
            "from_dir",
            type=click.Path(file_okay=False, exists=True, path_type=Path),
            help="Pack this environment (made by 'venvpack build') instead of building one.",
        ),
        _option(
            OUTPUT,
            "-o",
            "--output",
            type=click.Path(path_type=Path),
            default=None,
            help=f"{where}, created if missing (default: the current directory).",
        ),
        _option(OUTPUT, "--force", is_flag=True, help="Replace the artifact if it exists."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def refuse_undecodable(ctx: click.Context) -> None:
    """Refuse option values that are not text: bytes that are not UTF-8 reach Python as
    lone surrogates (surrogateescape) and could be neither rendered nor written anywhere.
    Paths are exempt: a file name may be any bytes."""
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        values = value if isinstance(value, (tuple, list)) else (value,)
        for item in values:
            if isinstance(item, str):
                is_option = isinstance(param, click.Option)
                check_text(item, param.opts[0] if is_option else param.human_readable_name)


def protected_directories(project: Path | None) -> dict[str, Path]:
    """Directories no output may be or contain: the sources being packed and where venvpack
    runs. (``-o .`` with ``--force`` would otherwise replace them.)"""
    protected = {"the current directory": Path.cwd()}
    if project is not None:
        protected["the project directory"] = project
    return protected


def given_options(ctx: click.Context) -> set[str]:
    """The names of the options and arguments given on the command line: they win over
    every setting."""
    return {
        name
        for param in ctx.command.params
        if (name := param.name) is not None
        and ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    }


def project_of(opts: dict[str, Any]) -> Path | None:
    """The project directory to build: ``--project``, else the current directory when it
    has a pyproject.toml and nothing else is to be installed."""
    project: Path | None = opts.get("project")
    if project is None and not opts.get("requirements") and not opts.get("requirement_files"):
        if Path("pyproject.toml").is_file():
            project = Path.cwd()
        else:
            raise ConfigError(
                "nothing to install: give requirements, -r FILE or --project DIR "
                "(or run in a directory with a pyproject.toml)"
            )
    if project is not None:
        if not project.is_dir():
            raise ConfigError(f"--project {project}: not a directory")
        project = project.resolve()
    return project


def read_settings(project: Path | None) -> Pyproject | None:
    """The project's ``pyproject.toml``, read once for the whole command and checked against
    the build settings and every registered format's options."""
    return read_pyproject(project, format_options) if project is not None else None


def flag_values(settings: Sequence[Setting], opts: dict[str, Any]) -> dict[str, Any]:
    """The parsed command line's values of ``settings``, as the settings take them (a
    relative path made absolute: :attr:`Setting.from_flag`)."""
    values: dict[str, Any] = {}
    for setting in settings:
        value = opts.get(setting.name)
        convert = setting.from_flag
        if convert is not None and value is not None:
            value = tuple(convert(v) for v in value) if setting.multiple else convert(value)
        values[setting.name] = value
    return values


def decide_settings(
    opts: dict[str, Any], given: set[str], fmt: Format | None, from_dir: Path | None = None
) -> tuple[dict[str, Any], Pyproject | None]:
    """The value of every setting of the command, the build's and ``fmt``'s own, by the one
    precedence rule, from the flags (``given``: those on the command line) and the project's
    pyproject.toml, read here once and returned for the stages after. Packing ``from_dir``,
    the settings that shape a build are not used and their flags are refused."""
    if from_dir is not None:
        refuse_build_options(given)
        project = Path.cwd() if Path("pyproject.toml").is_file() else None
    else:
        project = project_of(opts)
    pyproject = read_settings(project)
    settings = (*BUILD_SETTINGS, *(fmt.options if fmt is not None else ()))
    values = decide(
        settings, flag_values(settings, opts), given, pyproject, fmt.name if fmt else None
    )
    values["project"] = project
    if from_dir is not None:
        check_values([s for s in BUILD_SETTINGS if not s.shapes_build], values)
    return values, pyproject


def refuse_build_options(given: set[str]) -> None:
    """With ``--from`` the environment is packed as it was built: options that shape a build
    are refused, by their flag."""
    shaping = [s.flag for s in BUILD_SETTINGS if s.shapes_build and s.name in given]
    if shaping:
        raise ConfigError(
            f"--from packs an environment as it was built; {', '.join(shaping)} "
            "cannot apply to it (build again instead)"
        )


def _sample(index: int) -> str:
    """An example artifact's path: the ``index``-th format's (the last one if fewer)."""
    registered = formats()
    return f"dist/{registered[min(index, len(registered) - 1)].sample}"


def _top_examples() -> list[str]:
    lines = [(f"venvpack {fmt.name} --project . -o dist/", fmt.summary) for fmt in formats()]
    lines += [
        ("venvpack build --project . -o build/env", "the environment alone"),
        (f"venvpack inspect {_sample(1)}", "what is inside, where it runs"),
    ]
    width = max(len(command) for command, _ in lines) + 2
    return [
        *(f"{command.ljust(width)}# {comment}" for command, comment in lines),
        "",
        "Shell completion (bash, zsh, fish): docs/completion.md, e.g.",
        'eval "$(_VENVPACK_COMPLETE=bash_source venvpack)"',
    ]


@click.group(
    cls=ExamplesGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    examples=_top_examples,
)
@click.version_option(__version__, prog_name="venvpack")
def cli() -> None:
    """Relocatable Python environments with their own interpreter, as {any format}."""


@cli.command(
    cls=GroupedCommand,
    examples=(
        "venvpack build --project . -o build/env",
        "venvpack build 'httpie==3.2.4' --python 3.12 -o /tmp/httpie",
        "venvpack tar --from build/env   # pack it later, as often as needed",
    ),
)
@build_options
@output_options(json_help=_RESULT_JSON)
@_option(
    OUTPUT,
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to create for the environment (replaced, never written into).",
)
@_option(
    OUTPUT,
    "--force",
    is_flag=True,
    help="Replace OUTPUT if it is an environment venvpack built (nothing else is replaced).",
)
def build(output: Path, force: bool, as_json: bool, **opts: Any) -> None:
    """Build a relocatable environment into OUTPUT."""
    from venvpack.emit.environment import ENVIRONMENT
    from venvpack.pack import PackRequest, pack
    from venvpack.result import Result

    ctx = click.get_current_context()
    refuse_undecodable(ctx)
    verbosity = output_settings(opts)
    with ui.reporting(ui.make_reporter(verbosity)) as reporter:
        spec = build_spec(*decide_settings(opts, given_options(ctx), None))
        # -o names the environment itself: it is replaced (with --force), never written
        # into, so it may be neither the sources nor anything but an environment venvpack made.
        refuse_overlap(output, protected_directories(spec.project))
        request = PackRequest(ENVIRONMENT, {}, spec=spec, output=output, force=force)
        reporter.expect(BUILD_STEPS, output=str(output))
        packed = pack(request)
        result = Result(
            packed.path, ENVIRONMENT.name, packed.manifest, reporter.timings, reporter.elapsed
        )
        reporter.summary(result.summary())
    _print_result(result, as_json)


def _print_result(result: Result, as_json: bool) -> None:
    """The only thing venvpack prints on stdout for a build or an artifact."""
    click.echo(result.to_json() if as_json else str(result.artifact), nl=not as_json)


_format_commands: dict[str, tuple[Format, click.Command]] = {}
"""Each format's command, made once (for the format registered under that name now)."""


def format_command(fmt: Format) -> click.Command:
    """The sub-command of ``fmt``: the build and output options, then the format's own
    (:attr:`Format.options`); running it is one :func:`venvpack.pack.pack` call."""

    def run(
        output: Path | None, force: bool, from_dir: Path | None, as_json: bool, **opts: Any
    ) -> None:
        from venvpack.pack import PackRequest, pack
        from venvpack.result import Result

        ctx = click.get_current_context()
        refuse_undecodable(ctx)
        verbosity = output_settings(opts)
        with ui.reporting(ui.make_reporter(verbosity)) as reporter:
            values, pyproject = decide_settings(opts, given_options(ctx), fmt, from_dir)
            request = PackRequest(
                format=fmt,
                values={option.name: values[option.name] for option in fmt.options},
                spec=build_spec(values, pyproject) if from_dir is None else None,
                from_dir=from_dir,
                output=output,
                force=force,
                max_glibc=values["max_glibc"],
            )
            steps = ("audit",) if from_dir is not None else BUILD_STEPS
            reporter.expect((*steps, "pack"), output=str(output or "."))
            packed = pack(request, progress=reporter.progress)
            result = Result(
                packed.path,
                fmt.name,
                packed.manifest,
                reporter.timings,
                reporter.elapsed,
                packed.extras,
            )
            reporter.summary(result.summary())
        _print_result(result, as_json)

    for option in reversed(fmt.options):
        run = _click_option(option)(run)
    run = emit_options(fmt)(output_options(json_help=_RESULT_JSON)(build_options(run)))
    return click.command(name=fmt.name, help=fmt.help, cls=GroupedCommand, examples=fmt.examples)(
        run
    )


@cli.command(
    cls=GroupedCommand,
    examples=lambda: (
        f"venvpack inspect {_sample(1)}",
        "venvpack inspect build/env --json --max-glibc 2.31",
    ),
)
@click.argument("path", type=click.Path(path_type=Path))
@output_options(json_help=None)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report as JSON (schema inspect-1)."
)
@click.option(
    "--max-glibc",
    metavar="X.Y",
    help="Report a problem when the tree needs a newer glibc than X.Y.",
)
@click.option(
    "--sbom",
    "print_sbom",
    is_flag=True,
    help="Print the SBOM the environment carries (CycloneDX JSON) instead of the report.",
)
def inspect(
    path: Path, as_json: bool, max_glibc: str | None, print_sbom: bool, **opts: Any
) -> None:
    """Report what PATH (an environment directory, {artifacts}) contains
    and whether it runs elsewhere. Exit 0 when self-contained, 1 when a problem is found."""
    from venvpack.errors import CheckFailed
    from venvpack.inspect import inspect_artifact, render_text

    if print_sbom:
        from venvpack.sbom import read_sbom

        _report(read_sbom(path))
        return
    with ui.reporting(ui.make_reporter(output_settings(opts))):
        report = inspect_artifact(path, max_glibc=max_glibc)
    _report(report.to_json() if as_json else render_text(report))
    if report.problems:
        raise CheckFailed(f"{path}: {len(report.problems)} problem(s) found")


@cli.command(
    cls=GroupedCommand,
    examples=lambda: (
        f"venvpack verify {_sample(0)} --root bookworm",
        f"venvpack verify {_sample(2)} --run 'hello --version'",
    ),
)
@click.argument("artifact", type=click.Path(path_type=Path))
@output_options(json_help=None)
@click.option(
    "--root",
    "roots",
    multiple=True,
    metavar="NAME",
    help="A clean root to check in: glibc (this host's libc6 + dash), glibc-2.31 (Debian 11's), "
    "bullseye, bookworm, trixie (debootstrap minbase) (repeatable; default: glibc). An "
    "artifact for another machine runs under qemu-user in that machine's roots, all five "
    "(glibc: Debian 12's libc6), with binfmt_misc enabled for it.",
)
@click.option(
    "--run",
    "run_commands",
    multiple=True,
    metavar="CMD",
    help="Run CMD in the environment instead of every command with --help (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def verify(
    artifact: Path,
    roots: tuple[str, ...],
    run_commands: tuple[str, ...],
    as_json: bool,
    **opts: Any,
) -> None:
    """Install or unpack ARTIFACT ({artifacts}) in clean roots, import every
    module and run every command there, also after moving a relocatable tree. Exit 1 when
    anything fails or a root is refused (its glibc older than the artifact needs)."""
    from venvpack.errors import CheckFailed
    from venvpack.verify import render_text, verify_artifact

    with ui.reporting(ui.make_reporter(output_settings(opts))):
        report = verify_artifact(artifact, roots or ("glibc",), run=run_commands)
    _report(report.to_json() if as_json else render_text(report))
    if not report.ok:
        bad = [c for c in report.checks if c.status != "ok"]
        first = bad[0]
        raise CheckFailed(
            f"{artifact}: {len(bad)} check(s) failed or refused, first: "
            f"{first.root} {first.step} {first.target}: {first.status}"
        )


@cli.command(
    cls=GroupedCommand,
    examples=lambda: (
        "venvpack init                # then edit [tool.venvpack] in pyproject.toml",
        "venvpack init --makefile     # and a Makefile: "
        + ", ".join(f"make {name}" for name in format_names()),
    ),
)
@output_options(json_help=None)
@click.option(
    "--makefile",
    is_flag=True,
    cls=GroupedOption,
    help="Also write a Makefile with {formats} targets that print and keep the "
    "artifact's path (an existing Makefile is never replaced).",
)
def init(makefile: bool, **opts: Any) -> None:
    """Add a commented [tool.venvpack] section, with tables for {formats}, to the
    pyproject.toml in the current directory, leaving the rest of the file as it is."""
    from venvpack.scaffold import init_project

    verbosity = output_settings(opts)
    for path in init_project(Path("."), makefile=makefile):
        if verbosity is not ui.Verbosity.QUIET:
            click.echo(f"venvpack: wrote {path}", err=True)


def _report(text: str) -> None:
    """A report on stdout: it quotes the artifact (names, metadata, tool output), so every
    control character is escaped before it reaches a terminal."""
    click.echo(ui.printable(text, newlines=True), nl=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every failure into one line and an exit code.

    SIGINT, SIGTERM and SIGHUP unwind the run like Ctrl-C (:mod:`venvpack.interrupt`): one
    line ``venvpack: interrupted``, exit 130, 143 or 129, nothing left behind.
    """
    with orderly_signals():
        code, by_signal = _run(argv)
    if code:
        if by_signal and threading.active_count() > 1:
            # Compression threads may still be finishing a block nobody will read;
            # everything venvpack made is already removed, so do not wait for them.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        sys.exit(code)


def _run(argv: list[str] | None) -> tuple[int, bool]:
    """The exit code, and whether a signal ended the run."""
    global _DEBUG
    _DEBUG = False
    try:
        cli.main(args=argv, prog_name="venvpack", standalone_mode=False)
        checkpoint()  # a signal whose raise was swallowed still ends the run interrupted
    except VenvpackError as exc:
        _traceback()
        click.echo(f"venvpack: error: {ui.printable(str(exc))}", err=True)
        if exc.detail:
            detail = ui.printable(exc.detail, newlines=True)
            import textwrap  # only for a failure's detail: it compiles regexes on import

            click.echo(textwrap.indent(detail, "    "), err=True)
        return exc.exit_code, False
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        # After SIGHUP the terminal may be gone: the exit code still says what happened.
        with suppress(OSError):
            click.echo("venvpack: interrupted", err=True)
        signalled = _signal_of(exc)
        return (signalled.exit_code, True) if signalled else (130, False)
    except click.ClickException as exc:
        click.echo(f"venvpack: error: {_usage_line(exc)}", err=True)
        return exc.exit_code, False
    except OSError as exc:
        _traceback()
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"venvpack: error: {exc.strerror or exc}{where}", err=True)
        return 1, False
    return 0, False


def _usage_line(exc: click.ClickException) -> str:
    """click's usage error as one line, pointing at the command's help."""
    text = ui.printable(" ".join(exc.format_message().split()))
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        text += f" (see '{ctx.command_path} --help')"
    return text


def _traceback() -> None:
    """With --debug, the traceback of the exception being handled, before its one line."""
    if _DEBUG:
        click.echo(traceback.format_exc().rstrip(), err=True)


def _signal_of(exc: BaseException | None) -> Interrupted | None:
    """The signal that interrupted the run, if one did (click wraps Ctrl-C in an Abort)."""
    while exc is not None:
        if isinstance(exc, Interrupted):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
