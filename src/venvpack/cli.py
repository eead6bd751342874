"""The command line: flags become a BuildSpec, errors become one line and an exit code.

This is the only module that prints errors or exits. Exit codes: 0 success, 1 generic
venvpack error or a problem found by inspect or verify, 2 bad usage or configuration,
3 interpreter, 4 install, 5 ELF, 6 build, 7 emit, 8 missing tool; interrupted: 130 (SIGINT),
143 (SIGTERM), 129 (SIGHUP).
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import click

from venvpack import __version__
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
from venvpack.emit import FORMATS, Format, Option, load_format
from venvpack.errors import ConfigError, VenvpackError
from venvpack.interrupt import Interrupted, orderly_signals
from venvpack.manifest import is_environment
from venvpack.output import check_replaceable, refuse_overlap

__all__ = ["cli", "main"]

log = logging.getLogger("venvpack")
F = TypeVar("F", bound=Callable[..., Any])


def build_options(func: F) -> F:
    """The options every command that builds an environment accepts."""
    options = [
        click.argument("requirements", nargs=-1),
        click.option(
            "-r",
            "--requirement",
            "requirement_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Install from a requirements file (repeatable).",
        ),
        click.option(
            "--project",
            type=click.Path(file_okay=False, path_type=Path),
            help="Project directory to install (default: . when it has a "
            "pyproject.toml and no requirement is given).",
        ),
        click.option(
            "--python",
            "python",
            metavar="PY",
            help=(
                "Interpreter path, version (3, 3.12, 3.12.4), cpython@3.12, "
                "cpython-3.12.4-linux-x86_64-gnu or specifier ('>=3.11'); the newest match "
                "on PATH, in pyenv, uv's pythons or /usr/bin wins. Default: the project's "
                ".python-version, else the running Python if it satisfies requires-python, "
                "else the newest that does."
            ),
        ),
        click.option("--name", help="Application name (default: the project's name)."),
        click.option(
            "--version",
            "version",
            metavar="VERSION",
            help="Application version (default: the installed project's, or the "
            "distribution --name names).",
        ),
        click.option(
            "--no-lock",
            is_flag=True,
            help="Resolve the requirements afresh instead of installing what the "
            "project's uv.lock or pylock.toml pins.",
        ),
        click.option(
            "--extra",
            "extras",
            multiple=True,
            metavar="NAME",
            help="Install this optional-dependency group of the project (repeatable).",
        ),
        click.option("--all-extras", is_flag=True, help="Install every extra of the project."),
        click.option(
            "--group",
            "groups",
            multiple=True,
            metavar="NAME",
            help="Install this dependency group too (repeatable; dev groups are left out).",
        ),
        click.option("--index-url", metavar="URL", help="Package index to use instead of PyPI."),
        click.option(
            "--extra-index-url",
            "extra_index_urls",
            multiple=True,
            metavar="URL",
            help="Another package index (repeatable).",
        ),
        click.option(
            "-c",
            "--constraint",
            "constraints",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Constrain versions with this file (repeatable).",
        ),
        click.option("--pre", is_flag=True, help="Allow pre-release versions."),
        click.option("--prefix", help="Install location (default: /opt/<name>)."),
        click.option(
            "--python-link",
            "link_mode",
            type=click.Choice([m.value for m in LinkMode]),
            default=None,
            help="How bin/python reaches the bundled interpreter (default: symlink).",
        ),
        click.option(
            "--find-links",
            multiple=True,
            metavar="DIR",
            help="Look for packages in DIR (repeatable).",
        ),
        click.option("--no-index", is_flag=True, help="Do not use the package index."),
        click.option("--with-tk", is_flag=True, help="Keep tkinter in the bundled runtime."),
        click.option(
            "--keep-dev",
            is_flag=True,
            help="Keep headers and build config to compile extensions later.",
        ),
        click.option(
            "--max-glibc",
            metavar="X.Y",
            help="Stop before packing when the environment needs a newer glibc than X.Y "
            "(naming the file and symbol version).",
        ),
        click.option(
            "--exclude-module",
            "exclude_modules",
            multiple=True,
            metavar="NAME",
            help="Leave this stdlib extension module (e.g. _curses, readline, _sqlite3) out, "
            "with the libraries only it needed (repeatable).",
        ),
        click.option(
            "--installer",
            type=click.Choice([i.value for i in Installer]),
            default="auto",
            hidden=True,
        ),
        click.option("-q", "--quiet", is_flag=True, help="Only print errors."),
        click.option("-v", "--verbose", is_flag=True, help="Print every step."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def emit_options(func: F) -> F:
    """The options of every command that writes an artifact (tar, deb, rpm)."""
    options = [
        click.option(
            "--from",
            "from_dir",
            type=click.Path(file_okay=False, exists=True, path_type=Path),
            help="Pack this environment (made by 'venvpack build') instead of building one.",
        ),
        click.option(
            "-o",
            "--output",
            type=click.Path(path_type=Path),
            default=None,
            help="The artifact's file name when it ends with the format's extension (.deb, "
            ".rpm, .tar.zst, .tar.gz, .tgz, .tar.xz, .tar), else a directory for it, created "
            "if missing (default: the current directory).",
        ),
        click.option("--force", is_flag=True, help="Replace the artifact if it exists."),
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
    _configure_logging(opts.pop("quiet", False), opts.pop("verbose", False))
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


def _configure_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("venvpack: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="venvpack")
def cli() -> None:
    """Relocatable Python environments with their own interpreter, as tar, deb or rpm."""


@cli.command()
@build_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to create for the environment (replaced, never written into).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace OUTPUT if it is an environment venvpack built (nothing else is replaced).",
)
def build(output: Path, force: bool, **opts: Any) -> None:
    """Build a relocatable environment into OUTPUT."""
    from venvpack.build import build_environment

    refuse_undecodable(click.get_current_context())
    spec = spec_from_options(opts)
    # -o names the environment itself: it is replaced (with --force), never written into,
    # so it may be neither the sources nor anything but an environment venvpack made.
    refuse_overlap(output, protected_directories(spec.project))
    check_replaceable(output.absolute(), force, is_environment)
    env = build_environment(spec, output.absolute(), replace=force)
    log.info("built %s %s in %s", env.manifest.name, env.manifest.version, output)


def format_command(fmt: Format) -> click.Command:
    """The sub-command of ``fmt``: the build and output options, then the format's own
    (:attr:`Format.options`); running it is one :func:`venvpack.pack.pack` call."""

    def run(output: Path | None, force: bool, from_dir: Path | None, **opts: Any) -> None:
        from venvpack.pack import PackRequest, pack

        refuse_undecodable(click.get_current_context())
        ctx = click.get_current_context()
        values = {option.name: opts.pop(option.name) for option in fmt.options}
        quiet = {"quiet": opts.get("quiet", False)}
        if from_dir is not None:
            _configure_logging(opts.get("quiet", False), opts.get("verbose", False))
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
        with _progress("writing", quiet) as progress:
            path = pack(request, progress=progress)
        if path.is_file():
            log.info("wrote %s (%.1f MiB)", path, path.stat().st_size / 2**20)
        else:
            log.info("wrote %s", path)

    for option in reversed(fmt.options):
        run = _click_option(option)(run)
    run = emit_options(build_options(run))
    return click.command(name=fmt.name, help=fmt.help)(run)


def _click_option(option: Option) -> Callable[[F], F]:
    kwargs: dict[str, Any] = {"help": option.help, "show_default": option.show_default}
    if option.is_flag:
        kwargs["is_flag"] = True
    else:
        kwargs["default"] = option.default
        kwargs["multiple"] = option.multiple
        kwargs["metavar"] = option.metavar
        kwargs["type"] = click.Choice(option.choices) if option.choices else option.type
    return click.option(*option.flags, option.name, **kwargs)


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


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report as JSON (schema inspect-1)."
)
@click.option(
    "--max-glibc",
    metavar="X.Y",
    help="Report a problem when the tree needs a newer glibc than X.Y.",
)
def inspect(path: Path, as_json: bool, max_glibc: str | None) -> None:
    """Report what PATH (an environment directory, a tarball, a .deb or an .rpm) contains
    and whether it runs elsewhere. Exit 0 when self-contained, 1 when a problem is found."""
    from venvpack.errors import CheckFailed
    from venvpack.inspect import inspect_artifact, render_text

    report = inspect_artifact(path, max_glibc=max_glibc)
    click.echo(report.to_json() if as_json else render_text(report), nl=False)
    if report.problems:
        raise CheckFailed(f"{path}: {len(report.problems)} problem(s) found")


@cli.command()
@click.argument("artifact", type=click.Path(exists=True, dir_okay=False, path_type=Path))
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
    artifact: Path, roots: tuple[str, ...], run_commands: tuple[str, ...], as_json: bool
) -> None:
    """Install or unpack ARTIFACT (a tarball, .deb or .rpm) in clean roots, import every
    module and run every command there, also after moving a relocatable tree. Exit 1 when
    anything fails or a root is refused (its glibc older than the artifact needs)."""
    from venvpack.errors import CheckFailed
    from venvpack.verify import render_text, verify_artifact

    report = verify_artifact(artifact, roots or ("glibc",), run=run_commands)
    click.echo(report.to_json() if as_json else render_text(report), nl=False)
    if not report.ok:
        bad = [c for c in report.checks if c.status != "ok"]
        first = bad[0]
        raise CheckFailed(
            f"{artifact}: {len(bad)} check(s) failed or refused, first: "
            f"{first.root} {first.step} {first.target}: {first.status}"
        )


@cli.command()
@click.option(
    "--makefile",
    is_flag=True,
    help="Also write a Makefile with tar, deb and rpm targets that print and keep the "
    "artifact's path (an existing Makefile is never replaced).",
)
def init(makefile: bool) -> None:
    """Add a commented [tool.venvpack] section, with tables for tar, deb and rpm, to the
    pyproject.toml in the current directory, leaving the rest of the file as it is."""
    from venvpack.scaffold import init_project

    for path in init_project(Path("."), makefile=makefile):
        click.echo(f"venvpack: wrote {path}", err=True)


@contextmanager
def _progress(label: str, opts: dict[str, Any]) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal; nothing in pipes, CI or with -q."""
    if opts.get("quiet") or not sys.stderr.isatty() or os.environ.get("CI"):
        yield None
        return
    with click.progressbar(length=1, label=f"venvpack: {label}", file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        yield update


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
    try:
        cli.main(args=argv, prog_name="venvpack", standalone_mode=False)
    except VenvpackError as exc:
        click.echo(f"venvpack: error: {exc}", err=True)
        if exc.detail:
            click.echo(textwrap.indent(exc.detail, "    "), err=True)
        return exc.exit_code, False
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        # After SIGHUP the terminal may be gone: the exit code still says what happened.
        with suppress(OSError):
            click.echo("venvpack: interrupted", err=True)
        signalled = _signal_of(exc)
        return (signalled.exit_code, True) if signalled else (130, False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code, False
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"venvpack: error: {exc.strerror or exc}{where}", err=True)
        return 1, False
    return 0, False


def _signal_of(exc: BaseException | None) -> Interrupted | None:
    """The signal that interrupted the run, if one did (click wraps Ctrl-C in an Abort)."""
    while exc is not None:
        if isinstance(exc, Interrupted):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
