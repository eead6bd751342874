"""What a run made, as the one JSON object ``--json`` prints on stdout (schema ``result-1``).

The schema ships in the package (``venvpack/schemas/result-1.json``, :func:`schema_text`);
docs/output.md describes the contract. Versioned like ``inspect-1``: fields may be added
within a version, never removed or changed in meaning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvpack.manifest import Manifest

__all__ = ["SCHEMA_VERSION", "Result", "schema_text", "tree_size"]

SCHEMA_VERSION = 1


def schema_text() -> str:
    """The JSON Schema of :meth:`Result.to_json`, as shipped in the package, with the formats
    ``format`` may name filled in from the registry (those registered now, and
    ``environment``)."""
    from importlib import resources

    from venvpack.emit import format_names
    from venvpack.emit.environment import ENVIRONMENT

    text = (
        resources.files("venvpack")
        .joinpath("schemas")
        .joinpath(f"result-{SCHEMA_VERSION}.json")
        .read_text(encoding="utf-8")
    )
    schema = json.loads(text)
    schema["properties"]["format"]["enum"] = [*format_names(), ENVIRONMENT.name]
    return json.dumps(schema, indent=2) + "\n"


def tree_size(root: Path) -> int:
    """Bytes of the regular files under ``root``, symlinks not followed (hard links counted
    once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Result:
    """One artifact (or environment directory) and how it was made."""

    artifact: Path
    """Absolute path of what was written."""
    format: str
    """The format's name (:mod:`venvpack.emit`), or ``environment`` for ``venvpack build``."""
    manifest: Manifest
    """The packed environment's manifest."""
    timings: Mapping[str, float]
    """Seconds per step (:func:`venvpack.ui.stage` names)."""
    total: float
    """Seconds of the whole run."""
    extras: tuple[Path, ...] = ()
    """Files written beside the artifact (an rpm's rpmlintrc)."""

    @property
    def is_file(self) -> bool:
        return self.artifact.is_file()

    @property
    def size(self) -> int:
        return self.artifact.stat().st_size if self.is_file else tree_size(self.artifact)

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        source = dataclasses.asdict(m.source) if m.source is not None else None
        return {
            "schema_version": SCHEMA_VERSION,
            "artifact": str(self.artifact),
            "format": self.format,
            "kind": "file" if self.is_file else "directory",
            "size": self.size,
            "sha256": _sha256(self.artifact) if self.is_file else None,
            "extras": [
                {"path": str(path), "size": path.stat().st_size, "sha256": _sha256(path)}
                for path in self.extras
            ],
            "name": m.name,
            "version": m.version,
            "python": {
                "version": m.python.version,
                "source": m.python.source,
                "machine": m.python.machine,
            },
            "glibc_floor": m.glibc_floor,
            "lock": source,
            "venvpack_version": m.venvpack_version,
            "timings": {
                "steps": {name: round(s, 3) for name, s in self.timings.items()},
                "total": round(self.total, 3),
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def summary(self) -> str:
        """The one line a person reads at the end: artifact, size, glibc floor, total time."""
        glibc = f", glibc >= {self.manifest.glibc_floor}" if self.manifest.glibc_floor else ""
        verb = "built" if self.format == "environment" else "wrote"
        return f"{verb} {self.artifact} ({self.size / 2**20:.1f} MiB{glibc}) in {self.total:.1f}s"
