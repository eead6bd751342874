"""Stage ``elf`` (read side): what an ELF file needs, where it looks, what glibc it wants.

Reading only, into frozen dataclasses; ``graft`` plans changes from these
and applies them in one place.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

from venvpack.errors import ElfError

__all__ = [
    "SYMBOLS_SCANNED",
    "ElfCache",
    "ElfInfo",
    "defined_versions",
    "glibc_floor",
    "is_elf",
    "is_pie",
    "read_elf",
    "symbols_at_version",
]

_MAGIC = b"\x7fELF"
_GLIBC_RE = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class ElfInfo:
    """The dynamic-linking facts of one ELF file."""

    path: Path
    elfclass: int
    """32 or 64."""
    machine: str
    """``e_machine`` as pyelftools names it (``EM_`` and the architecture): a library must
    match its user's."""
    little_endian: bool
    """The byte order of ``EI_DATA``; with ``elfclass`` and ``machine``, the file's platform."""
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    """DT_RPATH entries (only honoured by the loader when there is no DT_RUNPATH)."""
    runpath: tuple[str, ...]
    """DT_RUNPATH entries."""
    path_offset: int | None
    """File offset of the DT_RUNPATH (else DT_RPATH) string, for in-place rewrites."""
    path_capacity: int
    """Bytes available at ``path_offset`` for a new value (old length, NUL excluded)."""
    glibc_versions: tuple[tuple[int, ...], ...]
    """GLIBC_x.y symbol versions this file needs, as sortable tuples."""
    has_debug: bool
    """Carries .debug_* sections that ``strip --strip-debug`` would remove."""
    has_sysv_hash: bool
    """Has a SysV ``.hash`` section (rpmlint wants one in shared libraries)."""
    is_dynamic: bool
    is_program: bool
    """Has a program interpreter (PT_INTERP): started as a process of its own, not loaded into
    another program. The search path of that process's executable (its DT_RPATH) also applies
    to every library loaded into it that has no DT_RUNPATH."""
    interpreter: str | None = None
    """PT_INTERP: the dynamic loader a program names (its file name tells the C library
    family, :mod:`venvpack.platform`); None for a shared library or a static program."""

    @property
    def search_path(self) -> tuple[str, ...]:
        """What the loader searches for this file's own NEEDED entries (before system dirs)."""
        return self.runpath if self.runpath else self.rpath


def is_pie(path: Path) -> bool:
    """Whether the program ``path`` is position-independent (``ET_DYN``, not ``ET_EXEC``)."""
    with open(path, "rb") as f:
        head = f.read(18)
    little = head[5:6] == b"\x01"  # EI_DATA
    return int.from_bytes(head[16:18], "little" if little else "big") == 3


def is_elf(path: Path) -> bool:
    """Cheap test: a regular file starting with the ELF magic."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == _MAGIC
    except OSError:
        return False


def read_elf(path: Path) -> ElfInfo:
    """Read ``path``; raise ElfError when it is not a readable ELF file.

    Parsed with :mod:`struct` over a memory map: only the headers and the dynamic-linking
    sections are touched, many times faster than pyelftools' generic parsing (which reads
    the same fields; a unit test compares the two on every ELF file of real interpreters)."""
    return _read(path, lambda reader: reader.info(path))


SYMBOLS_SCANNED = 1_000_000
"""Dynamic symbols looked at by :func:`symbols_at_version`: large C++ libraries export some
hundreds of thousands; a damaged or crafted table claiming more is not read to its end."""


def symbols_at_version(path: Path, symbol_version: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` dynamic symbols ``path`` imports at ``symbol_version`` (such as
    ``GLIBC_2.35``), in table order, each once; ElfError when ``path`` cannot be read."""
    return _read(path, lambda reader: reader.symbols_at(symbol_version, limit))


def defined_versions(path: Path) -> tuple[str, ...]:
    """The symbol versions ``path`` defines (its version definitions, ``GLIBC_2.31`` ... for
    a C library); ElfError when it cannot be read."""
    return _read(path, lambda reader: reader.defined_versions())


_T = TypeVar("_T")


