"""Formats: one interface, one registry, one module per format (tar, deb, rpm).

A format owns its whole life; everything else asks the registry. Its module's ``FORMAT``
(a :class:`Format`) says:

- its sub-command: help, examples and its own options as data (:class:`Option`), which also
  make its ``[tool.venvpack.<name>]`` table and the commented table ``venvpack init`` writes;
- how option values become an :class:`Emitter` -- checked then, before any build starts --
  which checks a build request against its rules (a system package's prefix), names its
  artifact and any extra outputs beside it (:meth:`Emitter.extras`) and writes them;
- how its artifact is read back: recognised from its first bytes (:meth:`Format.detect`),
  unpacked through the contained reader (:meth:`Format.unpack`), where it installs
  (:attr:`Format.fixed_location`) and, for ``verify``, how it is installed in a clean root
  (:meth:`Format.install`).

The CLI's commands, help texts, the JSON schemas' enums, ``init``'s tables and the tests'
format lists come from the registry: the built-in :data:`FORMATS`, then what
:func:`register` added at run time. Adding a format is one module with a ``FORMAT`` and one
entry in :data:`FORMATS` (or one :func:`register` call: docs/development.md).

Every emitter writes through :func:`venvpack.output.atomic_output`: in a staging directory
beside the destination, renamed into place at the end, so no partial artifact is ever left
at the output path and nothing venvpack did not make is replaced.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from venvpack.archive import Progress
from venvpack.config import BuildSpec
from venvpack.errors import ConfigError
from venvpack.manifest import BuiltEnv
from venvpack.settings import INSTALL, METADATA, OUTPUT, SERVICE, Setting

if TYPE_CHECKING:
    from venvpack.unpack import Stream, Unpacker
    from venvpack.verify import Installed, Target

__all__ = [
    "FORMATS",
    "INSTALL",
    "METADATA",
    "OUTPUT",
    "SERVICE",
    "Emitter",
    "Format",
    "Option",
    "Packing",
    "Progress",
    "format_names",
    "format_options",
    "formats",
    "load_format",
    "register",
    "unregister",
]

FORMATS: Mapping[str, str] = {
    "tar": "venvpack.emit.tar",
    "deb": "venvpack.emit.deb",
    "rpm": "venvpack.emit.rpm",
    "oci": "venvpack.emit.oci",
}
"""The built-in formats: each sub-command's name and the module whose ``FORMAT`` implements
it, imported when first asked for."""

_registered: dict[str, Format] = {}
"""Formats added at run time by :func:`register`, in the order they were added."""


def register(fmt: Format) -> None:
    """Add ``fmt`` to the registry: from now on it has its ``venvpack <name>`` command, its
    ``[tool.venvpack.<name>]`` table, and ``inspect`` and ``verify`` read its artifacts.
    ConfigError when the name is taken."""
    if fmt.name in FORMATS or fmt.name in _registered or fmt.name == "environment":
        raise ConfigError(f"a format named {fmt.name!r} is already registered")
    _registered[fmt.name] = fmt


def unregister(name: str) -> None:
    """Remove a format :func:`register` added (built-in formats stay)."""
    _registered.pop(name, None)


def format_names() -> tuple[str, ...]:
    """Every format's name: the built-in ones, then those registered, in order."""
    return (*FORMATS, *_registered)


def formats() -> tuple[Format, ...]:
    """Every :class:`Format`, in :func:`format_names` order."""
    return tuple(load_format(name) for name in format_names())


def format_options() -> dict[str, tuple[Option, ...]]:
    """Every format's own options, by format name: what its ``[tool.venvpack.<format>]``
    table may hold (:func:`venvpack.config.read_pyproject` checks the tables against them)."""
    return {fmt.name: tuple(fmt.options) for fmt in formats()}


def load_format(name: str) -> Format:
    """The :class:`Format` registered as ``name``; ConfigError for an unknown one."""
    if name in _registered:
        return _registered[name]
    if name not in FORMATS:
        raise ConfigError(f"unknown format {name!r}: choose from {', '.join(format_names())}")
    fmt: Format = importlib.import_module(FORMATS[name]).FORMAT
    return fmt


Option = Setting
"""A format's own option is a setting like the build's (:mod:`venvpack.settings`): its flag,
its ``[tool.venvpack]`` key and default are declared once, in the format's module."""


LEVEL = Option(
    "level", ("--level",), "Compression level (default: per format).", type=int, group=OUTPUT
)
"""``--level``, shared by the formats whose compression venvpack does itself (tar, deb)."""


