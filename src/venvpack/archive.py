"""Reproducible, streaming archives: GNU tar with zstd, gzip or xz, and ``ar`` for .deb.

Plan, then write. A :class:`TarPlan` collects entries -- a directory tree under a prefix,
or synthesized files, directories and symlinks -- with their metadata already normalised
(sorted, root-owned, clamped mtimes, fixed modes), so the exact size of the tar stream is
known before a byte is written: zstd records it in its frame header, the deb emitter takes
Installed-Size from the plan, and a progress bar knows its total. :func:`write_tar` then
streams the entries to any byte sink, computing md5 digests on the way when asked (one read
of every file instead of two), and :func:`compressed_writer` is that sink for each
:class:`Compression`. :func:`write_archive` is the three together; emitters write it to a path from
:func:`venvpack.output.atomic_output`, so no partial artifact is ever left at an output path.

Reproducibility facts this module relies on are in DESIGN.md §4.
"""

from __future__ import annotations

import enum
import gzip
import hashlib
import lzma
import os
import re
import stat
import tarfile
import time
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Protocol, Union

import zstandard

from venvpack.config import printable
from venvpack.errors import ConfigError, EmitError

__all__ = [
    "ArMember",
    "ByteSink",
    "Compression",
    "Entry",
    "EntryKind",
    "FileDigest",
    "Progress",
    "TarPlan",
    "available_cpus",
    "compressed_writer",
    "source_date_epoch",
    "write_ar",
    "write_archive",
    "write_tar",
]

Progress = Callable[[int, int], None]
"""Called with (uncompressed bytes written so far, total uncompressed bytes)."""

ArMember = tuple[str, Union[Path, bytes]]
"""An ``ar`` member: its name and its content, in memory or streamed from a file."""

_CHUNK = 1 << 20
_PROGRESS_STEP = 1 << 20
_TAR_ENCODING = "utf-8"
# Names that are not valid UTF-8 round-trip as the same bytes.
_TAR_ERRORS = "surrogateescape"


class ByteSink(Protocol):
    """Where archive bytes go: a binary file or one of the compressed writers."""

    def write(self, data: bytes, /) -> object: ...


# --------------------------------------------------------------------------- compression


class Compression(enum.Enum):
    """Compression of a tar stream; the value is the name used on the command line."""

    ZSTD = "zstd"
    GZIP = "gzip"
    XZ = "xz"
    NONE = "none"

    @property
    def suffix(self) -> str:
        """What the compression appends to a file name: ``.zst``, ``.gz``, ``.xz`` or nothing."""
        return _SUFFIXES[self]

    @property
    def default_level(self) -> int:
        """The level used when none is given (measured, see scripts/bench_archive.py)."""
        return _DEFAULT_LEVELS[self]

    @property
    def levels(self) -> range:
        """Accepted levels (empty for ``none``)."""
        return _LEVELS[self]

    def resolve_level(self, level: int | None) -> int:
        """``level`` checked against :attr:`levels`, or the default when it is ``None``.

        Resolving an already resolved level gives it back, also for ``none``'s placeholder.
        """
        if level is None or (not self.levels and level == self.default_level):
            return self.default_level
        if level not in self.levels:
            if not self.levels:
                raise ConfigError(f"compression {self.value} takes no level")
            raise ConfigError(
                f"{self.value} level must be {self.levels.start}..{self.levels.stop - 1},"
                f" not {level}"
            )
        return level


