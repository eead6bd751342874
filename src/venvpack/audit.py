"""Stage ``audit``: read the finished tree back and check what the other stages promised;
and the tree check it shares with ``venvpack inspect``.

:func:`check_tree` walks a tree once and names every problem that would make it fail
elsewhere, as :class:`Problem` records of one set of kinds (the codes of
``schemas/inspect-1.json``): a symlink that leaves the tree (``symlink-outside``) or never
reaches a file (``symlink-loop``), a file that is not a readable ELF file
(``elf-invalid``), a needed library neither in the tree nor on the system allowlist
(``unresolved-library``), a search path that is absolute or leaves the tree
(``runpath-absolute``, ``runpath-outside``). ``inspect`` reports them; the audit raises on
the first, then checks what only a build promises:

- the graft planner, run again with no host directories, must find nothing to do (every
  search path covers what its file needs, the interpreter keeps its DT_RPATH);
- the glibc floor: the highest GLIBC_x.y symbol version any ELF file needs;
- leaks: files that still name the build directory or the source interpreter.

A built tree has no install location yet: every absolute symlink leaves it (venvpack makes
only relative links inside it: ``bin/python -> ../python/bin/python3.X``, ``lib64 -> lib``).
The audit runs at the end of every build, and again on every ``--from`` tree before it is
packed.
"""

from __future__ import annotations

import logging
import mmap
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvpack.elf import ElfInfo, glibc_floor, is_elf, read_elf
from venvpack.errors import BuildError, ElfError
from venvpack.graft import TreeLinks, plan_grafts, resolve_in_tree
from venvpack.manifest import BuiltEnv
from venvpack.pathtext import contains_path, mapped_contains_path
from venvpack.platform import machine_of, system_libraries
from venvpack.seal import is_sealed

__all__ = [
    "AuditReport",
    "Problem",
    "SearchPath",
    "TreeCheck",
    "TreeView",
    "audit_tree",
    "check_tree",
    "checked_environment",
    "find_leaks",
]

log = logging.getLogger("venvpack")

MAX_LINKS = 40
"""Links followed before a chain counts as a loop (the kernel's limit is 40, too)."""


@dataclass(frozen=True)
class Problem:
    """One reason the tree may not run elsewhere."""

    code: str
    """Stable identifier, listed in ``schemas/inspect-1.json`` (``runpath-absolute`` ...)."""
    path: str
    """The file concerned, relative to the environment root ("" for the whole tree)."""
    message: str


@dataclass(frozen=True)
class SearchPath:
    """One DT_RUNPATH or DT_RPATH entry of one file."""

    file: str
    kind: str
    """``RUNPATH`` or ``RPATH``."""
    entry: str
    problem: str | None
    """None, ``absolute`` or ``outside``."""


def inside(path: Path, root: Path) -> bool:
    """``path`` is ``root`` or below it, read lexically."""
    return path == root or root in path.parents


class TreeView:
    """A tree and how to tell inside from outside: ``locations`` are the absolute paths at
    which the tree is (or will be) installed, where an absolute symlink may point."""

    def __init__(self, root: Path, locations: Iterable[str] = ()) -> None:
        self.root = root
        self.locations = [os.path.normpath(loc) for loc in locations]

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def absolute_inside(self, text: str) -> Path | None:
        """The in-tree file an absolute path names once installed, or None when outside."""
        norm = os.path.normpath(text)
        for loc in self.locations:
            if norm == loc or norm.startswith(loc.rstrip("/") + "/"):
                return self.root / os.path.relpath(norm, loc)
        return None

    def escape(self, path: Path) -> str | None:
        """The symlink target by which ``path`` leaves the tree (for a message); None when
        its chain of links loops instead."""
        first = path
        for _ in range(MAX_LINKS):
            if not path.is_symlink():
                break
            target = os.readlink(path)
            nxt = Path(os.path.normpath(path.parent / target))
            if target.startswith("/") or not inside(nxt, self.root):
                return target
            path = nxt
        else:
            return None
        return os.readlink(first)  # the artifact's own text, never a path of this host

    def resolve(self, path: Path) -> Path | None:
        """Follow ``path``'s symlinks inside the tree; None when they leave it or loop."""
        for _ in range(MAX_LINKS):
            if not path.is_symlink():
                return path if inside(path, self.root) else None
            target = os.readlink(path)
            if target.startswith("/"):
                found = self.absolute_inside(target)
                if found is None:
                    return None
                path = found
            else:
                path = Path(os.path.normpath(path.parent / target))
                if not inside(path, self.root):
                    return None
        return None


