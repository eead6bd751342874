"""Reproducible, streaming archives, by concern: :mod:`~venvpack.archive.compression`
(zstd, gzip, xz), :mod:`~venvpack.archive.tar` (plan, then write GNU tar),
:mod:`~venvpack.archive.ar` (the container of a .deb) and
:mod:`~venvpack.archive.reproducible` (``SOURCE_DATE_EPOCH``).

Plan, then write. A :class:`TarPlan` collects entries -- a directory tree under a prefix,
or synthesized files, directories and symlinks -- with their metadata already normalised
(sorted, root-owned, clamped mtimes, fixed modes), so the exact size of the tar stream is
known before a byte is written: zstd records it in its frame header, the deb emitter takes
Installed-Size from the plan, and a progress bar knows its total. :func:`write_tar` then
streams the entries to any byte sink, computing md5 digests on the way when asked (one read
of every file instead of two), and :func:`compressed_writer` is that sink for each
:class:`Compression`. :func:`write_archive` is the three together; emitters write it to a
path from :func:`venvpack.output.atomic_output`, so no partial artifact is ever left at an
output path.

What makes the archives reproducible (times, owners, order) is in
:mod:`venvpack.archive.reproducible`.
"""

from venvpack.archive.ar import ArMember, write_ar
from venvpack.archive.compression import ByteSink, Compression, available_cpus, compressed_writer
from venvpack.archive.reproducible import source_date_epoch
from venvpack.archive.tar import (
    Entry,
    EntryKind,
    FileDigest,
    Progress,
    TarPlan,
    write_archive,
    write_tar,
)

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
