"""``ar`` archives, the container of a .deb: members in the order given, 60-byte headers,
names of at most 15 characters, even padding (DESIGN.md §4).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Union

from venvpack.archive.tar import read_exactly
from venvpack.errors import EmitError

__all__ = ["ArMember", "write_ar"]


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
            for chunk in read_exactly(content, size):
                dest_fileobj.write(chunk)
        if size % 2:
            dest_fileobj.write(b"\n")


def _ar_header(out: BinaryIO, name: str, mtime: int, size: int) -> None:
    if size >= 10**10:
        raise EmitError(f"ar member {name} is too large ({size} bytes)")
    header = f"{name:<16}{mtime:<12}{0:<6}{0:<6}{0o100644:<8o}{size:<10}`\n"
    out.write(header.encode("ascii"))
