"""What ``--python`` asks for, parsed without touching the machine.

The spellings follow uv's, so a project that already says ``cpython@3.12`` in its
``.python-version`` or ``>=3.11`` in ``requires-python`` means the same thing to venvpack.
Parsing is kept pure (no filesystem, no subprocess): the ``interpreter`` stage decides where
to look and which binary fits, and unit tests can cover every spelling in a table.

Requests for things venvpack cannot bundle (PyPy, GraalPy, free-threaded or debug builds,
another machine's installation key) still parse, so the user is told *why* they are refused
rather than that nothing was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from venvpack.errors import InterpreterError
from venvpack.platform import uv_arch_family, uv_key_example, uv_libc_family

__all__ = [
    "ACCEPTED_SPELLINGS",
    "Host",
    "PythonRequest",
    "parse_request",
    "refusal",
]

ACCEPTED_SPELLINGS = (
    "a path (/usr/bin/python3.12, ./venv/bin/python, ~/py/bin/python3), "
    "a version (3, 3.12, 3.12.4), python3.12, cpython@3.12, cpython3.12, cpython-3.12, "
    f"an installation key ({uv_key_example()}) "
    "or a specifier (>=3.11, ==3.12.*, >=3.10,<3.12, ~=3.11)"
)

# uv's names and short forms. "python" is the generic name (python3.12 is a CPython request).
_IMPLEMENTATIONS = {
    "cpython": "cpython",
    "cp": "cpython",
    "python": "cpython",
    "pypy": "pypy",
    "pp": "pypy",
    "graalpy": "graalpy",
    "gp": "graalpy",
}
_DISPLAY = {"cpython": "CPython", "pypy": "PyPy", "graalpy": "GraalPy"}

_SPECIFIER_START = ("~=", "==", "!=", "<=", ">=", "<", ">")
_LEADING_NAME = re.compile(r"^([a-z]+)(.*)$")
# 3 / 3.12 / 3.12.4 / 312 (after a name), then uv's build variants: short (3.13t, 3.13d)
# or long (+freethreaded, +debug; +gil is the default build, named explicitly).
_VERSION = re.compile(
    r"^(?P<number>\d+(?:\.\d+){0,2})(?P<short>t|d|td|dt)?"
    r"(?P<long>(?:\+(?:freethreaded|debug|gil))*)$"
)


@dataclass(frozen=True)
class Host:
    """The platform triple of an installation key (uv's ``<os>-<arch>-<libc>``)."""

    os: str
    """``linux``, ``macos``, ``windows``."""
    arch: str
    """The machine as uv spells it (``venvpack.platform`` knows the spellings)."""
    libc: str
    """The C library as uv spells it, or ``none`` where there is no separate libc."""

    def __str__(self) -> str:
        return f"{self.os}-{self.arch}-{self.libc}"

    def runs(self, key: Host) -> bool:
        """Whether an installation built for ``key`` is meant for this platform."""
        return (
            key.os == self.os
            and uv_arch_family(key.arch) == uv_arch_family(self.arch)
            and uv_libc_family(key.libc) == uv_libc_family(self.libc)
        )


@dataclass(frozen=True)
class PythonRequest:
    """One ``--python`` value (or ``.python-version`` line, or ``requires-python``)."""

    text: str
    """What the user wrote, for messages."""
    path: Path | None = None
    """An interpreter path as written (``~`` not yet expanded); None for any other kind."""
    implementation: str = "cpython"
    """``cpython``, ``pypy`` or ``graalpy``."""
    version: tuple[int, ...] = ()
    """The version prefix asked for: ``()`` any, ``(3,)``, ``(3, 12)`` or ``(3, 12, 4)``."""
    specifier: SpecifierSet | None = None
    """A PEP 440 specifier set, instead of ``version``."""
    free_threaded: bool = False
    debug: bool = False
    platform: Host | None = None
    """The platform of an installation key (``cpython-3.12.4-linux-x86_64-gnu``)."""

    def admits(self, version: tuple[int, int, int]) -> bool:
        """Whether an interpreter of ``version`` satisfies the request."""
        if self.specifier is not None:
            return self.specifier.contains(Version(".".join(map(str, version))))
        return version[: len(self.version)] == self.version

    def might_admit(self, hint: tuple[int, ...]) -> bool:
        """Whether some interpreter whose version starts with ``hint`` could satisfy it.

        Used on versions read from file and directory names, so that a request probes only
        the interpreters that can possibly match.
        """
        if len(hint) >= 3:
            return self.admits((hint[0], hint[1], hint[2]))
        if self.specifier is not None:
            if len(hint) < 2:
                return True
            return any(self.admits((hint[0], hint[1], micro)) for micro in range(100))
        common = min(len(hint), len(self.version))
        return hint[:common] == self.version[:common]

    def describe(self) -> str:
        """``CPython 3.12``, ``CPython >=3.11`` or ``CPython``: what was asked, in words."""
        name = _DISPLAY[self.implementation]
        if self.specifier is not None:
            return f"{name} {self.specifier}"
        if self.version:
            return f"{name} {'.'.join(map(str, self.version))}"
        return name


def parse_request(text: str) -> PythonRequest:
    """Parse one request; raise InterpreterError (listing the accepted spellings) if garbled."""
    stripped = text.strip()
    if _looks_like_path(stripped):
        return PythonRequest(text=stripped, path=Path(stripped))
    lowered = stripped.lower()
    if lowered.startswith(_SPECIFIER_START):
        return PythonRequest(text=stripped, specifier=_specifier(lowered, stripped))
    match = _LEADING_NAME.match(lowered)
    if match is None:
        return _versioned(stripped, "cpython", lowered, compact=False)
    name, rest = match.groups()
    implementation = _IMPLEMENTATIONS.get(name)
    if implementation is None:
        raise _garbled(stripped)
    if rest == "":
        return PythonRequest(text=stripped, implementation=implementation)
    if rest.startswith(_SPECIFIER_START):
        return PythonRequest(
            text=stripped, implementation=implementation, specifier=_specifier(rest, stripped)
        )
    if rest.startswith("@"):
        return _after_at(stripped, implementation, rest[1:])
    if rest.startswith("-"):
        return _key(stripped, implementation, rest[1:])
    return _versioned(stripped, implementation, rest, compact=True)


def refusal(request: PythonRequest, host: Host) -> str | None:
    """Why venvpack will not serve ``request`` on ``host`` whatever is installed, or None."""
    quoted = f"{request.text!r}"
    if request.implementation != "cpython":
        name = _DISPLAY[request.implementation]
        return f"{quoted} asks for {name}; venvpack bundles CPython only"
    if request.free_threaded:
        return f"{quoted} asks for a free-threaded build; venvpack does not support those yet"
    if request.debug:
        return f"{quoted} asks for a debug build; venvpack does not support those yet"
    if request.platform is not None and not host.runs(request.platform):
        return f"{quoted} is an installation for {request.platform}; this machine is {host}"
    return None


def _looks_like_path(text: str) -> bool:
    # A bare word is a name or a version, as in uv; paths say so with a slash or "~".
    # "~=3.11" is a specifier, not a home directory.
    if text.startswith("~="):
        return False
    return "/" in text or text.startswith("~") or text in (".", "..")


def _specifier(spec: str, original: str) -> SpecifierSet:
    try:
        parsed = SpecifierSet(spec)
    except InvalidSpecifier:
        raise _garbled(original) from None
    if not len(parsed):
        raise _garbled(original)
    return parsed


def _after_at(original: str, implementation: str, rest: str) -> PythonRequest:
    """``cpython@3.12``, and ``cpython@>=3.11`` for symmetry with the bare specifier."""
    if rest.startswith(_SPECIFIER_START):
        return PythonRequest(
            text=original, implementation=implementation, specifier=_specifier(rest, original)
        )
    return _versioned(original, implementation, rest, compact=False)


def _key(original: str, implementation: str, rest: str) -> PythonRequest:
    """``cpython-3.12`` or uv's installation key ``cpython-3.12.4-linux-x86_64-gnu``.

    The architecture may contain ``_`` (``x86_64``) but not ``-``, so a key always has exactly
    four ``-``-separated parts after the implementation.
    """
    parts = rest.split("-")
    if len(parts) == 1:
        return _versioned(original, implementation, parts[0], compact=False)
    if len(parts) != 4 or not all(parts):
        raise _garbled(original)
    versioned = _versioned(original, implementation, parts[0], compact=False)
    return replace(versioned, platform=Host(os=parts[1], arch=parts[2], libc=parts[3]))


def _versioned(original: str, implementation: str, token: str, *, compact: bool) -> PythonRequest:
    """A version token with its variant; ``compact`` allows uv's ``cp312`` form."""
    match = _VERSION.match(token)
    if match is None:
        raise _garbled(original)
    number = match.group("number")
    if compact and "." not in number and len(number) > 1:
        # cp312 / cpython312: the first digit is the major version, the rest the minor.
        number = f"{number[0]}.{number[1:]}"
    short = match.group("short") or ""
    long = match.group("long")
    return PythonRequest(
        text=original,
        implementation=implementation,
        version=tuple(int(part) for part in number.split(".")),
        free_threaded="t" in short or "+freethreaded" in long,
        debug="d" in short or "+debug" in long,
    )


def _garbled(text: str) -> InterpreterError:
    return InterpreterError(f"cannot read Python request {text!r}: expected {ACCEPTED_SPELLINGS}")