@dataclass(frozen=True)
class TreeCheck:
    """What :func:`check_tree` found."""

    elf_files: tuple[Path, ...]
    """Every regular ELF file (shared objects by name, executables by mode)."""
    infos: dict[Path, ElfInfo]
    """Those that could be read."""
    links: TreeLinks
    search_paths: tuple[SearchPath, ...]
    link_problems: tuple[Problem, ...]
    """Symlinks leaving the tree or looping."""
    elf_problems: tuple[Problem, ...]
    """Unreadable ELF files, unresolved libraries, search paths leaving the tree."""

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.link_problems + self.elf_problems


def check_tree(
    view: TreeView,
    allow: frozenset[str],
    *,
    judged_elsewhere: Callable[[Path], bool] = lambda path: False,
    read: Callable[[Path], ElfInfo] = read_elf,
    machine: str | None = None,
) -> TreeCheck:
    """Walk the tree at ``view.root`` once and name every problem in it. Symlinks for which
    ``judged_elsewhere`` is true are left to the caller (``inspect`` judges ``bin/python``
    with the interpreter). ``read`` reads each ELF file (a build's
    :class:`~venvpack.elf.ElfCache`)."""
    root = view.root
    link_problems: list[Problem] = []
    elf_files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        directory = Path(dirpath)
        links = [d for d in dirnames if (directory / d).is_symlink()]
        for name in sorted(filenames) + links:
            path = directory / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                if not judged_elsewhere(path):
                    link_problems += _judge_link(view, path)
            elif (
                stat.S_ISREG(st.st_mode) and (".so" in name or st.st_mode & 0o111) and is_elf(path)
            ):
                elf_files.append(path)  # shared objects by name, executables by mode
    problems: list[Problem] = []
    infos: dict[Path, ElfInfo] = {}
    for path in elf_files:
        try:
            infos[path] = read(path)
        except ElfError:
            problems.append(
                Problem(
                    "elf-invalid", view.rel(path), "not a readable ELF file (damaged or truncated)"
                )
            )
    if machine is not None:
        for path, info in infos.items():
            found = machine_of(info)
            if found != machine:
                problems.append(
                    Problem(
                        "foreign-machine",
                        view.rel(path),
                        f"a file for {found or info.machine}, in an environment for {machine}",
                    )
                )
    tree_links = resolve_in_tree(
        root, root / "python" / "lib", allow, infos, read=infos.__getitem__
    )
    for path, soname in tree_links.unresolved:
        problems.append(
            Problem(
                "unresolved-library",
                view.rel(path),
                f"needs {soname}, which is neither in the tree nor a system library "
                "(policy/platforms.json)",
            )
        )
    search_paths = _search_paths(view, tree_links.infos.values(), problems)
    return TreeCheck(
        elf_files=tuple(elf_files),
        infos=infos,
        links=tree_links,
        search_paths=tuple(search_paths),
        link_problems=tuple(link_problems),
        elf_problems=tuple(problems),
    )


def _judge_link(view: TreeView, path: Path) -> list[Problem]:
    if view.resolve(path) is not None:
        return []
    target = view.escape(path)
    if target is None:
        return [Problem("symlink-loop", view.rel(path), "a symlink loop: it never reaches a file")]
    return [Problem("symlink-outside", view.rel(path), f"symlink to {target}, outside the tree")]


