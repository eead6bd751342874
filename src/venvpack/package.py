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
from pathlib import Path
from typing import Any

from venvpack import templates
from venvpack.config import BuildSpec
from venvpack.emit import INSTALL, SERVICE, Option
from venvpack.emit.systemd import ServiceUnit, render_unit, service_command
from venvpack.errors import ConfigError
from venvpack.manifest import BuiltEnv
from venvpack.validate import system_command

__all__ = [
    "SYSTEM_OPTIONS",
    "Contents",
    "InstallFile",
    "Relation",
    "Relations",
    "ServiceUser",
    "SystemOptions",
    "check_build",
    "check_command_name",
    "check_description",
    "check_prefix",
    "parse_install_file",
    "parse_relation",
    "plan_contents",
    "system_fields",
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
        group=INSTALL,
    ),
    Option(
        "no_bin_links",
        ("--no-bin-links",),
        "Link no command into /usr/bin.",
        is_flag=True,
        group=INSTALL,
    ),
    Option(
        "service_command",
        ("--service-command",),
        "Install a systemd unit that runs CMD (a command of the environment's bin/ or an "
        "absolute path, with arguments); the package then installs only at its prefix.",
        default="",
        metavar="CMD",
        group=SERVICE,
    ),
    Option(
        "user",
        ("--user",),
        "Create this system user and group at installation (never removed), give it the "
        "state directory /var/lib/<package>, and run the service as it, hardened.",
        default="",
        metavar="NAME",
        group=SERVICE,
    ),
    Option(
        "files",
        ("--file",),
        "Install the file SRC at DEST (absolute, outside /etc and the prefix), with MODE "
        "(octal, default 0644) (repeatable).",
        multiple=True,
        metavar="SRC:DEST[:MODE]",
        group=INSTALL,
    ),
    Option(
        "config_files",
        ("--config-file",),
        "Install SRC as the configuration file DEST under /etc: kept with the administrator's "
        "edits on upgrades and removal (repeatable).",
        multiple=True,
        metavar="SRC:DEST[:MODE]",
        group=INSTALL,
    ),
    Option(
        "provides",
        ("--provides",),
        "A virtual package this one provides, e.g. 'httpd' (repeatable).",
        multiple=True,
        metavar="NAME[ = VERSION]",
    ),
    Option(
        "conflicts",
        ("--conflicts",),
        "A package that cannot be installed with this one, e.g. 'app-old < 2' (repeatable).",
        multiple=True,
        metavar="SPEC",
    ),
    Option(
        "replaces",
        ("--replaces",),
        "A package whose files this one takes over (rpm: Obsoletes) (repeatable).",
        multiple=True,
        metavar="SPEC",
    ),
    Option(
        "recommends",
        ("--recommends",),
        "A package installed with this one by default, not required (repeatable).",
        multiple=True,
        metavar="SPEC",
    ),
    Option(
        "release",
        ("--release", "--revision"),
        "The packaging revision (deb: the part after '-', rpm: Release), raised when the "
        "same application version is packaged again.",
        default="1",
        show_default=True,
    ),
    Option(
        "epoch",
        ("--epoch",),
        "Epoch of the package version (default: the PEP 440 epoch of the version, if any).",
        type=int,
    ),
)
"""The options of every system package format (deb, rpm), with the same names and rules."""


def system_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """:data:`SYSTEM_OPTIONS` values as the keyword arguments of :class:`SystemOptions`."""
    return {
        "entry_points": tuple(values.get("entry_points") or ()),
        "bin_links": not values.get("no_bin_links"),
        "service_command": values.get("service_command") or "",
        "user": values.get("user") or "",
        "files": tuple(values.get("files") or ()),
        "config_files": tuple(values.get("config_files") or ()),
        "provides": tuple(values.get("provides") or ()),
        "conflicts": tuple(values.get("conflicts") or ()),
        "replaces": tuple(values.get("replaces") or ()),
        "recommends": tuple(values.get("recommends") or ()),
        "release": values.get("release") or "1",
        "epoch": values.get("epoch"),
    }


# A user name both useradd and systemd accept: lower case, at most 32 characters.
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# Debian's revision and rpm's Release both take these (and never '-').
_RELEASE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~]*")
# One relation: a package name, optionally compared with a version, spelt the Debian way
# ``name (>= 1.0)`` or the rpm way ``name >= 1.0``.
_RELATION_RE = re.compile(
    r"(?P<name>[a-z0-9][a-z0-9+.-]+)"
    r"(?:\s*(?P<paren>\()?\s*(?P<op><<|>>|<=|>=|=|<|>)\s*(?P<version>[0-9][A-Za-z0-9.+~:]*)"
    r"\s*(?(paren)\)))?"
)
_OPERATORS = {"<": "<<", ">": ">>", "<<": "<<", ">>": ">>", "<=": "<=", ">=": ">=", "=": "="}


