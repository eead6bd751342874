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
import textwrap
import threading
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from venvpack import __version__, ui
from venvpack.config import (
    BuildSpec,
    Installer,
    LinkMode,
    check_text,
    format_settings,
    validate_name,
    validate_version,
    with_project_defaults,
)
from venvpack.emit import (
    FORMATS,
    INSTALL,
    METADATA,
    OUTPUT,
    SERVICE,
    Format,
    Option,
    load_format,
)
from venvpack.errors import ConfigError, VenvpackError
from venvpack.interrupt import Interrupted, checkpoint, orderly_signals
from venvpack.manifest import is_environment
from venvpack.output import check_replaceable, refuse_overlap

if TYPE_CHECKING:
    from venvpack.result import Result

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])


BUILD = "Build options"
SECTIONS = (BUILD, OUTPUT, METADATA, INSTALL, SERVICE)
"""The order of the help's option sections; options of no section ("Options") come last."""


class GroupedOption(click.Option):
    """An option listed under one section of the help (:class:`GroupedCommand`)."""

    def __init__(self, *args: Any, group: str = "Options", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group


def _option(group: str, *decls: str, **kwargs: Any) -> Callable[[F], F]:
    """``click.option`` for an option of the help section ``group``."""
    return click.option(*decls, cls=GroupedOption, group=group, **kwargs)


class _Examples:
    """An "Examples" section after the options: command lines, as written (not re-wrapped)."""

    examples: tuple[str, ...] = ()

    def format_examples(self, formatter: click.HelpFormatter) -> None:
        if self.examples:
            with formatter.section("Examples"):
                for line in self.examples:
                    indent = " " * formatter.current_indent if line else ""
                    formatter.write(f"{indent}{line}\n")


class GroupedCommand(_Examples, click.Command):
    """A command whose help lists its options by section (build, output, package metadata,
    install, service: :attr:`GroupedOption.group`), then examples."""

    def __init__(self, *args: Any, examples: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.examples = tuple(examples)

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


class ExamplesGroup(_Examples, click.Group):
    """The top-level group: its commands, then examples."""

    def __init__(self, *args: Any, examples: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.examples = tuple(examples)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.format_examples(formatter)
        super().format_epilog(ctx, formatter)


def build_options(func: F) -> F:
    """The options every command that builds an environment accepts."""
    options = [
        click.argument("requirements", nargs=-1),
        _option(
            BUILD,
            "-r",
            "--requirement",
            "requirement_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Install from a requirements file (repeatable).",
        ),
        _option(
            BUILD,
            "--project",
            type=click.Path(file_okay=False, path_type=Path),
            help="Project directory to install (default: . when it has a "
            "pyproject.toml and no requirement is given).",
        ),
        _option(
            BUILD,
            "--python",
            "python",
            metavar="PY",
            help=(
                "Interpreter path, version (3, 3.12, 3.12.4), cpython@3.12, "
                "cpython-3.12.4-linux-x86_64-gnu or specifier ('>=3.11'); the newest match "
                "on PATH, in pyenv, uv's pythons or /usr/bin wins (default: the project's "
                ".python-version, else the running Python if it satisfies requires-python, "
                "else the newest that does)."
            ),
        ),
        _option(BUILD, "--name", help="Application name (default: the project's name)."),
        _option(
            BUILD,
            "--version",
            "version",
            metavar="VERSION",
            help="Application version (default: the installed project's, or the "
            "distribution --name names).",
        ),
        _option(
            BUILD,
            "--no-lock",
            is_flag=True,
            help="Resolve the requirements afresh instead of installing what the "
            "project's uv.lock or pylock.toml pins.",
        ),
        _option(
            BUILD,
            "--extra",
            "extras",
            multiple=True,
            metavar="NAME",
            help="Install this optional-dependency group of the project (repeatable).",
        ),
        _option(BUILD, "--all-extras", is_flag=True, help="Install every extra of the project."),
        _option(
            BUILD,
            "--group",
            "groups",
            multiple=True,
            metavar="NAME",
            help="Install this dependency group too (repeatable; dev groups are left out).",
        ),
        _option(BUILD, "--index-url", metavar="URL", help="Package index to use instead of PyPI."),
        _option(
            BUILD,
            "--extra-index-url",
            "extra_index_urls",
            multiple=True,
            metavar="URL",
            help="Another package index (repeatable).",
        ),
        _option(
            BUILD,
            "-c",
            "--constraint",
            "constraints",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Constrain versions with this file (repeatable).",
        ),
        _option(BUILD, "--pre", is_flag=True, help="Allow pre-release versions."),
        _option(BUILD, "--prefix", help="Install location (default: /opt/<name>)."),
        _option(
            BUILD,
            "--python-link",
            "link_mode",
            type=click.Choice([m.value for m in LinkMode]),
            default=None,
            help="How bin/python reaches the bundled interpreter (default: symlink).",
        ),
        _option(
            BUILD,
            "--find-links",
            multiple=True,
            metavar="DIR",
            help="Look for packages in DIR (repeatable).",
        ),
        _option(BUILD, "--no-index", is_flag=True, help="Do not use the package index."),
        _option(BUILD, "--with-tk", is_flag=True, help="Keep tkinter in the bundled runtime."),
        _option(
            BUILD,
            "--keep-dev",
            is_flag=True,
            help="Keep headers and build config to compile extensions later.",
        ),
        _option(
            BUILD,
            "--max-glibc",
            metavar="X.Y",
            help="Stop before packing when the environment needs a newer glibc than X.Y "
            "(naming the file and symbol version).",
        ),
        _option(
            BUILD,
            "--exclude-module",
            "exclude_modules",
            multiple=True,
            metavar="NAME",
            help="Leave this stdlib extension module (e.g. _curses, readline, _sqlite3) out, "
            "with the libraries only it needed (repeatable).",
        ),
        _option(
            BUILD,
            "--installer",
            type=click.Choice([i.value for i in Installer]),
            default="auto",
            hidden=True,
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
"""The steps of a build, as :func:`venvpack.build.stage` names them."""


def emit_options(func: F) -> F:
    """The options of every command that writes an artifact (tar, deb, rpm)."""
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
            help="The artifact's file name when it ends with the format's extension (.deb, "
            ".rpm, .tar.zst, .tar.gz, .tgz, .tar.xz, .tar), else a directory for it, created "
            "if missing (default: the current directory).",
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


def spec_from_options(opts: dict[str, Any], fmt: str | None = None) -> BuildSpec:
    """Turn parsed build options into a BuildSpec, completed from the project's files (and
    its ``[tool.venvpack.<fmt>]`` table for the format ``fmt``)."""
    requirements = tuple(_absolute_if_path(r) for r in opts.get("requirements") or ())
    project: Path | None = opts.get("project")
    if project is None and not requirements and not opts.get("requirement_files"):
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
    spec = BuildSpec(
        requirements=requirements,
        requirement_files=tuple(p.resolve() for p in opts.get("requirement_files") or ()),
        project=project,
        python=opts.get("python"),
        name=opts.get("name"),
        prefix=opts.get("prefix"),
        link_mode=LinkMode(opts.get("link_mode") or "symlink"),
        find_links=tuple(_absolute_if_exists(f) for f in opts.get("find_links") or ()),
        no_index=bool(opts.get("no_index")),
        with_tk=bool(opts.get("with_tk")),
        keep_dev=bool(opts.get("keep_dev")),
        installer=Installer(opts.get("installer") or "auto"),
        version=opts.get("version"),
        use_lock=not opts.get("no_lock"),
        extras=tuple(opts.get("extras") or ()),
        all_extras=bool(opts.get("all_extras")),
        groups=tuple(opts.get("groups") or ()),
        index_url=opts.get("index_url"),
        extra_index_urls=tuple(opts.get("extra_index_urls") or ()),
        constraints=tuple(p.resolve() for p in opts.get("constraints") or ()),
        pre=bool(opts.get("pre")),
        max_glibc=opts.get("max_glibc"),
        exclude_modules=tuple(opts.get("exclude_modules") or ()),
    )
    given = [k for k in _SPEC_FIELDS if opts.get(k)]
    given += ["use_lock"] if opts.get("no_lock") else []
    spec = with_project_defaults(spec, given, fmt)
    if spec.name is not None:
        validate_name(spec.name)
    if spec.version is not None:
        validate_version(spec.version)
    from venvpack.glibc import parse_glibc
    from venvpack.runtime import validate_module_name

    if spec.max_glibc is not None:
        parse_glibc(spec.max_glibc)
    for module in spec.exclude_modules:
        validate_module_name(module)
    if spec.prefix is not None and not spec.prefix.startswith("/"):
        raise ConfigError(f"--prefix must be an absolute path, got {spec.prefix!r}")
    return spec


# Flags that replace a [tool.venvpack] setting when given.
_SPEC_FIELDS = (
    "name",
    "prefix",
    "python",
    "with_tk",
    "keep_dev",
    "link_mode",
    "version",
    "all_extras",
    "index_url",
    "pre",
    "max_glibc",
)


def _absolute_if_exists(value: str) -> str:
    """A local ``--find-links`` directory as an absolute path; URLs stay as they are."""
    return str(Path(value).absolute()) if Path(value).exists() else value


def _absolute_if_path(value: str) -> str:
    """A relative path (``./x.whl``, ``../proj``, ``wheels``) as an absolute one: the installer
    runs in the project directory, not where venvpack was started."""
    if "://" in value or value.startswith("/"):
        return value
    path = Path(value).expanduser()
    if value.startswith((".", "~")) or (("/" in value or path.suffix == ".whl") and path.exists()):
        return str(path.absolute())
    return value


# Options that shape a build, so they are meaningless (and refused) with --from.
_BUILD_ONLY = (
    "requirements",
    "requirement_files",
    "project",
    "python",
    "name",
    "prefix",
    "link_mode",
    "find_links",
    "no_index",
    "with_tk",
    "keep_dev",
    "version",
    "no_lock",
    "extras",
    "all_extras",
    "groups",
    "index_url",
    "extra_index_urls",
    "constraints",
    "pre",
    "exclude_modules",
)


def _flag(option: str) -> str:
    names = {
        "requirements": "REQUIREMENT",
        "requirement_files": "--requirement",
        "link_mode": "--python-link",
        "extras": "--extra",
        "groups": "--group",
        "extra_index_urls": "--extra-index-url",
        "constraints": "--constraint",
        "exclude_modules": "--exclude-module",
    }
    return names.get(option, "--" + option.replace("_", "-"))


@click.group(
    cls=ExamplesGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    examples=(
        "venvpack tar --project . -o dist/        # runs wherever it is unpacked",
        "venvpack deb --project . -o dist/        # installs in /opt/<name>",
        "venvpack build --project . -o build/env  # the environment alone",
        "venvpack inspect dist/*.deb              # what is inside, where it runs",
        "",
        "Shell completion (bash, zsh, fish): docs/completion.md, e.g.",
        'eval "$(_VENVPACK_COMPLETE=bash_source venvpack)"',
    ),
)
@click.version_option(__version__, prog_name="venvpack")
def cli() -> None:
    """Relocatable Python environments with their own interpreter, as tar, deb or rpm."""


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
    from venvpack.build import build_environment
    from venvpack.result import Result

    refuse_undecodable(click.get_current_context())
    verbosity = output_settings(opts)
    with ui.reporting(ui.make_reporter(verbosity)) as reporter:
        spec = spec_from_options(opts)
        # -o names the environment itself: it is replaced (with --force), never written
        # into, so it may be neither the sources nor anything but an environment venvpack made.
        refuse_overlap(output, protected_directories(spec.project))
        check_replaceable(output.absolute(), force, is_environment)
        reporter.expect(BUILD_STEPS, output=str(output))
        env = build_environment(spec, output.absolute(), replace=force)
        result = Result(env.root, "environment", env.manifest, reporter.timings, reporter.elapsed)
        reporter.summary(result.summary())
    _print_result(result, as_json)


def _print_result(result: Result, as_json: bool) -> None:
    """The only thing venvpack prints on stdout for a build or an artifact."""
    click.echo(result.to_json() if as_json else str(result.artifact), nl=not as_json)


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
        values = {option.name: opts.pop(option.name) for option in fmt.options}
        with ui.reporting(ui.make_reporter(verbosity)) as reporter:
            if from_dir is not None:
                refuse_build_options(opts)
                spec = None
                project = Path.cwd() if Path("pyproject.toml").is_file() else None
            else:
                spec = spec_from_options(opts, fmt.name)
                project = spec.project
            if project is not None:
                # [tool.venvpack] and [tool.venvpack.<format>] give what no flag gave; list
                # settings add to the flags, as the build settings do.
                for name, value in format_settings(project, fmt.name).items():
                    source = ctx.get_parameter_source(name)
                    if source is not click.core.ParameterSource.COMMANDLINE:
                        values[name] = value
                    elif isinstance(value, tuple):
                        values[name] = value + tuple(values[name])
            request = PackRequest(
                format=fmt,
                values=values,
                spec=spec,
                from_dir=from_dir,
                output=output,
                force=force,
                max_glibc=opts.get("max_glibc"),
            )
            steps = ("audit",) if from_dir is not None else BUILD_STEPS
            reporter.expect((*steps, "pack"), output=str(output or "."))
            packed = pack(request, progress=reporter.progress)
            result = Result(
                packed.path, fmt.name, packed.manifest, reporter.timings, reporter.elapsed
            )
            reporter.summary(result.summary())
        _print_result(result, as_json)

    for option in reversed(fmt.options):
        run = _click_option(option)(run)
    run = emit_options(output_options(json_help=_RESULT_JSON)(build_options(run)))
    return click.command(name=fmt.name, help=fmt.help, cls=GroupedCommand, examples=fmt.examples)(
        run
    )


def _click_option(option: Option) -> Callable[[F], F]:
    text = option.help
    if option.show_default:
        text = f"{text.rstrip('.')} (default: {option.default})."
    kwargs: dict[str, Any] = {"help": text}
    if option.is_flag:
        kwargs["is_flag"] = True
    else:
        kwargs["default"] = option.default
        kwargs["multiple"] = option.multiple
        kwargs["metavar"] = option.metavar
        kwargs["type"] = click.Choice(option.choices) if option.choices else option.type
    return _option(option.group, *option.flags, option.name, **kwargs)


def refuse_build_options(opts: dict[str, Any]) -> None:
    """With ``--from`` the environment is packed as it was built: build options are refused."""
    given = sorted(k for k in _BUILD_ONLY if opts.get(k))
    if given:
        flags = ", ".join(_flag(k) for k in given)
        raise ConfigError(
            f"--from packs an environment as it was built; {flags} "
            "cannot apply to it (build again instead)"
        )


for _name in FORMATS:
    cli.add_command(format_command(load_format(_name)))


@cli.command(
    cls=GroupedCommand,
    examples=(
        "venvpack inspect dist/hello_1.0.0-1_amd64.deb",
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
def inspect(path: Path, as_json: bool, max_glibc: str | None, **opts: Any) -> None:
    """Report what PATH (an environment directory, a tarball, a .deb or an .rpm) contains
    and whether it runs elsewhere. Exit 0 when self-contained, 1 when a problem is found."""
    from venvpack.errors import CheckFailed
    from venvpack.inspect import inspect_artifact, render_text

    with ui.reporting(ui.make_reporter(output_settings(opts))):
        report = inspect_artifact(path, max_glibc=max_glibc)
    _report(report.to_json() if as_json else render_text(report))
    if report.problems:
        raise CheckFailed(f"{path}: {len(report.problems)} problem(s) found")


@cli.command(
    cls=GroupedCommand,
    examples=(
        "venvpack verify dist/hello-1.0.0-linux-x86_64.tar.zst --root bookworm",
        "venvpack verify dist/hello-1.0.0-1.x86_64.rpm --run 'hello --version'",
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
    "bullseye, bookworm, trixie (debootstrap minbase) (repeatable; default: glibc).",
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
    """Install or unpack ARTIFACT (a tarball, .deb or .rpm) in clean roots, import every
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
    examples=(
        "venvpack init                # then edit [tool.venvpack] in pyproject.toml",
        "venvpack init --makefile     # and a Makefile: make tar, make deb, make rpm",
    ),
)
@output_options(json_help=None)
@click.option(
    "--makefile",
    is_flag=True,
    help="Also write a Makefile with tar, deb and rpm targets that print and keep the "
    "artifact's path (an existing Makefile is never replaced).",
)
def init(makefile: bool, **opts: Any) -> None:
    """Add a commented [tool.venvpack] section, with tables for tar, deb and rpm, to the
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
