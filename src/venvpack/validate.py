"""What comes from outside and becomes a path, an installer argument, a URL or a command: one
check per kind, so every caller applies the same rule.

- a **file name** venvpack makes from a name and a version is one path component of a safe
  character set: a crafted version (``../../x``) cannot put an artifact outside ``-o``;
- an **installer argument** that is a requirement never starts with ``-``: uv and pip would
  read ``--target=/elsewhere`` as an option (they also get requirements after ``--``);
- a **public URL** (what ``direct_url.json`` keeps) has no userinfo, query or fragment
  other than a hash: tokens in ``?token=`` do not ship, and logs mask the same parts;
- a **system command** (what deb and rpm link into ``/usr/bin``) is never one of the names
  ``bin/`` holds as interpreter links or venv machinery (``python3``, ``pip``, ``activate``),
  unless the application itself installs a console script of that name;
- a **control character** is one definition (:func:`control_character`) for every value that
  ends up in a file another tool reads line by line (a control file, a spec, a unit).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from packaging.version import InvalidVersion, Version

from venvpack.errors import ConfigError

__all__ = [
    "app_name",
    "app_version",
    "control_character",
    "file_name",
    "glibc_version",
    "installer_argument",
    "module_name",
    "public_url",
    "redact_urls",
    "reserved_command",
    "strip_control",
    "system_command",
]

# Letters, digits and what versions and architectures use (``1.0~rc1``, ``1.0+post1``,
# ``x86_64``); not starting with ``.`` (hidden, ``..``) or ``-`` (an option to a tool).
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+~^-]*")


def file_name(value: str, what: str = "file name") -> str:
    """``value`` if it is a single, safe path component; else ConfigError."""
    if not _FILE_NAME_RE.fullmatch(value) or len(value.encode()) > 255:
        raise ConfigError(
            f"{what} {value!r} is not a single file name of letters, digits and . _ + ~ ^ - "
            "(a name or version in the manifest is malformed)"
        )
    return value


# Every character that ends a line for someone, or hides text from whoever reads it: the C0
# controls, DEL, the C1 range (with NEL, which Python's splitlines breaks at) and Unicode's
# line and paragraph separators.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def control_character(text: str, allow: str = "") -> str:
    """The first control character of ``text`` that is not in ``allow`` (``"\\t"``, or
    ``"\\t\\n"`` for multi-line text), or "" when there is none."""
    for match in _CONTROL_RE.finditer(text):
        if match[0] not in allow:
            return match[0]
    return ""


def strip_control(text: str, allow: str = "", replacement: str = "") -> str:
    """``text`` with each control character but those in ``allow`` replaced by
    ``replacement`` (removed, by default)."""
    return _CONTROL_RE.sub(lambda m: m[0] if m[0] in allow else replacement, text)


def installer_argument(value: str, what: str = "requirement") -> str:
    """A requirement handed to uv or pip: never read as an option, never two lines."""
    if value.strip().startswith("-"):
        raise ConfigError(
            f"{what} {value!r} starts with '-': give options as venvpack's own flags "
            "(a requirement is a name, a specifier, a path or a URL)"
        )
    if not value.strip() or control_character(value):
        raise ConfigError(f"{what} {value!r} is empty or holds a line break")
    return value


_HASH_FRAGMENT_RE = re.compile(r"(sha1|sha224|sha256|sha384|sha512|md5)=[0-9a-fA-F]+")


def public_url(url: str) -> str:
    """``url`` without what may be a secret: the password or token of its userinfo (``git@``,
    the conventional ssh user, stays), its query string, and a fragment that is not a hash."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = ("git@" if userinfo == "git" else "") + host
    fragment = parts.fragment if _HASH_FRAGMENT_RE.fullmatch(parts.fragment) else ""
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment=fragment))


_URL_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_URL_QUERY_RE = re.compile(r"(?P<url>[A-Za-z][A-Za-z0-9+.-]*://[^\s?#]*)\?[^\s#]*")


def redact_urls(text: str) -> str:
    """``text`` (a command line, a tool's output) with the userinfo and the query string of
    every URL in it masked: the same secrets :func:`public_url` drops, for logs."""
    text = _URL_USERINFO_RE.sub(r"\g<scheme>****@", text)
    return _URL_QUERY_RE.sub(r"\g<url>?****", text)


# Names ``bin/`` holds as links to the interpreter or as the venv's own machinery. Linked
# into /usr/bin they would shadow the system's python3 or pip with the bundled one.
_RESERVED_RE = re.compile(
    r"python[0-9.]*(-config)?|pip[0-9.]*|activate.*|Activate\.ps1|deactivate|venvpack-relocate"
)


def reserved_command(name: str) -> bool:
    """Whether ``name`` is one of the interpreter links or venv scripts of ``bin/``."""
    return _RESERVED_RE.fullmatch(name) is not None


def system_command(name: str, app_commands: Iterable[str], what: str = "--entry-point") -> str:
    """A command to link into ``/usr/bin``: ``name`` unless it is reserved and not one of the
    application's own console scripts (``app_commands``, from the manifest)."""
    if reserved_command(name) and name not in set(app_commands):
        raise ConfigError(
            f"{what} {name!r}: the environment's {name} is its interpreter or venv machinery, "
            "not a command of the application; linked into /usr/bin it would shadow the "
            "system's own"
        )
    return name


_APP_NAME_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_GLIBC_RE = re.compile(r"(\d+)\.(\d+)")
_MODULE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def app_name(name: str) -> str:
    """An application name usable as a directory, a Debian and an RPM package name."""
    if not _APP_NAME_RE.fullmatch(name):
        raise ConfigError(
            f"invalid application name {name!r}: use lower-case letters, digits and + . - "
            "(at least two characters, starting with a letter or digit); set one with --name"
        )
    return name


def app_version(version: str) -> str:
    """A PEP 440 version, which the package version maps need."""
    try:
        Version(version)
    except InvalidVersion:
        raise ConfigError(
            f"invalid version {version!r}: use a PEP 440 version such as 1.2.3 or 2.0rc1"
        ) from None
    if version != version.strip() or "\n" in version:
        raise ConfigError(f"invalid version {version!r}: no spaces or line breaks")
    return version


def glibc_version(text: str) -> tuple[int, int]:
    """``2.31`` as ``(2, 31)``; ConfigError for anything else (a usage error)."""
    m = _GLIBC_RE.fullmatch(text.strip())
    if not m:
        raise ConfigError(f"invalid glibc version {text!r}: use MAJOR.MINOR, e.g. 2.31")
    return int(m.group(1)), int(m.group(2))


def module_name(name: str) -> str:
    """An ``--exclude-module`` value: a top-level module name, nothing path-like."""
    if not _MODULE_NAME_RE.fullmatch(name):
        raise ConfigError(f"--exclude-module {name!r}: not a module name (e.g. _curses)")
    return name