@dataclass(frozen=True)
class Relation:
    """One package relation, in Debian's spelling of the operator."""

    name: str
    op: str = ""
    """``<<``, ``<=``, ``=``, ``>=``, ``>>``; empty: any version."""
    version: str = ""

    @property
    def deb(self) -> str:
        return f"{self.name} ({self.op} {self.version})" if self.op else self.name

    @property
    def rpm(self) -> str:
        op = {"<<": "<", ">>": ">"}.get(self.op, self.op)
        return f"{self.name} {op} {self.version}" if self.op else self.name


def parse_relation(value: str, what: str) -> Relation:
    """``value`` as a :class:`Relation`; ConfigError for anything else (a second relation,
    a macro, a line break)."""
    match = _RELATION_RE.fullmatch(value.strip())
    if match is None:
        raise ConfigError(
            f"{what} {value!r}: expected one package, 'name', 'name (>= 1.0)' or 'name >= 1.0'"
        )
    op = _OPERATORS[match["op"]] if match["op"] else ""
    return Relation(match["name"], op, match["version"] or "")


@dataclass(frozen=True)
class InstallFile:
    """A file the package installs besides the environment."""

    source: Path
    dest: str
    """Absolute path on the target."""
    mode: int
    config: bool
    """A configuration file: the administrator's edits survive upgrades and removal."""


def parse_install_file(value: str, *, config: bool) -> InstallFile:
    """``SRC:DEST[:MODE]`` of ``--file`` or ``--config-file``, checked."""
    what = "--config-file" if config else "--file"
    source, sep, rest = value.partition(":")
    dest, _, mode_text = rest.partition(":")
    if not sep or not source or not dest:
        raise ConfigError(f"{what} {value!r}: expected SRC:DEST[:MODE]")
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(f"{what} {value!r}: {source} is not a file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{what} {value!r}: {source} cannot be read")
    if not _PREFIX_RE.fullmatch(dest) or posixpath.normpath(dest) != dest:
        raise ConfigError(
            f"{what} {value!r}: DEST must be an absolute, normalised path of letters, digits "
            "and _ + - ."
        )
    if config and not dest.startswith("/etc/"):
        raise ConfigError(f"{what} {value!r}: a configuration file goes under /etc/")
    if not config and (dest.startswith("/etc/") or dest.startswith(_PATH_DIRS)):
        where = "/etc (use --config-file)" if dest.startswith("/etc/") else "a PATH directory"
        raise ConfigError(f"{what} {value!r}: DEST is in {where}")
    try:
        mode = int(mode_text, 8) if mode_text else 0o644
    except ValueError:
        raise ConfigError(f"{what} {value!r}: MODE must be octal, e.g. 0644") from None
    if mode & ~0o755:
        raise ConfigError(f"{what} {value!r}: MODE {mode_text} is above 0755")
    return InstallFile(source=path.absolute(), dest=dest, mode=mode, config=config)