def _search_paths(
    view: TreeView, infos: Iterable[ElfInfo], problems: list[Problem]
) -> list[SearchPath]:
    out: list[SearchPath] = []
    for info in sorted(infos, key=lambda i: i.path):
        for kind, entries in (("RUNPATH", info.runpath), ("RPATH", info.rpath)):
            for entry in entries:
                problem: str | None = None
                if entry.startswith(("$ORIGIN", "${ORIGIN}")):
                    expanded = entry.replace("${ORIGIN}", "$ORIGIN").replace(
                        "$ORIGIN", str(info.path.parent), 1
                    )
                    if not inside(Path(os.path.normpath(expanded)), view.root):
                        problem = "outside"
                else:
                    problem = "absolute"
                out.append(SearchPath(view.rel(info.path), kind, entry, problem))
                if problem is not None:
                    problems.append(
                        Problem(
                            f"runpath-{problem}",
                            view.rel(info.path),
                            f"{kind} {entry} "
                            + (
                                "is absolute: the loader looks on the host"
                                if problem == "absolute"
                                else "leaves the tree"
                            ),
                        )
                    )
    return out


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
    machine: str | None = None,
) -> AuditReport:
    """Check the tree at ``root``; raise BuildError when a promise is broken.

    ``executable`` and ``carried`` are what the graft stage was given: the interpreter must
    still find what the system family loads at run time, through its DT_RPATH. ``read``
    reads each ELF file once (the build's :class:`~venvpack.elf.ElfCache` has most of them
    from the graft stage). With ``machine`` every ELF file must be that machine's: a file
    of another one (a host library planted in an aarch64 tree) is refused."""
    check = check_tree(TreeView(root), allow, read=read, machine=machine)
    if check.problems:
        first = check.problems[0]
        more = len(check.problems) - 1
        others = f" (and {more} more problem(s))" if more else ""
        raise BuildError(f"audit: {first.path}: {first.message}{others}")
    try:
        plan = plan_grafts(
            root,
            root / "python" / "lib",
            allow,
            files=check.elf_files,
            host_dirs=(),
            executable=executable,
            carried=carried,
            read=check.infos.__getitem__,
        )
    except ElfError as exc:
        raise BuildError(f"audit: {exc} inside the environment") from None
    if plan.updates:
        bad = ", ".join(str(u.paths[0].relative_to(root)) for u in plan.updates[:3])
        raise BuildError(f"audit: library search paths still need fixing in {bad}")
    return AuditReport(
        glibc_floor=glibc_floor(list(check.infos.values())),
        elf_files=len(check.elf_files),
        leaks=tuple(find_leaks(root, needles)),
    )


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


_WINDOWED = 64 << 20
"""Files at least this large are searched a window at a time (memory stays bounded)."""


def _scan_file(path: str, encoded: list[tuple[str, bytes]]) -> list[str]:
    # Mapped, not read: the context a match needs can reach back past any block boundary,
    # and the page cache serves libpython's megabytes as cheaply either way.
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return []
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                search = mapped_contains_path if size >= _WINDOWED else contains_path
                return [text for text, needle in encoded if search(data, needle)]
    except (OSError, ValueError):
        return []


def checked_environment(root: Path) -> BuiltEnv:
    """An environment made earlier (``--from``), audited again before it is packed: it may
    have been changed since (a grafted library deleted, a symlink added, the manifest
    edited), and a package must not ship what the build would have refused. A tree still
    exactly as ``venvpack build`` sealed it (:mod:`venvpack.seal`) was audited then."""
    env = BuiltEnv.load(root)
    if is_sealed(root):
        log.debug("audit: %s is as venvpack built and audited it", root)
        return env
    report = audit_tree(root, system_libraries(), (), machine=env.manifest.target.machine)
    if report.glibc_floor != env.manifest.glibc_floor:
        raise BuildError(
            f"audit: the tree needs glibc {report.glibc_floor or '(none)'} but its manifest "
            f"says {env.manifest.glibc_floor or '(none)'}; build it again"
        )
    return env
