"""Emitters: one interface, three formats (tar, deb, rpm).

An emitter turns a finished environment (:class:`venvpack.manifest.BuiltEnv`) into one
artifact. Format knowledge stays inside each emitter module; the CLI only knows this
interface. Every emitter writes through :func:`venvpack.output.atomic_output`: in a staging
directory beside the destination, renamed into place at the end, so no partial artifact is
ever left at the output path and nothing venvpack did not make is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from venvpack.manifest import BuiltEnv

__all__ = ["Emitter"]


class Emitter(Protocol):
    """What every format implements. Options specific to a format live on the instance."""

    format: str
    """Short name, also the CLI sub-command: ``tar``, ``deb`` or ``rpm``."""

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
