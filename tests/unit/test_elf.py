"""venvpack's own ELF reader against pyelftools, field by field, on real files.

The reader parses headers with :mod:`struct` for speed; pyelftools is the reference for what
each field means (and names ``e_machine`` values for the reader).
"""

from __future__ import annotations

import functools
import os
import random
import re
import struct
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection
from elftools.elf.segments import InterpSegment

from venvpack.elf import (
    ElfCache,
    ElfInfo,
    defined_versions,
    is_elf,
    read_elf,
    symbols_at_version,
)
from venvpack.errors import ElfError

PYENV = Path.home() / ".pyenv/versions"
_GLIBC_RE = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")


@functools.cache
def _real_elf_files() -> tuple[Path, ...]:
    """The ELF files of every pyenv interpreter (programs, libpython, lib-dynload) and the
    system's libssl, libcrypto, libc and libstdc++."""
    found: list[Path] = []
    for top in sorted(PYENV.glob("*")) if PYENV.is_dir() else []:
        found += sorted(top.glob("bin/*")) + sorted(top.glob("lib/*.so*"))
        found += sorted(top.glob("lib/python*/lib-dynload/*.so"))
    for pattern in ("libssl.so.*", "libcrypto.so.*", "libc.so.6", "libstdc++.so.6*"):
        found += sorted(Path("/usr/lib/x86_64-linux-gnu").glob(pattern))
    return tuple(p for p in found if not p.is_symlink() and is_elf(p))


def _pyelftools(path: Path) -> ElfInfo:
    """What venvpack read with pyelftools until its own reader replaced it."""
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        needed: list[str] = []
        rpath: tuple[str, ...] = ()
        runpath: tuple[str, ...] = ()
        soname = None
        offsets: dict[str, tuple[int, int]] = {}
        refs: set[int] = set()
        dynamic = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
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
                size = section["sh_entsize"]
                data = section.data()
                fmt = "<I" if elf.little_endian else ">I"
                starts = range(0, len(data) - size + 1, size)
                refs.update(struct.unpack_from(fmt, data, i)[0] for i in starts)
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
            is_program=any(s["p_type"] == "PT_INTERP" for s in elf.iter_segments()),
            little_endian=elf.little_endian,
            interpreter=next(
                (s.get_interp_name() for s in elf.iter_segments() if isinstance(s, InterpSegment)),
                None,
            ),
        )


def _pyelftools_symbols(path: Path, symbol_version: str, limit: int = 3) -> list[str]:
    """What venvpack's glibc module read with pyelftools for a floor message."""
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        index = None
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for _verneed, auxes in section.iter_versions():
                    for aux in auxes:
                        if aux.name == symbol_version:
                            index = aux.entry.vna_other
        versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
        dynsym = elf.get_section_by_name(".dynsym")
        if index is None or versym is None or not isinstance(dynsym, SymbolTableSection):
            return []
        names: list[str] = []
        for i in range(versym.num_symbols()):
            if versym.get_symbol(i)["ndx"] == index:
                name = dynsym.get_symbol(i).name
                if name and name not in names:
                    names.append(name)
                    if len(names) >= limit:
                        break
        return names


def _pyelftools_definitions(path: Path) -> tuple[str, ...]:
    with path.open("rb") as fh:
        return tuple(
            aux.name
            for section in ELFFile(fh).iter_sections()
            if isinstance(section, GNUVerDefSection)
            for _verdef, auxes in section.iter_versions()
            for aux in auxes
        )


def test_symbols_and_version_definitions_agree_with_pyelftools() -> None:
    """The symbols a floor message names (at the highest GLIBC_x.y a file needs, as the
    message does) and the versions a C library defines, on every real file."""
    files = _real_elf_files()
    if len(files) < 50:
        pytest.skip("needs pyenv's interpreters")
    named = 0
    for path in files:
        for version in read_elf(path).glibc_versions[-1:]:
            text = "GLIBC_" + ".".join(map(str, version))
            ours = symbols_at_version(path, text, limit=5)
            assert ours == _pyelftools_symbols(path, text, limit=5), (path, text)
            named += bool(ours)
        assert defined_versions(path) == _pyelftools_definitions(path), path
    assert named > 50
    libc = [p for p in files if p.name == "libc.so.6"]
    assert libc
    assert "GLIBC_2.17" in defined_versions(libc[0])


