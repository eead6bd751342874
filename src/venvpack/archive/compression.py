"""Compression of archive streams: zstd, gzip, xz or none, with the level resolved once
(:meth:`Compression.resolve_level`) and byte-identical output whatever the thread count.
"""

from __future__ import annotations

import enum
import lzma
import os
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import BinaryIO, Protocol

import zstandard

from venvpack.errors import ConfigError, EmitError

__all__ = ["ByteSink", "Compression", "available_cpus", "compressed_writer"]


class ByteSink(Protocol):
    """Where archive bytes go: a binary file or one of the compressed writers."""

    def write(self, data: bytes, /) -> object: ...


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
# Chosen with scripts/bench_archive.py on a numpy+pandas environment (199 MB tar, 6987
# entries, 2 cores; MB out / CPU seconds, every compressor on all cores): zstd 1: 64.1/0.8,
# 3: 55.2/1.3, 6: 50.6/3.2, 10: 48.1/7.1; gzip 1: 68.8/2.6, 3: 65.1/3.3, 4: 62.6/3.6,
# 5: 60.9/4.7, 6: 60.1/7.0, 9: 59.5/26; xz 0: 52.7/11.6, 1: 48.8/16.3, 3: 45.6/43, 6: 40.6/89.
# zstd 3 is zstd's own default and what `tar | zstd` gives (the same size): level 10 saves
# 13% for 5x the CPU, seconds of every `venvpack tar`. gzip 5 is 1% larger than gzip 6 for
# two thirds of the time (6 -> 9: 1% for 4x). xz 6 is xz's and dpkg-deb's default and
# needs 9 MiB to decompress (xz 9: 65 MiB), which matters on small targets.
_DEFAULT_LEVELS = {
    Compression.ZSTD: 3,
    Compression.GZIP: 5,
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
        gz = _GzipWriter(out, level, workers)
        try:
            yield gz
        except BaseException:
            gz.abort()
            raise
        gz.close()
    else:
        xz = _XzWriter(out, level, _xz_threads(level, workers))
        try:
            yield xz
        except BaseException:
            xz.abort()
            raise
        xz.close()


# .gz: Python's gzip module deflates on one core (7 CPU seconds at -6 for numpy+pandas'
# 199 MB tar, the whole wall time of a deb's data member). Like pigz, cut the input into
# blocks of a fixed size, deflate them in parallel threads (zlib releases the GIL), each
# primed with the 32 KiB of input before it so matches still reach back across the cut, each
# ended with a sync flush so the raw deflate streams simply concatenate; one gzip member, read
# by every gunzip and dpkg. The bytes depend on the input, the level and zlib only, never on
# the thread count or the chunking; ~0.3% larger than one-piece deflate.

_GZIP_BLOCK = 1 << 20
_DEFLATE_WINDOW = 1 << 15


def _deflate_block(data: bytes, primer: bytes, level: int, last: bool) -> bytes:
    if primer:
        deflater = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=primer)
    else:
        deflater = zlib.compressobj(level, zlib.DEFLATED, -15)
    return deflater.compress(data) + deflater.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class _GzipWriter:
    """A gzip member deflated block by block by a pool of threads, written in order."""

    def __init__(self, out: BinaryIO, level: int, threads: int) -> None:
        self._out = out
        self._level = level
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="venvpack-gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._primer = b""
        self._crc = 0
        self._size = 0
        # No file name and mtime 0: the same bytes wherever and whenever. XFL and OS as
        # Python's gzip module writes them.
        xfl = {1: 4, 9: 2}.get(level, 0)
        out.write(b"\x1f\x8b\x08\x00" + bytes(4) + bytes((xfl, 255)))

    def write(self, data: bytes, /) -> int:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) > _GZIP_BLOCK:  # the last block waits for close()
            self._submit(bytes(self._buffer[:_GZIP_BLOCK]), last=False)
            del self._buffer[:_GZIP_BLOCK]
        return len(data)

    def _submit(self, block: bytes, *, last: bool) -> None:
        while len(self._pending) > self._threads:
            self._out.write(self._pending.popleft().result())
        self._pending.append(
            self._pool.submit(_deflate_block, block, self._primer, self._level, last)
        )
        self._primer = (self._primer + block)[-_DEFLATE_WINDOW:]

    def close(self) -> None:
        self._submit(bytes(self._buffer), last=True)
        self._buffer.clear()
        while self._pending:
            self._out.write(self._pending.popleft().result())
        self._pool.shutdown()
        trailer = self._crc.to_bytes(4, "little") + (self._size & 0xFFFFFFFF).to_bytes(4, "little")
        self._out.write(trailer)

    def abort(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# .xz: Python's lzma module has only liblzma's single-threaded encoder (one block: minutes of one
# core for a large tree at -6, docs/measurements.md), and the `xz` binary's output depends on how
# it is called: -T1 gives single-threaded output, -T2+ multi-block output, and a memory limit (or
# XZ_DEFAULTS) can silently switch it back to single-threaded; it is also one more tool to
# require. So we do what `xz -T2+` does: cut the input into blocks of 3x the dictionary size,
# compress them in parallel threads with liblzma's raw LZMA2 encoder (which releases the GIL), and
# write the .xz container with the sizes in the block headers. The bytes depend on the input, the
# preset and liblzma only -- never on the thread count, the chunking or the machine -- and are
# exactly `xz -T2 --check=crc32 -<preset>`'s (tested, and faster than xz -T2 for the same CPU
# time). CRC32 is the one check every liblzma build supports.

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
