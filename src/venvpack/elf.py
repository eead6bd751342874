"""Stage ``elf`` (read side): what an ELF file needs, where it looks, what glibc it wants.

Reading only, with pyelftools, into frozen dataclasses; ``graft`` plans changes from these
and applies them in one place.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
from elftools.elf.sections import SymbolTableSection

from venvpack.errors import ElfError

__all__ = ["ElfInfo", "glibc_floor", "is_elf", "read_elf"]

_MAGIC = b"\x7fELF"
_GLIBC_RE = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class ElfInfo:
    """The dynamic-linking facts of one ELF file."""

    path: Path
    elfclass: int
    """32 or 64."""
    machine: str
    """``e_machine``, e.g. ``EM_X86_64``: a library must match its user's."""
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

    @property
    def search_path(self) -> tuple[str, ...]:
        """What the loader searches for this file's own NEEDED entries (before system dirs)."""
        return self.runpath if self.runpath else self.rpath


def is_elf(path: Path) -> bool:
    """Cheap test: a regular file starting with the ELF magic."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == _MAGIC
    except OSError:
        return False


def read_elf(path: Path) -> ElfInfo:
    """Read ``path``; raise ElfError when it is not a readable ELF file."""
    try:
        with path.open("rb") as fh:
            elf = ELFFile(fh)
            return _read(path, elf)
    except (OSError, _PyElfError, ValueError) as exc:
        raise ElfError(f"cannot read ELF file {path}: {exc}") from None


def _read(path: Path, elf: ELFFile) -> ElfInfo:
    needed: list[str] = []
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    soname = None
    offsets: dict[str, tuple[int, int]] = {}
    refs: set[int] = set()  # every .dynstr offset something points at
    dynamic = None
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            dynamic = section
            break
    strtab_offset: int | None = None
    if dynamic is not None:
        strtab = dynamic._get_stringtable()
        strtab_offset = strtab["sh_offset"] if hasattr(strtab, "__getitem__") else None
        for tag in dynamic.iter_tags():
            kind = tag.entry.d_tag
            if kind in ("DT_NEEDED", "DT_SONAME", "DT_RPATH", "DT_RUNPATH"):
                refs.add(tag.entry.d_val)
            if kind == "DT_NEEDED":
                needed.append(tag.needed)  # type: ignore[attr-defined]
            elif kind == "DT_SONAME":
                soname = tag.soname  # type: ignore[attr-defined]
            elif kind in ("DT_RPATH", "DT_RUNPATH"):
                value = tag.rpath if kind == "DT_RPATH" else tag.runpath  # type: ignore[attr-defined]
                entries = tuple(p for p in value.split(":") if p)
                if kind == "DT_RPATH":
                    rpath = entries
                else:
                    runpath = entries
                offsets[kind] = (tag.entry.d_val, len(value.encode()))
    versions: set[tuple[int, ...]] = set()
    has_debug = has_sysv_hash = False
    for section in elf.iter_sections():
        if section.name.startswith(".debug_"):
            has_debug = True
        elif section.name == ".hash":
            has_sysv_hash = True
        if offsets and isinstance(section, SymbolTableSection) and section.name == ".dynsym":
            refs.update(_symbol_name_offsets(section, elf.little_endian))
        if isinstance(section, GNUVerDefSection):
            for _verdef, verdaux_iter in section.iter_versions():
                refs.update(aux.entry.vda_name for aux in verdaux_iter)
        if isinstance(section, GNUVerNeedSection):
            for verneed, vernaux_iter in section.iter_versions():
                refs.add(verneed.entry.vn_file)
                for aux in vernaux_iter:
                    refs.add(aux.entry.vna_name)
                    m = _GLIBC_RE.match(aux.name)
                    if m:
                        versions.add(tuple(int(g) for g in m.groups() if g is not None))
    offset: int | None = None
    capacity = 0
    found = offsets.get("DT_RUNPATH") or offsets.get("DT_RPATH")
    if found is not None and strtab_offset is not None:
        start, length = found
        # The linker may merge string tails: if anything else points into this string,
        # overwriting it in place would corrupt that other string, so report no capacity.
        if not any(start < ref <= start + length for ref in refs):
            offset, capacity = strtab_offset + start, length
    return ElfInfo(
        path=path,
        elfclass=elf.elfclass,
        machine=elf["e_machine"],
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
        is_program=any(segment["p_type"] == "PT_INTERP" for segment in elf.iter_segments()),
    )


def _symbol_name_offsets(section: SymbolTableSection, little_endian: bool) -> list[int]:
    """``st_name`` of every symbol, read straight from the table (the first 32-bit field of
    both Elf32_Sym and Elf64_Sym): pyelftools' per-symbol parsing is 100x slower."""
    size = section["sh_entsize"]
    data = section.data()
    fmt = "<I" if little_endian else ">I"
    return [struct.unpack_from(fmt, data, i)[0] for i in range(0, len(data) - size + 1, size)]


def glibc_floor(infos: list[ElfInfo] | tuple[ElfInfo, ...]) -> str:
    """Highest GLIBC_x.y any of ``infos`` needs, as ``x.y`` (``2.17`` when none say)."""
    best = max((v for info in infos for v in info.glibc_versions), default=(2, 17))
    return ".".join(str(p) for p in best)