_SUFFIXES = {
    Compression.ZSTD: ".zst",
    Compression.GZIP: ".gz",
    Compression.XZ: ".xz",
    Compression.NONE: "",
}
# zstd 19 is the highest level without --ultra (whose windows need more decoder memory).
_LEVELS = {
    Compression.ZSTD: range(1, 20),
    Compression.GZIP: range(1, 10),
    Compression.XZ: range(10),
    Compression.NONE: range(0),
}
# Chosen with scripts/bench_archive.py on pyenv's CPython 3.12.1 (308 MB tar, 9209 entries,
# 2 cores; MB out / CPU seconds): zstd 3: 64.1/1.3, 6: 59.1/3.2, 10: 56.5/5.5, 12: 56.3/9.6,
# 15: 56.1/53, 19: 49.8/131; gzip 6: 87.5/7.5, 9: 86.6/45.6; xz 6: 46.0/115, 9: 41.3/138.
# zstd 10 is the knee (3 s on 2 cores); beyond it 12 and 15 buy <1% and 19 buys 12% for
# 20x the CPU. gzip 9 buys 1% for 6x the time. xz 6 is xz's and dpkg-deb's default and
# needs 9 MiB to decompress (xz 9: 65 MiB), which matters on small targets.
_DEFAULT_LEVELS = {
    Compression.ZSTD: 10,
    Compression.GZIP: 6,
    Compression.XZ: 6,
    Compression.NONE: 0,
}


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks, e.g. in containers); >= 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextmanager
def compressed_writer(
    out: BinaryIO,
    compression: Compression,
    level: int | None = None,
    *,
    size: int | None = None,
    threads: int | None = None,
) -> Iterator[ByteSink]:
    """A sink that compresses into ``out``; the stream is finished when the block exits.

    ``size`` is the exact number of bytes that will be written; zstd records it in its
    frame header (and fails if it is wrong). ``threads`` defaults to :func:`available_cpus`.
    The output depends only on the bytes written, the level and the compressor library
    version: never on ``threads`` or on how the bytes are split into ``write`` calls.
    ``out`` is not closed. If the block raises, the stream is abandoned unfinished.
    """
    level = compression.resolve_level(level)
    workers = max(1, threads if threads is not None else available_cpus())
    if compression is Compression.NONE:
        yield out
    elif compression is Compression.ZSTD:
        # threads >= 1 selects zstd's multi-threaded mode, whose output is the same for any
        # number of workers; threads=0 (single-threaded mode) would give other bytes. With
        # the size passed, the frame header is the same however the input is chunked.
        cctx = zstandard.ZstdCompressor(
            level=level,
            threads=workers,
            write_checksum=True,
            write_content_size=size is not None,
        )
        writer = cctx.stream_writer(out, size=-1 if size is None else size, closefd=False)
        try:
            yield writer
            writer.close()  # type: ignore[no-untyped-call]  # stub lacks annotations
        except zstandard.ZstdError as exc:  # e.g. more or fewer bytes than `size`
            raise EmitError(f"zstd compression failed: {exc}") from None
    elif compression is Compression.GZIP:
        # No file name and mtime 0 in the header: the same bytes wherever and whenever.
        gz = gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=out, mtime=0)
        try:
            yield gz
        finally:
            # Also on error: an unclosed GzipFile would try to finish itself when collected.
            gz.close()
    else:
        xz = _XzWriter(out, level, _xz_threads(level, workers))
        try:
            yield xz
        except BaseException:
            xz.abort()
            raise
        xz.close()


# .xz: Python's lzma module has only liblzma's single-threaded encoder (one block; ~115 s of
# one core for the 308 MB tar at -6), and the `xz` binary's output depends on how it is
# called: -T1 gives single-threaded output, -T2+ multi-block output, and a memory limit (or
# XZ_DEFAULTS) can silently switch it back to single-threaded; it is also one more tool to
# require. So we do what `xz -T2+` does: cut the input into blocks of 3x the dictionary
# size, compress them in parallel threads with liblzma's raw LZMA2 encoder (which releases
# the GIL), and write the .xz container with the sizes in the block headers. The bytes
# depend on the input, the preset and liblzma only -- never on the thread count, the
# chunking or the machine -- and are exactly `xz -T2 --check=crc32 -<preset>`'s (tested;
# also checked on the 308 MB tar, where this took 64 s on 2 cores against 88 s for xz -T2,
# same CPU time). CRC32 is the one check every liblzma build supports.

