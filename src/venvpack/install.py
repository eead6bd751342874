"""Stage ``install``: put the requirements into the environment, with uv or pip.

uv (a dependency of venvpack) is many times faster; where it cannot run, pip runs under
the bundled interpreter itself, so extension modules are built for the right Python
either way. Both only see the build-time environment; ``relocate`` cleans up after them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from venvpack import ui
from venvpack.config import BuildSpec, Installer, Pyproject, read_pyproject
from venvpack.errors import ConfigError, InstallError, ToolMissingError
from venvpack.manifest import Distribution, InputFile, InstallSource
from venvpack.proc import clean_python_env, run
from venvpack.requirements_file import absolute_copy, requirement_lines
from venvpack.validate import installer_argument, redact_urls

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ForeignTarget",
    "InstallPlan",
    "Installed",
    "LockedDependencies",
    "export_uv_lock",
    "install_dependencies",
    "install_project",
    "install_requirements",
    "is_pylock",
    "locked_dependencies",
    "plan_install",
    "requested_names",
    "uv_environment",
    "workspace_lock",
]

log = logging.getLogger("venvpack")


@dataclass(frozen=True)
class ForeignTarget:
    """Wheels for another machine's interpreter, which cannot run here: uv chooses them for
    its platform and version and installs them into the environment's prefix, run by an
    interpreter of this machine with the same major and minor version (the prefix then gets
    the same ``lib/python3.X/site-packages`` layout as the environment's own)."""

    python: Path
    """This machine's interpreter uv runs (and builds pure-Python sdists with)."""
    platform: str
    """uv's ``--python-platform`` (``aarch64-manylinux_2_36``)."""
    version: str
    """The target interpreter's version, for markers (``python_full_version``)."""

    def machine(self) -> str:
        return self.platform.split("-", 1)[0]


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
        name = _project_name(spec.project, spec.pyproject)
        if name:
            names.append(name)
    lines = list(spec.requirements)
    for path in spec.requirement_files:
        if not is_pylock(path):
            lines += requirement_lines(path)
    for text in lines:
        name = _requirement_name(text)
        if name and name not in names:
            names.append(name)
    return names


def _requirement_name(text: str) -> str | None:
    path = Path(text)
    if text.endswith(".whl"):
        try:
            return str(parse_wheel_filename(path.name)[0])
        except InvalidWheelFilename:
            return None
    if _directory(text) is not None:
        return _project_name(path)
    try:
        return str(canonicalize_name(Requirement(text).name))
    except InvalidRequirement:
        return None


def _project_name(project: Path, pyproject: Pyproject | None = None) -> str | None:
    """The name ``project`` declares; ``pyproject``: its file as the command already read it."""
    try:
        name = (pyproject or read_pyproject(project)).name
    except ConfigError:
        return None
    return str(canonicalize_name(name)) if name else None


# --- what to install from: a lock, or requirements resolved now ------------------------------


def is_pylock(path: Path) -> bool:
    """PEP 751 names lock files ``pylock.toml`` or ``pylock.<name>.toml``."""
    return path.name == "pylock.toml" or (
        path.name.startswith("pylock.") and path.name.endswith(".toml")
    )


@dataclass(frozen=True)
class InstallPlan:
    """Where the installed set comes from, decided (and checked) before the build starts."""

    source: InstallSource
    """What the manifest records."""
    uv_lock: Path | None = None
    """The project's ``uv.lock``, exported to a PEP 751 lock at install time."""
    pylock: Path | None = None
    """A PEP 751 lock installed as it is."""

    @property
    def locked(self) -> bool:
        return self.uv_lock is not None or self.pylock is not None


def plan_install(spec: BuildSpec) -> InstallPlan:
    """Choose the lock (``uv.lock``, then ``pylock.toml``, then the uv workspace's
    ``uv.lock``) or plain resolution for ``spec``.

    A lock is the author's tested set, so it wins unless ``--no-lock``; requirements given
    on top of a lock would be resolved around it and change it, so they are refused, as is
    a stale ``pylock.toml`` and a project directory with a lock given as a requirement.
    Resolving afresh where a lock exists is a warning ``-q`` does not hide.
    """
    for path in (*spec.requirement_files, *spec.constraints):
        if not path.is_file():
            raise ConfigError(f"{path} not found")
    for requirement in spec.requirements:
        installer_argument(requirement)
    pylocks = [p for p in spec.requirement_files if is_pylock(p)]
    uv_lock = pylock = None
    if len(pylocks) > 1:
        raise ConfigError("give at most one pylock.toml; a lock is a whole environment")
    if spec.use_lock:
        _refuse_locked_directories(spec.requirements)
    if pylocks:
        pylock = pylocks[0]
    elif spec.project is not None and spec.use_lock:
        if (spec.project / "uv.lock").is_file():
            uv_lock = spec.project / "uv.lock"
        elif (spec.project / "pylock.toml").is_file():
            pylock = spec.project / "pylock.toml"
        else:
            uv_lock = workspace_lock(spec.project)
    if pylock is not None and spec.project is not None:
        check_pylock(pylock, spec)
    lock = uv_lock or pylock
    if lock is None:
        if spec.project is not None and _lock_of(spec.project) is not None:
            # --no-lock on purpose, but a lock exists: the set shipped is not the tested one.
            log.warning(
                "%s is not used: the requirements are resolved afresh (--no-lock)",
                _lock_of(spec.project),
                extra=ui.ALWAYS,
            )
        for text, directory_lock in _locked_directories(spec.requirements):
            log.warning(
                "%s is not used: %s is resolved afresh (--no-lock)",
                directory_lock,
                text,
                extra=ui.ALWAYS,
            )
        files = [*spec.requirement_files, *spec.constraints]
        return InstallPlan(
            source=InstallSource(
                kind="resolved",
                files=tuple(_input_file(p, spec.project) for p in files),
                extras=_extras(spec),
                groups=spec.groups,
            )
        )
    others = [r for r in spec.requirements] + [
        p.name for p in spec.requirement_files if not is_pylock(p)
    ]
    if others or spec.constraints:
        given = ", ".join(others) or "--constraint"
        raise ConfigError(
            f"{given}: cannot be added to the locked set of {lock.name} without changing it; "
            "add them to the project (uv add), or pass --no-lock to resolve everything afresh"
        )
    if spec.installer is Installer.PIP:
        raise ConfigError(f"installing from {lock.name} needs uv; pass --no-lock to use pip")
    return InstallPlan(
        source=InstallSource(
            kind="uv.lock" if uv_lock else "pylock",
            files=(_input_file(lock, spec.project),),
            extras=_extras(spec),
            groups=spec.groups,
        ),
        uv_lock=uv_lock,
        pylock=pylock,
    )


def _lock_of(project: Path) -> Path | None:
    """The lock a build of ``project`` would use without ``--no-lock``."""
    for name in ("uv.lock", "pylock.toml"):
        if (project / name).is_file():
            return project / name
    return workspace_lock(project)


def _directory(text: str) -> Path | None:
    """The local directory requirement ``text`` names (as uv and pip read it), if any."""
    path = Path(text)
    return path if ("/" in text or text.startswith(".")) and path.is_dir() else None


def _locked_directories(requirements: tuple[str, ...]) -> list[tuple[str, Path]]:
    """Project directories among ``requirements`` that hold (or share) a lock, with it."""
    found = []
    for text in requirements:
        directory = _directory(text)
        lock = _lock_of(directory) if directory is not None else None
        if lock is not None:
            found.append((text, lock))
    return found


def _refuse_locked_directories(requirements: tuple[str, ...]) -> None:
    """A project directory given as a requirement is resolved afresh by the installer,
    whatever lock it holds: say how to build it from its lock instead."""
    for text, lock in _locked_directories(requirements):
        raise ConfigError(
            f"{text}: this project has {lock.name}, which a requirement ignores; "
            f"give it as --project {text} to install its lock, or pass --no-lock"
        )


def workspace_lock(project: Path) -> Path | None:
    """The ``uv.lock`` of the uv workspace ``project`` is a member of, found as uv finds it:
    the nearest parent whose ``pyproject.toml`` has ``[tool.uv.workspace]``, if its
    ``members`` globs (less its ``exclude`` globs) take in ``project``."""
    project = project.resolve()
    for parent in (project, *project.parents):
        data = _toml(parent / "pyproject.toml")
        tool = data.get("tool")
        uv = tool.get("uv") if isinstance(tool, dict) else None
        table = uv.get("workspace") if isinstance(uv, dict) else None
        if not isinstance(table, dict):
            continue
        if parent == project:
            return None  # a workspace's root: its lock is its own uv.lock
        members = _globbed(parent, table.get("members"))
        if project in members and project not in _globbed(parent, table.get("exclude")):
            lock = parent / "uv.lock"
            return lock if lock.is_file() else None
        return None  # uv stops at the nearest workspace, member or not
    return None


def _globbed(root: Path, patterns: object) -> set[Path]:
    if not isinstance(patterns, list):
        return set()
    return {p.resolve() for g in patterns if isinstance(g, str) for p in root.glob(g)}


def _toml(path: Path) -> dict[str, object]:
    """``path`` parsed; an absent or unreadable file reads as empty (it is not ours to judge)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def check_pylock(pylock: Path, spec: BuildSpec) -> None:
    """Refuse a project's ``pylock.toml`` that no longer matches its ``pyproject.toml``, as
    ``uv export --locked`` refuses a stale ``uv.lock``: every dependency the project declares
    (and the extras and groups asked for) must be locked at a version it accepts, and the
    lock's requires-python must be the project's. Requirements with a marker are left to
    the installer: whether they apply depends on the target."""
    assert spec.project is not None
    fix = "re-export it (uv export --format pylock.toml) or pass --no-lock"
    data = _toml(spec.project / "pyproject.toml")
    project = data.get("project")
    if not isinstance(project, dict):
        return
    lock = _toml(pylock)
    locked: dict[str, list[str | None]] = {}
    packages = lock.get("packages")
    for package in packages if isinstance(packages, list) else []:
        if isinstance(package, dict) and isinstance(package.get("name"), str):
            version = package.get("version")
            name = str(canonicalize_name(package["name"]))
            locked.setdefault(name, []).append(version if isinstance(version, str) else None)
    declared = _specifier(project.get("requires-python"))
    locked_python = lock.get("requires-python")
    if declared is not None and locked_python is not None and _specifier(locked_python) != declared:
        raise ConfigError(
            f"{pylock} is out of date: requires-python is {locked_python}, "
            f"pyproject.toml says {project.get('requires-python')}; {fix}"
        )
    for text in _declared_requirements(project, data.get("dependency-groups"), spec):
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue  # the installer names it
        if requirement.marker is not None:
            continue
        name = str(canonicalize_name(requirement.name))
        versions = locked.get(name)
        accepted = versions is not None and any(
            v is None or requirement.specifier.contains(v, prereleases=True) for v in versions
        )
        if not accepted:
            held = (
                f"holds {name} {', '.join(v or '?' for v in versions)}"
                if versions
                else (f"does not hold {name}")
            )
            raise ConfigError(
                f"{pylock} is out of date: pyproject.toml requires {text}, the lock {held}; {fix}"
            )


def _declared_requirements(
    project: dict[str, object], groups: object, spec: BuildSpec
) -> list[str]:
    """The project's dependencies, those of the extras asked for and of the groups asked for."""
    texts = _strings(project.get("dependencies"))
    optional = project.get("optional-dependencies")
    if isinstance(optional, dict):
        wanted = {str(canonicalize_name(e)) for e in spec.extras}
        for extra, requirements in optional.items():
            if spec.all_extras or str(canonicalize_name(extra)) in wanted:
                texts += _strings(requirements)
    if isinstance(groups, dict):
        for group in spec.groups:
            texts += _strings(groups.get(group))  # an include-group table is not a string
    return texts


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _specifier(value: object) -> SpecifierSet | None:
    try:
        return SpecifierSet(value) if isinstance(value, str) else None
    except InvalidSpecifier:
        return None


def _extras(spec: BuildSpec) -> tuple[str, ...]:
    if spec.all_extras:
        return ("*",)
    return spec.extras


def _input_file(path: Path, project: Path | None) -> InputFile:
    """``path`` by its name in the project (or its base name) and its sha256: no host path."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    name = path.name
    if project is not None and project in path.parents:
        name = path.relative_to(project).as_posix()
    return InputFile(name=name, sha256=digest)


# --- installer arguments and environment ----------------------------------------------------


def _index_args(spec: BuildSpec, uv: bool, constraints: list[Path]) -> list[str]:
    args: list[str] = []
    if spec.index_url:
        args += ["--index-url", spec.index_url]
    for url in spec.extra_index_urls:
        args += ["--extra-index-url", url]
    for link in spec.find_links:
        args += ["--find-links", link]
    if spec.no_index:
        args.append("--no-index")
    for path in constraints:
        args += ["--constraint", str(path)]
    if spec.pre:
        args += ["--prerelease", "allow"] if uv else ["--pre"]
    return args


def _resolve_args(spec: BuildSpec, files: list[Path]) -> list[str]:
    """What to install when there is no lock: the requirements ``files`` (the spec's, their
    relative paths made absolute), the groups, then ``--`` and the requirements and project,
    so that nothing given as a requirement can be read as an option."""
    args: list[str] = []
    for path in files:
        args += ["-r", str(path)]
    for group in spec.groups:
        if spec.project is None:
            raise ConfigError("--group selects a dependency group of a project; give --project")
        args += ["--group", group]  # from the pyproject.toml where the installer runs
    args.append("--")
    args += [installer_argument(r) for r in spec.requirements]
    if spec.project is not None:
        extras = _project_extras(spec)
        name = _project_name(spec.project, spec.pyproject)
        if extras and name:
            # A direct reference is how both uv and pip take extras of a local project.
            args.append(f"{name}[{','.join(extras)}] @ {spec.project.as_uri()}")
        elif extras:
            raise ConfigError("--extra needs a project with a [project] name")
        else:
            args.append(str(spec.project))
    elif spec.extras or spec.all_extras:
        raise ConfigError("--extra and --all-extras select extras of a project; give --project")
    return args


def _project_extras(spec: BuildSpec) -> list[str]:
    if spec.project is None:
        return []
    declared = (spec.pyproject or read_pyproject(spec.project)).optional_dependencies
    if spec.all_extras:
        return list(declared)
    for extra in spec.extras:
        if str(canonicalize_name(extra)) not in {str(canonicalize_name(d)) for d in declared}:
            known = ", ".join(declared) or "none"
            raise ConfigError(f"--extra {extra}: the project declares no such extra (has: {known})")
    return list(spec.extras)


def _selection_args(spec: BuildSpec) -> list[str]:
    """Extras and groups, as uv's export and pylock install take them."""
    args = ["--all-extras"] if spec.all_extras else []
    for extra in spec.extras:
        args += ["--extra", extra]
    for group in spec.groups:
        args += ["--group", group]
    return args


def uv_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Variables for uv: never download an interpreter, draw no progress (its output is
    kept, see :func:`_run_installer`), and honour pip's index variables.

    ``PIP_INDEX_URL`` and ``PIP_EXTRA_INDEX_URL`` are what many CI systems set for a private
    index; uv reads only its own names, so they are carried over unless those are set.
    """
    extra = {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    pairs = (("PIP_INDEX_URL", "UV_INDEX_URL"), ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"))
    for pip_name, uv_name in pairs:
        uv_names = (uv_name, "UV_DEFAULT_INDEX") if uv_name == "UV_INDEX_URL" else (uv_name,)
        if environ.get(pip_name) and not any(environ.get(n) for n in uv_names):
            extra[uv_name] = environ[pip_name]
    return extra


# --- installing ---------------------------------------------------------------------------------


def install_requirements(
    root: Path,
    python: Path,
    site_packages: Path,
    spec: BuildSpec,
    plan: InstallPlan,
    workdir: Path,
    target: ForeignTarget | None = None,
) -> Installed:
    """Install what ``plan`` says for ``spec`` into the environment at ``root``.

    ``workdir`` is a private scratch directory (the exported lock goes there). With
    ``target`` the wheels are another machine's, installed by uv (:class:`ForeignTarget`).
    """
    uv = _find_uv() if spec.installer is not Installer.PIP else None
    if spec.installer is Installer.UV and uv is None:
        raise ToolMissingError("uv is not available; reinstall venvpack or use --installer pip")
    if plan.locked and uv is None:
        raise ToolMissingError("installing from a lock file needs uv, which cannot run here")
    # uv reads its configuration (uv.toml, [tool.uv]) from where it runs: the project.
    cwd = spec.project or Path.cwd()
    installed_from = plan.pylock  # the PEP 751 lock uv installs: given, or exported below
    # Relative paths in -r and -c files mean paths beside the file (requirements_file).
    inputs = workdir / "requirements"
    files = [absolute_copy(p, inputs) for p in spec.requirement_files if not is_pylock(p)]
    constraints = [absolute_copy(p, inputs) for p in spec.constraints]
    into = _into(root, python, target)
    if target is not None:
        python = target.python
    if uv is not None:
        env = clean_python_env(uv_environment(os.environ))
        if plan.uv_lock is not None:
            lock = export_uv_lock(uv, plan.uv_lock, python, spec, workdir, env)
            args = ["-r", str(lock), *_PYLOCK, *_index_args(spec, True, constraints)]
            installed_from = lock
        elif plan.pylock is not None:
            args = ["-r", str(plan.pylock), *_PYLOCK, "--no-editable", *_selection_args(spec)]
            args += _index_args(spec, True, constraints)
        else:
            args = [*_index_args(spec, True, constraints), *_resolve_args(spec, files)]
        _run_installer([uv, "pip", "install", *into, *args], "uv", env, cwd, target)
        if plan.pylock is not None and spec.project is not None:
            # A project's pylock.toml may pin only its dependencies: the project goes on top.
            name = _project_name(spec.project, spec.pyproject)
            if name and not _has(site_packages, name):
                argv = [uv, "pip", "install", *into, "--no-deps"]
                _run_installer([*argv, "--", str(spec.project)], "uv", env, cwd, target)
    elif target is not None:
        raise ToolMissingError(f"installing wheels for {target.machine()} needs uv")
    else:
        args = [*_index_args(spec, False, constraints), *_resolve_args(spec, files)]
        with _pip_path() as pythonpath:
            env = clean_python_env({"PYTHONPATH": str(pythonpath)})
            pip = [
                str(python),
                "-m",
                "pip",
                "install",
                "--no-compile",
                "--disable-pip-version-check",
                "--no-warn-script-location",
            ]
            _run_installer([*pip, *args], "pip", env, cwd)
    locked = locked_files(installed_from) if installed_from is not None else {}
    return _inventory(root, site_packages, requested_names(spec), locked)


# --- a locked project in two steps: its dependencies (reusable), then the project ----------


@dataclass(frozen=True)
class LockedDependencies:
    """A uv project's locked set without the project itself: what the reusable base of its
    environment holds (:mod:`venvpack.envcache`)."""

    lock: Path
    """The exported PEP 751 lock of the dependencies."""
    packages: str
    """What the lock pins, as canonical text (names, versions, files and their hashes; not
    the export's header, which names where it was written): the base's identity."""


def locked_dependencies(
    spec: BuildSpec, plan: InstallPlan, python: Path, workdir: Path
) -> LockedDependencies | None:
    """The dependencies of ``spec``'s uv project as locked, when the build can be split into
    them and the project: a ``uv.lock`` installed by uv, every package a file from an index
    (its hash says what it is). None otherwise (no lock, pip, a path, VCS or workspace
    dependency, whose content no lock entry pins)."""
    if plan.uv_lock is None or spec.project is None or spec.installer is Installer.PIP:
        return None
    uv = _find_uv()
    if uv is None:
        return None
    env = clean_python_env(uv_environment(os.environ))
    lock = export_uv_lock(uv, plan.uv_lock, python, spec, workdir, env, project=False)
    packages = _toml(lock).get("packages", [])
    if not isinstance(packages, list) or not all(
        isinstance(p, dict) and not {"directory", "vcs", "archive"} & set(p) for p in packages
    ):
        return None
    text = json.dumps(packages, sort_keys=True, default=str)
    return LockedDependencies(lock, text)


def install_dependencies(
    root: Path,
    python: Path,
    spec: BuildSpec,
    dependencies: LockedDependencies,
    workdir: Path,
    target: ForeignTarget | None = None,
) -> None:
    """Install the locked dependencies of a project, not the project."""
    uv = _find_uv()
    if uv is None:
        raise ToolMissingError("installing from a lock file needs uv, which cannot run here")
    constraints = [absolute_copy(p, workdir / "requirements") for p in spec.constraints]
    env = clean_python_env(uv_environment(os.environ))
    args = ["-r", str(dependencies.lock), *_PYLOCK, *_index_args(spec, True, constraints)]
    argv = [uv, "pip", "install", *_into(root, python, target), *args]
    _run_installer(argv, "uv", env, spec.project or Path.cwd(), target)


def install_project(
    root: Path,
    python: Path,
    site_packages: Path,
    spec: BuildSpec,
    dependencies: LockedDependencies,
    target: ForeignTarget | None = None,
) -> Installed:
    """Install the project itself over its installed dependencies (built into a wheel, not
    editable), and take the inventory of the whole environment."""
    uv = _find_uv()
    assert uv is not None
    assert spec.project is not None
    env = clean_python_env(uv_environment(os.environ))
    argv = [uv, "pip", "install", *_into(root, python, target), "--no-deps"]
    argv += [*_index_args(spec, True, []), "--", str(spec.project)]
    _run_installer(argv, "uv", env, spec.project, target)
    locked = locked_files(dependencies.lock)
    return _inventory(root, site_packages, requested_names(spec), locked)


def _into(root: Path, python: Path, target: ForeignTarget | None) -> list[str]:
    """uv's arguments for where it installs: the environment's interpreter, or for another
    machine this machine's interpreter into the environment's prefix, for the target."""
    if target is None:
        return ["--python", str(python)]
    return [
        *("--python", str(target.python), "--prefix", str(root)),
        *("--python-platform", target.platform, "--python-version", target.version),
    ]


def locked_files(pylock: Path) -> dict[str, list[tuple[str, str]]]:
    """``name -> [(file name, sha256)]``: every wheel, then the sdist, a PEP 751 lock names
    for each package, so the manifest can say which file was installed. File names come
    from ``name`` or the URL's last segment; the URL itself (maybe with credentials) is
    never kept."""
    found: dict[str, list[tuple[str, str]]] = {}
    packages = _toml(pylock).get("packages")
    for package in packages if isinstance(packages, list) else ():
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            continue
        wheels = package.get("wheels")
        files = [*(wheels if isinstance(wheels, list) else ()), package.get("sdist")]
        entries = found.setdefault(str(canonicalize_name(package["name"])), [])
        for item in files:
            if not isinstance(item, dict):
                continue
            hashes = item.get("hashes")
            sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
            name = item.get("name") or str(item.get("url", item.get("path", ""))).split("/")[-1]
            if isinstance(sha256, str) and isinstance(name, str) and name:
                entries.append((name.split("#")[0].split("?")[0], sha256))
    return found


def installed_file(
    dist: importlib.metadata.Distribution, candidates: list[tuple[str, str]]
) -> tuple[str, str] | None:
    """Which of the lock's ``candidates`` (file name, sha256) ``dist`` was installed from:
    the wheel whose tags are those its ``WHEEL`` file lists (the one the installer chose
    for this interpreter), else the sdist when it was built from one."""
    text = dist.read_text("WHEEL") or ""
    tags = {line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")}
    sdists = []
    for name, sha256 in candidates:
        if not name.endswith(".whl"):
            sdists.append((name, sha256))
            continue
        try:
            wheel_tags = parse_wheel_filename(name)[3]
        except InvalidWheelFilename:
            continue
        if tags and {str(t) for t in wheel_tags} == tags:
            return name, sha256
    return sdists[0] if len(sdists) == 1 else None


_PYLOCK = ("--preview-features", "pylock")
"""uv installs a PEP 751 lock as a preview feature: asked for on purpose, so its "experimental"
warning is not printed above every error an install from a lock can end in."""


def export_uv_lock(
    uv: str,
    lock: Path,
    python: Path,
    spec: BuildSpec,
    workdir: Path,
    env: Mapping[str, str],
    *,
    project: bool = True,
) -> Path:
    """The locked set of ``lock`` as a PEP 751 ``pylock.toml`` in ``workdir``.

    ``--locked`` makes uv refuse a lock that no longer matches ``pyproject.toml`` instead of
    silently locking again; the project itself is exported as a non-editable directory (it
    is built into a wheel at install); development groups are left out unless asked for.
    In a workspace member (``lock`` is the workspace's) uv finds the workspace from the
    member's directory and exports the member's locked set.
    """
    out = workdir / ("pylock.toml" if project else "pylock.dependencies.toml")
    directory = spec.project or lock.parent
    argv = [
        uv,
        "export",
        "--project",
        str(directory),
        "--locked",
        "--format",
        "pylock.toml",
        "--no-editable",
        "--no-default-groups",
        "--python",
        str(python),
        "--quiet",
        "--output-file",
        str(out),
        *_selection_args(spec),
        *(() if project else ("--no-emit-project",)),
    ]
    log.debug("exporting %s", lock.name)
    run(
        argv,
        error=InstallError,
        what=f"exporting the locked set of {lock}",
        env=env,
        cwd=directory,
        full_output=True,
    )
    return out


def _run_installer(
    argv: list[str],
    tool: str,
    env: Mapping[str, str],
    cwd: Path,
    target: ForeignTarget | None = None,
) -> None:
    """Run the installer with its output kept: the install step's progress is venvpack's own
    (:mod:`venvpack.ui`); the output is the error's detail when it fails, and with ``-v``
    it is logged once it succeeds. For another machine (``target``), a distribution uv
    could only build here from its sdist into a wheel for this machine is named."""
    shown = redact_urls(" ".join(argv[argv.index("install") + 1 :]))
    log.debug("installing with %s: %s", tool, shown)
    try:
        done = run(
            argv,
            error=InstallError,
            what=f"installing requirements ({tool})",
            env=env,
            cwd=cwd,
            full_output=True,
        )
    except InstallError as exc:
        # The installer may quote a URL it was given, with the token in it.
        detail = redact_urls(exc.detail)
        built = _BUILT_FOR_HOST.search(detail) if target is not None else None
        if target is not None and built is not None:
            name, version, tags = _wheel_parts(built.group(1))
            raise InstallError(
                f"{name} {version} has no wheel for {target.platform}, and its sdist builds "
                f"a {tags} wheel on this machine: only pure-Python sdists can be built for "
                f"another machine (build a wheel for {target.machine()} and give it with "
                "--find-links)",
                detail=detail,
            ) from None
        raise InstallError(str(exc), detail=detail) from None
    output = redact_urls((done.stdout or "") + (done.stderr or "")).strip()
    if output:
        log.debug("%s said:\n%s", tool, textwrap.indent(output, "    "))


_BUILT_FOR_HOST = re.compile(r"The\s+built\s+wheel\s+`([^`]+\.whl)`\s+is\s+not\s+compatible\b")
"""uv's refusal of a wheel it built from an sdist for the wrong platform (uv wraps its
messages to the terminal's width, ``COLUMNS``: any space may be a line break)."""


def _wheel_parts(filename: str) -> tuple[str, str, str]:
    """(name, version, ``interpreter-abi-platform``) of a wheel file name."""
    try:
        name, version, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return filename, "", "?"
    tag = sorted(tags, key=str)[0]
    return str(name), str(version), str(tag)


def _has(site_packages: Path, name: str) -> bool:
    return any(
        str(canonicalize_name(d.metadata["Name"] or "")) == name
        for d in importlib.metadata.distributions(path=[str(site_packages)])
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


def _inventory(
    root: Path,
    site_packages: Path,
    requested: list[str],
    locked: Mapping[str, list[tuple[str, str]]] | None = None,
) -> Installed:
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
    made = []
    for name, dist in sorted(dists.items()):
        chosen = installed_file(dist, list((locked or {}).get(name, ())))
        file, sha256 = chosen if chosen else (None, None)
        made.append(Distribution(name=name, version=dist.version, sha256=sha256, file=file))
    return Installed(
        distributions=tuple(made),
        top_level=tuple(top),
        commands=tuple(commands),
    )
