"""Stage ``config``: command-line flags and ``[tool.venvpack]`` become one frozen BuildSpec.

Flags win over pyproject settings; unknown pyproject keys are an error, so a typo never
silently changes nothing.
"""

from __future__ import annotations

import difflib
import enum
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from venvpack.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = [
    "BuildSpec",
    "Installer",
    "LinkMode",
    "Pyproject",
    "check_text",
    "format_keys",
    "format_settings",
    "load_pyproject_settings",
    "merge_pyproject",
    "printable",
    "python_version_file",
    "read_pyproject",
    "validate_name",
    "validate_version",
    "with_project_defaults",
]


class LinkMode(str, enum.Enum):
    """How ``bin/python`` reaches the bundled interpreter (DESIGN §2, link modes)."""

    SYMLINK = "symlink"
    """Relative symlink into ``python/bin``: runs wherever the tree is moved."""
    COPY = "copy"
    """A real copy in ``bin/``; ``pyvenv.cfg`` names the absolute ``home``: runs at the prefix."""
    HARDLINK = "hardlink"
    """Like copy, but a hardlink to ``python/bin/python3.X`` (no extra space)."""


class Installer(str, enum.Enum):
    AUTO = "auto"
    UV = "uv"
    PIP = "pip"


_NAME_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def check_text(value: str, what: str) -> str:
    """``value`` if it is text: bytes that are not UTF-8 (in argv or the environment) reach
    Python as lone surrogates, which can be neither rendered nor written into any file."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{what}: '{printable(value)}' is not valid UTF-8 text") from None
    return value


def printable(value: str) -> str:
    """``value`` for a message: undecodable bytes (surrogateescape) shown as ``\xff``,
    control characters as ``\x1b``."""
    from venvpack.ui import printable as shown

    return shown(value)


def validate_name(name: str) -> str:
    """An application name usable as a directory, a Debian and an RPM package name."""
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"invalid application name {name!r}: use lower-case letters, digits and + . - "
            "(at least two characters, starting with a letter or digit); set one with --name"
        )
    return name


def validate_version(version: str) -> str:
    """A PEP 440 version, which the deb and rpm version maps need."""
    try:
        Version(version)
    except InvalidVersion:
        raise ConfigError(
            f"invalid version {version!r}: use a PEP 440 version such as 1.2.3 or 2.0rc1"
        ) from None
    if version != version.strip() or "\n" in version:
        raise ConfigError(f"invalid version {version!r}: no spaces or line breaks")
    return version


@dataclass(frozen=True)
class BuildSpec:
    """Everything the build pipeline needs, decided before any work starts."""

    requirements: tuple[str, ...] = ()
    """Anything pip accepts: specifiers, local project directories, wheel files."""
    requirement_files: tuple[Path, ...] = ()
    project: Path | None = None
    """A project directory installed (non-editable) with its dependencies."""
    python: str | None = None
    """A ``--python`` request (``python_request.parse_request``); None: the interpreter
    running venvpack."""
    name: str | None = None
    """Application name; None: derived from the project or the first requirement."""
    prefix: str | None = None
    """Absolute install location; None: ``/opt/<name>``."""
    link_mode: LinkMode = LinkMode.SYMLINK
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    with_tk: bool = False
    keep_dev: bool = False
    installer: Installer = Installer.AUTO
    """uv when it can run, else pip under the bundled interpreter; tests force either."""
    version: str | None = None
    """PEP 440 version of the application; None: the main distribution's installed version."""
    use_lock: bool = True
    """Install exactly what the project's ``uv.lock`` or ``pylock.toml`` pins, when it has one;
    False (``--no-lock``) resolves the requirements afresh."""
    extras: tuple[str, ...] = ()
    """Optional-dependency groups of the project to install (``--extra``)."""
    all_extras: bool = False
    groups: tuple[str, ...] = ()
    """Dependency groups (PEP 735) to install; development groups are left out otherwise."""
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    constraints: tuple[Path, ...] = ()
    pre: bool = False
    """Allow pre-releases when resolving."""
    requires_python: str | None = None
    """The project's ``requires-python``: the default interpreter request, and checked
    against whichever interpreter is chosen."""
    max_glibc: str | None = None
    """``X.Y``: stop before packing when the tree needs a newer glibc (``--max-glibc``)."""
    exclude_modules: tuple[str, ...] = ()
    """Stdlib extension modules to leave out of the runtime, with whatever only they needed
    grafted (``--exclude-module``)."""

    def install_prefix(self, name: str) -> str:
        return self.prefix or f"/opt/{name}"


