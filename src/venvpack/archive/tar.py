"""GNU tar, planned then written: :class:`TarPlan` normalises and sorts the entries (so the
exact stream size is known first), :func:`write_tar` streams them to any byte sink with
md5 digests on the way, :func:`write_archive` writes a compressed tarball to a path.
"""

from __future__ import annotations

import enum
import hashlib
import os
import stat
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from venvpack.archive.compression import ByteSink, Compression, compressed_writer
from venvpack.archive.reproducible import source_date_epoch
from venvpack.errors import EmitError

__all__ = [
    "Entry",
    "EntryKind",
    "FileDigest",
    "Progress",
    "TarPlan",
    "write_archive",
    "write_tar",
]


Progress = Callable[[int, int], None]
"""Called with (uncompressed bytes written so far, total uncompressed bytes)."""

_CHUNK = 1 << 20
_PROGRESS_STEP = 1 << 20
_TAR_ENCODING = "utf-8"
# Names that are not valid UTF-8 round-trip as the same bytes.
_TAR_ERRORS = "surrogateescape"


class EntryKind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"


_TAR_TYPES = {
    EntryKind.FILE: tarfile.REGTYPE,
    EntryKind.DIR: tarfile.DIRTYPE,
    EntryKind.SYMLINK: tarfile.SYMTYPE,
    EntryKind.HARDLINK: tarfile.LNKTYPE,
}


@dataclass(frozen=True)
class Entry:
    """One archive member, with the metadata it is written with."""

    arcname: str
    """Path in the archive, without a trailing slash (the ``./`` root is ``.``)."""
    kind: EntryKind
    mode: int
    """Permission bits, already normalised."""
    mtime: int
    size: int = 0
    """Bytes of content: regular files only (a hard link carries none)."""
    linkname: str = ""
    """Target of a symlink (as on disk) or arcname of a hard link's first path."""
    source: Path | str | bytes | None = None
    """Where a regular file's content comes from: a path (a tree's file), or the bytes."""
    inode: tuple[int, int] | None = None
    """(st_dev, st_ino) of a tree file that has other links; how hard links are found."""
    uid: int = 0
    gid: int = 0
    """The owner: root unless a synthesized entry names another (an image's home directory)."""


@dataclass(frozen=True)
class FileDigest:
    """A regular file (or hard link to one) as written, for a deb's ``md5sums``."""

    arcname: str
    size: int
    md5: str


_Key = tuple[bytes, ...]


