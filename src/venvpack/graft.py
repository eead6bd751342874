"""Stage ``graft``: plan which shared libraries to copy in and which RPATHs to set; apply once.

``plan`` resolves every NEEDED entry of every ELF file in the tree the way the dynamic
loader would: inside the tree first (the file's own ``$ORIGIN`` paths, then the runtime's
``lib/``), else on the build host, in the loader's order: the file's DT_RPATH and, when it has
no DT_RUNPATH, the interpreter executable's DT_RPATH (glibc applies the main program's DT_RPATH
to every object loaded into the process, dlopened extension modules included); or else its
DT_RUNPATH; then ``ld.so.conf`` and the default directories. ``$ORIGIN`` of a file copied from
the source interpreter means the directory it was copied *from*: python-build-standalone's
``bin/python3.X`` has ``RPATH=$ORIGIN/../lib`` and its extension modules find their libssl,
libffi or libsqlite3 only through it, so this is what keeps a newer host library from being
grafted in their place (and the environment's glibc floor at the interpreter's own).

Libraries on the system allowlist are left to the target. Everything else is copied into
``python/lib`` once, and every file gets a RUNPATH made only of ``$ORIGIN``-relative
directories inside the tree. What the system family itself loads at run time without being
part of it (glibc dlopens ``libgcc_s.so.1`` for ``pthread_exit``; policy data, see
:func:`venvpack.policy.loaded_by_family`) is planned as a need of the interpreter executable,
which then gets a DT_RPATH instead of a DT_RUNPATH: libc's own ``dlopen`` has no search path
of its own and searches only the executable's DT_RPATH (glibc ignores it when the executable
has a DT_RUNPATH) before the system directories. The plan is data, so it is unit-tested
without touching a file; ``apply`` is the only place that changes ELF files (the RPATHs, and
build-host paths in C strings: :func:`plan_string_edits`).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sysconfig
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from venvpack.elf import ElfInfo, glibc_floor, is_elf, read_elf
from venvpack.errors import ElfError
from venvpack.pathtext import find_path
from venvpack.proc import run
from venvpack.sysroot import Sysroot

__all__ = [
    "LARGE",
    "ElfUpdate",
    "Graft",
    "GraftPlan",
    "Link",
    "StringEdit",
    "TreeLinks",
    "apply_plan",
    "apply_string_edits",
    "find_elf_files",
    "plan_grafts",
    "plan_string_edits",
    "resolve_in_tree",
    "system_library_dirs",
]

log = logging.getLogger("venvpack")


@dataclass(frozen=True)
class Graft:
    """Copy the host library ``source`` into the tree as ``dest``."""

    soname: str
    source: Path
    dest: Path


@dataclass(frozen=True)
class ElfUpdate:
    """The one change an ELF file (all its in-tree hardlinks) gets: its new search path."""

    paths: tuple[Path, ...]
    """Every path in the tree of this file; hardlinks share one update."""
    runpath: tuple[str, ...]
    """New RUNPATH entries, all ``$ORIGIN``-relative; empty removes the RPATH/RUNPATH."""
    tag: str = "DT_RUNPATH"
    """``DT_RUNPATH``, or ``DT_RPATH`` for the interpreter executable when it carries what the
    system family loads at run time (the only search path libc's own ``dlopen`` uses)."""


@dataclass(frozen=True)
class Link:
    """A relative symlink to a library of the tree, planted in a directory a large file
    already searches, so that its search path need not grow (see :data:`LARGE`)."""

    path: Path
    target: Path


LARGE = 64 << 20
"""Files at least this large are never rewritten to lengthen their search path: patchelf
holds a file twice in memory to grow it. A link to the library beside them serves instead."""


@dataclass(frozen=True)
class GraftPlan:
    grafts: tuple[Graft, ...]
    updates: tuple[ElfUpdate, ...]
    glibc_floor: str = "2.17"
    """The glibc the tree needs once the plan is applied (patching RUNPATHs changes none)."""
    links: tuple[Link, ...] = ()
    """Links to plant beside large files instead of lengthening their search paths."""


def find_elf_files(root: Path) -> list[Path]:
    """Regular ELF files under ``root`` (shared objects by name, executables by mode)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            try:
                st = path.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if (".so" in name or st.st_mode & 0o111) and is_elf(path):
                found.append(path)
    return found


def system_library_dirs() -> tuple[Path, ...]:
    """Directories this host's loader searches after RUNPATH: ld.so.conf (with includes),
    then the defaults (the host as a root of its own: :meth:`Sysroot.library_dirs`)."""
    return Sysroot(Path("/")).library_dirs(sysconfig.get_config_var("MULTIARCH") or None)


def _expand(entry: str, origin: Path) -> Path:
    for token in ("${ORIGIN}", "$ORIGIN"):
        entry = entry.replace(token, str(origin))
    return Path(os.path.normpath(entry))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _has_origin(entry: str) -> bool:
    return "$ORIGIN" in entry or "${ORIGIN}" in entry


class _Planner:
    def __init__(
        self,
        root: Path,
        lib_dir: Path,
        allow: frozenset[str],
        host_dirs: tuple[Path, ...],
        executable: Path | None,
        origins: Mapping[Path, Path],
        carried: tuple[str, ...] = (),
        sysroot: Sysroot | None = None,
    ) -> None:
        self.root = root
        self.real_root = Path(os.path.realpath(root))
        self.sysroot = sysroot
        """Another machine's root: a search path outside the tree names a place in it."""
        self.lib_dir = lib_dir
        self.allow = allow
        self.host_dirs = host_dirs
        self.executable = executable
        self.carried = carried
        """Sonames the executable needs because the system family loads them at run time."""
        # Deepest first, so a file maps through the most specific copied directory.
        self.origins = sorted(origins.items(), key=lambda item: -len(item[0].parts))
        self.infos: dict[Path, ElfInfo] = {}
        self.by_name: dict[str, list[Path]] = defaultdict(list)
        self.grafts: dict[str, Graft] = {}
        self.large: set[Path] = set()
        self.links: dict[Path, Link] = {}
        self.grafted_from: dict[Path, Path] = {}
        """Planned graft destination -> the directory its source is in (its host $ORIGIN)."""

    def add(self, path: Path, info: ElfInfo) -> None:
        self.infos[path] = info
        try:
            if path.stat().st_size >= LARGE:
                self.large.add(path)
        except FileNotFoundError:
            pass  # a planned graft, not copied yet
        self.by_name[path.name].append(path)
        if info.soname and info.soname != path.name:
            self.by_name[info.soname].append(path)

    def _compatible(self, user: ElfInfo, candidate: ElfInfo) -> bool:
        return candidate.elfclass == user.elfclass and candidate.machine == user.machine

    def search(self, path: Path, info: ElfInfo) -> list[tuple[str, Path]]:
        """``(entry, owner)`` pairs the loader searches for ``path``'s NEEDED entries, in its
        order, before the system directories; ``$ORIGIN`` in ``entry`` is ``owner``'s directory.

        A file with a DT_RUNPATH gets only that. Otherwise its own DT_RPATH, then the
        interpreter executable's DT_RPATH, unless ``path`` is a program of its own or the
        executable has a DT_RUNPATH (which disables its DT_RPATH). (glibc also searches the
        DT_RPATH of each object in the chain that loaded ``path``; the executable ends every
        chain in the interpreter's process, and the intermediate links are left out.)
        """
        if info.runpath:
            return [(entry, path) for entry in info.runpath]
        found = [(entry, path) for entry in info.rpath]
        exe = self.executable
        if exe is not None and exe != path and exe in self.infos and not info.is_program:
            exe_info = self.infos[exe]
            if not exe_info.runpath:
                found += [(entry, exe) for entry in exe_info.rpath]
        return found

    def host_origin(self, path: Path) -> Path | None:
        """``$ORIGIN`` of ``path`` on the build host: the directory it was copied from (or is
        planned to be grafted from); None for files that exist only in the tree."""
        if path in self.grafted_from:
            return self.grafted_from[path]
        for tree, host in self.origins:
            if _inside(path.parent, tree):
                return host / path.parent.relative_to(tree)
        return None

    def in_tree(self, path: Path, info: ElfInfo, name: str) -> Path | None:
        """Where the loader finds ``name`` for ``path`` inside the tree, if it does."""
        found = self.found_in_tree(path, info, name)
        return found[0] if found is not None else None

    def found_in_tree(self, path: Path, info: ElfInfo, name: str) -> tuple[Path, Path] | None:
        """(the file, the directory ``path`` needs on its search path to find it) for
        ``name`` inside the tree: a directory already searched when the loader finds it
        there (the file itself may be a link's target elsewhere), else the file's own."""
        for entry, owner in self.search(path, info):
            directory = _expand(entry, owner.parent)
            if _inside(directory, self.root):
                hit = self._tree_file(directory / name)
                if hit is not None and self._compatible(info, self.infos[hit]):
                    return hit, directory
        for hit in [self.lib_dir / name, *sorted(self.by_name.get(name, ()))]:
            known = self._tree_file(hit)
            if known is not None and self._compatible(info, self.infos[known]):
                return known, known.parent
        return None

    def _tree_file(self, candidate: Path) -> Path | None:
        if candidate in self.infos:
            return candidate
        real = Path(os.path.realpath(candidate))
        if _inside(real, self.real_root):  # spelled as the tree's paths are (--from env)
            real = self.root / real.relative_to(self.real_root)
        return real if real in self.infos else None

    def on_host(self, path: Path, info: ElfInfo, name: str) -> tuple[Path, ElfInfo]:
        """Where the build host's loader finds ``name`` for ``path``; error if nowhere."""
        dirs: list[Path] = []
        for entry, owner in self.search(path, info):
            origin = self.host_origin(owner) if _has_origin(entry) else None
            directory = _expand(entry, origin if origin is not None else owner.parent)
            if self.sysroot is not None and origin is None and not _inside(directory, self.root):
                directory = self.sysroot.host(directory)
            if not _inside(directory, self.root):
                dirs.append(directory)
        for directory in [*dirs, *self.host_dirs]:
            candidate = directory / name
            real = (
                self.sysroot.resolve(candidate)
                if self.sysroot is not None and self.sysroot.contains(candidate)
                else Path(os.path.realpath(candidate))
            )
            if real.is_file() and is_elf(real):
                found = read_elf(real)
                if self._compatible(info, found):
                    return (real if self.sysroot is not None else candidate), found
        rel = path.relative_to(self.root)
        raise ElfError(f"{name}, needed by {rel}, was not found on this system")

    def plan(self) -> GraftPlan:
        required: dict[Path, list[Path]] = {}
        self._resolve(sorted(self.infos), required)
        if self.carried and self.executable in required:
            self._carry(self.executable, required)
        return GraftPlan(
            grafts=tuple(sorted(self.grafts.values(), key=lambda g: g.soname)),
            updates=tuple(self._updates(required)),
            glibc_floor=glibc_floor(list(self.infos.values())),
            links=tuple(sorted(self.links.values(), key=lambda link: link.path)),
        )

    def _resolve(self, queue: list[Path], required: dict[Path, list[Path]]) -> None:
        """Find every NEEDED entry of the files in ``queue``, grafting (and queueing) what
        the tree lacks; ``required[path]`` becomes the directories ``path`` needs."""
        while queue:
            path = queue.pop(0)
            info = self.infos[path]
            dirs: list[Path] = []
            for name in info.needed:
                if name in self.allow:
                    continue
                found = self.found_in_tree(path, info, name)
                if found is None:
                    source, library = self.on_host(path, info, name)
                    hit = self._graft(name, source, library)
                    queue.append(hit)
                    found = (hit, hit.parent)
                directory = self._beside(path, info, name, *found)
                if directory not in dirs:
                    dirs.append(directory)
            required[path] = dirs

    def _beside(self, path: Path, info: ElfInfo, name: str, hit: Path, directory: Path) -> Path:
        """The directory ``path`` finds ``hit`` in. A large file whose search path lacks it
        (libtorch_cpu.so, 434 MB, needing a grafted libstdc++) gets a relative link to it in
        a directory it already searches: a longer search path would have the whole file
        rewritten, held in memory twice."""
        if path not in self.large or self.executable == path:
            return directory
        current = [_expand(e, path.parent) for e in info.search_path]
        if directory in current or not current or (info.rpath and not info.runpath):
            return directory
        if any(not _has_origin(e) for e in info.search_path):
            return directory
        beside = current[0]
        if not _inside(beside, self.root) or beside == self.lib_dir:
            return directory
        link = beside / name
        planned = self.links.get(link)
        if planned is not None:
            return beside if planned.target == hit else directory
        if os.path.lexists(link):
            return directory
        self.links[link] = Link(path=link, target=hit)
        return beside

    def _graft(self, name: str, source: Path, found: ElfInfo) -> Path:
        hit = self.lib_dir / name
        self.grafts[name] = Graft(soname=name, source=source, dest=hit)
        self.grafted_from[hit] = source.parent
        self.add(hit, found)
        return hit

    def _carry(self, exe: Path, required: dict[Path, list[Path]]) -> None:
        """Plan what the system family loads at run time as needs of the executable: from
        the tree, else from the host unless that copy needs a newer glibc than everything
        else (the host's libgcc_s needs glibc 2.35 on Debian 12; on an older target, where
        the environment otherwise runs, glibc would load it, fail, and abort anyway)."""
        floor = max((v for i in self.infos.values() for v in i.glibc_versions), default=(2, 17))
        info = self.infos[exe]
        for name in self.carried:
            hit = self.in_tree(exe, info, name)
            if hit is None:
                try:
                    source, found = self.on_host(exe, info, name)
                except ElfError:
                    log.debug("%s: not on this system; left to the target", name)
                    continue
                if max(found.glibc_versions, default=(2, 17)) > floor:
                    log.warning(
                        "%s from %s needs a newer glibc than the rest of the environment; "
                        "left to the target (daemon threads at exit need it there)",
                        name,
                        source,
                    )
                    continue
                hit = self._graft(name, source, found)
                self._resolve([hit], required)
            if hit.parent not in required[exe]:
                required[exe].append(hit.parent)

    def _updates(self, required: Mapping[Path, list[Path]]) -> Iterator[ElfUpdate]:
        for group in _hardlink_groups(required):
            wanted: list[str] = []
            for path in group:
                for directory in required[path]:
                    rel = os.path.relpath(directory, path.parent)
                    entry = "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"
                    if entry not in wanted:
                        wanted.append(entry)
            tag = "DT_RPATH" if self._wants_rpath(group) else "DT_RUNPATH"
            if any(self._needs_change(p, required[p], tag) for p in group):
                yield ElfUpdate(paths=tuple(group), runpath=tuple(wanted), tag=tag)

    def _wants_rpath(self, group: list[Path]) -> bool:
        return bool(self.carried) and self.executable in group

    def _needs_change(self, path: Path, dirs: list[Path], tag: str) -> bool:
        """A file keeps its search path when it stays inside the tree, covers ``dirs`` and
        has the tag it needs."""
        info = self.infos[path]
        if tag == "DT_RPATH" and (info.runpath or not info.rpath):
            return True
        current = [_expand(e, path.parent) for e in info.search_path]
        if any(
            not e.startswith("$ORIGIN") and not e.startswith("${ORIGIN}") for e in info.search_path
        ):
            return True
        if any(not _inside(d, self.root) for d in current):
            return True
        return any(d not in current for d in dirs)


def _hardlink_groups(required: Mapping[Path, list[Path]]) -> list[list[Path]]:
    """Paths grouped by inode, so that hardlinks of one file get one RUNPATH."""
    groups: dict[tuple[int, int] | Path, list[Path]] = {}
    for path in sorted(required):
        try:
            st = path.stat()
            key: tuple[int, int] | Path = (st.st_dev, st.st_ino)
        except FileNotFoundError:  # a planned graft, not copied yet
            key = path
        groups.setdefault(key, []).append(path)
    return list(groups.values())


def plan_grafts(
    root: Path,
    lib_dir: Path,
    allow: frozenset[str],
    *,
    files: Iterable[Path] | None = None,
    host_dirs: tuple[Path, ...] | None = None,
    executable: Path | None = None,
    origins: Mapping[Path, Path] | None = None,
    carried: tuple[str, ...] = (),
    read: Callable[[Path], ElfInfo] = read_elf,
    sysroot: Sysroot | None = None,
) -> GraftPlan:
    """Plan grafts and RUNPATH updates for every ELF file under ``root``.

    With ``sysroot`` (another machine's root) libraries are looked up in it and only in it:
    ``host_dirs`` are then its directories, and an absolute search path names a place in it.

    ``executable`` is the interpreter binary in the tree: its DT_RPATH serves every library
    loaded into its process. ``origins`` maps directories of the tree to the build-host
    directories their files were copied from, so that ``$ORIGIN`` resolves on the host where
    the loader would have resolved it (a missing library is then taken from the source
    interpreter's own tree, never from the host's system directories). ``carried`` are the
    sonames the system family loads at run time: the executable needs them, with a DT_RPATH.
    ``read`` reads the tree's files (an :class:`~venvpack.elf.ElfCache` shares the parse
    with the audit).
    """
    planner = _Planner(
        root,
        lib_dir,
        allow,
        host_dirs if host_dirs is not None else system_library_dirs(),
        executable,
        origins or {},
        carried if executable is not None else (),
        sysroot,
    )
    for path in files if files is not None else find_elf_files(root):
        info = read(path)
        if info.is_dynamic:
            planner.add(path, info)
    return planner.plan()


@dataclass(frozen=True)
class TreeLinks:
    """How every ELF file's NEEDED entries resolve inside a finished tree."""

    infos: Mapping[Path, ElfInfo]
    resolved: Mapping[Path, tuple[Path, ...]]
    """For each file, the in-tree files its NEEDED entries resolve to."""
    unresolved: tuple[tuple[Path, str], ...]
    """(file, soname) that neither the tree nor the allowlist provides."""


def resolve_in_tree(
    root: Path,
    lib_dir: Path,
    allow: frozenset[str],
    files: Iterable[Path],
    invalid: list[Path] | None = None,
    *,
    read: Callable[[Path], ElfInfo] = read_elf,
) -> TreeLinks:
    """Resolve every NEEDED entry as the planner does, but report all of them instead of
    stopping at the first: the tree check names every file that would fail to load, and
    ``inspect`` follows grafted libraries back to the files that need them. With
    ``invalid``, a file that is not a readable ELF file is listed there and left out instead
    of raising."""
    planner = _Planner(root, lib_dir, allow, (), None, {})
    for path in files:
        try:
            info = read(path)
        except ElfError:
            if invalid is None:
                raise
            invalid.append(path)
            continue
        if info.is_dynamic:
            planner.add(path, info)
    resolved: dict[Path, tuple[Path, ...]] = {}
    unresolved: list[tuple[Path, str]] = []
    for path, info in sorted(planner.infos.items()):
        hits: list[Path] = []
        for name in info.needed:
            if name in allow:
                continue
            hit = planner.in_tree(path, info, name)
            if hit is None:
                unresolved.append((path, name))
            else:
                hits.append(hit)
        resolved[path] = tuple(hits)
    return TreeLinks(dict(planner.infos), resolved, tuple(unresolved))


def apply_plan(plan: GraftPlan, patchelf: str) -> None:
    """Copy the grafted libraries, plant the links beside large files, then set every
    planned RUNPATH and read each one back."""
    for graft in plan.grafts:
        graft.dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(os.path.realpath(graft.source), graft.dest)
        os.chmod(graft.dest, 0o644)
        log.debug("grafted %s from %s", graft.soname, graft.source)
    for link in plan.links:
        os.symlink(os.path.relpath(link.target, link.path.parent), link.path)
        log.debug("linked %s to %s beside a large file", link.path, link.target)
    by_value: dict[tuple[tuple[str, ...], str], list[Path]] = defaultdict(list)
    for update in plan.updates:
        _make_private(update.paths)
        head = update.paths[0]
        value = ":".join(update.runpath) if update.runpath else None
        if not _write_in_place(head, value, update.tag):
            by_value[(update.runpath, update.tag)].append(head)
    for (entries, tag), paths in sorted(by_value.items()):
        args = ["--remove-rpath"] if not entries else ["--set-rpath", ":".join(entries)]
        if entries and tag == "DT_RPATH":
            args.insert(0, "--force-rpath")  # converts a DT_RUNPATH, too
        run([patchelf, *args, *paths], error=ElfError, what="patchelf")
    for update in plan.updates:
        for path in update.paths:
            info = read_elf(path)
            got = info.search_path
            got_tag = "DT_RUNPATH" if info.runpath or not update.runpath else "DT_RPATH"
            if got != update.runpath or got_tag != update.tag:
                raise ElfError(
                    f"{path}: {got_tag} is {':'.join(got)!r} after patching, "
                    f"expected {update.tag} {':'.join(update.runpath)!r}"
                )


def _write_in_place(path: Path, value: str | None, tag: str = "DT_RUNPATH") -> bool:
    """Overwrite the RPATH/RUNPATH string in place when ``value`` fits and the file already
    has the entry ``tag`` names: True when done.

    Otherwise (or when ``value`` is None, to remove the entry), the old string is still
    blanked, since patchelf leaves it in ``.dynstr`` and it names the build host.
    """
    info = read_elf(path)
    if info.path_offset is None:
        return False
    data = value.encode() if value is not None else b""
    current = "DT_RUNPATH" if info.runpath else "DT_RPATH"
    fits = value is not None and len(data) <= info.path_capacity and current == tag
    with path.open("r+b") as fh:
        fh.seek(info.path_offset)
        fh.write((data if fits else b"").ljust(info.path_capacity + 1, b"\0"))
    return fits


def _make_private(paths: tuple[Path, ...]) -> None:
    """Make sure patching ``paths`` changes no file outside the tree.

    Installers hardlink files from their caches; a file whose link count exceeds its
    in-tree paths is copied and the copy renamed over every in-tree path.
    """
    st = paths[0].stat()
    if st.st_nlink <= len(paths):
        return
    tmp = paths[0].with_name(paths[0].name + ".venvpack-private")
    shutil.copy2(paths[0], tmp)
    for other in paths[1:]:
        link_tmp = other.with_name(other.name + ".venvpack-private")
        os.link(tmp, link_tmp)
        os.replace(link_tmp, other)
    os.replace(tmp, paths[0])


# -- build-host paths in C strings ----------------------------------------------------------


@dataclass(frozen=True)
class StringEdit:
    """In-place byte changes to one ELF file (all its in-tree hardlinks): build-host paths in
    C strings overwritten by a replacement of the same length, so no offset moves."""

    paths: tuple[Path, ...]
    changes: tuple[tuple[int, bytes, bytes], ...]
    """(file offset, old bytes, new bytes of the same length)."""


def plan_string_edits(
    files: Iterable[Path], replacements: Iterable[tuple[str, str]]
) -> tuple[StringEdit, ...]:
    """Where ``files`` name a path of ``replacements`` (old absolute path, new value), and the
    bytes that replace it.

    libpython keeps its configure-time prefix as getpath's last resort, C extensions keep
    their compile directory in ``__FILE__`` strings. Only the bytes of the old path change:

    - at the start of a C string, the new value and a NUL go where the old path was, and
      NULs follow up to the old path's *last component*, which stays: linkers merge string
      tails, and pyenv's libpython has ``PY_VERSION`` ("3.12.1") as the tail of
      ``PREFIX`` ("/root/.pyenv/versions/3.12.1"), so blanking the whole string empties
      ``sys.version``. A value that does not fit before that component becomes "".
    - inside a longer string (``-L/old/lib``), the new value is padded with ``/`` to the old
      length: the same path for every lookup, the rest of the string untouched.
    """
    pairs = sorted(
        ((os.fsencode(old), os.fsencode(new)) for old, new in replacements),
        key=lambda p: -len(p[0]),
    )
    groups: dict[tuple[int, int], list[Path]] = {}
    for path in files:
        st = path.stat()
        groups.setdefault((st.st_dev, st.st_ino), []).append(path)
    edits: list[StringEdit] = []
    for paths in groups.values():
        data = paths[0].read_bytes()
        changes: list[tuple[int, bytes, bytes]] = []
        taken: list[tuple[int, int]] = []
        for old, new in pairs:
            for offset in find_path(data, old):
                if any(start <= offset < end for start, end in taken):
                    continue  # inside a longer path already replaced
                new_bytes = _replacement(data, offset, old, new)
                end = offset + len(new_bytes)
                changes.append((offset, data[offset:end], new_bytes))
                taken.append((offset, offset + len(old)))
        if changes:
            edits.append(StringEdit(paths=tuple(sorted(paths)), changes=tuple(sorted(changes))))
    return tuple(sorted(edits, key=lambda e: e.paths))


def _replacement(data: bytes, offset: int, old: bytes, new: bytes) -> bytes:
    if offset == 0 or data[offset - 1] == 0:
        keep_from = old.rstrip(b"/").rfind(b"/") + 1  # the last component stays
        value = new if len(new) + 1 <= keep_from else b""
        return value.ljust(keep_from, b"\0")
    value = new if len(new) <= len(old) else b""
    return value.ljust(len(old), b"/")


def apply_string_edits(edits: Iterable[StringEdit]) -> None:
    """Write every planned change in place, then read each file back."""
    for edit in edits:
        _make_private(edit.paths)
        with edit.paths[0].open("r+b") as fh:
            for offset, old, new in edit.changes:
                fh.seek(offset)
                if fh.read(len(old)) != old:
                    raise ElfError(f"{edit.paths[0]}: unexpected bytes at {offset:#x}")
                fh.seek(offset)
                fh.write(new)
        data = edit.paths[0].read_bytes()
        for offset, _old, new in edit.changes:
            if data[offset : offset + len(new)] != new:
                raise ElfError(f"{edit.paths[0]}: string at {offset:#x} did not change")
