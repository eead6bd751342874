"""The environment cache: a base stored and placed again (linked or copied), never trusted
once its files changed, keyed by every input, and pruned whole."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from venvpack import envcache
from venvpack.runtime import Runtime


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VENVPACK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "envs"


def _base_tree(root: Path) -> envcache.Base:
    """A small tree with a file, an executable, a link and an empty directory."""
    (root / "python/bin").mkdir(parents=True)
    (root / "python/lib").mkdir()
    (root / "bin").mkdir()
    (root / "empty").mkdir()
    (root / "python/bin/python3.12").write_bytes(b"\x7fELF interpreter")
    (root / "python/bin/python3.12").chmod(0o755)
    (root / "python/lib/libssl.so.3").write_bytes(b"\x7fELF ssl")
    (root / "bin/python").symlink_to("../python/bin/python3.12")
    (root / "pyvenv.cfg").write_text("home =\n")
    runtime = Runtime(
        root=root / "python",
        executable=root / "python/bin/python3.12",
        stdlib=root / "python/lib/python3.12",
        libpython=None,
        sysconfigdata=None,
        short_version="3.12",
        version="3.12.1",
        source_prefix=Path("/opt/py"),
        build_prefix=None,
        compile_dirs=(Path("/tmp/python-build"),),
        origins=((root / "python", Path("/opt/py")),),
    )
    grafts = (envcache.BaseGraft("libssl.so.3", "/usr/lib/libssl.so.3", "python/lib/libssl.so.3"),)
    return envcache.Base(runtime, grafts, "2.17")


def test_a_stored_base_is_placed_again_with_its_facts(tmp_path: Path) -> None:
    base = _base_tree(tmp_path / "built")
    key = envcache.base_key("inputs")
    assert not envcache.has(key)
    envcache.store(key, tmp_path / "built", base, copy=False)
    assert envcache.has(key)
    placed = envcache.lookup(key, tmp_path / "again", copy=False)
    assert placed is not None
    assert placed.runtime.executable == tmp_path / "again/python/bin/python3.12"
    assert placed.runtime.origins == ((tmp_path / "again/python", Path("/opt/py")),)
    assert placed.runtime.compile_dirs == (Path("/tmp/python-build"),)
    assert placed.grafts == base.grafts
    assert placed.glibc_floor == "2.17"
    assert os.readlink(tmp_path / "again/bin/python") == "../python/bin/python3.12"
    assert (tmp_path / "again/empty").is_dir()
    assert os.access(tmp_path / "again/python/bin/python3.12", os.X_OK)
    # Linked: the placed file is the cache's (and the built tree's) file.
    built = (tmp_path / "built/python/lib/libssl.so.3").stat()
    assert (tmp_path / "again/python/lib/libssl.so.3").stat().st_ino == built.st_ino


def test_a_kept_tree_shares_no_file_with_the_cache(tmp_path: Path) -> None:
    base = _base_tree(tmp_path / "built")
    key = envcache.base_key("kept")
    envcache.store(key, tmp_path / "built", base, copy=True)
    assert envcache.lookup(key, tmp_path / "again", copy=True) is not None
    for tree in ("built", "again"):
        assert (tmp_path / tree / "python/lib/libssl.so.3").stat().st_nlink == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda tree: (tree / "python/lib/libssl.so.3").write_bytes(b"\x7fELF evil"),
        lambda tree: (tree / "python/lib/libssl.so.3").unlink(),
        lambda tree: (tree / "python/lib/extra.so").write_bytes(b"planted"),
        lambda tree: (tree / "python/bin/python3.12").chmod(0o777),
    ],
    ids=["edited", "removed", "added", "mode"],
)
def test_an_entry_whose_files_changed_is_thrown_away(
    tmp_path: Path, cache: Path, change: object
) -> None:
    base = _base_tree(tmp_path / "built")
    key = envcache.base_key("tampered")
    envcache.store(key, tmp_path / "built", base, copy=True)
    tree = cache / key / "tree"
    time.sleep(0.01)  # a write within the same clock tick still changes the size
    assert callable(change)
    change(tree)
    assert envcache.lookup(key, tmp_path / "again", copy=False) is None
    assert not (cache / key).exists()
    assert not (tmp_path / "again").exists()


def test_every_input_is_part_of_the_key() -> None:
    keys = {
        envcache.base_key("a", "b"),
        envcache.base_key("ab"),
        envcache.base_key("a", "b", ""),
        envcache.base_key("b", "a"),
    }
    assert len(keys) == 4


def test_prune_removes_unused_entries_whole(tmp_path: Path, cache: Path) -> None:
    base = _base_tree(tmp_path / "built")
    old, new = envcache.base_key("old"), envcache.base_key("new")
    envcache.store(old, tmp_path / "built", base, copy=True)
    envcache.store(new, tmp_path / "built", base, copy=True)
    now = time.time()
    month_ago = now - 31 * 86400
    os.utime(cache / old / ".used", (month_ago, month_ago))
    # The files inside keep their own (old) times: only the entry's use counts.
    os.utime(cache / new / "tree/pyvenv.cfg", (month_ago, month_ago))
    assert envcache.prune(now=now) == 1
    assert not (cache / old).exists()
    assert envcache.has(new)
    assert envcache.prune(now=now) == 0  # at most once a day


def test_an_entry_is_not_used_once_a_library_it_grafted_changed(
    tmp_path: Path, cache: Path
) -> None:
    """A library upgraded on the build host (another size or time) is grafted again."""
    host_lib = tmp_path / "host/libssl.so.3"
    host_lib.parent.mkdir()
    host_lib.write_bytes(b"\x7fELF ssl 3.0.1")
    base = _base_tree(tmp_path / "built")
    base = envcache.Base(base.runtime, base.grafts, base.glibc_floor, (str(host_lib),))
    key = envcache.base_key("host library")
    envcache.store(key, tmp_path / "built", base, copy=True)
    assert envcache.lookup(key, tmp_path / "same", copy=True) is not None
    host_lib.write_bytes(b"\x7fELF ssl 3.0.17")
    assert envcache.lookup(key, tmp_path / "again", copy=True) is None
    assert not (cache / key).exists()