class TarPlan:
    """What a tar archive will hold, normalised and sorted, before anything is written.

    Arcnames are relative POSIX paths, all bare (``hello/bin``) or all ``./``-prefixed
    (``./opt/hello``, as dpkg writes data.tar); missing parent directories are added. Tree
    entries take their mtime from disk (clamped to ``SOURCE_DATE_EPOCH``, read when the
    plan is created); synthesized entries and parents default to ``SOURCE_DATE_EPOCH``, or
    the plan's creation time when it is unset. Every entry is owned by ``root`` (0/0).
    Modes: directories 0755, symlinks 0777, tree files 0755 when any execute bit is set and
    the file can be run (an ELF file or a script with a ``#!`` line: wheels ship ``.py``
    modules with the bit, which lintian and rpmlint flag) and 0644 otherwise;
    synthesized entries keep the mode given, less group/other write,
    setuid, setgid and sticky bits (unless ``keep_mode`` says otherwise).

    With ``mtime``, every entry has that mtime, a tree's too: a container image's layer is
    the same bytes whenever the same files were built, so a registry already holds it.
    """

    def __init__(self, mtime: int | None = None) -> None:
        self.source_date_epoch = source_date_epoch()
        self._fixed_mtime = mtime
        self._default_mtime = (
            int(time.time()) if self.source_date_epoch is None else self.source_date_epoch
        )
        if mtime is not None:
            self._default_mtime = mtime
        self._dot: bool | None = None
        self._entries: dict[_Key, Entry] = {}
        self._finished: list[Entry] | None = None

    # ------------------------------------------------------------------ adding

    def add_tree(self, root: Path, prefix: str) -> None:
        """Add the directory ``root`` and everything below it as ``prefix`` (``""``: top level).

        Symlinks are stored as symlinks and never followed (``root`` itself may be one).
        Files that share an inode inside the plan become hard links to the first of them in
        archive order; a file whose other links are outside is stored as a regular file.
        Devices, sockets and fifos are refused.
        """
        dot, base = self._split(prefix, allow_top=True)
        try:
            st = os.stat(root)
        except OSError as exc:
            raise EmitError(f"cannot read {root}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise EmitError(f"{root} is not a directory")
        top = self._name(base)
        if base or dot:
            self._add(base, Entry(top, EntryKind.DIR, 0o755, self._clamp(st)))
        # Plain strings all the way (a tree has thousands of entries): the arcname of a
        # child is its directory's and its own name.
        stack = [(os.fspath(root), base, top)]
        while stack:
            directory, dir_key, dir_name = stack.pop()
            try:
                with os.scandir(directory) as it:
                    children = [(e.path, e.name, e.stat(follow_symlinks=False)) for e in it]
            except OSError as exc:
                raise EmitError(
                    f"cannot read {exc.filename or directory}: {exc.strerror}"
                ) from None
            for path, name, st in children:
                key = (*dir_key, os.fsencode(name))
                arcname = f"{dir_name}/{name}" if dir_name else name
                self._add(key, self._tree_entry(path, arcname, st))
                if stat.S_ISDIR(st.st_mode):
                    stack.append((path, key, arcname))

    def add_path(self, path: Path, arcname: str) -> None:
        """Add the one file, directory or symlink ``path`` (never followed) as ``arcname``,
        as :meth:`add_tree` would, without what lies below a directory: a tree split
        between several archives (an image's layers) is added a path at a time."""
        key = self._key(arcname)
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise EmitError(f"cannot read {path}: {exc.strerror}") from None
        self._add(key, self._tree_entry(path, self._name(key), st))

    def add_file(
        self,
        arcname: str,
        data: bytes,
        mode: int = 0o644,
        mtime: int | None = None,
        *,
        owner: tuple[int, int] = (0, 0),
    ) -> None:
        """Add a regular file with ``data`` as content, owned by ``owner`` (uid, gid)."""
        key = self._key(arcname)
        self._add(
            key,
            Entry(
                self._name(key),
                EntryKind.FILE,
                mode & 0o755,
                self._mtime(mtime),
                size=len(data),
                source=bytes(data),
                uid=owner[0],
                gid=owner[1],
            ),
        )

    def add_dir(
        self,
        arcname: str,
        mode: int = 0o755,
        mtime: int | None = None,
        *,
        owner: tuple[int, int] = (0, 0),
        keep_mode: bool = False,
    ) -> None:
        """Add a directory (only needed for a mode, mtime or owner other than a parent's
        defaults). ``keep_mode`` keeps group/other write and the sticky bit (an image's
        ``/tmp``, 1777)."""
        key = self._key(arcname, allow_root=True)
        kept = mode & 0o1777 if keep_mode else mode & 0o755
        mtime_ = self._mtime(mtime)
        entry = Entry(self._name(key), EntryKind.DIR, kept, mtime_, uid=owner[0], gid=owner[1])
        self._add(key, entry)

    def add_symlink(self, arcname: str, target: str, mtime: int | None = None) -> None:
        """Add a symlink to ``target``, stored verbatim (absolute targets are allowed)."""
        if not target or "\0" in target:
            raise EmitError(f"invalid symlink target for {arcname!r}: {target!r}")
        key = self._key(arcname)
        self._add(
            key,
            Entry(self._name(key), EntryKind.SYMLINK, 0o777, self._mtime(mtime), linkname=target),
        )

    # ------------------------------------------------------------------ results

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Every entry in archive order: parents before children, siblings by name bytes."""
        return tuple(self._finish())

    @property
    def size(self) -> int:
        """Exact size in bytes of the uncompressed tar stream :func:`write_tar` produces."""
        total = sum(_header_size(entry) + _padded(entry.size) for entry in self._finish())
        total += 2 * tarfile.BLOCKSIZE
        return total + (-total % tarfile.RECORDSIZE)

    @property
    def content_size(self) -> int:
        """Bytes of regular-file content, each hard-linked file counted once."""
        return sum(entry.size for entry in self.entries)

    # ------------------------------------------------------------------ internals

    def _clamp(self, st: os.stat_result) -> int:
        if self._fixed_mtime is not None:
            return self._fixed_mtime
        mtime = st.st_mtime_ns // 1_000_000_000
        if self.source_date_epoch is not None:
            return min(mtime, self.source_date_epoch)
        return mtime

    def _mtime(self, mtime: int | None) -> int:
        if mtime is None or self._fixed_mtime is not None:
            return self._default_mtime
        if self.source_date_epoch is not None:
            return min(int(mtime), self.source_date_epoch)
        return int(mtime)

    def _tree_entry(self, path: Path | str, arcname: str, st: os.stat_result) -> Entry:
        mode = st.st_mode
        mtime = self._clamp(st)
        if stat.S_ISDIR(mode):
            return Entry(arcname, EntryKind.DIR, 0o755, mtime)
        if stat.S_ISREG(mode):
            return Entry(
                arcname,
                EntryKind.FILE,
                0o755 if mode & 0o111 and _runnable(path) else 0o644,
                mtime,
                size=st.st_size,
                source=path,
                inode=(st.st_dev, st.st_ino) if st.st_nlink > 1 else None,
            )
        if stat.S_ISLNK(mode):
            try:
                target = os.readlink(path)
            except OSError as exc:
                raise EmitError(f"cannot read symlink {path}: {exc.strerror}") from None
            return Entry(arcname, EntryKind.SYMLINK, 0o777, mtime, linkname=target)
        raise EmitError(
            f"{path} is a {_kind_name(mode)}; archives hold only regular files, directories"
            " and symlinks"
        )

    def _split(self, arcname: str, *, allow_top: bool = False) -> tuple[bool, _Key]:
        """Whether ``arcname`` is ``./``-style, and its components; refuses unsafe paths."""
        if "\0" in arcname:
            raise EmitError(f"archive path contains a NUL byte: {arcname!r}")
        if arcname.startswith("/"):
            raise EmitError(f"absolute archive path refused: {arcname!r}")
        parts = arcname.split("/")
        dot = parts[0] == "."
        names = [p for p in parts[1:] if p] if dot else [p for p in parts if p]
        if ".." in names:
            raise EmitError(f"archive path with '..' refused: {arcname!r}")
        if "." in names:
            raise EmitError(f"archive path is not normalised: {arcname!r}")
        if not names and not dot and not allow_top:
            raise EmitError("empty archive path")
        if dot or names:
            if self._dot is None:
                self._dot = dot
            elif self._dot != dot:
                raise EmitError(
                    f"archive path {arcname!r} mixes './'-prefixed and bare paths in one archive"
                )
        return dot, tuple(os.fsencode(n) for n in names)

    def _key(self, arcname: str, *, allow_root: bool = False) -> _Key:
        _, key = self._split(arcname)
        if not key and not allow_root:
            raise EmitError(f"archive path {arcname!r} names the archive root")
        return key

    def _name(self, key: _Key) -> str:
        rel = "/".join(os.fsdecode(part) for part in key)
        if self._dot:
            return f"./{rel}" if rel else "."
        return rel

    def _add(self, key: _Key, entry: Entry) -> None:
        if key in self._entries:
            raise EmitError(f"archive path added twice: {entry.arcname!r}")
        self._entries[key] = entry
        self._finished = None

    def _finish(self) -> list[Entry]:
        """Entries in order, hard links found, computed once per set of entries. (Their
        headers are made while writing, when compression runs beside.)"""
        if self._finished is not None:
            return self._finished
        # Missing parents are added here, not to self._entries, so that add_dir() can
        # still give one of them a mode or mtime after the size was asked for.
        entries = dict(self._entries)
        checked: set[_Key] = set()  # parents seen, with all of theirs
        for key in self._entries:
            for depth in range(len(key) - 1, -1 if self._dot else 0, -1):
                parent = key[:depth]
                if parent in checked:
                    break
                checked.add(parent)
                existing = entries.get(parent)
                if existing is None:
                    entries[parent] = Entry(
                        self._name(parent), EntryKind.DIR, 0o755, self._default_mtime
                    )
                elif existing.kind is not EntryKind.DIR:
                    raise EmitError(f"{existing.arcname!r} is not a directory but has entries")
        first_of_inode: dict[tuple[int, int], str] = {}
        finished = []
        for key in sorted(entries):
            entry = entries[key]
            if entry.inode is not None:
                first = first_of_inode.setdefault(entry.inode, entry.arcname)
                if first != entry.arcname:
                    entry = Entry(
                        entry.arcname,
                        EntryKind.HARDLINK,
                        entry.mode,
                        entry.mtime,
                        linkname=first,
                        inode=entry.inode,
                    )
            finished.append(entry)
        self._finished = finished
        return finished


def _runnable(path: Path | str) -> bool:
    """Whether ``path`` is something the kernel can execute: an ELF file or a ``#!`` script."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise EmitError(f"cannot read {path}: {exc.strerror}") from None
    return magic == b"\x7fELF" or magic.startswith(b"#!")


_NAME_MAX = 100  # bytes of a name or link target that fit in the header itself
_OCTAL_MAX = (8**7, 8**11)  # 8- and 12-byte numeric fields: 7 and 11 octal digits
_NUL8 = b"\0" * 8
_ROOT_NAME = b"root".ljust(32, b"\0")
_NO_NAME = b"\0" * 32
_GNU_MAGIC = b"ustar  \0"


def _header(entry: Entry) -> bytes:
    """The GNU tar header of ``entry``: what :meth:`tarfile.TarInfo.tobuf` gives for
    ``GNU_FORMAT`` (a test holds the two to the same bytes), built directly for the common
    case, names and link targets of at most 100 bytes, which is most of a tree's entries
    and most of a small archive's writing time."""
    raw_name, raw_link = _encoded_names(entry)
    ids, sizes = _OCTAL_MAX
    if (
        len(raw_name) > _NAME_MAX
        or len(raw_link) > _NAME_MAX
        or not (0 <= entry.uid < ids and 0 <= entry.gid < ids)
        or not (0 <= entry.size < sizes and 0 <= entry.mtime < sizes)
    ):
        return _tarfile_header(entry)
    block = b"".join(
        (
            raw_name.ljust(100, b"\0"),
            b"%07o\0" % (entry.mode & 0o7777),
            b"%07o\0" % entry.uid,
            b"%07o\0" % entry.gid,
            b"%011o\0" % entry.size,
            b"%011o\0" % entry.mtime,
            b"        ",
            _TAR_TYPES[entry.kind],
            raw_link.ljust(100, b"\0"),
            _GNU_MAGIC,
            _ROOT_NAME if entry.uid == 0 else _NO_NAME,
            _ROOT_NAME if entry.gid == 0 else _NO_NAME,
            _NUL8,
            _NUL8,
            b"\0" * 167,  # prefix (155) and padding to the block
        )
    )
    # The checksum is the sum of the header's bytes with its own field as spaces, written
    # as six octal digits, a NUL and the field's last space.
    return block[:148] + b"%06o\0" % sum(block) + block[155:]


def _encoded_names(entry: Entry) -> tuple[bytes, bytes]:
    """The name (a directory's with its trailing slash) and link target as the header holds
    them."""
    name = entry.arcname + "/" if entry.kind is EntryKind.DIR else entry.arcname
    try:
        raw_name = name.encode(_TAR_ENCODING, _TAR_ERRORS)
        return raw_name, entry.linkname.encode(_TAR_ENCODING, _TAR_ERRORS)
    except UnicodeEncodeError as exc:
        raise EmitError(f"cannot write a tar header for {entry.arcname!r}: {exc}") from None


def _header_size(entry: Entry) -> int:
    """The bytes :func:`_header` makes for ``entry``: one block, and a long-name record (a
    block and the name, NUL-terminated) for a name or target beyond 100 bytes."""
    size = tarfile.BLOCKSIZE
    for raw in _encoded_names(entry):
        if len(raw) > _NAME_MAX:
            size += tarfile.BLOCKSIZE + _padded(len(raw) + 1)
    return size


def _tarfile_header(entry: Entry) -> bytes:
    info = tarfile.TarInfo(entry.arcname)
    info.type = _TAR_TYPES[entry.kind]
    info.mode = entry.mode
    info.mtime = entry.mtime
    info.size = entry.size
    info.linkname = entry.linkname
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = "root" if entry.uid == 0 else ""
    info.gname = "root" if entry.gid == 0 else ""
    # GNU format: long names in ././@LongLink records, never PAX headers (which dpkg in
    # Debian 12 rejects) and none of PAX's atime/ctime/sub-second mtime records.
    try:
        return info.tobuf(tarfile.GNU_FORMAT, _TAR_ENCODING, _TAR_ERRORS)
    except ValueError as exc:
        raise EmitError(f"cannot write a tar header for {entry.arcname!r}: {exc}") from None


def _padded(size: int) -> int:
    return size + (-size % tarfile.BLOCKSIZE)


def _kind_name(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


# --------------------------------------------------------------------------- tar writing


def write_tar(
    plan: TarPlan,
    out: ByteSink,
    *,
    digests: bool = False,
    progress: Progress | None = None,
) -> tuple[FileDigest, ...]:
    """Write ``plan`` as an uncompressed GNU tar stream of exactly ``plan.size`` bytes.

    File contents are streamed in 1 MiB chunks. With ``digests``, returns the md5 of every
    regular file and hard link in archive order, computed from the bytes as they are
    written. A file that changed size since it was planned is an error.
    """
    total = plan.size
    done = reported = 0
    md5s: dict[str, tuple[int, str]] = {}
    result: list[FileDigest] = []
    for entry in plan._finish():
        header = _header(entry)
        out.write(header)
        done += len(header)
        if entry.kind is EntryKind.FILE:
            md5 = hashlib.md5(usedforsecurity=False) if digests else None
            if isinstance(entry.source, bytes):
                out.write(entry.source)
                if md5 is not None:
                    md5.update(entry.source)
                done += entry.size
            elif entry.source is not None:
                for chunk in read_exactly(entry.source, entry.size):
                    out.write(chunk)
                    if md5 is not None:
                        md5.update(chunk)
                    done += len(chunk)
                    if progress is not None and done - reported >= _PROGRESS_STEP:
                        progress(done, total)
                        reported = done
            padding = -entry.size % tarfile.BLOCKSIZE
            if padding:
                out.write(tarfile.NUL * padding)
                done += padding
            if md5 is not None:
                md5s[entry.arcname] = (entry.size, md5.hexdigest())
                result.append(FileDigest(entry.arcname, entry.size, md5s[entry.arcname][1]))
        elif entry.kind is EntryKind.HARDLINK and digests:
            size, digest = md5s[entry.linkname]
            result.append(FileDigest(entry.arcname, size, digest))
        if progress is not None and done - reported >= _PROGRESS_STEP:
            progress(done, total)
            reported = done
    end = total - done
    out.write(tarfile.NUL * end)
    if progress is not None:
        progress(total, total)
    return tuple(result)


def read_exactly(path: Path | str, size: int) -> Iterator[bytes]:
    """The ``size`` bytes of the regular file ``path``, in chunks; never follows a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise EmitError(f"cannot read {path}: {exc.strerror}") from None
    with open(fd, "rb", buffering=0) as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EmitError(f"{path} is no longer a regular file")
        remaining = size
        try:
            while remaining:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
            grew = bool(f.read(1))
        except OSError as exc:
            raise EmitError(f"cannot read {path}: {exc.strerror}") from None
        if remaining or grew:
            raise EmitError(f"{path} changed while it was being archived")


def write_archive(
    plan: TarPlan,
    dest: Path,
    compression: Compression,
    level: int | None = None,
    *,
    threads: int | None = None,
    digests: bool = False,
    progress: Progress | None = None,
) -> tuple[FileDigest, ...]:
    """Write ``plan`` to the file ``dest`` as a compressed tar; see :func:`write_tar`.

    Not atomic by itself: emitters write to a path from :func:`atomic_output`.
    """
    try:
        with open(dest, "wb") as f:  # noqa: SIM117 (one `with` needs Python 3.10)
            with compressed_writer(f, compression, level, size=plan.size, threads=threads) as sink:
                return write_tar(plan, sink, digests=digests, progress=progress)
    except OSError as exc:
        raise EmitError(f"cannot write {dest}: {exc.strerror or exc}") from None
