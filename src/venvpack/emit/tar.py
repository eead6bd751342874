"""The tarball emitter: one compressed tar whose single top-level directory is ``<name>/``.

Unpacked anywhere, ``<name>/`` is the environment (docs/how-it-works.md); nothing else is
added. The compression is ``--compression``, or what the file name ``-o`` gives says
(``.tar.zst``, ``.tar.gz``/``.tgz``, ``.tar.xz``, ``.tar``): a name and a flag that disagree
are refused, so ``-o app.tar.gz`` never holds zstd data.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvpack.archive import Compression, Progress, TarPlan, source_date_epoch, write_archive
from venvpack.config import BuildSpec
from venvpack.emit import LEVEL, OUTPUT, Option
from venvpack.errors import ConfigError, EmitError, ToolMissingError
from venvpack.manifest import BuiltEnv
from venvpack.output import atomic_output
from venvpack.validate import file_name

if TYPE_CHECKING:
    from venvpack.unpack import Stream, Unpacker
    from venvpack.verify import Installed, Target

__all__ = [
    "EXTENSIONS",
    "FORMAT",
    "TarEmitter",
    "TarFormat",
    "compression_of",
    "detect_tarball",
    "unpack_tarball",
]

log = logging.getLogger("venvpack")

EXTENSIONS: Mapping[str, Compression] = {
    ".tar.zst": Compression.ZSTD,
    ".tar.gz": Compression.GZIP,
    ".tgz": Compression.GZIP,
    ".tar.xz": Compression.XZ,
    ".tar": Compression.NONE,
}
"""File name endings that make ``-o`` name the tarball, and the compression each means."""


def compression_of(artifact: str) -> Compression | None:
    """The compression a tarball's file name says, or None when it names none."""
    for ext, kind in EXTENSIONS.items():
        if artifact.endswith(ext) and len(artifact) > len(ext):
            return kind
    return None


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

    def check_build(self, spec: BuildSpec) -> None:
        pass  # a tarball holds any environment

    def filename(self, env: BuiltEnv) -> str:
        m = env.manifest
        name = f"{m.name}-{m.version}-linux-{m.python.machine}.tar{self.compression.suffix}"
        return file_name(name, "tarball name")

    def replaceable(self, path: Path) -> bool:
        return False  # a tarball is a file: a directory in its place is someone else's

    def extras(self, env: BuiltEnv, dest: Path) -> tuple[Path, ...]:
        return ()

    def emit(self, env: BuiltEnv, dest: Path, *, replace: bool = True) -> Path:
        name = env.manifest.name
        if not name or "/" in name or name in (".", ".."):
            raise EmitError(f"application name {name!r} cannot be a directory name")
        plan = TarPlan()
        plan.add_tree(env.root, name)
        with atomic_output(dest, replace=replace) as tmp:
            write_archive(plan, tmp, self.compression, self.level, progress=self.progress)
        if env.manifest.link_mode != "symlink":
            log.warning(
                "%s link mode: pyvenv.cfg names the interpreter at %s/python; unpacked "
                "elsewhere, run <dir>/bin/venvpack-relocate once first",
                env.manifest.link_mode,
                env.manifest.prefix,
            )
        return dest


class TarFormat:
    """``venvpack tar``; see :class:`venvpack.emit.Format`."""

    name = "tar"
    noun = "a tarball"
    summary = "runs wherever it is unpacked"
    sample = "hello-1.0.0-linux-x86_64.tar.zst"
    init_template: str | None = "init/tar.toml"
    fixed_location = False
    help = (
        "Build (or take --from) an environment and pack it as a tarball that runs wherever "
        "it is unpacked."
    )
    examples = (
        "venvpack tar --project . -o dist/",
        "venvpack tar --from build/env -o app.tar.gz",
        "out=$(venvpack tar -q)          # the artifact's path, for a Makefile or CI step",
    )
    options = (
        Option(
            "compression",
            ("--compression",),
            "zstd (multi-threaded); gzip or xz for hosts without zstd; none (default: what "
            "the -o file name says (.tar.zst, .tar.gz, .tgz, .tar.xz, .tar), else zstd).",
            choices=tuple(c.value for c in Compression),
            group=OUTPUT,
        ),
        LEVEL,
    )

    def extensions(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(EXTENSIONS)

    def emitter(
        self, values: Mapping[str, Any], artifact: str | None, progress: Progress | None
    ) -> TarEmitter:
        source_date_epoch()
        try:
            given = Compression(values["compression"]) if values.get("compression") else None
        except ValueError:
            choices = ", ".join(c.value for c in Compression)
            raise ConfigError(
                f"compression {values['compression']!r}: use one of {choices}"
            ) from None
        named = compression_of(artifact) if artifact else None
        if given is not None and named is not None and given is not named:
            raise ConfigError(
                f"--compression {given.value} contradicts the output name {artifact} "
                f"({named.value}); drop one, or end the file name with {_extension(given)}"
            )
        kind = given or named or Compression.ZSTD
        return TarEmitter(kind, values.get("level"), progress=progress)

    def detect(self, head: bytes) -> bool:
        return detect_tarball(head)

    def unpack(self, artifact: Stream, into: Unpacker) -> None:
        into.archive(artifact, "tar")

    def install(self, target: Target) -> Installed:
        return unpack_tarball(target)


def _extension(kind: Compression) -> str:
    return next(ext for ext, k in EXTENSIONS.items() if k is kind)


FORMAT = TarFormat()


# --- Reading back ------------------------------------------------------------------------


def detect_tarball(head: bytes) -> bool:
    """A compressed stream (any the reader decodes: a tarball is the only artifact that is
    one whole) or an uncompressed tar (``ustar`` at offset 257)."""
    from venvpack.unpack import COMPRESSED

    return head.startswith(COMPRESSED) or head[257:262] == b"ustar"


def unpack_tarball(target: Target) -> Installed:
    """``verify``: the host's ``tar`` unpacks it as an unprivileged user, as anyone would."""
    if shutil.which("tar") is None:
        raise ToolMissingError("verifying a tarball needs tar (apt-get install tar)")
    return target.unpack(["tar", "-C", target.unpacked, "-xf", target.bound])
