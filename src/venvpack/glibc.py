"""The glibc floor of a tree, explained: which file sets it, with which symbol version, and
whether only an optional stdlib module stands between the tree and an older target.

``elf`` reads each file's GLIBC_x.y needs; this module ranks files by them, names a symbol
that needs the highest one, and follows grafted libraries back to the extension modules
that pulled them in, so a too-high floor comes with something the user can do about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvpack.elf import ElfInfo, symbols_at_version
from venvpack.errors import ElfError, InterpreterError
from venvpack.sysroot import Sysroot
from venvpack.validate import glibc_version

__all__ = [
    "OPTIONAL_MODULES",
    "FloorSetter",
    "FloorVerdict",
    "check_max_glibc",
    "floor_setters",
    "glibc_release",
    "judge_floor",
    "optional_culprits",
    "parse_glibc",
    "refuse_glibc_above",
    "symbols_needing",
    "sysroot_glibc",
    "version_text",
]

OPTIONAL_MODULES = frozenset(
    {
        "_curses",
        "_curses_panel",
        "readline",
        "_dbm",
        "_gdbm",
        "_tkinter",
        "_sqlite3",
        "_crypt",
        "nis",
        "_uuid",
        "_lzma",
        "_bz2",
    }
)
"""Stdlib extension modules an application can usually do without; when only they raise
the floor, ``--exclude-module`` is the way down."""

_EXTENSION = re.compile(r"^([A-Za-z0-9_]+)\.(cpython-[^.]+\.|abi3\.)?so$")


parse_glibc = glibc_version
"""``2.31`` as ``(2, 31)`` (:func:`venvpack.validate.glibc_version`)."""


def version_text(version: Sequence[int]) -> str:
    return ".".join(str(p) for p in version)


@dataclass(frozen=True)
class FloorSetter:
    """A file that needs a glibc newer than some bound."""

    path: str
    """Relative to the environment root."""
    version: str
    """The highest glibc it needs, ``2.35``."""
    symbol_version: str
    """``GLIBC_2.35``."""


def floor_setters(
    root: Path, infos: Iterable[ElfInfo], above: tuple[int, ...] = (0,)
) -> list[FloorSetter]:
    """Files needing a glibc newer than ``above``, the most demanding first (then by path)."""
    found = [
        (info.glibc_versions[-1], str(info.path.relative_to(root)))
        for info in infos
        if info.glibc_versions and info.glibc_versions[-1] > above
    ]
    found.sort(key=lambda item: (tuple(-p for p in item[0]), item[1]))
    return [FloorSetter(path, version_text(v), f"GLIBC_{version_text(v)}") for v, path in found]


def symbols_needing(path: Path, symbol_version: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` dynamic symbols ``path`` imports at ``symbol_version`` (for a message:
    ``memfd_create@GLIBC_2.27`` tells a developer more than the version alone); none when
    the file cannot be read, since a message must never fail the report."""
    try:
        return symbols_at_version(path, symbol_version, limit)
    except ElfError:
        return []


def extension_module(rel: str) -> str | None:
    """The module name of a stdlib extension (``python/lib/python3.X/lib-dynload/_crypt...so``)."""
    parts = rel.split("/")
    if len(parts) < 2 or parts[-2] != "lib-dynload":
        return None
    m = _EXTENSION.match(parts[-1])
    return m.group(1) if m else None


def optional_culprits(
    setters: Sequence[FloorSetter], users: Mapping[str, Sequence[str]]
) -> dict[str, tuple[str, ...]] | None:
    """When every file in ``setters`` is an optional stdlib extension or a library only such
    extensions need, the optional modules to leave out for each; else None.

    ``users`` maps a library (relative path) to the files (relative paths) whose NEEDED
    entries resolve to it.
    """
    out: dict[str, tuple[str, ...]] = {}
    for setter in setters:
        modules = _needing_modules(setter.path, users, set())
        if modules is None or not modules or not modules <= OPTIONAL_MODULES:
            return None
        out[setter.path] = tuple(sorted(modules))
    return out


def _needing_modules(
    rel: str, users: Mapping[str, Sequence[str]], seen: set[str]
) -> set[str] | None:
    """The extension modules that (transitively) need ``rel``; None when something other
    than a stdlib extension module does (the interpreter, a site-packages library)."""
    module = extension_module(rel)
    if module is not None:
        return {module}
    if rel in seen:
        return set()
    seen.add(rel)
    needers = users.get(rel, ())
    if not needers:
        return None  # nothing in the tree needs it: it is not a graft behind a module
    found: set[str] = set()
    for user in needers:
        sub = _needing_modules(user, users, seen)
        if sub is None:
            return None
        found |= sub
    return found


