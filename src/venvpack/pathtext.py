"""Finding a path inside text as a path, never as a piece of a longer one.

Relocation replaces, and the audit looks for, build-host paths in text. A plain substring
test is wrong as soon as a path is short: python-build-standalone's build prefix is
``/install``, and its sysconfigdata also says ``INSTALL = '/usr/bin/install -c'``, which must
stay as it is; a URL ending in ``/installation`` names nothing either. An occurrence counts
when the path is not continued by a path character (``/install/lib`` and ``'/install'`` do
count, ``/installer`` does not) and does not continue a longer path (``-L/install`` counts,
``/usr/bin/install`` does not).
"""

from __future__ import annotations

import mmap
import re
from typing import Union

__all__ = ["contains_path", "find_path", "mapped_contains_path", "replace_path"]

# Characters that extend a path component; "/" is handled apart (it separates them).
_COMPONENT = "A-Za-z0-9._+~-"
_COMPONENT_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+~-")

Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]


def _continues_a_path(text: str | Buffer, start: int) -> bool:
    """True when the text right before ``start`` is a path component after a ``/``."""
    i = start - 1
    if isinstance(text, str):
        while i >= 0 and (text[i].isascii() and (text[i].isalnum() or text[i] in "._+~-")):
            i -= 1
        return i >= 0 and text[i] == "/"
    while i >= 0 and text[i] in _COMPONENT_BYTES:
        i -= 1
    return i >= 0 and text[i] == ord("/")


def contains_path(data: Buffer, path: bytes) -> bool:
    """Whether ``data`` names ``path`` (an absolute path, as bytes) as a path."""
    pattern = re.compile(re.escape(path) + f"(?![{_COMPONENT}])".encode())
    return any(not _continues_a_path(data, m.start()) for m in pattern.finditer(data))


def mapped_contains_path(data: mmap.mmap, path: bytes, window: int = 16 << 20) -> bool:
    """:func:`contains_path` over a mapped file ``window`` bytes at a time, each window's
    pages given back once searched: a 434 MB library is read through without its pages
    staying resident in this process (they stay in the page cache). Windows overlap by the
    needle and the one byte its lookahead reads, so a match across a boundary is found."""
    pattern = re.compile(re.escape(path) + f"(?![{_COMPONENT}])".encode())
    size = len(data)
    page = mmap.PAGESIZE
    released = 0
    for start in range(0, size, window):
        end = min(size, start + window + len(path) + 1)
        for m in pattern.finditer(data, start, end):
            if m.start() >= start + window:
                break  # the next window finds it, with all the context after it
            if not _continues_a_path(data, m.start()):
                return True
        # Whole pages before the next window (a match's look back may touch one again).
        done = min(start + window, size) // page * page
        if hasattr(mmap, "MADV_DONTNEED") and done > released:
            data.madvise(mmap.MADV_DONTNEED, released, done - released)
            released = done
    return False


def find_path(data: Buffer, path: bytes) -> list[int]:
    """Offsets where ``data`` names ``path`` (an absolute path, as bytes) as a path."""
    pattern = re.compile(re.escape(path) + f"(?![{_COMPONENT}])".encode())
    return [m.start() for m in pattern.finditer(data) if not _continues_a_path(data, m.start())]


def replace_path(text: str, old: str, new: str) -> str:
    """``text`` with every occurrence of the path ``old`` (as a path) replaced by ``new``."""
    pattern = re.compile(re.escape(old) + f"(?![{_COMPONENT}])")
    pieces: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        if _continues_a_path(text, m.start()):
            continue
        pieces += [text[last : m.start()], new]
        last = m.end()
    pieces.append(text[last:])
    return "".join(pieces)