class Emitter(Protocol):
    """What every format's artifact writer implements. Its options live on the instance."""

    format: str
    """Short name, also the CLI sub-command (:attr:`Format.name`)."""

    def check_build(self, spec: BuildSpec) -> None:
        """ConfigError when the build ``spec`` asks for what this format cannot hold (a
        prefix a system package cannot own): called before anything is built."""
        ...

    def filename(self, env: BuiltEnv) -> str:
        """Conventional file name of the artifact for ``env`` (e.g. ``app_1.0_amd64.deb``)."""
        ...

    def extras(self, env: BuiltEnv, dest: Path) -> tuple[Path, ...]:
        """The files :meth:`emit` writes beside the artifact ``dest`` besides it (an rpm's
        rpmlintrc): they are outputs like the artifact -- refused when they exist without
        ``--force``, written atomically, listed in the ``--json`` result."""
        ...

    def emit(self, env: BuiltEnv, dest: Path, *, replace: bool = True) -> Path:
        """Write the artifact to ``dest`` (and its :meth:`extras`) atomically and return it.
        Without ``replace`` an existing ``dest`` (even one that appears meanwhile) is an
        OutputExistsError."""
        ...

    def replaceable(self, path: Path) -> bool:
        """Whether the existing ``path`` is this emitter's own. For a directory named as the
        artifact: one ``replace`` may replace (files are always replaceable; other
        directories never). For one of its :meth:`extras`: a file it regenerates for the
        same application (an rpmlintrc it wrote), which a new artifact replaces even without
        ``--force``; any other file there needs ``--force``."""
        ...


class Packing(Protocol):
    """What :func:`venvpack.pack.pack` needs of a format: how ``-o`` names its artifact and
    how option values become an emitter. Every :class:`Format` is one; so is the
    environment ``venvpack build`` makes (:data:`venvpack.emit.environment.ENVIRONMENT`)."""

    name: str
    """The sub-command, the ``[tool.venvpack.<name>]`` table and the result's ``format``."""

    def extensions(self, values: Mapping[str, Any]) -> tuple[str, ...] | None:
        """File name endings with which ``-o`` names the artifact itself (``.deb``); with any
        other name ``-o`` is a directory. Empty: the artifact is always named by venvpack.
        None: ``-o`` always names it (an environment directory)."""
        ...

    def emitter(
        self, values: Mapping[str, Any], artifact: str | None, progress: Progress | None
    ) -> Emitter:
        """The emitter for the option ``values`` (keys: :attr:`Option.name`), checked now
        (ConfigError), before any build. ``artifact`` is the file name ``-o`` gives, if it
        names one (it may decide e.g. the compression)."""
        ...


class Format(Packing, Protocol):
    """A kind of artifact: its sub-command, how option values become an emitter, and how
    its artifacts are read back for ``inspect`` and ``verify``."""

    help: str
    """The sub-command's help text."""
    examples: tuple[str, ...]
    """Command lines (with a ``# comment`` where useful) for the help's Examples section."""
    options: tuple[Option, ...]
    """The format's own options (the build and output options are every format's)."""
    noun: str
    """Its artifact as help texts and messages name it: ``a tarball``, ``a .deb``."""
    summary: str
    """What its artifact does, in a few words, for the top-level help."""
    sample: str
    """The file name of an example artifact, for the help's examples."""
    init_template: str | None
    """The template (under ``packaging-templates/``) of its commented table in the section
    ``venvpack init`` writes; None: the table is made from :attr:`options`."""
    fixed_location: bool
    """Its artifact installs the environment where it lies inside it (a system package at
    its prefix); False: it is unpacked anywhere and runs there."""

    def extensions(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        """File name endings with which ``-o`` names the artifact itself (``.deb``); with any
        other name ``-o`` is a directory. Empty: the artifact is always named by venvpack."""
        ...

    def detect(self, head: bytes) -> bool:
        """Whether a file beginning with ``head`` (its first 512 bytes, fewer if it is
        shorter) is this format's artifact."""
        ...

    def unpack(self, artifact: Stream, into: Unpacker) -> None:
        """Lay the files of ``artifact`` (open at its start) into a tree, only through
        ``into`` (:class:`venvpack.unpack.Unpacker`: contained, bounded); ArtifactError
        when it is not what it claims."""
        ...

    def install(self, target: Target) -> Installed:
        """``verify``: install or unpack the artifact in one clean root as its users would
        (:class:`venvpack.verify.Target` offers the sandboxed ways), saying where the
        environment is and how to run there."""
        ...
