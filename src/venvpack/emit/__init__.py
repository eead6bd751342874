"""Emitters: one interface, three formats (tar, deb, rpm).

An emitter turns a finished environment (:class:`venvpack.manifest.BuiltEnv`) into one
artifact. Format knowledge stays inside each emitter module; the CLI only knows this
interface. Every emitter writes to a temporary file next to the destination and renames it
at the end, so no partial artifact is ever left at the output path.
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

    def emit(self, env: BuiltEnv, dest: Path) -> Path:
        """Write the artifact to ``dest`` (a file path) atomically and return it."""
        ...
