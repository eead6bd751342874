"""The system package: one description that ``deb`` and ``rpm`` both render.

A Debian package and an RPM of an environment say the same things (name, version, summary,
description, license, homepage, maintainer, relations to other packages) and hold the same
things (the tree at its prefix, ``/usr/bin`` links, maybe a systemd unit, a user, extra and
configuration files). When each format derived these on its own, they drifted: a URL one
refused the other took, the same service got two unit texts, a tampered manifest gave two
exit codes. Here, as in nfpm's ``Info`` + ``Contents``, they are decided once:

- :class:`SystemOptions` holds what the user asks of a system package and checks it when it
  is made, by the one rule of each kind written here (:func:`check_url`,
  :func:`check_maintainer`, :func:`check_description`, :func:`parse_relation`), so a bad
  option is refused before anything is built, with the same message and exit code by both;
- :func:`check_prefix` is the one rule for an install location, applied to ``--prefix``
  before the build and to the manifest's prefix when a package is planned;
- :func:`describe` makes, from a built environment, its project metadata and the options,
  the :class:`PackageInfo` every format renders: the metadata (flags first, then what the
  project says, then generated text) and the :class:`Contents` (prefix, commands to link,
  service unit, user, files). The manifest's fields are checked there, once.

Each format's module then only renders the description in its own syntax (control file and
maintainer scripts, or spec), with its own escaping.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import shlex
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from packaging.version import Version

from venvpack import templates
from venvpack.archive import source_date_epoch
from venvpack.config import BuildSpec, printable, validate_name
from venvpack.emit import INSTALL, SERVICE, Option
from venvpack.emit.systemd import ServiceUnit, render_unit, service_command
from venvpack.errors import ConfigError, EmitError
from venvpack.manifest import AppMetadata, BuiltEnv
from venvpack.metadata import first_paragraph, one_line, spdx_expression
from venvpack.policy import load_json
from venvpack.settings import SOURCE
from venvpack.validate import control_character, strip_control, system_command
from venvpack.versions import rpm_version

__all__ = [
    "DEFAULT_RELEASE",
    "PACKAGE_NAME",
    "SYSTEM_OPTIONS",
    "Contents",
    "InstallFile",
    "PackageInfo",
    "Relation",
    "Relations",
    "ServiceUser",
    "SystemOptions",
    "TreeEntry",
    "base_system_file",
    "check_build",
    "check_command_name",
    "check_description",
    "check_line",
    "check_maintainer",
    "check_prefix",
    "check_url",
    "describe",
    "license_of_text",
    "parse_install_file",
    "parse_relation",
    "plan_contents",
    "synopsis",
    "system_fields",
    "walk_tree",
]

DEFAULT_RELEASE = "1"
"""The packaging revision when none is given: deb's ``-1``, rpm's ``Release: 1``."""

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


def check_description(value: str, what: str = "--description") -> str:
    """The package description, by the rules of every format: a synopsis (the first line)
    of at most 80 characters, then optional lines of extended description. No control
    character, and no line that starts with ``%`` or ``#``: rpm would obey the first (a
    macro or a spec directive) and drop the second (a comment), so the same text could not
    mean the same in both packages."""
    if control_character(value, "\t\n"):
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
    check_line_starts(lines, what)
    return value


def check_line_starts(lines: Sequence[str], what: str) -> None:
    """ConfigError for a line of ``what`` that starts with ``%`` or ``#``: RPM would obey
    the first (a macro or a spec directive) and drop the second (a comment)."""
    for number, line in enumerate(lines, start=1):
        first = line.lstrip()[:1]
        if first in ("%", "#"):
            meaning = "a macro or a spec directive" if first == "%" else "a comment and drops"
            raise ConfigError(
                f"{what}: line {number} starts with {first!r}, which RPM reads as {meaning}"
                f" ({line.strip()[:40]!r}); start that line with another character"
            )


def check_line(value: str, what: str) -> str:
    """``value`` if it is one line of text, without control characters; else ConfigError."""
    if control_character(value):
        raise ConfigError(f"{what}: line break or control character in {value!r}")
    return value


def check_url(value: str, what: str = "--homepage") -> str:
    """A homepage both formats name: an http(s) URL with a host, without blanks or the
    characters that end a URL in text (``<>"``). Other schemes (``ftp:``, ``file:``,
    ``javascript:``) are refused: a package manager shows it as a link to the project."""
    bad = ConfigError(f"{what} {value!r}: expected an http(s) URL without spaces")
    if control_character(value) or any(c.isspace() or c in '<>"' for c in value):
        raise bad
    try:
        url = urllib.parse.urlsplit(value)
    except ValueError:
        raise bad from None
    if url.scheme not in ("http", "https") or not url.netloc:
        raise bad
    return value


# "Full Name <address>"; no comma (it separates maintainers in Uploaders-style fields).
_MAINTAINER_RE = re.compile(r"[^\s<>,]([^<>,]*[^\s<>,])? <[^\s<>,@]+@[^\s<>,@]+>")


def check_maintainer(value: str, what: str = "--maintainer") -> str:
    """``Full Name <address>`` on one line, without commas: Debian's ``Maintainer``, rpm's
    ``Packager`` and changelog author."""
    if not _MAINTAINER_RE.fullmatch(value) or control_character(value):
        raise ConfigError(
            f"invalid maintainer {value!r} ({what}): expected 'Full Name <address@example.org>' "
            "on one line, without commas"
        )
    return value


_ARTICLE_RE = re.compile(r"(?:an?|the)\s+(?=\S)", re.IGNORECASE)


def synopsis(summary: str, package: str = "") -> str:
    """A project summary as the package's synopsis: not starting with the package's name, no
    leading article, no final full stop (as Debian's style, lintian and rpmlint want), at
    most 80 characters, shortened at a word. ("HTTPie: modern, user-friendly command-line
    HTTP client" becomes "Modern, user-friendly command-line HTTP client".)"""
    text = summary.rstrip(" \\")  # a trailing backslash would continue an rpm tag
    if package:
        named = re.match(
            rf"{re.escape(package)}\b\s*(?:[:,\-\u2013\u2014]\s*|is\s+)?", text, re.IGNORECASE
        )
        if named and text[named.end() :].strip():
            text = text[named.end() :]
            text = text[:1].upper() + text[1:]
    if _ARTICLE_RE.match(text):
        text = _ARTICLE_RE.sub("", text, count=1)
        text = text[:1].upper() + text[1:]
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    if len(text) > _SYNOPSIS_MAX:
        text = text[: _SYNOPSIS_MAX - 3].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return text


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
        "state directory /var/lib/<package>, and run the service as it, without capabilities "
        "(not a name a standard system already has: nobody, disk, sudo...). Installing "
        "stops when an account or group of that name exists for another role.",
        default="",
        metavar="NAME",
        group=SERVICE,
    ),
    Option(
        "existing_user",
        ("--existing-user",),
        "--user names an account the target already has, on purpose (made by you or your "
        "configuration management, or one the system has, like www-data): the package "
        "neither creates nor checks it, and installing stops where it is missing.",
        is_flag=True,
        group=SERVICE,
    ),
    Option(
        "files",
        ("--file",),
        "Install the file SRC at DEST (absolute, outside /etc and the prefix), with MODE "
        "(octal, default 0644) (repeatable).",
        multiple=True,
        metavar="SRC:DEST[:MODE]",
        relative=SOURCE,
        group=INSTALL,
    ),
    Option(
        "config_files",
        ("--config-file",),
        "Install SRC as the configuration file DEST under /etc: kept with the administrator's "
        "edits on upgrades and removal (repeatable).",
        multiple=True,
        metavar="SRC:DEST[:MODE]",
        relative=SOURCE,
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
        "A package whose files this one takes over (RPM: Obsoletes) (repeatable).",
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
        "The packaging revision (Debian: the part after '-', RPM: Release), raised when the "
        "same application version is packaged again.",
        default=DEFAULT_RELEASE,
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
        "existing_user": bool(values.get("existing_user")),
        "files": tuple(values.get("files") or ()),
        "config_files": tuple(values.get("config_files") or ()),
        "provides": tuple(values.get("provides") or ()),
        "conflicts": tuple(values.get("conflicts") or ()),
        "replaces": tuple(values.get("replaces") or ()),
        "recommends": tuple(values.get("recommends") or ()),
        "release": values.get("release") or DEFAULT_RELEASE,
        "epoch": values.get("epoch"),
    }


# A user name useradd takes and systemd calls safe (systemd's "User/Group Name Syntax"):
# lower case, at most 31 characters; systemd warns on every load about a longer one.
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,30}")
# Debian's revision and rpm's Release both take these (and never '-').
_RELEASE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~]*")
# The one relation grammar of both formats. A package name both dpkg and rpm take (Debian's
# rule, the narrower one); a version both take: an optional epoch, an upstream part that
# starts with a digit, at most one revision (release) after '-'.
PACKAGE_NAME = r"[a-z0-9][a-z0-9+.-]+"
_VERSION = r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~]*(?:-[A-Za-z0-9.+~]+)?"
# Spelt the Debian way, ``name (>= 1.0)``, with ``<<`` and ``>>`` for the strict comparisons
# (there, ``(<`` and ``(>`` are obsolete spellings of ``<=`` and ``>=``: refused rather than
# guessed), or the rpm way, ``name >= 1.0``, where ``<`` and ``>`` are strict.
_STRICT = {"<": "<<", ">": ">>"}


