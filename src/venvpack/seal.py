"""Part of stage ``audit``: an environment venvpack built and audited, known again without
auditing it a second time.

``venvpack build`` seals the tree it leaves: a digest of every entry below the root -- its
path, kind, inode, mode, owner, size and modification time, a link's target -- kept in the
build cache (``build_cache("seals")``) under the root directory's device and inode. Packing
that tree later (``--from``) audits it again only when the digest no longer matches: a file
written, truncated, replaced, added, removed or renamed, a mode or owner changed, and a copy
of the tree (other inodes) are all audited again. The change time is left out on purpose:
the tree's files are hard links of uv's cache, and each install of the same wheel elsewhere
changes their link count and so their change time, without changing a byte here. A file
rewritten to the same size with its old modification time put back by hand is the one
change the seal does not see; it guards against accidents, not against its own user.

The seal is never part of the tree: the facts it covers belong to this filesystem and must
not travel in an artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from pathlib import Path

from venvpack.cache import build_cache, write_entry

__all__ = ["is_sealed", "seal"]

log = logging.getLogger("venvpack")

_FORMAT = b"venvpack-seal-2\0"


def seal(root: Path) -> None:
    """Record ``root`` as it is now, audited. A cache that cannot be written only means the
    next ``--from`` audits the tree again."""
    place = _place(root)
    if place is None:
        return
    try:
        write_entry(place, _digest(root))
    except OSError as exc:
        log.debug("seal: %s not sealed (%s)", root, exc)


def is_sealed(root: Path) -> bool:
    """Whether ``root`` is exactly the tree :func:`seal` recorded."""
    place = _place(root)
    if place is None:
        return False
    try:
        recorded = place.read_text(encoding="ascii")
        matches = recorded == _digest(root)
    except (OSError, UnicodeDecodeError):
        return False
    if matches:
        with contextlib.suppress(OSError):
            os.utime(place)  # in use: kept by the cache's pruning
    return matches


def _place(root: Path) -> Path | None:
    top = build_cache("seals")
    try:
        st = os.stat(root)
    except OSError:
        return None
    if top is None or not stat.S_ISDIR(st.st_mode):
        return None
    return top / f"{st.st_dev:x}-{st.st_ino:x}"


def _digest(root: Path) -> str:
    """The digest of every entry below ``root`` (not ``root`` itself: renaming the tree into
    place changes its own change time), in a fixed order."""
    digest = hashlib.sha256(_FORMAT)
    stack = [(os.fspath(root), b"")]
    while stack:
        directory, rel = stack.pop()
        with os.scandir(directory) as it:
            children = sorted(it, key=lambda e: e.name)
        for entry in children:
            st = entry.stat(follow_symlinks=False)
            path = rel + os.fsencode(entry.name)
            facts = (st.st_mode, st.st_ino, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
            digest.update(path + b"\0" + repr(facts).encode() + b"\0")
            if stat.S_ISLNK(st.st_mode):
                digest.update(os.fsencode(os.readlink(entry.path)) + b"\0")
            elif stat.S_ISDIR(st.st_mode):
                stack.append((entry.path, path + b"/"))
    return digest.hexdigest()
