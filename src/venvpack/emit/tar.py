"""The tarball emitter: one compressed tar whose single top-level directory is ``<name>/``.

Unpacked anywhere, ``<name>/`` is the environment (DESIGN.md §2); nothing else is added.
"""

from __future__ import annotations

from pathlib import Path

from venvpack.archive import Compression, Progress, TarPlan, write_archive
from venvpack.errors import EmitError
from venvpack.manifest import BuiltEnv
from venvpack.output import atomic_output
from venvpack.validate import file_name

__all__ = ["TarEmitter"]


class TarEmitter:
    """Writes ``<name>-<version>-linux-<machine>.tar.<ext>``; see :class:`venvpack.emit.Emitter`."""

    format = "tar"

    def __init__(
        self,
        compression: Compression = Compression.ZSTD,
        level: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        """``level`` defaults to the compression's own; ``progress`` receives (done, total)
        uncompressed bytes while writing, e.g. to drive the CLI's progress bar."""
        self.compression = compression
        self.level = compression.resolve_level(level)
        self.progress = progress

    def filename(self, env: BuiltEnv) -> str:
        m = env.manifest
        name = f"{m.name}-{m.version}-linux-{m.python.machine}.tar{self.compression.suffix}"
        return file_name(name, "tarball name")

    def replaceable(self, path: Path) -> bool:
        return False  # a tarball is a file: a directory in its place is someone else's

    def emit(self, env: BuiltEnv, dest: Path, *, replace: bool = True) -> Path:
        name = env.manifest.name
        if not name or "/" in name or name in (".", ".."):
            raise EmitError(f"application name {name!r} cannot be a directory name")
        plan = TarPlan()
        plan.add_tree(env.root, name)
        with atomic_output(dest, replace=replace) as tmp:
            write_archive(plan, tmp, self.compression, self.level, progress=self.progress)
        return dest
