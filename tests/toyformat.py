"""A format that lives outside ``src/``: the environment as a zip, registered at run time.

It is what a new format is, and nothing more: its options declared once (one metadata value,
one output flag), its writing, and reading its artifact back -- recognised by its magic,
unpacked by the contained reader (zip is read by seeking: its symlinks are said only in the
central directory), unpacked anywhere (no fixed location), and for ``verify`` unpacked with
``bsdtar`` by an unprivileged user as anyone would. ``tests/unit/test_toy_format.py``
registers it and uses it through the real commands.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from venvpack.archive import Progress
from venvpack.config import BuildSpec
from venvpack.emit import OUTPUT, Option
from venvpack.errors import ToolMissingError
from venvpack.manifest import BuiltEnv
from venvpack.output import atomic_output
from venvpack.unpack import Stream, Unpacker
from venvpack.verify import Installed, Target

__all__ = ["FORMAT", "ZipEmitter", "ZipFormat"]

_MAGIC = b"PK\x03\x04"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's first representable time: the archive is reproducible


class ZipEmitter:
    """Writes ``<name>-<version>.zip`` whose one top-level directory is ``<name>/``."""

    format = "toyzip"

    def __init__(self, comment: str, stored: bool) -> None:
        self.comment = comment
        self.compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED

    def check_build(self, spec: BuildSpec) -> None:
        pass

    def filename(self, env: BuiltEnv) -> str:
        return f"{env.manifest.name}-{env.manifest.version}.zip"

    def extras(self, env: BuiltEnv, dest: Path) -> tuple[Path, ...]:
        return (dest.with_name(dest.name + ".sha256"),)

    def replaceable(self, path: Path) -> bool:
        return False

    def emit(self, env: BuiltEnv, dest: Path, *, replace: bool = True) -> Path:
        top = env.manifest.name
        with (
            atomic_output(dest, replace=replace) as tmp,
            zipfile.ZipFile(tmp, "w", self.compression, compresslevel=1) as archive,
        ):
            archive.comment = self.comment.encode()
            for directory, dirs, files in os.walk(env.root):
                dirs.sort()
                for name in sorted(dirs) + sorted(files):
                    path = Path(directory, name)
                    arcname = f"{top}/{path.relative_to(env.root)}"
                    _add(archive, path, arcname)
        digest = hashlib.sha256(dest.read_bytes()).hexdigest()
        with atomic_output(dest.with_name(dest.name + ".sha256"), replace=replace) as tmp:
            tmp.write_text(f"{digest}  {dest.name}\n")
        return dest


def _add(archive: zipfile.ZipFile, path: Path, arcname: str) -> None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        info = zipfile.ZipInfo(arcname, _EPOCH)
        info.create_system = 3  # unix: the mode below says "symlink"
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, os.readlink(path))
    elif stat.S_ISDIR(st.st_mode):
        info = zipfile.ZipInfo(arcname + "/", _EPOCH)
        info.create_system = 3
        info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
        archive.writestr(info, b"")
    else:
        info = zipfile.ZipInfo(arcname, _EPOCH)
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | stat.S_IMODE(st.st_mode)) << 16
        info.compress_type = archive.compression
        with path.open("rb") as source, archive.open(info, "w") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)


class ZipFormat:
    """``venvpack toyzip``; see :class:`venvpack.emit.Format`."""

    name = "toyzip"
    help = "Build (or take --from) an environment and pack it as a zip."
    examples: tuple[str, ...] = ("venvpack toyzip --project . -o dist/",)
    noun = "a zip"
    summary = "a zip of the environment"
    sample = "hello-1.0.0.zip"
    init_template: str | None = None
    fixed_location = False
    options: tuple[Option, ...] = (
        Option("comment", ("--comment",), "The zip's archive comment.", default="", metavar="TEXT"),
        Option(
            "stored", ("--stored",), "Store the files uncompressed.", is_flag=True, group=OUTPUT
        ),
    )

    def extensions(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        return (".zip",)

    def emitter(
        self, values: Mapping[str, Any], artifact: str | None, progress: Progress | None
    ) -> ZipEmitter:
        return ZipEmitter(values.get("comment") or "", bool(values.get("stored")))

    def detect(self, head: bytes) -> bool:
        return head.startswith(_MAGIC)

    def unpack(self, artifact: Stream, into: Unpacker) -> None:
        into.archive(artifact, "zip", seekable=True)

    def install(self, target: Target) -> Installed:
        if shutil.which("bsdtar") is None:
            raise ToolMissingError(
                "verifying a zip needs bsdtar (apt-get install libarchive-tools)"
            )
        return target.unpack(["bsdtar", "-x", "-f", target.bound, "-C", target.unpacked])


FORMAT = ZipFormat()