def _read(path: Path, work: Callable[[_Reader], _T]) -> _T:
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return work(_Reader(data))
    # A damaged or hostile file (from any wheel) makes offsets point anywhere: an unknown
    # class byte is a KeyError, a huge offset an OverflowError. All of it is one ElfError.
    except (OSError, ValueError, LookupError, ArithmeticError, struct.error) as exc:
        raise ElfError(f"cannot read ELF file {path}: {exc or type(exc).__name__}") from None


class ElfCache:
    """:func:`read_elf` results shared by the stages of one build: the audit reads back the
    files the graft stage just read. An entry serves only while the file's device, inode,
    size, mtime and ctime are those it was read with; whoever changes files in less than a
    timestamp tick after reading them says so with :meth:`forget`."""

    def __init__(self) -> None:
        self._known: dict[Path, tuple[tuple[int, ...], ElfInfo]] = {}

    def read(self, path: Path) -> ElfInfo:
        try:
            st = os.stat(path)
        except OSError:
            return read_elf(path)  # which says why, as an ElfError
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = self._known.get(path)
        if known is not None and known[0] == key:
            return known[1]
        info = read_elf(path)
        self._known[path] = (key, info)
        return info

    def forget(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self._known.pop(path, None)


_SHT_SYMTAB, _SHT_STRTAB, _SHT_DYNAMIC, _SHT_DYNSYM = 2, 3, 6, 11
_SHT_GNU_VERDEF, _SHT_GNU_VERNEED, _SHT_GNU_VERSYM = 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
_PT_INTERP = 3
_DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 1, 14, 15, 29


@cache
def _machines() -> dict[int, str]:
    """pyelftools' names of ``e_machine`` values (imported on the first ELF file read: a
    tree packed as it was sealed reads none)."""
    from elftools.elf.enums import ENUM_E_MACHINE

    return {value: name for name, value in ENUM_E_MACHINE.items() if name != "_default_"}


class _Reader:
    """The fields :class:`ElfInfo` needs, read straight from the file's bytes."""

    def __init__(self, data: mmap.mmap) -> None:
        if data[:4] != _MAGIC:
            raise ValueError("Magic number does not match")
        self.data = data
        self.elfclass = {1: 32, 2: 64}[data[4]]
        self.little_endian = {1: True, 2: False}[data[5]]
        end = "<" if self.little_endian else ">"
        wide = self.elfclass == 64
        self.end = end
        word = "Q" if wide else "I"
        # e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize,
        # e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        header = struct.unpack_from(f"{end}HHI{word}{word}{word}IHHHHHH", data, 16)
        self.machine = header[1]
        phoff, shoff = header[4], header[5]
        phentsize, phnum, shentsize, shnum, shstrndx = header[8:13]
        # (sh_name, sh_type, sh_offset, sh_size, sh_link, sh_info, sh_entsize)
        self.sections: list[tuple[int, int, int, int, int, int, int]] = []
        if shoff:
            fmt = f"{end}II{word}{word}{word}{word}II{word}{word}"
            first = struct.unpack_from(fmt, data, shoff)
            if shnum == 0:  # extended numbering: the real count is in section 0
                shnum = first[5]
            if shstrndx == 0xFFFF:
                shstrndx = first[6]
            for i in range(shnum):
                f = struct.unpack_from(fmt, data, shoff + i * shentsize)
                self.sections.append((f[0], f[1], f[4], f[5], f[6], f[7], f[9]))
        if phnum == 0xFFFF and self.sections:
            phnum = self.sections[0][5]
        # (p_type, p_offset, p_filesz)
        pfmt = f"{end}IIQQQQ" if wide else f"{end}IIIIII"
        self.segments: list[tuple[int, int, int]] = []
        for i in range(phnum):
            p = struct.unpack_from(pfmt, data, phoff + i * phentsize)
            # Elf64_Phdr has p_flags second; Elf32_Phdr has it after p_memsz.
            self.segments.append((p[0], p[2], p[5]) if wide else (p[0], p[1], p[4]))
        self.segment_types = [segment[0] for segment in self.segments]
        names = self.sections[shstrndx] if 0 < shstrndx < len(self.sections) else None
        self.names = [
            self.string(names[2], s[0]) if names is not None else "" for s in self.sections
        ]

    def string(self, table_offset: int, offset: int) -> str:
        """The NUL-terminated string at ``offset`` of the string table at ``table_offset``,
        decoded as pyelftools does."""
        start = table_offset + offset
        stop = self.data.find(b"\0", start)
        if stop < 0:
            raise ValueError(f"unterminated string at {start:#x}")
        return self.data[start:stop].decode("utf-8", errors="replace")

    def table(self, index: int) -> int:
        """File offset of the string table section ``index`` (a section's ``sh_link``)."""
        if not 0 < index < len(self.sections) or self.sections[index][1] != _SHT_STRTAB:
            raise ValueError(f"section {index} is not a string table")
        return self.sections[index][2]

    def info(self, path: Path) -> ElfInfo:
        end, data = self.end, self.data
        wide = self.elfclass == 64
        needed: list[str] = []
        rpath: tuple[str, ...] = ()
        runpath: tuple[str, ...] = ()
        soname = None
        offsets: dict[int, tuple[int, int]] = {}
        refs: set[int] = set()  # every .dynstr offset something points at
        dynamic = next((s for s in self.sections if s[1] == _SHT_DYNAMIC), None)
        strtab_offset: int | None = None
        if dynamic is not None:
            strtab_offset = self.table(dynamic[4])
            fmt = f"{end}qQ" if wide else f"{end}iI"
            size = struct.calcsize(fmt)
            for pos in range(dynamic[2], dynamic[2] + dynamic[3] - size + 1, size):
                kind, value = struct.unpack_from(fmt, data, pos)
                if kind == 0:  # DT_NULL
                    break
                if kind not in (_DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH):
                    continue
                refs.add(value)
                text = self.string(strtab_offset, value)
                if kind == _DT_NEEDED:
                    needed.append(text)
                elif kind == _DT_SONAME:
                    soname = text
                else:
                    entries = tuple(p for p in text.split(":") if p)
                    if kind == _DT_RPATH:
                        rpath = entries
                    else:
                        runpath = entries
                    offsets[kind] = (value, len(text.encode()))
        versions: set[tuple[int, ...]] = set()
        has_debug = has_sysv_hash = False
        for section, name in zip(self.sections, self.names):
            kind = section[1]
            if name.startswith(".debug_"):
                has_debug = True
            elif name == ".hash":
                has_sysv_hash = True
            if offsets and kind in (_SHT_SYMTAB, _SHT_DYNSYM) and name == ".dynsym":
                entsize = section[6]
                stop = section[2] + section[3] - entsize + 1
                fmt = f"{end}I"
                refs.update(
                    struct.unpack_from(fmt, data, pos)[0]
                    for pos in range(section[2], stop, entsize)
                )
            if kind == _SHT_GNU_VERDEF:
                refs.update(self._verdef_names(section))
            elif kind == _SHT_GNU_VERNEED:
                for ref, version, _other in self._verneed(section):
                    refs.add(ref)
                    m = _GLIBC_RE.match(version) if version is not None else None
                    if m:
                        versions.add(tuple(int(g) for g in m.groups() if g is not None))
        offset: int | None = None
        capacity = 0
        found = offsets.get(_DT_RUNPATH) or offsets.get(_DT_RPATH)
        if found is not None and strtab_offset is not None:
            start, length = found
            # The linker may merge string tails: if anything else points into this string,
            # overwriting it in place would corrupt that other string, so report no capacity.
            if not any(start < ref <= start + length for ref in refs):
                offset, capacity = strtab_offset + start, length
        return ElfInfo(
            path=path,
            elfclass=self.elfclass,
            machine=_machines().get(self.machine, str(self.machine)),
            soname=soname,
            needed=tuple(needed),
            rpath=rpath,
            runpath=runpath,
            path_offset=offset,
            path_capacity=capacity,
            glibc_versions=tuple(sorted(versions)),
            has_debug=has_debug,
            has_sysv_hash=has_sysv_hash,
            is_dynamic=dynamic is not None,
            is_program=_PT_INTERP in self.segment_types,
            little_endian=self.little_endian,
            interpreter=self.interpreter(),
        )

    def interpreter(self) -> str | None:
        """The PT_INTERP path, without its terminating NUL."""
        for kind, offset, size in self.segments:
            if kind == _PT_INTERP:
                if offset + size > len(self.data):
                    raise ValueError("PT_INTERP runs past the end of the file")
                text = self.data[offset : offset + size].split(b"\0", 1)[0]
                return text.decode("utf-8", errors="replace")
        return None

    def symbols_at(self, symbol_version: str, limit: int) -> list[str]:
        """Names of the first ``limit`` dynamic symbols whose version index (in
        ``.gnu.version``) is that of ``symbol_version`` (an Elf_Vernaux's ``vna_other``)."""
        index = None
        for section in self.sections:
            if section[1] == _SHT_GNU_VERNEED:
                for _ref, name, other in self._verneed(section):
                    if name == symbol_version:
                        index = other
        versym = next((s for s in self.sections if s[1] == _SHT_GNU_VERSYM), None)
        dynsym = next(
            (
                s
                for s, n in zip(self.sections, self.names)
                if s[1] == _SHT_DYNSYM and n == ".dynsym"
            ),
            None,
        )
        if index is None or versym is None or dynsym is None or dynsym[6] < 4:
            return []
        strings = self.table(dynsym[4])
        count = min(versym[3] // 2, dynsym[3] // dynsym[6], SYMBOLS_SCANNED)
        names: list[str] = []
        for i in range(count):
            (ndx,) = struct.unpack_from(f"{self.end}H", self.data, versym[2] + 2 * i)
            if ndx & 0x7FFF != index:  # the top bit marks a hidden definition
                continue
            (st_name,) = struct.unpack_from(f"{self.end}I", self.data, dynsym[2] + i * dynsym[6])
            name = self.string(strings, st_name)
            if name and name not in names:
                names.append(name)
                if len(names) >= limit:
                    break
        return names

    def defined_versions(self) -> tuple[str, ...]:
        out: list[str] = []
        for section in self.sections:
            if section[1] == _SHT_GNU_VERDEF:
                strings = self.table(section[4])
                out += [self.string(strings, name) for name in self._verdef_names(section)]
        return tuple(out)

    def _verdef_names(self, section: tuple[int, int, int, int, int, int, int]) -> list[int]:
        """``vda_name`` of every version definition (Elf_Verdef / Elf_Verdaux)."""
        end, pos = self.end, section[2]
        out: list[int] = []
        for _ in range(section[5]):  # sh_info: the number of definitions
            _ver, _flags, _ndx, cnt, _hash, aux, nxt = struct.unpack_from(
                f"{end}HHHHIII", self.data, pos
            )
            apos = pos + aux
            for _ in range(cnt):
                name, anext = struct.unpack_from(f"{end}II", self.data, apos)
                out.append(name)
                apos += anext
            if not nxt:
                break
            pos += nxt
        return out

    def _verneed(
        self, section: tuple[int, int, int, int, int, int, int]
    ) -> list[tuple[int, str | None, int]]:
        """(string offset, name, version index) of every needed file and version
        (Elf_Verneed / Elf_Vernaux); the name and index only for versions, which is what
        the floor reads."""
        end, pos = self.end, section[2]
        out: list[tuple[int, str | None, int]] = []
        strings = self.table(section[4])
        for _ in range(section[5]):  # sh_info: the number of needed files
            _ver, cnt, file, aux, nxt = struct.unpack_from(f"{end}HHIII", self.data, pos)
            out.append((file, None, 0))
            apos = pos + aux
            for _ in range(cnt):
                _hash, _flags, other, name, anext = struct.unpack_from(
                    f"{end}IHHII", self.data, apos
                )
                out.append((name, self.string(strings, name), other))
                apos += anext
            if not nxt:
                break
            pos += nxt
        return out


def glibc_floor(infos: list[ElfInfo] | tuple[ElfInfo, ...]) -> str:
    """Highest GLIBC_x.y any of ``infos`` needs, as ``x.y`` (``2.17`` when none say)."""
    best = max((v for info in infos for v in info.glibc_versions), default=(2, 17))
    return ".".join(str(p) for p in best)