def test_a_program_names_its_loader_and_a_library_none() -> None:
    files = _real_elf_files()
    if len(files) < 50:
        pytest.skip("needs pyenv's interpreters")
    infos = [read_elf(p) for p in files]
    programs = [i for i in infos if i.is_program]
    assert programs
    assert all(i.interpreter and i.interpreter.startswith("/") for i in programs)
    assert all(i.interpreter is None for i in infos if not i.is_program)


def test_reader_agrees_with_pyelftools_on_every_real_file() -> None:
    files = _real_elf_files()
    if len(files) < 50:
        pytest.skip("needs pyenv's interpreters")
    disagree = [p for p in files if read_elf(p) != _pyelftools(p)]
    assert not disagree, f"{len(disagree)} of {len(files)} files differ, first {disagree[0]}"
    # The set covers what the planner distinguishes: programs, libraries, RUNPATH and
    # RPATH users (pyenv sets a RUNPATH), debug info and none.
    infos = [read_elf(p) for p in files]
    assert any(i.is_program for i in infos)
    assert any(i.soname for i in infos)
    assert any(i.runpath for i in infos)
    assert any(i.path_capacity for i in infos)
    assert any(i.has_debug for i in infos)
    assert any(not i.has_debug for i in infos)


@pytest.mark.parametrize("cut", [3, 20, 64, 200])
def test_truncated_file_is_one_elf_error(tmp_path: Path, cut: int) -> None:
    source = next((p for p in _real_elf_files() if p.name.startswith("_ssl.")), None)
    if source is None:
        pytest.skip("needs pyenv's interpreters")
    broken = tmp_path / "broken.so"
    broken.write_bytes(source.read_bytes()[:cut])
    with pytest.raises(ElfError, match="cannot read ELF file"):
        read_elf(broken)


def test_empty_file_is_one_elf_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.so"
    empty.touch()
    with pytest.raises(ElfError, match="cannot read ELF file"):
        read_elf(empty)


def test_cache_serves_an_unchanged_file_and_rereads_a_changed_one(tmp_path: Path) -> None:
    sources = [p for p in _real_elf_files() if p.name.startswith(("_ssl.", "math."))]
    if len(sources) < 2:
        pytest.skip("needs pyenv's interpreters")
    path = tmp_path / "mod.so"
    path.write_bytes(sources[0].read_bytes())
    cache = ElfCache()
    first = cache.read(path)
    assert cache.read(path) is first
    replacement = tmp_path / "new.so"
    replacement.write_bytes(sources[1].read_bytes())
    os.replace(replacement, path)  # another inode: an installer's or patchelf's rewrite
    assert cache.read(path) == read_elf(path) != first
    again = cache.read(path)
    cache.forget([path])
    assert cache.read(path) is not again


def test_dynamic_section_without_a_string_table_is_one_elf_error(tmp_path: Path) -> None:
    source = next((p for p in _real_elf_files() if p.name.startswith("_ssl.")), None)
    if source is None:
        pytest.skip("needs pyenv's interpreters")
    data = bytearray(source.read_bytes())
    with source.open("rb") as fh:
        elf = ELFFile(fh)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".dynamic")
        header = elf["e_shoff"] + index * elf["e_shentsize"]
    struct.pack_into("<I", data, header + 40, 0)  # Elf64_Shdr.sh_link: section 0, no table
    broken = tmp_path / "broken.so"
    broken.write_bytes(bytes(data))
    with pytest.raises(ElfError, match="not a string table"):
        read_elf(broken)


def test_damaged_files_are_one_elf_error(tmp_path: Path) -> None:
    """A file from a wheel may be damaged anywhere: header bytes overwritten at random (an
    unknown class byte, offsets past the end or past what an index can hold) are always one
    ElfError, never another exception's traceback."""
    rng = random.Random(13)
    sources = [p for p in _real_elf_files() if p.suffix == ".so"][:8]
    assert sources, "no real ELF files to damage"
    damaged = tmp_path / "damaged.so"
    failures = 0
    for source in sources:
        original = source.read_bytes()
        for _ in range(60):
            data = bytearray(original)
            for _ in range(rng.randrange(1, 12)):
                data[rng.randrange(min(len(data), 4096))] = rng.randrange(256)
            damaged.write_bytes(bytes(data))
            try:
                read_elf(damaged)
            except ElfError:
                failures += 1
    assert failures > 0  # the damage did reach fields the reader checks
