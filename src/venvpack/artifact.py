"""Read an artifact without installing it: an environment directory, a tarball (zstd, gzip,
xz, bzip2 or none), a ``.deb`` or an ``.rpm`` becomes a directory tree to look at.

Packages are unpacked into a temporary directory: a ``.deb`` with our own ``ar`` reader and
``tarfile`` (no dpkg needed), an ``.rpm`` with ``rpm2cpio | cpio`` (argument lists, never a
shell). The environment's root inside the tree is where ``.venvpack/manifest.json`` or
``pyvenv.cfg`` is; for a package it is also where the package installs it (``/opt/<name>``).
"""

from __future__ import annotations

import enum
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

import zstandard

from venvpack.errors import ConfigError
from venvpack.manifest import MANIFEST_PATH
from venvpack.proc import pipe, which

__all__ = ["ArtifactKind", "Opened", "artifact_kind", "find_env_root", "open_artifact", "read_ar"]


class ArtifactKind(str, enum.Enum):
    DIRECTORY = "directory"
    TAR = "tar"
    DEB = "deb"
    RPM = "rpm"


@dataclass(frozen=True)
class Opened:
    """An artifact laid out as files."""

    kind: ArtifactKind
    tree: Path
    """The directory holding everything the artifact contains."""
    root: Path
    """The environment's root (the directory with ``pyvenv.cfg``), inside ``tree``."""
    installed_at: str | None
    """Where the environment lives once installed: its own path for a directory, the
    package's install path (``/opt/hello``) for deb and rpm, None for a tarball."""


_ZSTD = b"\x28\xb5\x2f\xfd"
_GZIP = b"\x1f\x8b"
_XZ = b"\xfd7zXZ\x00"
_BZIP2 = b"BZh"
_AR = b"!<arch>\n"
_RPM = b"\xed\xab\xee\xdb"


def artifact_kind(path: Path) -> ArtifactKind:
    """What ``path`` is, from its content (a suffix can lie); ConfigError when unknown."""
    if path.is_dir():
        return ArtifactKind.DIRECTORY
    try:
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if head.startswith(_AR):
        return ArtifactKind.DEB
    if head.startswith(_RPM):
        return ArtifactKind.RPM
    if head.startswith((_ZSTD, _GZIP, _XZ, _BZIP2)) or head[257:262] == b"ustar":
        return ArtifactKind.TAR
    raise ConfigError(f"{path} is neither an environment directory nor a tarball, .deb or .rpm")


@contextmanager
def open_artifact(path: Path) -> Iterator[Opened]:
    """``path`` as a directory tree; a package or tarball is unpacked and removed afterwards."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    kind = artifact_kind(path)
    if kind is ArtifactKind.DIRECTORY:
        root = path.absolute()
        yield Opened(kind, root, root, str(root))
        return
    tmp = Path(tempfile.mkdtemp(prefix="venvpack-inspect-"))
    try:
        tree = tmp / "tree"
        tree.mkdir()
        if kind is ArtifactKind.TAR:
            with path.open("rb") as fh:
                extract_tar(fh, tree)
        elif kind is ArtifactKind.DEB:
            _extract_deb(path, tree)
        else:
            _extract_rpm(path, tree)
        root = find_env_root(tree)
        installed = None if kind is ArtifactKind.TAR else "/" + str(root.relative_to(tree))
        yield Opened(kind, tree, root, installed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def find_env_root(tree: Path) -> Path:
    """The shallowest directory under ``tree`` holding a manifest, else a ``pyvenv.cfg``."""
    for marker in (MANIFEST_PATH, "pyvenv.cfg"):
        depth = len(PurePosixPath(marker).parts)
        found = sorted(
            (p for p in tree.rglob(PurePosixPath(marker).name) if p.is_file()),
            key=lambda p: (len(p.parts), str(p)),
        )
        for hit in found:
            root = hit.parents[depth - 1]
            if (root / marker).is_file():
                return root
    raise ConfigError("the artifact holds no environment (no pyvenv.cfg)")


def _decompressed(fh: BinaryIO) -> IO[bytes]:
    """zstd decoded here; tarfile's ``r|*`` mode handles gzip, xz and bzip2 itself."""
    head = fh.read(4)
    fh.seek(0)
    if head.startswith(_ZSTD):
        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(fh)
        return reader
    return fh


def extract_tar(fh: BinaryIO, dest: Path) -> None:
    """Unpack a (compressed) tar stream into ``dest``: regular files, directories and links
    only, every name kept inside ``dest`` (link *targets* are kept as they are: a symlink
    leaving the tree is something to report, not to refuse)."""
    with tarfile.open(fileobj=_decompressed(fh), mode="r|*") as archive:
        for member in archive:
            name = os.path.normpath(member.name.lstrip("/"))
            if name == "." or name.startswith("../") or name == "..":
                continue
            target = dest / name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                os.chmod(target, 0o755 | (member.mode & 0o777))
            elif member.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                if os.path.lexists(target):
                    target.unlink()
                os.symlink(member.linkname, target)
            elif member.islnk():
                source = dest / os.path.normpath(member.linkname.lstrip("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                if source.is_file() and dest in source.resolve().parents:
                    os.link(source, target)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                data = archive.extractfile(member)
                assert data is not None
                with target.open("wb") as out:
                    shutil.copyfileobj(data, out)
                os.chmod(target, member.mode & 0o7777)


def read_ar(fh: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """Members of a System V / GNU ``ar`` archive (what a ``.deb`` is), as (name, data)."""
    if fh.read(8) != _AR:
        raise ConfigError("not an ar archive")
    while True:
        header = fh.read(60)
        if not header:
            return
        if len(header) != 60 or header[58:60] != b"`\n":
            raise ConfigError("truncated or malformed ar archive")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        data = fh.read(size)
        if size % 2:
            fh.read(1)
        yield name, data


def _extract_deb(path: Path, dest: Path) -> None:
    with path.open("rb") as fh:
        for name, data in read_ar(fh):
            if name.startswith("data.tar"):
                extract_tar(io.BytesIO(data), dest)
                return
    raise ConfigError(f"{path}: no data.tar member; not a Debian package")


def _extract_rpm(path: Path, dest: Path) -> None:
    rpm2cpio = which("rpm2cpio", "apt-get install rpm2cpio (or rpm)")
    cpio = which("cpio", "apt-get install cpio")
    pipe(
        [rpm2cpio, path.absolute()],
        [cpio, "-idm", "--quiet", "--no-absolute-filenames"],
        cwd=dest,
        error=ConfigError,
        what=f"unpacking {path.name}",
    )
