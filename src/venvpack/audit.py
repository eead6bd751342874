"""Stage ``audit``: read the finished tree back and check what the other stages promised.

- every RPATH/RUNPATH is ``$ORIGIN``-relative and stays inside the tree, and every needed
  library is inside the tree or on the system allowlist (the graft planner, run again with
  no host directories, must find nothing to do);
- the glibc floor: the highest GLIBC_x.y symbol version any ELF file needs;
- every symlink is relative and stays inside the tree (venvpack makes only such links:
  ``bin/python -> ../python/bin/python3.X``, ``lib64 -> lib``); an absolute or escaping one
  would ship a path of the build host, or a way out of ``/opt/<app>``;
- leaks: files that still name the build directory or the source interpreter.

It runs at the end of every build, and again on every ``--from`` tree before it is packed.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvpack.elf import ElfInfo, glibc_floor, read_elf
from venvpack.errors import BuildError, ElfError
from venvpack.graft import find_elf_files, plan_grafts
from venvpack.pathtext import contains_path

__all__ = ["AuditReport", "audit_tree", "check_symlinks", "find_leaks"]


@dataclass(frozen=True)
class AuditReport:
    glibc_floor: str
    elf_files: int
    leaks: tuple[tuple[str, str], ...]
    """(path relative to the root, the text found) for files naming a build-host path."""


def audit_tree(
    root: Path,
    allow: frozenset[str],
    needles: Sequence[str],
    *,
    executable: Path | None = None,
    carried: tuple[str, ...] = (),
    read: Callable[[Path], ElfInfo] = read_elf,
) -> AuditReport:
    """Check the tree at ``root``; raise BuildError when a promise is broken.

    ``executable`` and ``carried`` are what the graft stage was given: the interpreter must
    still find what the system family loads at run time, through its DT_RPATH. ``read``
    reads each ELF file once (the build's :class:`~venvpack.elf.ElfCache` has most of them
    from the graft stage)."""
    check_symlinks(root)
    files = find_elf_files(root)
    try:
        infos = {path: read(path) for path in files}
        plan = plan_grafts(
            root,
            root / "python" / "lib",
            allow,
            files=files,
            host_dirs=(),
            executable=executable,
            carried=carried,
            read=infos.__getitem__,
        )
    except ElfError as exc:
        raise BuildError(f"audit: {exc} inside the environment") from None
    if plan.updates:
        bad = ", ".join(str(u.paths[0].relative_to(root)) for u in plan.updates[:3])
        raise BuildError(f"audit: library search paths still need fixing in {bad}")
    return AuditReport(
        glibc_floor=glibc_floor(list(infos.values())),
        elf_files=len(files),
        leaks=tuple(find_leaks(root, needles)),
    )


def check_symlinks(root: Path) -> None:
    """Refuse a symlink that is absolute or leads outside ``root`` (read lexically, as the
    link will be read wherever the tree is unpacked)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + sorted(dirnames):
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                continue
            target = os.readlink(path)
            rel = os.path.relpath(path, root)
            if os.path.isabs(target):
                raise BuildError(f"audit: {rel} is an absolute symlink (to {target})")
            resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target))
            if resolved == ".." or resolved.startswith("../"):
                raise BuildError(f"audit: {rel} is a symlink leading out of the tree ({target})")


def find_leaks(root: Path, needles: Sequence[str]) -> list[tuple[str, str]]:
    """Every (file, needle) where a file's bytes or a symlink's target name a needle path.

    Matched as a path (:mod:`venvpack.pathtext`): a short needle such as ``/install`` is
    not found in ``/usr/bin/install``."""
    encoded = [(n, os.fsencode(n)) for n in needles if n]
    if not encoded:
        return []
    found: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + sorted(
            d for d in dirnames if os.path.islink(os.path.join(dirpath, d))
        ):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                target = os.fsencode(os.readlink(path))
                found += [(rel, n) for n, b in encoded if contains_path(target, b)]
                continue
            hits = _scan_file(path, encoded)
            found += [(rel, n) for n in hits]
    return found


def _scan_file(path: str, encoded: list[tuple[str, bytes]]) -> list[str]:
    # Mapped, not read: the context a match needs can reach back past any block boundary,
    # and the page cache serves libpython's megabytes as cheaply either way.
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return []
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return [text for text, needle in encoded if contains_path(data, needle)]
    except (OSError, ValueError):
        return []