_XZ_MAGIC = b"\xfd7zXZ\x00"
_XZ_FLAGS = b"\x00\x01"  # check type 1: CRC32
_XZ_CHECK_SIZE = 4
# LZMA2 dictionary size and encoder memory (MiB) of presets 0..9, from xz(1).
_XZ_DICT = (
    1 << 18,
    1 << 20,
    1 << 21,
    1 << 22,
    1 << 22,
    1 << 23,
    1 << 23,
    1 << 24,
    1 << 25,
    1 << 26,
)
_XZ_ENCODER_MIB = (3, 9, 17, 32, 48, 94, 94, 186, 370, 674)


def _xz_threads(preset: int, wanted: int) -> int:
    """At most ``wanted`` workers, and no more than fit in a quarter of the RAM (like xz)."""
    per_worker = (_XZ_ENCODER_MIB[preset] << 20) + 2 * _xz_block_size(preset)
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return wanted
    return max(1, min(wanted, ram // 4 // per_worker))


def _xz_block_size(preset: int) -> int:
    return max(3 * _XZ_DICT[preset], 1 << 20)


def _varint(value: int) -> bytes:
    """The .xz format's multibyte integer: 7 bits per byte, least significant first."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "little")


def _pad4(length: int) -> bytes:
    return b"\x00" * (-length % 4)


def _xz_block(data: bytes, preset: int) -> tuple[bytes, int]:
    """One complete .xz block for ``data`` and its unpadded size (for the index)."""
    compressed = lzma.compress(
        data, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": preset}]
    )
    block_size = _xz_block_size(preset)
    # LZMA2 property byte: a dictionary of 2**n bytes is 2 * (n - 12).
    props = 2 * (_XZ_DICT[preset].bit_length() - 1 - 12)
    # Block flags: one filter, compressed and uncompressed sizes present. Then the filter
    # flags: LZMA2 (id 0x21), one byte of properties.
    fields = b"\xc0" + _varint(len(compressed)) + _varint(len(data)) + bytes((0x21, 1, props))
    # liblzma's threaded encoder sizes the header before compressing, for the largest
    # sizes a block can have, and pads the real sizes into it; do the same, so the bytes
    # are xz's.
    largest = 2 + len(_varint(_xz_compressed_bound(block_size))) + len(_varint(block_size)) + 3
    header_size = (largest + 4 + 3) // 4 * 4
    header = bytes((header_size // 4 - 1,)) + fields
    header += b"\x00" * (header_size - 4 - len(header))
    header += _crc32(header)
    block = header + compressed + _pad4(len(compressed)) + _crc32(data)
    return block, len(header) + len(compressed) + _XZ_CHECK_SIZE


def _xz_compressed_bound(size: int) -> int:
    """liblzma's lzma_block_buffer_bound64(): the largest block ``size`` bytes can become."""
    lzma2 = size + (size + 0xFFFF) // 0x10000 * 3 + 1  # uncompressed chunks + end marker
    return 92 + (lzma2 + 3) // 4 * 4  # + HEADERS_BOUND


class _XzWriter:
    """A multi-block .xz stream compressed by a pool of threads, written in order."""

    def __init__(self, out: BinaryIO, preset: int, threads: int) -> None:
        self._out = out
        self._preset = preset
        self._block_size = _xz_block_size(preset)
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="venvpack-xz")
        self._pending: deque[Future[tuple[bytes, int]]] = deque()
        self._sizes: deque[int] = deque()
        self._buffer = bytearray()
        self._records: list[tuple[int, int]] = []
        out.write(_XZ_MAGIC + _XZ_FLAGS + _crc32(_XZ_FLAGS))

    def write(self, data: bytes, /) -> int:
        self._buffer += data
        while len(self._buffer) >= self._block_size:
            block = bytes(self._buffer[: self._block_size])
            del self._buffer[: self._block_size]
            self._submit(block)
        return len(data)

    def _submit(self, block: bytes) -> None:
        # Bounded: at most one block queued behind each busy worker.
        while len(self._pending) > self._threads:
            self._write_oldest()
        self._pending.append(self._pool.submit(_xz_block, block, self._preset))
        self._sizes.append(len(block))

    def _write_oldest(self) -> None:
        block, unpadded = self._pending.popleft().result()
        self._out.write(block)
        self._records.append((unpadded, self._sizes.popleft()))

    def close(self) -> None:
        if self._buffer:
            self._submit(bytes(self._buffer))
            self._buffer.clear()
        while self._pending:
            self._write_oldest()
        self._pool.shutdown()
        index = bytearray(b"\x00" + _varint(len(self._records)))
        for unpadded, uncompressed in self._records:
            index += _varint(unpadded) + _varint(uncompressed)
        index += _pad4(len(index))
        index += _crc32(bytes(index))
        backward = (len(index) // 4 - 1).to_bytes(4, "little")
        self._out.write(bytes(index) + _crc32(backward + _XZ_FLAGS) + backward + _XZ_FLAGS + b"YZ")

    def abort(self) -> None:
        # Blocks already being compressed are not waited for (at -9 one takes many
        # seconds): an interrupted run removes its output and exits meanwhile.
        self._pool.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- tar plan


_LATEST_EPOCH = 253402300799
"""9999-12-31 23:59:59 UTC: the latest time a changelog date (and Python's calendar) can
show; ar headers and tar's GNU numbers hold more."""


def source_date_epoch(maximum: int = _LATEST_EPOCH) -> int | None:
    """``SOURCE_DATE_EPOCH`` as an int, ``None`` when unset or empty; anything but a whole,
    non-negative number of seconds up to ``maximum`` is a ConfigError."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not re.fullmatch(r"[0-9]+", value, re.ASCII):
        raise ConfigError(
            "SOURCE_DATE_EPOCH must be a whole, non-negative number of seconds, "
            f"not '{printable(value)}'"
        )
    epoch = int(value) if len(value) <= 20 else maximum + 1
    if epoch > maximum:
        limit = time.strftime("%Y-%m-%d", time.gmtime(maximum))
        raise ConfigError(
            f"SOURCE_DATE_EPOCH {value[:24]}{'...' if len(value) > 24 else ''} is too large: "
            f"at most {maximum} ({limit}) here"
            + ("; rpm stores times as 32-bit numbers" if maximum < _LATEST_EPOCH else "")
        )
    return epoch


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
    source: Path | bytes | None = None
    """Where a regular file's content comes from."""
    inode: tuple[int, int] | None = None
    """(st_dev, st_ino) of a tree file that has other links; how hard links are found."""


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
    setuid, setgid and sticky bits.
    """

    def __init__(self) -> None:
        self.source_date_epoch = source_date_epoch()
        self._default_mtime = (
            int(time.time()) if self.source_date_epoch is None else self.source_date_epoch
        )
        self._dot: bool | None = None
        self._entries: dict[_Key, Entry] = {}
        self._finished: list[tuple[Entry, bytes]] | None = None

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
        if base or dot:
            self._add(base, Entry(self._name(base), EntryKind.DIR, 0o755, self._clamp(st)))
        stack = [(root, base)]
        while stack:
            directory, dir_key = stack.pop()
            try:
                with os.scandir(directory) as it:
                    children = [(Path(e.path), e.name, e.stat(follow_symlinks=False)) for e in it]
            except OSError as exc:
                raise EmitError(
                    f"cannot read {exc.filename or directory}: {exc.strerror}"
                ) from None
            for path, name, st in children:
                key = (*dir_key, os.fsencode(name))
                self._add(key, self._tree_entry(path, self._name(key), st))
                if stat.S_ISDIR(st.st_mode):
                    stack.append((path, key))

    def add_file(
        self, arcname: str, data: bytes, mode: int = 0o644, mtime: int | None = None
    ) -> None:
        """Add a regular file with ``data`` as content."""
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
            ),
        )

    def add_dir(self, arcname: str, mode: int = 0o755, mtime: int | None = None) -> None:
        """Add a directory (only needed for a mode or mtime other than a parent's defaults)."""
        key = self._key(arcname, allow_root=True)
        self._add(key, Entry(self._name(key), EntryKind.DIR, mode & 0o755, self._mtime(mtime)))

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
        return tuple(entry for entry, _ in self._finish())

    @property
    def size(self) -> int:
        """Exact size in bytes of the uncompressed tar stream :func:`write_tar` produces."""
        total = sum(len(header) + _padded(entry.size) for entry, header in self._finish())
        total += 2 * tarfile.BLOCKSIZE
        return total + (-total % tarfile.RECORDSIZE)

    @property
    def content_size(self) -> int:
        """Bytes of regular-file content, each hard-linked file counted once."""
        return sum(entry.size for entry in self.entries)

    # ------------------------------------------------------------------ internals

    def _clamp(self, st: os.stat_result) -> int:
        mtime = st.st_mtime_ns // 1_000_000_000
        if self.source_date_epoch is not None:
            return min(mtime, self.source_date_epoch)
        return mtime

    def _mtime(self, mtime: int | None) -> int:
        if mtime is None:
            return self._default_mtime
        if self.source_date_epoch is not None:
            return min(int(mtime), self.source_date_epoch)
        return int(mtime)

    def _tree_entry(self, path: Path, arcname: str, st: os.stat_result) -> Entry:
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

    def _finish(self) -> list[tuple[Entry, bytes]]:
        """Entries in order with their tar headers, computed once per set of entries."""
        if self._finished is not None:
            return self._finished
        # Missing parents are added here, not to self._entries, so that add_dir() can
        # still give one of them a mode or mtime after the size was asked for.
        entries = dict(self._entries)
        for key in self._entries:
            for depth in range(0 if self._dot else 1, len(key)):
                parent = key[:depth]
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
            finished.append((entry, _header(entry)))
        self._finished = finished
        return finished


def _runnable(path: Path) -> bool:
    """Whether ``path`` is something the kernel can execute: an ELF file or a ``#!`` script."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise EmitError(f"cannot read {path}: {exc.strerror}") from None
    return magic == b"\x7fELF" or magic.startswith(b"#!")


def _header(entry: Entry) -> bytes:
    info = tarfile.TarInfo(entry.arcname)
    info.type = _TAR_TYPES[entry.kind]
    info.mode = entry.mode
    info.mtime = entry.mtime
    info.size = entry.size
    info.linkname = entry.linkname
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
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
    for entry, header in plan._finish():
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
                for chunk in _read_exactly(entry.source, entry.size):
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


def _read_exactly(path: Path, size: int) -> Iterator[bytes]:
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


# --------------------------------------------------------------------------- ar (.deb)

_AR_NAME = re.compile(r"[!-~]{1,15}")


def write_ar(dest_fileobj: BinaryIO, members: Sequence[ArMember], mtime: int) -> None:
    """Write an ``ar`` archive as dpkg-deb does: file members streamed from disk.

    Headers are 60 bytes: name (at most 15 printable ASCII characters, no ``/``), ``mtime``,
    uid and gid 0, mode 100644, size; odd-sized members are padded with ``\\n``.
    """
    if not 0 <= mtime < 10**12:
        raise EmitError(f"ar mtime out of range: {mtime}")
    dest_fileobj.write(b"!<arch>\n")
    for name, content in members:
        if not _AR_NAME.fullmatch(name) or "/" in name:
            raise EmitError(f"invalid ar member name {name!r} (1-15 printable characters, no '/')")
        if isinstance(content, bytes):
            _ar_header(dest_fileobj, name, mtime, len(content))
            dest_fileobj.write(content)
            size = len(content)
        else:
            try:
                size = content.stat().st_size
            except OSError as exc:
                raise EmitError(f"cannot read {content}: {exc.strerror}") from None
            _ar_header(dest_fileobj, name, mtime, size)
            for chunk in _read_exactly(content, size):
                dest_fileobj.write(chunk)
        if size % 2:
            dest_fileobj.write(b"\n")


def _ar_header(out: BinaryIO, name: str, mtime: int, size: int) -> None:
    if size >= 10**10:
        raise EmitError(f"ar member {name} is too large ({size} bytes)")
    header = f"{name:<16}{mtime:<12}{0:<6}{0:<6}{0o100644:<8o}{size:<10}`\n"
    out.write(header.encode("ascii"))
