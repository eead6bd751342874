"""The audit: the tree check it shares with inspect, raised on; and --from auditing the tree
again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fakes import fake_manifest
from venvpack.audit import TreeView, audit_tree, check_tree, checked_environment
from venvpack.errors import BuildError
from venvpack.manifest import BuiltEnv
from venvpack.platform import system_libraries


def check_symlinks(root: Path) -> None:
    """The audit of a tree without ELF files: its symlink rule alone."""
    audit_tree(root, system_libraries(), ())


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "python/bin").mkdir(parents=True)
    (root / "python/bin/python3.12").write_bytes(b"x")
    (root / "bin/python").symlink_to("../python/bin/python3.12")
    (root / "bin/python3").symlink_to("python")
    (root / "lib").mkdir()
    (root / "lib64").symlink_to("lib")
    return root


def test_the_links_venvpack_makes_pass(tmp_path: Path) -> None:
    check_symlinks(_tree(tmp_path / "env"))


@pytest.mark.parametrize(
    ("link", "target", "message"),
    [
        ("bin/evil", "/etc/passwd", "bin/evil: symlink to /etc/passwd, outside the tree"),
        ("bin/up", "../../../outside", "symlink to ../../../outside, outside the tree"),
        ("lib/up", "..", None),  # lib/.. is the root: inside
        ("escape", "..", "escape: symlink to .., outside the tree"),
        ("lib/dir", "/", "lib/dir: symlink to /, outside the tree"),
        ("lib/loop", "loop", "lib/loop: a symlink loop"),
    ],
)
def test_absolute_and_escaping_symlinks_are_refused(
    tmp_path: Path, link: str, target: str, message: str | None
) -> None:
    root = _tree(tmp_path / "env")
    (root / link).symlink_to(target)
    if message is None:
        check_symlinks(root)
    else:
        with pytest.raises(BuildError, match=message):
            check_symlinks(root)


def test_from_audits_the_tree_again(tmp_path: Path) -> None:
    root = _tree(tmp_path / "env")
    BuiltEnv(root, fake_manifest(glibc_floor="2.17")).save()
    assert checked_environment(root).manifest.name == "hello"
    (root / "bin/leak").symlink_to("/home/me/.local/share/uv/python/bin/python3")
    with pytest.raises(BuildError, match=r"bin/leak: symlink to /home/me/.+, outside the tree"):
        checked_environment(root)


def test_from_refuses_a_manifest_whose_floor_the_tree_does_not_match(tmp_path: Path) -> None:
    root = _tree(tmp_path / "env")
    BuiltEnv(root, fake_manifest(glibc_floor="2.10")).save()
    with pytest.raises(BuildError, match=r"manifest says 2\.10"):
        checked_environment(root)


def test_the_runtime_copy_drops_links_to_the_build_host(tmp_path: Path) -> None:
    # A link to a build-host file that is missing goes; so does one leading out of the tree
    # to a place no source directory maps.
    from venvpack.runtime import _materialise_outside_links

    runtime = tmp_path / "env" / "python"
    stdlib = runtime / "lib" / "python3.11"
    stdlib.mkdir(parents=True)
    (stdlib / "_sysconfigdata__x86_64-linux-gnu.py").write_text("")
    (stdlib / "_sysconfigdata__linux_x86_64-linux-gnu.py").symlink_to(
        "_sysconfigdata__x86_64-linux-gnu.py"
    )
    (stdlib / "sitecustomize.py").symlink_to("/nonexistent/python3.11/sitecustomize.py")
    (stdlib / "up").symlink_to("../../../../elsewhere")
    _materialise_outside_links(runtime, [])
    assert sorted(p.name for p in stdlib.iterdir()) == [
        "_sysconfigdata__linux_x86_64-linux-gnu.py",
        "_sysconfigdata__x86_64-linux-gnu.py",
    ]
    check_symlinks(tmp_path / "env")


def test_audit_and_inspect_share_one_check(tmp_path: Path) -> None:
    """The same tree, judged by the one checker: inspect (with an install location) reports
    every problem, the audit (a built tree has none yet) raises on the first of the same
    list."""
    root = _tree(tmp_path / "env")
    (root / "bin/host").symlink_to("/opt/hello/lib")  # inside once installed at /opt/hello
    (root / "lib/away").symlink_to("../../elsewhere")
    (root / "lib/broken.so").write_bytes(b"\x7fELF" + b"\0" * 8)
    installed = check_tree(TreeView(root, ["/opt/hello"]), system_libraries())
    built = check_tree(TreeView(root), system_libraries())
    assert [(p.code, p.path) for p in installed.problems] == [
        ("symlink-outside", "lib/away"),
        ("elf-invalid", "lib/broken.so"),
    ]
    assert [(p.code, p.path) for p in built.problems] == [
        ("symlink-outside", "bin/host"),
        *[(p.code, p.path) for p in installed.problems],
    ]
    with pytest.raises(BuildError, match=r"audit: bin/host: .* \(and 2 more problem\(s\)\)"):
        audit_tree(root, system_libraries(), ())


def _with_machine(library: Path, dest: Path, e_machine: int) -> None:
    """A copy of ``library`` whose header names another machine (``e_machine``), as a file
    built for it would: the rest of a 64-bit little-endian ELF file reads the same."""
    data = bytearray(library.read_bytes())
    data[18:20] = e_machine.to_bytes(2, "little")
    dest.write_bytes(bytes(data))


def test_a_file_of_another_machine_is_refused(tmp_path: Path) -> None:
    """A library of the build host planted in an aarch64 tree (or the reverse): the audit
    and inspect name it; without a machine (an environment of unknown platform) it is
    not judged."""
    from venvpack.elf import read_elf
    from venvpack.platform import host_machine, machine_of

    root = _tree(tmp_path / "env")
    (root / "python/lib").mkdir()
    # zlib needs nothing but the C library: the tree resolves everything else it needs.
    zlib = next(p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib64/libz.so.1"))
    planted = root / "python/lib/libplanted.so"
    _with_machine(Path(os.path.realpath(zlib)), planted, 183)  # EM_AARCH64
    assert machine_of(read_elf(planted)) == "aarch64"
    check = check_tree(TreeView(root), system_libraries(), machine=host_machine())
    assert [(p.code, p.path) for p in check.problems] == [
        ("foreign-machine", "python/lib/libplanted.so")
    ]
    assert "a file for aarch64, in an environment for" in check.problems[0].message
    with pytest.raises(BuildError, match=r"audit: python/lib/libplanted.so: a file for aarch64"):
        audit_tree(root, system_libraries(), (), machine=host_machine())
    assert not check_tree(TreeView(root), system_libraries()).problems
