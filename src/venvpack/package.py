"""The system package: what ``deb`` and ``rpm`` both install, decided once.

A Debian package and an RPM of an environment hold the same things: the tree at its prefix,
``/usr/bin`` links to the application's commands, maybe a systemd unit. Their rules used to
be written twice and drifted (a prefix with a blank was a .deb and no .rpm, a non-executable
script was linked by one and refused by the other). Here they are written once:

- :class:`SystemOptions` holds what the user asks of a system package and checks it when it
  is made, so a bad option is refused before anything is built;
- :func:`check_prefix` is the one rule for an install location, applied to ``--prefix``
  before the build and to the manifest's prefix when a package is planned;
- :func:`plan_contents` decides, from a built environment, the :class:`Contents` every format
  renders: the prefix, the commands to link and the service unit.

Each format's emitter then only renders these contents in its own syntax.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from venvpack.config import BuildSpec
from venvpack.emit import Option
from venvpack.emit.systemd import ServiceUnit, render_unit, service_command
from venvpack.errors import ConfigError
from venvpack.manifest import BuiltEnv
from venvpack.validate import system_command

__all__ = [
    "SYSTEM_OPTIONS",
    "Contents",
    "SystemOptions",
    "check_build",
    "check_command_name",
    "check_description",
    "check_prefix",
    "plan_contents",
    "system_options",
]

# A command name: no leading dot or dash (hidden file, option), no blank, no shell or glob
# character (rpm's scriptlets and %files lines, dpkg's file lists).
_COMMAND_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
# A prefix both formats can name as is: rpm expands macros and globs in %files lines and
# scriptlets use it unquoted, so only plain characters.
_PREFIX_RE = re.compile(r"(/[A-Za-z0-9_+-][A-Za-z0-9._+-]*)+")
# The directories a prefix must not be: the package would own (and on removal remove) them.
_SYSTEM_DIRS = frozenset(
    (
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/usr/lib64",
        "/usr/libexec",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/lib",
        "/usr/share",
        "/usr/include",
        "/var/lib",
        "/var/opt",
        "/opt/bin",
    )
)
# Directories on PATH, where the package links its commands: a prefix inside one collides.
_PATH_DIRS = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/")


def check_command_name(name: str, what: str = "--entry-point") -> str:
    """``name`` if it can be a command in ``/usr/bin`` for every format; else ConfigError."""
    if not _COMMAND_RE.fullmatch(name):
        raise ConfigError(
            f"{what} {name!r} is not a command name: letters, digits and . _ + -, "
            "not starting with . + or -"
        )
    return name


def check_prefix(prefix: str, what: str = "prefix") -> str:
    """An install location a system package can own: absolute, normalised, at least two
    levels deep, plain characters, neither a system directory nor inside a PATH directory."""
    if (
        not _PREFIX_RE.fullmatch(prefix)
        or posixpath.normpath(prefix) != prefix
        or prefix.count("/") < 2
    ):
        raise ConfigError(
            f"{what} {prefix!r} cannot be installed by a system package: use an absolute, "
            "normalised path at least two levels deep of letters, digits and _ + - ., "
            "e.g. /opt/<name>"
        )
    if prefix in _SYSTEM_DIRS:
        raise ConfigError(
            f"{what} {prefix}: the package would own a system directory; use e.g. {prefix}/<name>"
        )
    if prefix.startswith(_PATH_DIRS):
        raise ConfigError(
            f"{what} {prefix}: inside a directory of PATH, where the package links its commands"
        )
    return prefix


_SYNOPSIS_MAX = 80
# Control characters but tab and newline, and the Unicode line separators.
_TEXT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def check_description(value: str, what: str = "--description") -> str:
    """The package description, by the rules of every format: a synopsis (the first line)
    of at most 80 characters, then optional lines of extended description. No control
    character, and no line that starts with ``%`` or ``#``: rpm would obey the first (a
    macro or a spec directive) and drop the second (a comment), so the same text could not
    mean the same in both packages."""
    if _TEXT_CONTROL_RE.search(value):
        raise ConfigError(f"{what}: control character in {value!r}")
    lines = value.split("\n")
    synopsis = lines[0].strip()
    if not synopsis:
        raise ConfigError(f"{what}: the first line (the synopsis) is empty")
    if len(synopsis) > _SYNOPSIS_MAX:
        raise ConfigError(
            f"{what}: the first line is the synopsis, at most {_SYNOPSIS_MAX} "
            f"characters (got {len(synopsis)}); put details on the following lines"
        )
    for number, line in enumerate(lines, start=1):
        first = line.lstrip()[:1]
        if first in ("%", "#"):
            meaning = "a macro or a spec directive" if first == "%" else "a comment and drops"
            raise ConfigError(
                f"{what}: line {number} starts with {first!r}, which rpm reads as {meaning}"
                f" ({line.strip()[:40]!r}); start that line with another character"
            )
    return value


def check_build(spec: BuildSpec) -> None:
    """Refuse, before the build, a prefix no system package can own (the default
    ``/opt/<name>`` too, when the name is known)."""
    if spec.prefix is not None:
        check_prefix(spec.prefix, "--prefix")
    elif spec.name is not None:
        check_prefix(spec.install_prefix(spec.name))


SYSTEM_OPTIONS = (
    Option(
        "entry_points",
        ("--entry-point",),
        "Link only this command into /usr/bin (repeatable; default: all console scripts "
        "of the requirements).",
        multiple=True,
        metavar="NAME",
    ),
    Option("no_bin_links", ("--no-bin-links",), "Link no command into /usr/bin.", is_flag=True),
    Option(
        "service_command",
        ("--service-command",),
        "Install a systemd unit that runs CMD (a command of the environment's bin/ or an "
        "absolute path, with arguments); the package then installs only at its prefix.",
        default="",
        metavar="CMD",
    ),
)
"""The options of every system package format (deb, rpm), with the same names and rules."""


def system_options(values: Mapping[str, Any]) -> SystemOptions:
    """:data:`SYSTEM_OPTIONS` values as checked :class:`SystemOptions`."""
    return SystemOptions(
        entry_points=tuple(values.get("entry_points") or ()),
        bin_links=not values.get("no_bin_links"),
        service_command=values.get("service_command") or "",
    )


@dataclass(frozen=True)
class SystemOptions:
    """What the user asks of a system package, whatever its format; checked when made."""

    entry_points: tuple[str, ...] = ()
    """Commands to link into /usr/bin; empty: the manifest's commands."""
    bin_links: bool = True
    """False: link no command into /usr/bin."""
    service_command: str = ""
    """A command line for a systemd unit ``<package>.service``; empty: no unit."""

    def __post_init__(self) -> None:
        for name in self.entry_points:
            check_command_name(name)
        if self.entry_points and not self.bin_links:
            raise ConfigError("--entry-point and --no-bin-links exclude each other")
        if self.service_command:
            try:
                argv = shlex.split(self.service_command)
            except ValueError as exc:
                raise ConfigError(f"--service-command {self.service_command!r}: {exc}") from None
            if not argv:
                raise ConfigError("--service-command is empty")


