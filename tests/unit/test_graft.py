"""The graft plan and ELF reading, on real ELF files copied into a temporary tree.

No patchelf and no subprocess: the plan is data, checked before anything is applied.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from venvpack.elf import glibc_floor, read_elf
from venvpack.errors import ElfError
from venvpack.graft import (
    _write_in_place,
    apply_string_edits,
    plan_grafts,
    plan_string_edits,
    system_library_dirs,
)
from venvpack.platform import loaded_by_family, system_libraries

PYENV_312 = Path.home() / ".pyenv/versions/3.12.1"
SSL_MODULE = PYENV_312 / "lib/python3.12/lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so"
MATH_MODULE = PYENV_312 / "lib/python3.12/lib-dynload/math.cpython-312-x86_64-linux-gnu.so"
HOST_DIRS = system_library_dirs()

pytestmark = pytest.mark.skipif(not SSL_MODULE.exists(), reason="needs pyenv's CPython 3.12.1")


def _tree(tmp_path: Path) -> Path:
    """A miniature environment: the interpreter, libpython and two lib-dynload modules."""
    root = tmp_path / "env"
    dynload = root / "python/lib/python3.12/lib-dynload"
    dynload.mkdir(parents=True)
    (root / "python/bin").mkdir()
    shutil.copy(PYENV_312 / "bin/python3.12", root / "python/bin/python3.12")
    shutil.copy(PYENV_312 / "lib/libpython3.12.so.1.0", root / "python/lib/libpython3.12.so.1.0")
    shutil.copy(SSL_MODULE, dynload / SSL_MODULE.name)
    shutil.copy(MATH_MODULE, dynload / MATH_MODULE.name)
    return root


def test_read_elf_reports_needed_runpath_and_glibc() -> None:
    info = read_elf(SSL_MODULE)
    assert info.needed[:2] == ("libssl.so.3", "libcrypto.so.3")
    assert info.runpath == (str(PYENV_312 / "lib"),)
    assert info.path_offset is not None
    assert info.path_capacity == len(str(PYENV_312 / "lib"))
    assert all(v[0] == 2 for v in info.glibc_versions)
    assert glibc_floor([info]) == ".".join(map(str, max(info.glibc_versions)))


def test_read_elf_rejects_non_elf(tmp_path: Path) -> None:
    bogus = tmp_path / "x.so"
    bogus.write_bytes(b"not an elf file at all")
    with pytest.raises(ElfError, match="cannot read ELF file"):
        read_elf(bogus)


def test_plan_grafts_missing_libraries_and_relative_runpaths(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    lib = root / "python/lib"
    plan = plan_grafts(root, lib, system_libraries(), host_dirs=HOST_DIRS)

    grafted = {g.soname: g for g in plan.grafts}
    assert {"libssl.so.3", "libcrypto.so.3"} <= set(grafted)
    assert "libc.so.6" not in grafted
    assert "libpython3.12.so.1.0" not in grafted  # already inside the tree
    assert all(g.dest.parent == lib for g in plan.grafts)

    updates = {u.paths[0].relative_to(root).as_posix(): u.runpath for u in plan.updates}
    assert updates["python/bin/python3.12"] == ("$ORIGIN/../lib",)
    assert updates[f"python/lib/python3.12/lib-dynload/{SSL_MODULE.name}"] == ("$ORIGIN/../..",)
    # math needs nothing from the tree: its absolute RUNPATH is removed, not rewritten.
    assert updates[f"python/lib/python3.12/lib-dynload/{MATH_MODULE.name}"] == ()
    # libssl needs libcrypto, which sits beside it.
    assert updates["python/lib/libssl.so.3"] == ("$ORIGIN",)
    for runpath in updates.values():
        assert all(entry.startswith("$ORIGIN") for entry in runpath)


def test_plan_leaves_files_that_need_no_change_alone(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    plan = plan_grafts(root, root / "python/lib", system_libraries(), host_dirs=HOST_DIRS)
    # libcrypto needs only glibc and has no RPATH: grafted as is, never patched.
    libcrypto = next(g for g in plan.grafts if g.soname == "libcrypto.so.3")
    assert read_elf(libcrypto.source).search_path == ()
    assert all(libcrypto.dest not in u.paths for u in plan.updates)
    # Planning again after nothing changed plans the same, and touches no file.
    again = plan_grafts(root, root / "python/lib", system_libraries(), host_dirs=HOST_DIRS)
    assert again == plan


def test_unresolvable_library_is_a_clear_error(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    with pytest.raises(ElfError, match=r"libssl\.so\.3, needed by python/lib/python3\.12/"):
        plan_grafts(root, root / "python/lib", system_libraries(), host_dirs=())


def test_allowlist_is_the_glibc_family_only() -> None:
    allow = system_libraries()
    assert {"libc.so.6", "libm.so.6", "libpthread.so.0", "ld-linux-x86-64.so.2"} <= allow
    for grafted in ("libssl.so.3", "libffi.so.8", "libz.so.1", "libcrypt.so.1", "libstdc++.so.6"):
        assert grafted not in allow


def test_write_in_place_fits_and_blanks(tmp_path: Path) -> None:
    target = tmp_path / "m.so"
    shutil.copy(MATH_MODULE, target)
    assert _write_in_place(target, "$ORIGIN/../lib")
    assert read_elf(target).runpath == ("$ORIGIN/../lib",)
    too_long = "$ORIGIN/" + "x" * 200
    assert not _write_in_place(target, too_long)
    # The old value is blanked so no build path survives in .dynstr.
    assert str(PYENV_312) not in target.read_bytes().decode("latin-1")


def test_glibc_loads_libgcc_s_by_itself_and_it_is_carried() -> None:
    carried = loaded_by_family()
    assert carried == ("libgcc_s.so.1",)
    assert not set(carried) & system_libraries()


def test_carried_libraries_are_needs_of_the_executable_with_a_dt_rpath(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    exe = root / "python/bin/python3.12"
    plan = plan_grafts(
        root,
        root / "python/lib",
        system_libraries(),
        host_dirs=HOST_DIRS,
        executable=exe,
        carried=loaded_by_family(),
    )
    assert "libgcc_s.so.1" in {g.soname for g in plan.grafts}
    update = next(u for u in plan.updates if u.paths == (exe,))
    assert (update.runpath, update.tag) == (("$ORIGIN/../lib",), "DT_RPATH")
    assert {u.tag for u in plan.updates if u.paths != (exe,)} == {"DT_RUNPATH"}


def _c_strings(path: Path, *strings: bytes) -> None:
    path.write_bytes(b"\x7fELF-ish\x00" + b"\x00".join(strings) + b"\x00")


def test_string_edits_replace_paths_and_keep_merged_tails(tmp_path: Path) -> None:
    lib = tmp_path / "libpython.so"
    prefix = b"/root/.pyenv/versions/3.12.1"
    _c_strings(lib, b"EXEC_PREFIX", prefix, b"-L" + prefix + b"/lib", b"/root/.pyenv/other")
    link = tmp_path / "link.so"
    os.link(lib, link)
    edits = plan_string_edits([lib, link], [(prefix.decode(), "/opt/app/python")])
    assert [e.paths for e in edits] == [(lib, link)]  # hardlinks: one edit
    apply_string_edits(edits)
    data = lib.read_bytes()
    assert link.read_bytes() == data
    # At the start of a string: the new value, NULs, and the last component as it was, so
    # a string merged into that tail (pyenv's PY_VERSION "3.12.1") still reads the same.
    assert b"\x00/opt/app/python\x00\x00\x00\x00\x00\x00\x003.12.1\x00" in data
    # Inside a longer string: padded with "/" to the same length, the rest untouched.
    assert b"-L/opt/app/python" + b"/" * (len(prefix) - 15) + b"/lib\x00" in data
    assert prefix not in data
    assert b"/root/.pyenv/other" in data  # another path, as a path, is not touched
    assert plan_string_edits([lib], [(prefix.decode(), "/opt/app/python")]) == ()


def test_string_edits_empty_a_value_that_does_not_fit(tmp_path: Path) -> None:
    lib = tmp_path / "lib.so"
    _c_strings(lib, b"/b/c/tail", b"x")
    apply_string_edits(plan_string_edits([lib], [("/b/c/tail", "/a/very/long/value")]))
    assert lib.read_bytes().endswith(b"\x00\x00\x00\x00\x00tail\x00x\x00")


def test_a_large_file_finds_grafts_through_links_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file too large to rewrite (libtorch_cpu.so: patchelf would hold 434 MB twice)
    keeps its search path: the libraries grafted for it are linked into the directory it
    already searches. Planned again as the audit does, from a relative spelling of the tree
    (``--from env``), nothing is left to fix."""
    import venvpack.graft as graft

    root = _tree(tmp_path)
    package = root / "lib/python3.12/site-packages/pkg"
    package.mkdir(parents=True)
    module = package / SSL_MODULE.name
    shutil.copy(SSL_MODULE, module)
    assert _write_in_place(module, "$ORIGIN")  # as a wheel's own library would have it
    monkeypatch.setattr(graft, "LARGE", module.stat().st_size)
    lib = root / "python/lib"
    plan = plan_grafts(root, lib, system_libraries(), host_dirs=HOST_DIRS)

    assert {g.soname for g in plan.grafts} >= {"libssl.so.3", "libcrypto.so.3"}
    links = {link.path.relative_to(root).as_posix(): link.target for link in plan.links}
    assert links == {
        "lib/python3.12/site-packages/pkg/libcrypto.so.3": lib / "libcrypto.so.3",
        "lib/python3.12/site-packages/pkg/libssl.so.3": lib / "libssl.so.3",
    }
    assert all(module not in u.paths for u in plan.updates)
    # Smaller files still get their search path rewritten (the lib-dynload modules).
    assert any(SSL_MODULE.name in str(u.paths[0]) for u in plan.updates)

    for g in plan.grafts:
        shutil.copyfile(os.path.realpath(g.source), g.dest)
    for link in plan.links:
        link.path.symlink_to(os.path.relpath(link.target, link.path.parent))
    monkeypatch.chdir(tmp_path)
    again = plan_grafts(Path("env"), Path("env/python/lib"), system_libraries(), host_dirs=())
    assert again.grafts == ()
    assert again.links == ()
    assert all("site-packages" not in str(u.paths[0]) for u in again.updates)
