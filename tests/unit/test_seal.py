"""A sealed tree is recognised only while nothing in it changed: every kind of change a user
or a program can make below the root breaks the seal, a rename of the root keeps it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from venvpack.seal import is_sealed, seal


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VENVPACK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "env"
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "deep").mkdir(parents=True)
    (root / "bin" / "app").write_text("#!/bin/sh\n")
    (root / "bin" / "app").chmod(0o755)
    (root / "lib" / "deep" / "data.txt").write_text("data\n")
    (root / "bin" / "python").symlink_to("../lib/deep/data.txt")
    return root


def same_size_edit(root: Path) -> None:
    path = root / "lib" / "deep" / "data.txt"
    mtime = path.stat().st_mtime_ns
    while path.stat().st_mtime_ns == mtime:  # within the file system's clock tick
        path.write_text("DATA\n")


def relink(root: Path) -> None:
    (root / "bin" / "python").unlink()
    (root / "bin" / "python").symlink_to("../lib/deep/datX.txt")


CHANGES: dict[str, Callable[[Path], object]] = {
    "same-size edit": same_size_edit,
    "chmod": lambda root: (root / "bin" / "app").chmod(0o700),
    "chown": lambda root: os.chown(root / "bin" / "app", 1000, -1),
    "file added": lambda root: (root / "lib" / "new.so").write_bytes(b""),
    "empty directory added": lambda root: (root / "lib" / "empty").mkdir(),
    "file removed": lambda root: (root / "bin" / "app").unlink(),
    "rename inside": lambda root: (root / "bin" / "app").rename(root / "bin" / "app2"),
    "symlink retargeted": relink,
    "hard link added": lambda root: os.link(root / "bin" / "app", root / "app-link"),
}


def test_an_unchanged_tree_is_sealed(tree: Path) -> None:
    assert not is_sealed(tree)
    seal(tree)
    assert is_sealed(tree)
    assert is_sealed(tree)  # reading it (twice) changes nothing


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_any_change_below_the_root_breaks_the_seal(
    tree: Path, change: Callable[[Path], object]
) -> None:
    seal(tree)
    change(tree)
    assert not is_sealed(tree)


def test_links_to_its_files_from_elsewhere_keep_the_seal(tree: Path, tmp_path: Path) -> None:
    """uv links the same wheel's files into every environment it installs: another link to
    a file of the tree changes the file's link count and change time, not the tree."""
    seal(tree)
    os.link(tree / "bin" / "app", tmp_path / "uv-cache-copy")
    assert is_sealed(tree)


def test_the_seal_follows_the_tree_when_it_is_renamed_not_copied(
    tree: Path, tmp_path: Path
) -> None:
    seal(tree)
    moved = tmp_path / "moved"
    tree.rename(moved)
    assert is_sealed(moved)
    copy = tmp_path / "copy"
    shutil.copytree(moved, copy, symlinks=True, copy_function=shutil.copy2)
    assert not is_sealed(copy)


def test_nothing_is_kept_in_the_tree_and_no_cache_means_no_seal(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    seal(tree)
    assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == before
    monkeypatch.setenv("VENVPACK_CACHE", "")
    seal(tree)
    assert not is_sealed(tree)


def test_an_unwritable_cache_only_means_no_seal(tree: Path, cache: Path) -> None:
    cache.write_text("not a directory")
    seal(tree)
    assert not is_sealed(tree)