@dataclass(frozen=True)
class Contents:
    """What a system package installs besides the tree itself, decided from the environment."""

    prefix: str
    """Where the tree goes (checked with :func:`check_prefix`)."""
    commands: tuple[str, ...]
    """Commands of ``bin/`` that get ``/usr/bin/<command>``, sorted."""
    unit: ServiceUnit | None
    """The systemd unit, installed in ``usr/lib/systemd/system``; None: no service."""


def plan_contents(
    env: BuiltEnv,
    options: SystemOptions,
    *,
    package: str,
    description: str,
    documentation: str = "",
) -> Contents:
    """The :class:`Contents` of ``env``'s package ``package``: the prefix checked, every command
    to link present and executable in ``bin/``, the unit rendered. ConfigError otherwise."""
    manifest = env.manifest
    prefix = check_prefix(manifest.prefix, "manifest prefix")
    commands = _commands(env, options) if options.bin_links else ()
    unit = None
    if options.service_command:
        unit = render_unit(
            package=package,
            argv=service_command(options.service_command, env),
            description=description,
            documentation=documentation,
        )
    return Contents(prefix=prefix, commands=commands, unit=unit)


def _commands(env: BuiltEnv, options: SystemOptions) -> tuple[str, ...]:
    chosen: Sequence[str] = options.entry_points or env.manifest.commands
    what = "--entry-point" if options.entry_points else "command"
    for name in chosen:
        check_command_name(name, what)
        system_command(name, env.manifest.commands, what)
        path = env.root / "bin" / name
        if not path.is_file() or not os.access(path, os.X_OK):
            raise ConfigError(
                f"{what} {name!r} is not a command in the environment's bin/ "
                "(no such command, or not executable)"
            )
    return tuple(sorted(set(chosen)))