@dataclass(frozen=True)
class SystemOptions:
    """What the user asks of a system package, whatever its format; checked when made.

    Each format's options (:class:`venvpack.emit.deb.DebOptions`, ``RpmOptions``) extend
    this class with what only that format has, so the shared rules live here once.
    """

    entry_points: tuple[str, ...] = ()
    """Commands to link into /usr/bin; empty: the manifest's commands."""
    bin_links: bool = True
    """False: link no command into /usr/bin."""
    service_command: str = ""
    """A command line for a systemd unit ``<package>.service``; empty: no unit."""
    user: str = ""
    """A system user (and group) made at installation, never removed; empty: none."""
    files: tuple[str, ...] = ()
    """``SRC:DEST[:MODE]`` of files to install besides the environment."""
    config_files: tuple[str, ...] = ()
    """``SRC:DEST[:MODE]`` of configuration files under /etc."""
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    """Packages whose files this one takes over (Debian Replaces, rpm Obsoletes)."""
    recommends: tuple[str, ...] = ()
    release: str = "1"
    """The packaging revision: Debian's ``-<revision>``, rpm's ``Release``."""
    epoch: int | None = None
    """The version's epoch; None: the PEP 440 epoch of the application's version."""

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
        if self.user and (not _USER_RE.fullmatch(self.user) or self.user == "root"):
            raise ConfigError(
                f"--user {self.user!r}: a system user name is lower-case letters, digits, _ "
                "and -, at most 32 characters, not root"
            )
        if not _RELEASE_RE.fullmatch(self.release):
            raise ConfigError(
                f"--release {self.release!r}: use digits, letters and . + ~, starting with a "
                "letter or digit"
            )
        if self.epoch is not None and not 0 <= self.epoch < 2**31:
            raise ConfigError(f"--epoch {self.epoch}: a whole number from 0")
        seen: set[str] = set()
        for item in self.install_files:
            if item.dest in seen:
                raise ConfigError(f"{item.dest} is installed twice")
            seen.add(item.dest)
        self.relations  # noqa: B018 -- checks them

    @property
    def install_files(self) -> tuple[InstallFile, ...]:
        """:attr:`files` and :attr:`config_files`, parsed and checked."""
        return tuple(parse_install_file(f, config=False) for f in self.files) + tuple(
            parse_install_file(f, config=True) for f in self.config_files
        )

    @property
    def relations(self) -> Relations:
        """:attr:`provides` ... :attr:`recommends`, parsed and checked."""
        for value in self.provides:
            if parse_relation(value, "--provides").op not in ("", "="):
                raise ConfigError(f"--provides {value!r}: a provided version is only '= VERSION'")
        return Relations(
            provides=tuple(parse_relation(r, "--provides") for r in self.provides),
            conflicts=tuple(parse_relation(r, "--conflicts") for r in self.conflicts),
            replaces=tuple(parse_relation(r, "--replaces") for r in self.replaces),
            recommends=tuple(parse_relation(r, "--recommends") for r in self.recommends),
        )


@dataclass(frozen=True)
class Relations:
    """How the package relates to others, besides what it depends on."""

    provides: tuple[Relation, ...] = ()
    conflicts: tuple[Relation, ...] = ()
    replaces: tuple[Relation, ...] = ()
    recommends: tuple[Relation, ...] = ()


@dataclass(frozen=True)
class ServiceUser:
    """The system user a package creates, and the state directory it owns."""

    name: str
    home: str
    """``/var/lib/<package>``: the user's home and the service's state directory."""


@dataclass(frozen=True)
class Contents:
    """What a system package installs besides the tree itself, decided from the environment."""

    prefix: str
    """Where the tree goes (checked with :func:`check_prefix`)."""
    commands: tuple[str, ...]
    """Commands of ``bin/`` that get ``/usr/bin/<command>``, sorted."""
    unit: ServiceUnit | None
    """The systemd unit, installed in ``usr/lib/systemd/system``; None: no service."""
    files: tuple[InstallFile, ...] = ()
    """Extra files and configuration files, sorted by destination."""
    user: ServiceUser | None = None
    relations: Relations = Relations()
    release: str = "1"
    epoch: int | None = None
    """The epoch the user gave; None: the version's own."""
    user_script: str = ""
    """The portable shell snippet that creates :attr:`user` (empty without one)."""


def plan_contents(
    env: BuiltEnv,
    options: SystemOptions,
    *,
    package: str,
    description: str,
    documentation: str = "",
) -> Contents:
    """The :class:`Contents` of ``env``'s package ``package``: the prefix checked, every command
    to link present and executable in ``bin/``, extra files outside the tree and the links,
    the unit rendered (as the service user, hardened, when there is one). ConfigError
    otherwise."""
    manifest = env.manifest
    prefix = check_prefix(manifest.prefix, "manifest prefix")
    commands = _commands(env, options) if options.bin_links else ()
    files = tuple(sorted(options.install_files, key=lambda f: f.dest))
    for item in files:
        if item.dest == prefix or item.dest.startswith(prefix + "/"):
            raise ConfigError(f"{item.dest}: inside the prefix {prefix}, which the tree fills")
    user = ServiceUser(options.user, f"/var/lib/{package}") if options.user else None
    unit = None
    if options.service_command:
        unit = render_unit(
            package=package,
            argv=service_command(options.service_command, env),
            description=description,
            documentation=documentation,
            user=user.name if user else "",
        )
    return Contents(
        prefix=prefix,
        commands=commands,
        unit=unit,
        files=files,
        user=user,
        relations=options.relations,
        release=options.release,
        epoch=options.epoch,
        user_script=(
            templates.render(
                "system/create-user.sh", user=user.name, home=user.home, package=package
            )
            if user
            else ""
        ),
    )


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
