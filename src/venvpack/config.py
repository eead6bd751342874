"""Stage ``config``: flags and ``pyproject.toml`` become one frozen BuildSpec.

``pyproject.toml`` is read once per command (:func:`read_pyproject`) and checked against the
declared settings (:mod:`venvpack.settings`: the build's, and each format's options, which
the caller passes in); unknown keys are an error, so a typo never silently changes nothing.
:func:`decide` gives every setting its value by the one precedence rule, and
:func:`build_spec` makes the BuildSpec of those values.
"""

from __future__ import annotations

import difflib
import enum
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvpack.errors import ConfigError
from venvpack.settings import (
    BUILD_SETTINGS,
    Installer,
    LinkMode,
    Setting,
    merge,
    setting_value,
)
from venvpack.validate import app_name, app_version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = [
    "BuildSpec",
    "Installer",
    "LinkMode",
    "Pyproject",
    "build_spec",
    "check_text",
    "check_values",
    "decide",
    "printable",
    "python_version_file",
    "read_pyproject",
    "validate_name",
    "validate_version",
]


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


validate_name = app_name
"""An application name usable as a directory and a package name
(:func:`venvpack.validate.app_name`)."""

validate_version = app_version
"""A PEP 440 version (:func:`venvpack.validate.app_version`)."""


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
    sysroot: Path | None = None
    """``--sysroot``: the root of another machine's files the interpreter is read from."""
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
    pyproject: Pyproject | None = field(default=None, compare=False, repr=False)
    """The project's ``pyproject.toml`` as the command read it, so later stages need not
    read it again (None: a spec made in code; they read it themselves)."""

    def install_prefix(self, name: str) -> str:
        return self.prefix or f"/opt/{name}"


@dataclass(frozen=True)
class Pyproject:
    """What venvpack reads from a project's ``pyproject.toml`` (and ``.python-version``),
    once per command."""

    project: Path
    """The directory holding it: paths written in it are relative to this."""
    name: str | None
    """``[project].name`` as written (None for a project with only a setup.py)."""
    requires_python: str | None
    optional_dependencies: tuple[str, ...]
    """Names of the extras ``[project.optional-dependencies]`` declares."""
    settings: Mapping[str, Any]
    """``[tool.venvpack]``, checked against the build settings and the formats' options
    :func:`read_pyproject` was given."""
    python_version: str | None = None
    """The interpreter ``.python-version`` pins (:func:`python_version_file`)."""

    def tables(self, fmt: str | None = None) -> tuple[Mapping[str, Any], ...]:
        """The tables a setting may come from, the first that has it winning:
        ``[tool.venvpack.<fmt>]``, then ``[tool.venvpack]``."""
        table = self.settings.get(fmt) if fmt else None
        return (table, self.settings) if isinstance(table, dict) else (self.settings,)

    @property
    def metadata(self) -> Mapping[str, Any]:
        """What the project itself says about settings it has no flag or key for: the
        interpreter its ``.python-version`` pins."""
        return {"python": self.python_version}


def read_pyproject(
    project: Path,
    formats: Mapping[str, Sequence[Setting]]
    | Callable[[], Mapping[str, Sequence[Setting]]]
    | None = None,
) -> Pyproject:
    """Parse ``project/pyproject.toml`` (an absent file reads as empty) and
    ``project/.python-version``. With ``formats`` (each format's options, by format name,
    or a function that gives them: it is only called when there is a ``[tool.venvpack]``
    table, so a project without one loads no format it does not use) ``[tool.venvpack]``
    is checked against them and the build settings; without, only the project's metadata
    is meant to be used."""
    path = project / "pyproject.toml"
    pin = python_version_file(project)
    if not path.is_file():
        return Pyproject(project, None, None, (), {}, pin)
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
    tool = data.get("tool", {})
    settings = tool.get("venvpack", {}) if isinstance(tool, dict) else None
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: [tool.venvpack] must be a table")
    if formats is not None and settings:
        _check_settings(path, settings, formats() if callable(formats) else formats)
    return Pyproject(project, name, requires, tuple(sorted(extras)), settings, pin)


