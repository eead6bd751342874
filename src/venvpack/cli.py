"""The command line: flags become a BuildSpec, errors become one line and an exit code.

This is the only module that prints errors or exits. Exit codes: 0 success, 1 generic
venvpack error, 2 bad usage or configuration, 3 interpreter, 4 install, 5 ELF, 6 build,
7 emit, 8 missing tool, 130 interrupted.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from venvpack import __version__
from venvpack.config import (
    BuildSpec,
    Installer,
    LinkMode,
    load_pyproject_settings,
    merge_pyproject,
    validate_name,
)
from venvpack.emit import Emitter
from venvpack.errors import ConfigError, OutputExistsError, VenvpackError
from venvpack.manifest import BuiltEnv

__all__ = ["cli", "main"]

log = logging.getLogger("venvpack")
F = TypeVar("F", bound=Callable[..., Any])


def build_options(func: F) -> F:
    """The options every command that builds an environment accepts."""
    options = [
        click.argument("requirements", nargs=-1),
        click.option("-r", "--requirement", "requirement_files", multiple=True,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Install from a requirements file (repeatable)."),
        click.option("--project", type=click.Path(file_okay=False, path_type=Path),
                     help="Project directory to install (default: . when it has a "
                          "pyproject.toml and no requirement is given)."),
        click.option("--python", "python", metavar="PY",
                     help="Interpreter path or version (3.12). Default: the Python running "
                          "venvpack."),
        click.option("--name", help="Application name (default: the project's name)."),
        click.option("--prefix", help="Install location (default: /opt/<name>)."),
        click.option("--python-link", "link_mode",
                     type=click.Choice([m.value for m in LinkMode]), default=None,
                     help="How bin/python reaches the bundled interpreter (default: symlink)."),
        click.option("--find-links", multiple=True, metavar="DIR",
                     help="Look for packages in DIR (repeatable)."),
        click.option("--no-index", is_flag=True, help="Do not use the package index."),
        click.option("--with-tk", is_flag=True, help="Keep tkinter in the bundled runtime."),
        click.option("--keep-dev", is_flag=True,
                     help="Keep headers and build config to compile extensions later."),
        click.option("--installer", type=click.Choice([i.value for i in Installer]),
                     default="auto", hidden=True),
        click.option("-q", "--quiet", is_flag=True, help="Only print errors."),
        click.option("-v", "--verbose", is_flag=True, help="Print every step."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def spec_from_options(opts: dict[str, Any]) -> BuildSpec:
    """Turn parsed build options into a BuildSpec, merging ``[tool.venvpack]``."""
    _configure_logging(opts.pop("quiet", False), opts.pop("verbose", False))
    requirements = tuple(opts.get("requirements") or ())
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
        find_links=tuple(opts.get("find_links") or ()),
        no_index=bool(opts.get("no_index")),
        with_tk=bool(opts.get("with_tk")),
        keep_dev=bool(opts.get("keep_dev")),
        installer=Installer(opts.get("installer") or "auto"),
    )
    if project is not None:
        given = [k for k in ("name", "prefix", "python", "with_tk", "keep_dev", "link_mode")
                 if opts.get(k)]
        spec = merge_pyproject(spec, load_pyproject_settings(project), given)
    if spec.name is not None:
        validate_name(spec.name)
    if spec.prefix is not None and not spec.prefix.startswith("/"):
        raise ConfigError(f"--prefix must be an absolute path, got {spec.prefix!r}")
    return spec


def _configure_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("venvpack: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def check_output(path: Path, force: bool) -> None:
    """Refuse to overwrite an existing output unless ``--force``."""
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputExistsError(f"{path} already exists (use --force to replace it)")


@contextmanager
def built_environment(opts: dict[str, Any], from_dir: Path | None, near: Path) -> Iterator[BuiltEnv]:
    """The environment an emitter packs: ``--from DIR`` as is, or a fresh build.

    A fresh build lives in a temporary directory beside ``near`` (same filesystem, so
    nothing is copied twice) and is removed afterwards, also on failure or Ctrl-C.
    """
    from venvpack.build import build_environment

    if from_dir is not None:
        _configure_logging(opts.get("quiet", False), opts.get("verbose", False))
        yield BuiltEnv.load(from_dir)
        return
    spec = spec_from_options(opts)
    near.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".venvpack-build-", dir=near))
    try:
        yield build_environment(spec, tmp / "env")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def emit_artifact(emitter: Emitter, env: BuiltEnv, output: Path | None, force: bool) -> Path:
    """Write ``emitter``'s artifact: to ``output`` if it is a file path, else into the directory."""
    if output is None:
        dest = Path.cwd() / emitter.filename(env)
    elif output.is_dir():
        dest = output / emitter.filename(env)
    else:
        dest = output
    check_output(dest, force)
    return emitter.emit(env, dest)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="venvpack")
def cli() -> None:
    """Relocatable Python environments with their own interpreter, as tar, deb or rpm."""


@cli.command()
@build_options
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Directory to create for the environment.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def build(output: Path, force: bool, **opts: Any) -> None:
    """Build a relocatable environment into OUTPUT."""
    from venvpack.build import build_environment

    spec = spec_from_options(opts)
    check_output(output, force)
    env = build_environment(spec, output.absolute(), replace=force)
    log.info("built %s %s in %s", env.manifest.name, env.manifest.version, output)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every failure into one line and an exit code."""
    try:
        cli.main(args=argv, prog_name="venvpack", standalone_mode=False)
    except VenvpackError as exc:
        click.echo(f"venvpack: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("venvpack: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("venvpack: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"venvpack: error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