_PYPROJECT_KEYS = {
    "name": str,
    "prefix": str,
    "python": str,
    "python-link": str,
    "with-tk": bool,
    "keep-dev": bool,
    "requirements": list,
    "find-links": list,
    "version": str,
    "lock": bool,
    "extras": list,
    "all-extras": bool,
    "groups": list,
    "index-url": str,
    "extra-index-urls": list,
    "constraints": list,
    "pre": bool,
    "max-glibc": str,
    "exclude-modules": list,
}


@dataclass(frozen=True)
class Pyproject:
    """What venvpack reads from a project's ``pyproject.toml``, parsed once."""

    name: str | None
    """``[project].name`` as written (None for a project with only a setup.py)."""
    requires_python: str | None
    optional_dependencies: tuple[str, ...]
    """Names of the extras ``[project.optional-dependencies]`` declares."""
    settings: Mapping[str, Any]
    """``[tool.venvpack]``, checked against the known keys and their types."""


def read_pyproject(project: Path) -> Pyproject:
    """Parse ``project/pyproject.toml`` (an absent file reads as empty)."""
    path = project / "pyproject.toml"
    if not path.is_file():
        return Pyproject(None, None, (), {})
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("project", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [project] must be a table")
    name = table.get("name")
    requires = table.get("requires-python")
    extras = table.get("optional-dependencies", {})
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{path}: project.name must be a string")
    if requires is not None and not isinstance(requires, str):
        raise ConfigError(f"{path}: project.requires-python must be a string")
    if not isinstance(extras, dict):
        raise ConfigError(f"{path}: project.optional-dependencies must be a table")
    return Pyproject(name, requires, tuple(sorted(extras)), _check_settings(path, data))


def load_pyproject_settings(project: Path) -> Mapping[str, Any]:
    """``[tool.venvpack]`` of ``project/pyproject.toml``, checked against the known keys."""
    return read_pyproject(project).settings


def format_keys() -> dict[str, dict[str, type]]:
    """The settings of each format's own options, ``{format: {key: type}}``: the key is the
    option's name with ``-`` (``entry-points``, ``tree-only``), the type ``list`` for a
    repeatable option, ``bool`` for a flag, else ``int`` or ``str``."""
    from venvpack.emit import FORMATS, load_format  # the registry imports this module

    keys: dict[str, dict[str, type]] = {}
    for name in FORMATS:
        keys[name] = {
            option.name.replace("_", "-"): (
                list if option.multiple else bool if option.is_flag else option.type
            )
            for option in load_format(name).options
        }
    return keys


def _check_settings(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    """``[tool.venvpack]``: build settings and any format's settings, and one table per format
    (``[tool.venvpack.deb]``) holding build settings and that format's. Unknown keys and
    wrong types are one-line errors that name the file, the key and the closest valid key."""
    tool = data.get("tool", {})
    table = tool.get("venvpack", {}) if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.venvpack] must be a table")
    formats = format_keys()
    shared = dict(_PYPROJECT_KEYS)
    for keys in formats.values():
        shared.update(keys)
    for key, value in table.items():
        if key in formats and isinstance(value, dict):
            allowed = {**_PYPROJECT_KEYS, **formats[key]}
            for sub, item in value.items():
                _check_setting(path, f"tool.venvpack.{key}.{sub}", item, allowed.get(sub), allowed)
            continue
        _check_setting(path, f"tool.venvpack.{key}", value, shared.get(key), [*shared, *formats])
    return table


def _check_setting(
    path: Path, where: str, value: object, expected: type | None, valid: Iterable[str]
) -> None:
    if expected is None:
        key = where.rpartition(".")[2]
        close = difflib.get_close_matches(key, list(valid), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"{path}: unknown key {where}{hint}")
    # A bool is an int to Python, not to a reader of pyproject.toml.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{path}: {where} must be a {expected.__name__}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{path}: {where} must be a list of strings")


def format_settings(project: Path, fmt: str) -> dict[str, Any]:
    """The values ``[tool.venvpack]`` and ``[tool.venvpack.<fmt>]`` of ``project`` give the
    options of the format ``fmt``, by option name (``entry_points``); the format's table wins.
    Source paths of ``files`` and ``config-files`` are relative to the project."""
    settings = read_pyproject(project).settings
    keys = format_keys()[fmt]
    raw = settings.get(fmt)
    table: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    values: dict[str, Any] = {}
    for source in (settings, table):
        for key, value in source.items():
            if key not in keys:
                continue
            if key in ("files", "config-files"):
                value = [_source_beside(project, item) for item in value]
            values[key.replace("-", "_")] = tuple(value) if isinstance(value, list) else value
    return values


def _source_beside(project: Path, value: str) -> str:
    source, sep, rest = value.partition(":")
    return f"{_beside(project, source)}{sep}{rest}" if sep else value


def python_version_file(project: Path) -> str | None:
    """The interpreter request in ``project/.python-version`` (uv's and pyenv's pin file):
    its first line that is neither blank nor a comment."""
    try:
        text = (project / ".python-version").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {project / '.python-version'}: {exc}") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line
    return None


def merge_pyproject(
    spec: BuildSpec, settings: Mapping[str, Any], given: Sequence[str]
) -> BuildSpec:
    """Apply pyproject ``settings`` to ``spec`` for each field not ``given`` as a flag."""
    changes: dict[str, Any] = {}
    simple = {
        "name": "name",
        "prefix": "prefix",
        "python": "python",
        "with-tk": "with_tk",
        "keep-dev": "keep_dev",
        "version": "version",
        "all-extras": "all_extras",
        "index-url": "index_url",
        "pre": "pre",
        "max-glibc": "max_glibc",
    }
    for key, attr in simple.items():
        if key in settings and attr not in given:
            changes[attr] = settings[key]
    if "python-link" in settings and "link_mode" not in given:
        try:
            changes["link_mode"] = LinkMode(settings["python-link"])
        except ValueError:
            raise ConfigError(
                "tool.venvpack.python-link must be one of symlink, copy, hardlink"
            ) from None
    if "requirements" in settings:
        changes["requirements"] = (
            tuple(str(r) for r in settings["requirements"]) + spec.requirements
        )
    if "find-links" in settings:
        found = tuple(_beside(spec.project, f) for f in settings["find-links"])
        changes["find_links"] = spec.find_links + found
    if "lock" in settings and "use_lock" not in given:
        changes["use_lock"] = settings["lock"]
    # Lists add to what the flags give, like requirements and find-links above.
    for key, attr in (
        ("extras", "extras"),
        ("groups", "groups"),
        ("extra-index-urls", "extra_index_urls"),
        ("exclude-modules", "exclude_modules"),
    ):
        if key in settings:
            changes[attr] = tuple(settings[key]) + tuple(getattr(spec, attr))
    if "constraints" in settings:
        files = tuple(Path(_beside(spec.project, c)) for c in settings["constraints"])
        changes["constraints"] = files + spec.constraints
    return replace(spec, **changes)


def _beside(project: Path | None, value: str) -> str:
    """A path written in pyproject.toml means a path relative to that file, not to wherever
    venvpack happens to run; URLs stay as they are."""
    if project is None or "://" in value:
        return value
    return str((project / Path(value).expanduser()).absolute())


def with_project_defaults(
    spec: BuildSpec, given: Sequence[str], fmt: str | None = None
) -> BuildSpec:
    """Complete ``spec`` from its project: ``[tool.venvpack]`` (and, for the format ``fmt``,
    ``[tool.venvpack.<fmt>]``, which wins) for every field not ``given`` as a flag, then the
    interpreter pinned in ``.python-version``, and ``requires-python``."""
    project = spec.project
    if project is None:
        return spec
    pyproject = read_pyproject(project)
    settings = {k: v for k, v in pyproject.settings.items() if k in _PYPROJECT_KEYS}
    table = pyproject.settings.get(fmt) if fmt else None
    if isinstance(table, dict):
        settings.update((k, v) for k, v in table.items() if k in _PYPROJECT_KEYS)
    spec = merge_pyproject(spec, settings, given)
    python = spec.python or python_version_file(project)
    return replace(spec, python=python, requires_python=pyproject.requires_python)