def _keyed(settings: Iterable[Setting]) -> dict[str, list[Setting]]:
    keyed: dict[str, list[Setting]] = {}
    for setting in settings:
        if setting.pyproject_key is not None:
            keyed.setdefault(setting.pyproject_key, []).append(setting)
    return keyed


_TOML_KINDS: Mapping[type, str] = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    list: "a list of strings",
}
"""How a setting's TOML type is named to the person who wrote the value."""


def _check_settings(
    path: Path, table: Mapping[str, Any], formats: Mapping[str, Sequence[Setting]]
) -> None:
    """``[tool.venvpack]``: build settings and any format's settings, and one table per format
    (``[tool.venvpack.deb]``) holding build settings and that format's. Unknown keys and
    wrong types are one-line errors that name the file, the key and the closest valid key."""
    shared = _keyed([*BUILD_SETTINGS, *(s for options in formats.values() for s in options)])
    for key, value in table.items():
        if key in formats and isinstance(value, dict):
            allowed = _keyed([*BUILD_SETTINGS, *formats[key]])
            for sub, item in value.items():
                _check_setting(path, f"tool.venvpack.{key}.{sub}", item, allowed.get(sub), allowed)
            continue
        if key in formats and key not in shared:
            raise ConfigError(
                f"{path}: tool.venvpack.{key} must be a table ([tool.venvpack.{key}]) of "
                f"settings for venvpack {key}"
            )
        _check_setting(path, f"tool.venvpack.{key}", value, shared.get(key), [*shared, *formats])


def _check_setting(
    path: Path, where: str, value: object, declared: list[Setting] | None, valid: Iterable[str]
) -> None:
    if not declared:
        key = where.rpartition(".")[2]
        close = difflib.get_close_matches(key, list(valid), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"{path}: unknown key {where}{hint}")
    expected = declared[-1].toml_type
    # A bool is an int to Python, not to a reader of pyproject.toml.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{path}: {where} must be {_TOML_KINDS.get(expected, 'a table')}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{path}: {where} must be a list of strings")
    # Where formats share a key, a value any of them accepts is valid in [tool.venvpack].
    choices = [s.allowed for s in declared]
    if all(choices) and not any(value in allowed for allowed in choices if allowed):
        every = dict.fromkeys(c for allowed in choices if allowed for c in allowed)
        raise ConfigError(f"{path}: {where} must be one of {', '.join(every)}")


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


def decide(
    settings: Sequence[Setting],
    flags: Mapping[str, Any],
    given: Collection[str],
    pyproject: Pyproject | None,
    fmt: str | None = None,
) -> dict[str, Any]:
    """The value of each of ``settings`` (by name) from the ``flags`` (``given``: the names
    given on the command line) and the project: the flag, then ``[tool.venvpack.<fmt>]``,
    then ``[tool.venvpack]``, then the project's metadata, then the default; a list setting
    is the pyproject list followed by the flags' (:func:`venvpack.settings.merge`)."""
    if pyproject is None:
        return merge(settings, flags, given)
    tables = [
        {
            key: setting_value(setting, table[key], pyproject.project)
            for setting in settings
            if (key := setting.pyproject_key) is not None and key in table
        }
        for table in pyproject.tables(fmt)
    ]
    return merge(settings, flags, given, tables, pyproject.metadata)


def build_spec(values: Mapping[str, Any], pyproject: Pyproject | None) -> BuildSpec:
    """The BuildSpec of the build settings' decided ``values`` (:func:`decide`), each
    checked by its declaration."""
    fields: dict[str, Any] = {}
    for setting in BUILD_SETTINGS:
        value = values.get(setting.name, setting.default)
        if setting.multiple:
            value = tuple(value or ())
        elif value is not None and issubclass(setting.type, enum.Enum):
            value = setting.type(value)
        fields[setting.name] = value
    check_values(BUILD_SETTINGS, fields)
    requires = pyproject.requires_python if pyproject is not None else None
    return BuildSpec(**fields, requires_python=requires, pyproject=pyproject)


def check_values(settings: Iterable[Setting], values: Mapping[str, Any]) -> None:
    """Check each decided value of ``settings`` (each item of a list) by its declaration."""
    for setting in settings:
        value = values.get(setting.name)
        if setting.check is not None and value is not None:
            for item in value if setting.multiple else (value,):
                setting.check(item)