@cache
def _relation_re(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?P<name>{name})\s*(?:"
        rf"\(\s*(?P<deb_op><<|<=|=|>=|>>)\s*(?P<deb_version>{_VERSION})\s*\)"
        rf"|(?P<op><<|>>|<=|>=|<|>|=)\s*(?P<version>{_VERSION}))?"
    )


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


def parse_relation(value: str, what: str, name: str = PACKAGE_NAME) -> Relation:
    """``value`` as a :class:`Relation`; ConfigError for anything else (a second relation,
    a macro, a line break). ``name`` is the regular expression of the names a format takes
    beyond :data:`PACKAGE_NAME` (rpm's ``perl(Foo)``, ``/usr/bin/sh``)."""
    match = _relation_re(name).fullmatch(value.strip())
    if match is None or control_character(value):
        raise ConfigError(
            f"{what} {value!r}: expected one package, 'name', 'name (>= 1.0)' or 'name >= 1.0'"
        )
    op = match["deb_op"] or match["op"] or ""
    version = match["deb_version"] or match["version"] or ""
    return Relation(match["name"], _STRICT.get(op, op), version)


@dataclass(frozen=True)
class _BaseSystem:
    accounts: frozenset[str]
    """Users and groups a standard target already has."""
    config_destinations: tuple[str, ...]
    """fnmatch patterns of files that belong to the base system."""


