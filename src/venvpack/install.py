"""Stage ``install``: put the requirements into the environment, with uv or pip.

uv (a dependency of venvpack) is many times faster; where it cannot run, pip runs under
the bundled interpreter itself, so extension modules are built for the right Python
either way. Both only see the build-time environment; ``relocate`` cleans up after them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from venvpack.config import BuildSpec, Installer
from venvpack.errors import ConfigError, InstallError, ToolMissingError
from venvpack.manifest import Distribution
from venvpack.proc import clean_python_env, run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = ["Installed", "install_requirements", "requested_names"]

log = logging.getLogger("venvpack")


@dataclass(frozen=True)
class Installed:
    """What ended up in site-packages."""

    distributions: tuple[Distribution, ...]
    """Every installed distribution, canonical names, sorted."""
    top_level: tuple[str, ...]
    """Canonical names of what the user asked for, in the order given."""
    commands: tuple[str, ...]
    """Console scripts of the top-level distributions present in ``bin/``."""

    def version_of(self, name: str) -> str | None:
        for dist in self.distributions:
            if dist.name == name:
                return dist.version
        return None


def requested_names(spec: BuildSpec) -> list[str]:
    """Canonical distribution names of the requested things, as far as they can be known."""
    names: list[str] = []
    if spec.project is not None:
        name = _project_name(spec.project)
        if name:
            names.append(name)
    lines = list(spec.requirements)
    for path in spec.requirement_files:
        lines += _requirement_file_lines(path)
    for text in lines:
        name = _requirement_name(text)
        if name and name not in names:
            names.append(name)
    return names


def _requirement_file_lines(path: Path) -> list[str]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read requirements file {path}: {exc.strerror}") from None
    out = []
    for line in raw.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            out.append(line)
    return out


def _requirement_name(text: str) -> str | None:
    path = Path(text)
    if text.endswith(".whl"):
        try:
            return str(parse_wheel_filename(path.name)[0])
        except InvalidWheelFilename:
            return None
    if ("/" in text or text.startswith(".")) and path.is_dir():
        return _project_name(path)
    try:
        return str(canonicalize_name(Requirement(text).name))
    except InvalidRequirement:
        return None


def _project_name(project: Path) -> str | None:
    try:
        data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = data.get("project", {}).get("name")
    return str(canonicalize_name(name)) if isinstance(name, str) else None


def _install_args(spec: BuildSpec) -> list[str]:
    args: list[str] = []
    for link in spec.find_links:
        args += ["--find-links", link]
    if spec.no_index:
        args.append("--no-index")
    for path in spec.requirement_files:
        if not path.is_file():
            raise ConfigError(f"requirements file {path} not found")
        args += ["-r", str(path)]
    args += list(spec.requirements)
    if spec.project is not None:
        args.append(str(spec.project))
    return args


def install_requirements(
    root: Path, python: Path, site_packages: Path, spec: BuildSpec
) -> Installed:
    """Install what ``spec`` asks for into the environment at ``root``."""
    args = _install_args(spec)
    uv = _find_uv() if spec.installer is not Installer.PIP else None
    if spec.installer is Installer.UV and uv is None:
        raise ToolMissingError("uv is not available; reinstall venvpack or use --installer pip")
    # On a terminal the installer's own progress display is the install step's progress
    # bar; in pipes and CI its output is kept and only its last line reaches an error.
    show = _interactive()
    if uv is not None:
        log.info("installing with uv: %s", " ".join(args))
        extra = {"UV_PYTHON_DOWNLOADS": "never"}
        if not show:
            extra["UV_NO_PROGRESS"] = "1"
        run(
            [uv, "pip", "install", "--python", python, *args],
            error=InstallError,
            what="installing requirements (uv)",
            env=clean_python_env(extra),
            cwd=root.parent,
            capture=not show,
        )
    else:
        log.info("installing with pip: %s", " ".join(args))
        with _pip_path() as pythonpath:
            env = clean_python_env({"PYTHONPATH": str(pythonpath)})
            run(
                [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "--no-compile",
                    "--disable-pip-version-check",
                    "--no-warn-script-location",
                    *args,
                ],
                error=InstallError,
                what="installing requirements (pip)",
                env=env,
                cwd=root.parent,
                capture=not show,
            )
    return _inventory(root, site_packages, requested_names(spec))


def _interactive() -> bool:
    """stderr is a terminal, not CI, and the user did not ask for -q."""
    return (
        sys.stderr.isatty()
        and not os.environ.get("CI")
        and logging.getLogger("venvpack").getEffectiveLevel() <= logging.INFO
    )


def _find_uv() -> str | None:
    """uv from the ``uv`` package next to venvpack, else on PATH; None when it cannot run."""
    try:
        from uv import find_uv_bin

        candidate: str | None = find_uv_bin()
    except (ImportError, FileNotFoundError):
        candidate = shutil.which("uv")
    if candidate is None or not os.access(candidate, os.X_OK):
        return None
    try:
        run([candidate, "--version"], error=InstallError, what="uv --version")
    except (InstallError, ToolMissingError):
        log.info("uv cannot run here; falling back to pip")
        return None
    return str(candidate)


@contextmanager
def _pip_path() -> Iterator[Path]:
    """A directory holding only venvpack's own pip, for the bundled interpreter's PYTHONPATH.

    pip vendors its dependencies, so nothing else of venvpack's environment leaks in.
    """
    spec = importlib.util.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        raise ToolMissingError("the pip fallback needs pip installed next to venvpack")
    pip_dir = Path(next(iter(spec.submodule_search_locations)))
    with tempfile.TemporaryDirectory(prefix="venvpack-pip-") as tmp:
        os.symlink(pip_dir, Path(tmp) / "pip")
        yield Path(tmp)


def _inventory(root: Path, site_packages: Path, requested: list[str]) -> Installed:
    dists: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions(path=[str(site_packages)]):
        name = dist.metadata["Name"]
        if name:
            dists[str(canonicalize_name(name))] = dist
    top = [n for n in requested if n in dists]
    commands: list[str] = []
    for name in top:
        for ep in dists[name].entry_points:
            is_command = ep.group == "console_scripts" and (root / "bin" / ep.name).exists()
            if is_command and ep.name not in commands:
                commands.append(ep.name)
    return Installed(
        distributions=tuple(
            Distribution(name=n, version=d.version) for n, d in sorted(dists.items())
        ),
        top_level=tuple(top),
        commands=tuple(commands),
    )
