"""Another machine's root: its paths as the target names them and as this host holds them,
and lookups that never leave it (links, ld.so.conf, the loader that finds the root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from venvpack.errors import InterpreterError
from venvpack.sysroot import Sysroot, find_sysroot

LOADER = "/lib/ld-linux-aarch64.so.1"


def _merged_usr_root(root: Path) -> Sysroot:
    """A root laid out as Debian's: /lib -> usr/lib, the loader and a library in it."""
    (root / "usr/lib/aarch64-linux-gnu").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    (root / "usr/lib/ld-linux-aarch64.so.1").write_bytes(b"loader")
    (root / "usr/lib/aarch64-linux-gnu/libz.so.1.2.13").write_bytes(b"zlib")
    os.symlink("libz.so.1.2.13", root / "usr/lib/aarch64-linux-gnu/libz.so.1")
    (root / "usr/bin/python3.11").write_bytes(b"python")
    return Sysroot(root)


def test_paths_map_both_ways(tmp_path: Path) -> None:
    root = Sysroot(tmp_path)
    assert root.host("/usr/lib/x") == tmp_path / "usr/lib/x"
    assert root.host(tmp_path / "usr/lib/x") == tmp_path / "usr/lib/x"  # already inside
    assert root.target(tmp_path / "usr/lib/x") == Path("/usr/lib/x")
    assert root.target(tmp_path) == Path("/")


def test_absolute_links_lead_into_the_root_never_to_the_host(tmp_path: Path) -> None:
    root = _merged_usr_root(tmp_path)
    # /etc/hostname exists on this host; inside the root a link to it finds nothing there.
    os.symlink("/etc/hostname", tmp_path / "usr/lib/escape")
    os.symlink("/usr/lib/aarch64-linux-gnu/libz.so.1", tmp_path / "usr/bin/zlib")
    os.symlink("../../../../../../etc/hostname", tmp_path / "usr/bin/climb")
    resolved = root.resolve(tmp_path / "lib/aarch64-linux-gnu/libz.so.1")
    assert resolved == tmp_path / "usr/lib/aarch64-linux-gnu/libz.so.1.2.13"
    assert root.resolve(tmp_path / "usr/bin/zlib") == resolved
    assert root.resolve(tmp_path / "usr/lib/escape") == tmp_path / "etc/hostname"
    assert not root.resolve(tmp_path / "usr/lib/escape").exists()
    assert root.resolve(tmp_path / "usr/bin/climb") == tmp_path / "etc/hostname"


def test_a_link_loop_ends_the_lookup(tmp_path: Path) -> None:
    root = Sysroot(tmp_path)
    os.symlink("b", tmp_path / "a")
    os.symlink("/a", tmp_path / "b")
    assert root.resolve(tmp_path / "a").parent == tmp_path


def test_the_loader_directories_are_the_roots_own(tmp_path: Path) -> None:
    root = _merged_usr_root(tmp_path)
    (tmp_path / "etc/ld.so.conf.d").mkdir(parents=True)
    (tmp_path / "opt/vendor/lib").mkdir(parents=True)
    (tmp_path / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (tmp_path / "etc/ld.so.conf.d/vendor.conf").write_text("# vendor\n/opt/vendor/lib\n")
    dirs = root.library_dirs("aarch64-linux-gnu")
    assert dirs[0] == tmp_path / "opt/vendor/lib"
    assert tmp_path / "usr/lib/aarch64-linux-gnu" in dirs
    assert all(root.contains(d) for d in dirs)  # nothing of this host's /usr/lib
    assert len(dirs) == len(set(dirs))  # /lib and /usr/lib are one directory here


def test_the_root_is_the_outermost_directory_holding_the_loader(tmp_path: Path) -> None:
    _merged_usr_root(tmp_path / "arm64")
    python = tmp_path / "arm64/usr/bin/python3.11"
    # With a merged /usr the root's usr/ holds lib/ld-linux-aarch64.so.1 too.
    assert find_sysroot(python, LOADER, None).path == tmp_path / "arm64"
    assert find_sysroot(python, LOADER, tmp_path / "arm64").path == tmp_path / "arm64"


def test_a_root_without_the_loader_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    program = tmp_path / "bin/python3.11"
    program.write_bytes(b"python")
    with pytest.raises(InterpreterError, match="no directory above it holds its loader"):
        find_sysroot(program, LOADER, None)
    with pytest.raises(InterpreterError, match=r"--sysroot .* has no /lib/ld-linux-aarch64"):
        find_sysroot(program, LOADER, tmp_path)
    with pytest.raises(InterpreterError, match="relative program interpreter"):
        find_sysroot(program, "ld.so", None)


def test_a_tree_outside_the_root_is_this_hosts(tmp_path: Path) -> None:
    """An interpreter kept outside the root (python-build-standalone's, with --sysroot for
    its C library): its paths stay as they are, and a path is looked up as qemu-user looks
    it up, in the root first."""
    root = _merged_usr_root(tmp_path / "arm64")
    elsewhere = tmp_path / "pbs/bin/python3.12"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(b"python")
    assert root.target(elsewhere) == elsewhere
    assert root.resolve(elsewhere) == elsewhere
    assert root.find("/usr/lib/aarch64-linux-gnu/libz.so.1") == (
        tmp_path / "arm64/usr/lib/aarch64-linux-gnu/libz.so.1"
    )
    assert root.find(str(elsewhere)) == elsewhere  # not in the root: this host's
    # Neither has it (a directory of a package the root lacks): the target's, in the root.
    assert root.find("/usr/lib/python3.11/config-3.11-aarch64-linux-gnu") == (
        tmp_path / "arm64/usr/lib/python3.11/config-3.11-aarch64-linux-gnu"
    )
