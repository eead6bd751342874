"""Settings as data: every option of a build and of a format, declared once.

A :class:`Setting` is one option: its flags, where its value goes (a :class:`BuildSpec
<venvpack.config.BuildSpec>` field or a format's value), its type, default and help, its key
in ``[tool.venvpack]``, how a value written there is read, whether it shapes a build (so
``--from`` refuses it) and how it is checked. The CLI makes its flags from these, the
settings reader (:mod:`venvpack.config`) checks ``pyproject.toml`` against them, and
:func:`merge` decides every value by one rule (docs/configuration.md): the flag, then
``[tool.venvpack.<format>]``, then ``[tool.venvpack]``, then the project's own metadata (the
interpreter ``.python-version`` pins), then the default. A repeatable setting's value is the
settings' list followed by the flags'.

This module sits below the formats: a format declares its own options with it
(:data:`venvpack.emit.Option` is :class:`Setting`).
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvpack.errors import ConfigError
from venvpack.platform import uv_key_example
from venvpack.validate import app_name, app_version, glibc_version, module_name

__all__ = [
    "BUILD",
    "BUILD_SETTINGS",
    "INSTALL",
    "METADATA",
    "OUTPUT",
    "PATH",
    "SERVICE",
    "SOURCE",
    "Installer",
    "LinkMode",
    "Setting",
    "absolute_if_exists",
    "absolute_if_path",
    "beside",
    "merge",
    "setting_value",
]

# The sections of a command's help a Setting is listed in (:attr:`Setting.group`).
BUILD = "Build options"
OUTPUT = "Output options"
METADATA = "Package metadata"
INSTALL = "Install options"
SERVICE = "Service options"

# How a path written in pyproject.toml is read (:attr:`Setting.relative`).
PATH = "path"
"""A path relative to the project (URLs stay as they are)."""
SOURCE = "source"
"""``SRC:DEST[:MODE]`` whose ``SRC`` is relative to the project."""


class LinkMode(str, enum.Enum):
    """How ``bin/python`` reaches the bundled interpreter (docs/how-it-works.md)."""

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


@dataclass(frozen=True)
class Setting:
    """One option, as data: its flag, its ``[tool.venvpack]`` key and how its value is
    decided."""

    name: str
    """Where the value goes: the BuildSpec field, or the key of the mapping a format's
    :meth:`~venvpack.emit.Format.emitter` receives."""
    flags: tuple[str, ...]
    """``("--maintainer",)``; the long one is the one messages name. Empty for the
    positional argument (:attr:`argument`)."""
    help: str
    default: Any = None
    multiple: bool = False
    """Repeatable: the value is a tuple."""
    is_flag: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    type: type = str
    """``str``, ``int``, ``Path`` (see :attr:`path`) or a ``str`` enum, whose values are the
    choices and which the value becomes."""
    show_default: bool = False
    """Say ``(default: <default>)`` at the end of the help."""
    group: str = METADATA
    """The help section it is listed in (:data:`BUILD`, :data:`OUTPUT`, ...)."""
    key: str | None = None
    """Its key in ``[tool.venvpack]``; None: the name with ``-`` (``entry-points``)."""
    in_pyproject: bool = True
    """Whether ``pyproject.toml`` may set it."""
    adds: bool = True
    """For a repeatable setting: the pyproject list comes before the flags' values instead
    of giving way to them."""
    relative: str | None = None
    """:data:`PATH` or :data:`SOURCE`: how a path written in pyproject.toml is read."""
    shapes_build: bool = False
    """It decides what is built, so it cannot apply to an environment packed ``--from``."""
    hidden: bool = False
    argument: bool = False
    """The command's positional arguments (``REQUIREMENT...``) rather than an option."""
    path: str | None = None
    """``"file"``: a file that must exist; ``"dir"``: a directory (a file is refused)."""
    flag_value: Any = True
    """The value a flag (:attr:`is_flag`) gives when present (``--no-lock``: False)."""
    from_flag: Callable[[Any], Any] | None = None
    """What each value given on the command line becomes (a relative path made absolute)."""
    check: Callable[[Any], object] | None = None
    """Raises ConfigError for a bad value (each item of a repeatable one), once decided."""

    @property
    def pyproject_key(self) -> str | None:
        if not self.in_pyproject:
            return None
        return self.key or self.name.replace("_", "-")

    @property
    def flag(self) -> str:
        """How messages name it: its long flag, or ``REQUIREMENT`` for the argument."""
        if self.argument:
            return (self.metavar or self.name).upper()
        return next((f for f in self.flags if f.startswith("--")), self.flags[0])

    @property
    def toml_type(self) -> builtins.type:
        """The type its value has in ``pyproject.toml``."""
        if self.multiple:
            return list
        if self.is_flag:
            return bool
        return int if self.type is int else str

    @property
    def allowed(self) -> tuple[str, ...] | None:
        """The values it accepts, when they are a closed set."""
        if isinstance(self.type, type) and issubclass(self.type, enum.Enum):
            return tuple(str(member.value) for member in self.type)
        return self.choices