@cache
def _base_system() -> _BaseSystem:
    # The target is another machine: its accounts are those of a standard system, never the
    # build host's /etc/passwd and /etc/group.
    data = load_json("system-base.json")
    accounts, patterns = data.get("accounts"), data.get("config_destinations")
    if not isinstance(accounts, list) or not all(
        isinstance(a, str) and _USER_RE.fullmatch(a) for a in accounts
    ):
        raise ConfigError("system-base.json: 'accounts' must be a list of user names")
    if not isinstance(patterns, list) or not all(
        isinstance(p, str) and p.startswith("/etc/") for p in patterns
    ):
        raise ConfigError("system-base.json: 'config_destinations' must be paths under /etc/")
    return _BaseSystem(frozenset(accounts), tuple(patterns))


def base_system_file(dest: str) -> bool:
    """Whether ``dest`` is a file of the base system (``policy/system-base.json``): the
    account databases, sudo, cron, PAM, the loader's configuration and the like."""
    return any(fnmatch.fnmatchcase(dest, p) for p in _base_system().config_destinations)


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
    if base_system_file(dest):
        raise ConfigError(f"{what} {value!r}: {dest} belongs to the base system")
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
    existing_user: bool = False
    """``user`` is an account the target already has: neither made nor checked."""
    files: tuple[str, ...] = ()
    """``SRC:DEST[:MODE]`` of files to install besides the environment."""
    config_files: tuple[str, ...] = ()
    """``SRC:DEST[:MODE]`` of configuration files under /etc."""
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    """Packages whose files this one takes over (Debian Replaces, rpm Obsoletes)."""
    recommends: tuple[str, ...] = ()
    release: str = DEFAULT_RELEASE
    """The packaging revision: Debian's ``-<revision>``, rpm's ``Release``."""
    epoch: int | None = None
    """The version's epoch; None: the PEP 440 epoch of the application's version."""
    summary: str = ""
    """The synopsis; empty: the first line of :attr:`description`, else the project's
    summary, else generated. (rpm's ``--summary``; deb's synopsis is ``--description``'s
    first line.)"""
    description: str = ""
    """A synopsis line, then lines of extended description (after :attr:`summary`, all of
    it is the extended description). Empty: from the project's metadata, else generated."""
    homepage: str = ""
    """Empty: the project's homepage, if it names one both formats can show."""
    maintainer: str = ""
    """``Full Name <address>``; empty: the project's first maintainer, then author."""
    license: str = ""
    """rpm's ``--license``; empty: the project's SPDX expression, or the license its
    license file's text is."""

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
                "and -, at most 31 characters, not root"
            )
        if self.existing_user and not self.user:
            raise ConfigError("--existing-user needs --user, the account the service runs as")
        if self.user in _base_system().accounts and not self.existing_user:
            raise ConfigError(
                f"--user {self.user!r}: a user or group the system already has (Debian, "
                "Fedora), for another role; give the service its own name (or, to run it as "
                "that account on purpose, add --existing-user)"
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
        if self.summary:
            check_line(self.summary, "--summary")
            if len(self.summary.strip()) > _SYNOPSIS_MAX:
                raise ConfigError(
                    f"--summary: the synopsis is at most {_SYNOPSIS_MAX} characters "
                    f"(got {len(self.summary.strip())}); put details in --description"
                )
        if self.description:
            check_description(self.description)
        if self.homepage:
            check_url(self.homepage)
        if self.maintainer:
            check_maintainer(self.maintainer)
        if self.license:
            check_line(self.license, "--license")

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
    existing: bool = False
    """An account the target already has (its group is its own business): not made."""


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
    the unit rendered (sandboxed; as the service user when there is one). ConfigError
    otherwise."""
    manifest = env.manifest
    prefix = check_prefix(manifest.prefix, "manifest prefix")
    commands = _commands(env, options) if options.bin_links else ()
    files = tuple(sorted(options.install_files, key=lambda f: f.dest))
    for item in files:
        if item.dest == prefix or item.dest.startswith(prefix + "/"):
            raise ConfigError(f"{item.dest}: inside the prefix {prefix}, which the tree fills")
    user = (
        ServiceUser(options.user, f"/var/lib/{package}", options.existing_user)
        if options.user
        else None
    )
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
        user_script=(
            templates.render(
                "system/create-user.sh",
                user=user.name,
                home=user.home,
                package=package,
                existing=user.existing,
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


# --- the package description ---------------------------------------------------------------

_FLOOR_RE = re.compile(r"[0-9]+\.[0-9]+")
_PYTHON_VERSION_RE = re.compile(r"[0-9]+\.[0-9]+(\.[0-9]+)?([a-z]+[0-9]+)?\+?")


@dataclass(frozen=True)
class PackageInfo:
    """A system package described once, from the environment, its project's metadata and
    the options: what every format renders, each in its own syntax. For each field the
    option comes first, then what the project says about itself, then generated text."""

    name: str
    """The package name: the application's, checked."""
    version: str
    """The application's PEP 440 version, normalised; each format maps it to its own."""
    epoch: int | None
    """``--epoch``; None: the version's own (which each format writes its way)."""
    release: str
    summary: str
    """The synopsis: one line of at most 80 characters (the unit's ``Description=`` too)."""
    description: str
    """The extended description: lines of text, paragraphs separated by a blank line; no
    line starts with ``%`` or ``#``, unless it came from the project's metadata."""
    description_generated: bool
    """True: made from the project's metadata, each paragraph one line that the format wraps;
    False: the user's lines, kept as written."""
    license: str
    """An SPDX expression (or rpm's ``--license`` as given); empty: not known."""
    homepage: str
    """An http(s) URL (:func:`check_url`); empty: none."""
    maintainer: str
    """``Full Name <address>`` (:func:`check_maintainer`); empty: nobody found."""
    relations: Relations
    license_files: tuple[str, ...]
    """The project's license files that are regular files of the tree, relative to it."""
    python_version: str
    glibc_floor: str
    """The oldest glibc the tree runs on (``2.28``); empty: it names none."""
    build_time: int
    """SOURCE_DATE_EPOCH, or now: changelog dates and the generated files' mtimes."""
    contents: Contents


def describe(env: BuiltEnv, options: SystemOptions) -> PackageInfo:
    """The :class:`PackageInfo` of ``env``'s system package. A manifest field no package can
    hold (an edited manifest) is a ConfigError, whichever format asks."""
    m = env.manifest
    name = validate_name(m.name)
    rpm_version(m.version)  # the checks both formats' version maps make
    version = str(Version(m.version))
    if m.glibc_floor and not _FLOOR_RE.fullmatch(m.glibc_floor):
        raise ConfigError(f"manifest: glibc_floor {m.glibc_floor!r} is not a version such as 2.28")
    if not _PYTHON_VERSION_RE.fullmatch(m.python.version):
        raise ConfigError(f"manifest: python version {m.python.version!r} is malformed")
    meta = m.metadata
    summary, description, generated = _summary_and_description(env, options, version)
    homepage = options.homepage or _project_homepage(meta)
    license_files = _license_files(env, meta)
    epoch = source_date_epoch()
    return PackageInfo(
        name=name,
        version=version,
        epoch=options.epoch,
        release=options.release,
        summary=summary,
        description=description,
        description_generated=generated,
        license=options.license.strip()
        or spdx_expression(meta.license if meta else None)
        or _recognised_license(env, license_files),
        homepage=homepage,
        maintainer=options.maintainer or _project_maintainer(meta),
        relations=options.relations,
        license_files=license_files,
        python_version=m.python.version,
        glibc_floor=m.glibc_floor,
        build_time=int(time.time()) if epoch is None else epoch,
        contents=plan_contents(
            env, options, package=name, description=summary, documentation=homepage
        ),
    )


def _one_line(text: str) -> str:
    """A line of user text as a synopsis: tabs expanded, control characters dropped."""
    return strip_control(text.expandtabs(8)).strip().rstrip(" \\")


def _summary_and_description(
    env: BuiltEnv, options: SystemOptions, version: str
) -> tuple[str, str, bool]:
    """The synopsis, the extended description and whether it was generated (rather than
    given). Given text wins; otherwise the project's
    summary is the synopsis, and the extended description is the first prose paragraph of
    its long description followed by a generated paragraph on what the package holds. A
    synopsis alone (given or from the summary) gets the paragraphs.

    Not the whole long description: it is usually a Markdown or reST README made for a web
    page (headings, badges, code blocks), where a package manager shows plain text.
    """
    m = env.manifest
    meta = m.metadata
    project_summary = one_line(meta.summary) if meta else ""
    lines = options.description.splitlines()
    paragraphs: list[str] = []
    summary = ""
    if options.summary.strip():
        summary, body = _one_line(options.summary), lines
    elif lines:
        summary, body = _one_line(lines[0]), lines[1:]
    else:
        body = []
        if project_summary:
            summary = synopsis(project_summary, m.name)
            if summary.endswith(" ..."):  # shortened: the whole summary opens the body
                paragraphs.append(project_summary)
    if not summary:
        summary = f"Python application {m.name} with its own interpreter"
    if any(line.strip() for line in body):
        return summary, "\n".join(body).strip("\n"), False
    lead = first_paragraph(meta.description, project_summary) if meta else ""
    if lead:
        paragraphs.append(lead)
    paragraphs.append(
        f"This package installs {m.name} {version} in {m.prefix} together with the Python "
        f"distributions it needs and its own CPython {m.python.version} interpreter. It "
        "neither uses nor changes the system's Python."
    )
    return summary, "\n\n".join(paragraphs), True


def _project_maintainer(meta: AppMetadata | None) -> str:
    """The first of the project's maintainers, then authors, named ``Full Name <address>``."""
    for person in (*meta.maintainers, *meta.authors) if meta else ():
        try:
            return check_maintainer(one_line(person))
        except ConfigError:
            continue
    return ""


def _project_homepage(meta: AppMetadata | None) -> str:
    if meta is None or not meta.homepage:
        return ""
    try:
        return check_url(meta.homepage)
    except ConfigError:
        return ""  # not one both formats can show: the package simply has no homepage


def _license_files(env: BuiltEnv, meta: AppMetadata | None) -> tuple[str, ...]:
    """The project's license files that are regular files inside the tree: an edited
    manifest must not copy the build host's files (/etc/shadow ...) into a package."""
    found = []
    for rel in meta.license_files if meta else ():
        path = env.root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            continue
        if path.is_file() and not path.is_symlink():
            found.append(rel)
    return tuple(found)


@dataclass(frozen=True)
class _LicenseText:
    phrases: tuple[str, ...]
    min_length: int
    max_length: int


@cache
def _license_texts() -> dict[str, _LicenseText]:
    texts = load_json("license-texts.json").get("texts")
    if not isinstance(texts, dict) or not texts:
        raise ConfigError("license-texts.json needs a non-empty 'texts' object")
    table = {}
    for spdx, entry in texts.items():
        if not isinstance(entry, dict) or set(entry) != {"phrases", "min_length", "max_length"}:
            raise ConfigError(f"license-texts.json: {spdx!r} needs phrases, min_length, max_length")
        phrases, low, high = entry["phrases"], entry["min_length"], entry["max_length"]
        if (
            not isinstance(phrases, list)
            or not phrases
            or not all(isinstance(p, str) and p == " ".join(p.split()) for p in phrases)
        ):
            raise ConfigError(f"license-texts.json: {spdx!r}: phrases are one-line strings")
        if not (isinstance(low, int) and isinstance(high, int) and 0 < low < high):
            raise ConfigError(f"license-texts.json: {spdx!r}: invalid length bounds")
        table[spdx] = _LicenseText(tuple(phrases), low, high)
    return table


def license_of_text(text: str) -> str:
    """The SPDX identifier of the license whose full text ``text`` is, or "" (a notice, a
    text with a second license, a license not in ``policy/license-texts.json``)."""
    flat = " ".join(text.split())
    for spdx, known in _license_texts().items():
        if known.min_length <= len(flat) <= known.max_length and all(
            phrase in flat for phrase in known.phrases
        ):
            return spdx
    return ""


def _recognised_license(env: BuiltEnv, license_files: Sequence[str]) -> str:
    """The license of a project whose metadata names none in SPDX (``license = { file =
    ... }``, a classifier without a version): the one license every license file is the
    full text of, else ""."""
    found = {
        license_of_text((env.root / rel).read_bytes().decode("utf-8", errors="replace"))
        for rel in license_files
    }
    return found.pop() if len(found) == 1 else ""


# --- the tree, as both formats' linters see it ------------------------------------------------


@dataclass(frozen=True)
class TreeEntry:
    """One entry of an environment's tree, where a system package installs it."""

    path: Path
    """The entry in the environment on this host."""
    installed: str
    """Its absolute path on the target, under the prefix."""
    kind: str
    """``dir``, ``file``, ``symlink`` or ``other`` (never followed)."""


def walk_tree(root: Path, prefix: str, why: str) -> Iterator[TreeEntry]:
    """Every entry below ``root``, sorted, never following a symlink: the one walk from which
    each format learns which by-design linter findings (lintian's, rpmlint's) the tree
    triggers, so that it overrides only those. A name that is not UTF-8 is an EmitError,
    for the reason ``why`` the format gives (no package manager lists such a name)."""
    yield from _walk(root, root, prefix, why)


def _walk(directory: Path, root: Path, prefix: str, why: str) -> Iterator[TreeEntry]:
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path = Path(entry.path)
        relative = path.relative_to(root)
        try:
            entry.name.encode("utf-8")
        except UnicodeEncodeError:
            raise EmitError(
                f"file name '{printable(str(relative))}' in {root} is not UTF-8, {why}; "
                "rename or remove it"
            ) from None
        if entry.is_symlink():
            kind = "symlink"
        elif entry.is_dir(follow_symlinks=False):
            kind = "dir"
        elif entry.is_file(follow_symlinks=False):
            kind = "file"
        else:
            kind = "other"
        yield TreeEntry(path, f"{prefix}/{relative.as_posix()}", kind)
        if kind == "dir":
            yield from _walk(path, root, prefix, why)