@dataclass(frozen=True)
class FloorVerdict:
    """How a tree's glibc needs compare with ``--max-glibc``."""

    above: tuple[FloorSetter, ...]
    """Every file needing more than the bound, the most demanding first."""
    optional_modules: tuple[str, ...]
    """When only optional stdlib modules (and what was grafted for them) need more: those."""
    symbols: tuple[str, ...]
    """Some symbols the most demanding file imports at its version."""

    def message(self, max_glibc: str) -> str:
        """One line: the file, the symbol version, and what to do."""
        top = self.above[0]
        example = f", e.g. {self.symbols[0]}" if self.symbols else ""
        more = len(self.above) - 1
        others = f"; {more} more file(s) need more than {max_glibc}" if more else ""
        if self.optional_modules:
            flags = " ".join(f"--exclude-module {m}" for m in self.optional_modules)
            todo = f"only optional stdlib modules need it: leave them out with {flags}"
        else:
            todo = "build on an older distribution (README: Run on older distributions)"
        return (
            f"{top.path} needs glibc {top.version} ({top.symbol_version}{example}), above "
            f"--max-glibc {max_glibc}{others}; {todo}"
        )


def judge_floor(
    root: Path,
    infos: Iterable[ElfInfo],
    resolved: Mapping[Path, Sequence[Path]],
    max_glibc: str,
) -> FloorVerdict | None:
    """None when every file in ``infos`` runs on glibc ``max_glibc``; else what exceeds it.

    ``resolved`` maps each ELF file to the in-tree files its NEEDED entries resolve to
    (``graft.resolve_in_tree``), to tell a library grafted for ``_curses`` from one the
    interpreter needs."""
    above = floor_setters(root, infos, above=parse_glibc(max_glibc))
    if not above:
        return None
    users: dict[str, list[str]] = {}
    for user, libs in resolved.items():
        for lib in libs:
            users.setdefault(str(lib.relative_to(root)), []).append(str(user.relative_to(root)))
    culprits = optional_culprits(above, users)
    modules = tuple(sorted({m for ms in (culprits or {}).values() for m in ms}))
    symbols = tuple(symbols_needing(root / above[0].path, above[0].symbol_version))
    return FloorVerdict(tuple(above), modules, symbols)


def check_max_glibc(root: Path, max_glibc: str, allow: frozenset[str]) -> FloorVerdict | None:
    """Read every ELF file under ``root`` (through the tree check the audit and inspect
    share) and judge it against ``max_glibc``."""
    from venvpack.audit import TreeView, check_tree

    links = check_tree(TreeView(root), allow).links
    return judge_floor(root, links.infos.values(), links.resolved, max_glibc)


def refuse_glibc_above(root: Path, max_glibc: str) -> None:
    """Raise BuildError, naming the file, symbol version and remedy, when the tree at
    ``root`` needs a newer glibc than ``max_glibc``."""
    from venvpack.errors import BuildError
    from venvpack.platform import system_libraries

    verdict = check_max_glibc(root, max_glibc, system_libraries())
    if verdict is not None:
        raise BuildError(verdict.message(max_glibc))


_RELEASE = re.compile(rb"release version (\d+)\.(\d+)")


def glibc_release(data: bytes) -> tuple[int, int] | None:
    """The glibc release a ``libc.so.6`` says it is (``release version 2.36``), or None.
    (The newest GLIBC_x.y symbol version can be older: 2.31 added none.)"""
    match = _RELEASE.search(data)
    return (int(match.group(1)), int(match.group(2))) if match else None


def sysroot_glibc(root: Sysroot, multiarch: str | None) -> tuple[int, int]:
    """The glibc release of another machine's root: its ``libc.so.6`` where the root's
    loader looks. InterpreterError when the root has none that says its release."""
    for directory in root.library_dirs(multiarch):
        libc = directory / "libc.so.6"
        if libc.is_file():
            release = glibc_release(root.resolve(libc).read_bytes())
            if release is not None:
                return release
    raise InterpreterError(f"{root.path} has no libc.so.6 that names its glibc release")
