"""``ar`` archives, the container of a .deb and of static libraries: members in the order
given, 60-byte headers, names of at most 15 characters, even padding.

Written here for the .deb; read here for what a tree holds (a static library's members).
An artifact's own ``ar`` is read by libarchive in :mod:`venvpack.unpack`, bounded for
untrusted input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Union

from venvpack.archive.tar import read_exactly
from venvpack.errors import EmitError

__all__ = ["AR_MAGIC", "ArMember", "read_ar", "write_ar"]

AR_MAGIC = b"!<arch>\n"


ArMember = tuple[str, Union[Path, bytes]]
"""An ``ar`` member: its name and its content, in memory or streamed from a file."""


_AR_NAME = re.compile(r"[!-~]{1,15}")


def write_ar(dest_fileobj: BinaryIO, members: Sequence[ArMember], mtime: int) -> None:
    """Write an ``ar`` archive as dpkg-deb does: file members streamed from disk.

    Headers are 60 bytes: name (at most 15 printable ASCII characters, no ``/``), ``mtime``,
    uid and gid 0, mode 100644, size; odd-sized members are padded with ``\\n``.
    """
    if not 0 <= mtime < 10**12:
        raise EmitError(f"ar mtime out of range: {mtime}")
    dest_fileobj.write(AR_MAGIC)
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
            for chunk in read_exactly(content, size):
                dest_fileobj.write(chunk)
        if size % 2:
            dest_fileobj.write(b"\n")


def _ar_header(out: BinaryIO, name: str, mtime: int, size: int) -> None:
    if size >= 10**10:
        raise EmitError(f"ar member {name} is too large ({size} bytes)")
    header = f"{name:<16}{mtime:<12}{0:<6}{0:<6}{0o100644:<8o}{size:<10}`\n"
    out.write(header.encode("ascii"))


_HEADER = 60


def read_ar(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The members of the ``ar`` archive ``data`` as (name, content), in order; the GNU symbol
    and long-name tables (``/``, ``//``) are members too. ValueError where a header is not
    one (the bytes are not an ``ar`` archive, or it is cut short)."""
    if not data.startswith(AR_MAGIC):
        raise ValueError("not an ar archive")
    offset = len(AR_MAGIC)
    while offset < len(data):
        header = data[offset : offset + _HEADER]
        size_text = header[48:58].decode("ascii", "replace").strip()
        if len(header) < _HEADER or header[58:60] != b"`\n" or not size_text.isdigit():
            raise ValueError(f"damaged ar member header at offset {offset}")
        size = int(size_text)
        start = offset + _HEADER
        if start + size > len(data):
            raise ValueError(f"ar member at offset {offset} is cut short")
        name = header[:16].decode("ascii", "replace").rstrip()
        yield name if name in ("/", "//") else name.rstrip("/"), data[start : start + size]
        offset = start + size + size % 2