def beside(project: Path | None, value: str) -> str:
    """A path written in pyproject.toml means a path relative to that file, not to wherever
    venvpack happens to run; URLs stay as they are."""
    if project is None or "://" in value:
        return value
    return str((project / Path(value).expanduser()).absolute())


def _source_beside(project: Path | None, value: str) -> str:
    source, sep, rest = value.partition(":")
    return f"{beside(project, source)}{sep}{rest}" if sep else value


def setting_value(setting: Setting, value: Any, project: Path | None) -> Any:
    """A value ``pyproject.toml`` gives ``setting`` (already type-checked), as a flag would
    give it: lists as tuples, paths relative to ``project``."""
    if not isinstance(value, list):
        return value
    items = [str(item) for item in value]
    if setting.relative == PATH:
        items = [beside(project, item) for item in items]
    elif setting.relative == SOURCE:
        items = [_source_beside(project, item) for item in items]
    return tuple(Path(item) for item in items) if setting.type is Path else tuple(items)


_MISSING = object()


def merge(
    settings: Iterable[Setting],
    flags: Mapping[str, Any],
    given: Collection[str],
    tables: Sequence[Mapping[str, Any]] = (),
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The value of each of ``settings``, by name, decided by one rule: the flag when it is
    ``given`` (the names given on the command line), then the first of ``tables`` holding
    its key (``[tool.venvpack.<format>]`` before ``[tool.venvpack]``, values read by
    :func:`setting_value`), then ``metadata`` (what the project itself says, such as its
    ``.python-version``), then the default. A repeatable setting that :attr:`~Setting.adds`
    takes the table's list followed by the flags'."""
    values: dict[str, Any] = {}
    for setting in settings:
        flag = flags.get(setting.name, setting.default)
        key = setting.pyproject_key
        found: Any = next((t[key] for t in tables if key is not None and key in t), _MISSING)
        if setting.multiple and setting.adds:
            values[setting.name] = (() if found is _MISSING else tuple(found)) + tuple(flag or ())
        elif setting.name in given:
            values[setting.name] = flag
        elif found is not _MISSING:
            values[setting.name] = found
        elif metadata and metadata.get(setting.name) is not None:
            values[setting.name] = metadata[setting.name]
        else:
            values[setting.name] = flag
    return values


def absolute_if_exists(value: str) -> str:
    """A local ``--find-links`` directory as an absolute path; URLs stay as they are."""
    return str(Path(value).absolute()) if Path(value).exists() else value


def absolute_if_path(value: str) -> str:
    """A relative path (``./x.whl``, ``../proj``, ``wheels``) as an absolute one: the installer
    runs in the project directory, not where venvpack was started."""
    if "://" in value or value.startswith("/"):
        return value
    path = Path(value).expanduser()
    if value.startswith((".", "~")) or (("/" in value or path.suffix == ".whl") and path.exists()):
        return str(path.absolute())
    return value


def _resolve(value: Path) -> Path:
    return value.resolve()


def _check_prefix(value: str) -> None:
    if not value.startswith("/"):
        raise ConfigError(f"--prefix must be an absolute path, got {value!r}")


def _build(name: str, flags: tuple[str, ...], help: str, **kwargs: Any) -> Setting:
    """A setting of the build, listed in the help's build section."""
    return Setting(name, flags, help, group=BUILD, **kwargs)


BUILD_SETTINGS = (
    _build(
        "requirements",
        (),
        "",
        multiple=True,
        argument=True,
        metavar="requirement",
        shapes_build=True,
        from_flag=absolute_if_path,
    ),
    _build(
        "requirement_files",
        ("-r", "--requirement"),
        "Install from a requirements file (repeatable).",
        multiple=True,
        type=Path,
        path="file",
        in_pyproject=False,
        shapes_build=True,
        from_flag=_resolve,
    ),
    _build(
        "project",
        ("--project",),
        "Project directory to install (default: . when it has a pyproject.toml and no "
        "requirement is given).",
        type=Path,
        path="dir",
        in_pyproject=False,
        shapes_build=True,
    ),
    _build(
        "python",
        ("--python",),
        "Interpreter path, version (3, 3.12, 3.12.4), cpython@3.12, "
        f"{uv_key_example()} or specifier ('>=3.11'); the newest match on PATH, "
        "in pyenv, uv's pythons or /usr/bin wins (default: the project's .python-version, "
        "else the running Python if it satisfies requires-python, else the newest that does).",
        metavar="PY",
        shapes_build=True,
    ),
    _build(
        "sysroot",
        ("--sysroot",),
        "Root of another machine's files that --python's interpreter and its libraries are "
        "read from, to build for that machine (default: the directory above --python that "
        "holds its loader; with a version, --python is looked for in its /usr/bin).",
        type=Path,
        path="dir",
        metavar="ROOT",
        relative=PATH,
        shapes_build=True,
        from_flag=_resolve,
    ),
    _build(
        "name",
        ("--name",),
        "Application name (default: the project's name).",
        shapes_build=True,
        check=app_name,
    ),
    _build(
        "version",
        ("--version",),
        "Application version (default: the installed project's, or the distribution --name names).",
        metavar="VERSION",
        shapes_build=True,
        check=app_version,
    ),
    _build(
        "use_lock",
        ("--no-lock",),
        "Resolve the requirements afresh instead of installing what the project's uv.lock "
        "or pylock.toml pins.",
        default=True,
        is_flag=True,
        flag_value=False,
        key="lock",
        shapes_build=True,
    ),
    _build(
        "extras",
        ("--extra",),
        "Install this optional-dependency group of the project (repeatable).",
        multiple=True,
        metavar="NAME",
        shapes_build=True,
    ),
    _build(
        "all_extras",
        ("--all-extras",),
        "Install every extra of the project.",
        default=False,
        is_flag=True,
        shapes_build=True,
    ),
    _build(
        "groups",
        ("--group",),
        "Install this dependency group too (repeatable; dev groups are left out).",
        multiple=True,
        metavar="NAME",
        shapes_build=True,
    ),
    _build(
        "index_url",
        ("--index-url",),
        "Package index to use instead of PyPI.",
        metavar="URL",
        shapes_build=True,
    ),
    _build(
        "extra_index_urls",
        ("--extra-index-url",),
        "Another package index (repeatable).",
        multiple=True,
        metavar="URL",
        shapes_build=True,
    ),
    _build(
        "constraints",
        ("-c", "--constraint"),
        "Constrain versions with this file (repeatable).",
        multiple=True,
        type=Path,
        path="file",
        relative=PATH,
        shapes_build=True,
        from_flag=_resolve,
    ),
    _build(
        "pre",
        ("--pre",),
        "Allow pre-release versions.",
        default=False,
        is_flag=True,
        shapes_build=True,
    ),
    _build(
        "prefix",
        ("--prefix",),
        "Install location (default: /opt/<name>).",
        shapes_build=True,
        check=_check_prefix,
    ),
    _build(
        "link_mode",
        ("--python-link",),
        "How bin/python reaches the bundled interpreter (default: symlink).",
        default=LinkMode.SYMLINK.value,
        type=LinkMode,
        key="python-link",
        shapes_build=True,
    ),
    _build(
        "find_links",
        ("--find-links",),
        "Look for packages in DIR (repeatable).",
        multiple=True,
        metavar="DIR",
        relative=PATH,
        shapes_build=True,
        from_flag=absolute_if_exists,
    ),
    _build(
        "no_index",
        ("--no-index",),
        "Do not use the package index.",
        default=False,
        is_flag=True,
        in_pyproject=False,
        shapes_build=True,
    ),
    _build(
        "with_tk",
        ("--with-tk",),
        "Keep tkinter in the bundled runtime.",
        default=False,
        is_flag=True,
        shapes_build=True,
    ),
    _build(
        "keep_dev",
        ("--keep-dev",),
        "Keep headers and build config to compile extensions later.",
        default=False,
        is_flag=True,
        shapes_build=True,
    ),
    _build(
        "max_glibc",
        ("--max-glibc",),
        "Stop before packing when the environment needs a newer glibc than X.Y (naming the "
        "file and symbol version).",
        metavar="X.Y",
        check=glibc_version,
    ),
    _build(
        "exclude_modules",
        ("--exclude-module",),
        "Leave this stdlib extension module (e.g. _curses, readline, _sqlite3) out, with the "
        "libraries only it needed (repeatable).",
        multiple=True,
        metavar="NAME",
        shapes_build=True,
        check=module_name,
    ),
    _build(
        "installer",
        ("--installer",),
        "",
        default=Installer.AUTO.value,
        type=Installer,
        in_pyproject=False,
        hidden=True,
    ),
)
"""The options of every command that builds an environment, in the order of its help."""
