"""Emitters: one interface, one registry, one module per format (tar, deb, rpm).

An emitter turns a finished environment (:class:`venvpack.manifest.BuiltEnv`) into one
artifact. Format knowledge stays inside each emitter module; the CLI and the pack
orchestration (:mod:`venvpack.pack`) only know the two interfaces here:

- a :class:`Format` (one per module, named ``FORMAT``) describes the sub-command: its own
  options as data (:class:`Option`), the file name extensions that make ``-o`` name the
  artifact, and how option values become an :class:`Emitter` -- checked then, before any
  build starts;
- an :class:`Emitter` checks a build request against its rules (a system package's prefix),
  names its artifact and writes it.

Adding a format is one new module with a ``FORMAT`` and one entry in :data:`FORMATS`.

Every emitter writes through :func:`venvpack.output.atomic_output`: in a staging directory
beside the destination, renamed into place at the end, so no partial artifact is ever left
at the output path and nothing venvpack did not make is replaced.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from venvpack.archive import Progress
from venvpack.config import BuildSpec
from venvpack.manifest import BuiltEnv

__all__ = [
    "FORMATS",
    "INSTALL",
    "METADATA",
    "OUTPUT",
    "SERVICE",
    "Emitter",
    "Format",
    "Option",
    "Progress",
    "load_format",
]

FORMATS: Mapping[str, str] = {
    "tar": "venvpack.emit.tar",
    "deb": "venvpack.emit.deb",
    "rpm": "venvpack.emit.rpm",
}
"""Every format: its sub-command name and the module whose ``FORMAT`` implements it."""


def load_format(name: str) -> Format:
    """The :class:`Format` registered as ``name``."""
    fmt: Format = importlib.import_module(FORMATS[name]).FORMAT
    return fmt


# The sections of a sub-command's help an Option is listed in (:attr:`Option.group`).
OUTPUT = "Output options"
METADATA = "Package metadata"
INSTALL = "Install options"
SERVICE = "Service options"


@dataclass(frozen=True)
class Option:
    """One option of a format's sub-command, as data: the CLI makes the flag from it."""

    name: str
    """The key of its value in the mapping :meth:`Format.emitter` receives."""
    flags: tuple[str, ...]
    """``("--maintainer",)``; the first is the one messages name."""
    help: str
    default: Any = None
    multiple: bool = False
    """Repeatable: the value is a tuple."""
    is_flag: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    type: type = str
    """``str`` or ``int``."""
    show_default: bool = False
    """Say ``(default: <default>)`` at the end of the help."""
    group: str = METADATA
    """The help section it is listed in: :data:`OUTPUT`, :data:`METADATA`, :data:`INSTALL`
    or :data:`SERVICE`."""


LEVEL = Option(
    "level", ("--level",), "Compression level (default: per format).", type=int, group=OUTPUT
)
"""``--level``, shared by the formats whose compression venvpack does itself (tar, deb)."""


class Emitter(Protocol):
    """What every format's artifact writer implements. Its options live on the instance."""

    format: str
    """Short name, also the CLI sub-command: ``tar``, ``deb`` or ``rpm``."""

    def check_build(self, spec: BuildSpec) -> None:
        """ConfigError when the build ``spec`` asks for what this format cannot hold (a
        prefix a system package cannot own): called before anything is built."""
        ...

    def filename(self, env: BuiltEnv) -> str:
        """Conventional file name of the artifact for ``env`` (e.g. ``app_1.0_amd64.deb``)."""
        ...

    def emit(self, env: BuiltEnv, dest: Path, *, replace: bool = True) -> Path:
        """Write the artifact to ``dest`` atomically and return it. Without ``replace`` an
        existing ``dest`` (even one that appears meanwhile) is an OutputExistsError."""
        ...

    def replaceable(self, path: Path) -> bool:
        """Whether the existing directory ``path`` is an artifact of this emitter, which
        ``replace`` may replace (files are always replaceable; other directories never)."""
        ...


class Format(Protocol):
    """A sub-command that writes an artifact: its options and how they become an emitter."""

    name: str
    help: str
    """The sub-command's help text."""
    examples: tuple[str, ...]
    """Command lines (with a ``# comment`` where useful) for the help's Examples section."""
    options: tuple[Option, ...]
    """The format's own options (the build and output options are every format's)."""

    def extensions(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        """File name endings with which ``-o`` names the artifact itself (``.deb``); with any
        other name ``-o`` is a directory. Empty: the artifact is always named by venvpack."""
        ...

    def emitter(
        self, values: Mapping[str, Any], artifact: str | None, progress: Progress | None
    ) -> Emitter:
        """The emitter for the option ``values`` (keys: :attr:`Option.name`), checked now
        (ConfigError), before any build. ``artifact`` is the file name ``-o`` gives, if it
        names one (it may decide e.g. the compression)."""
        ...
