"""An application-only rebuild of a locked project reuses its base and makes the same bytes
as a cold build; a cache entry that changed is never used; ``venvpack build`` output shares
no file with the cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
UV = Path(sys.executable).parent / "uv"


def venvpack(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VENVPACK_CACHE": str(cache), "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.run(
        [sys.executable, "-m", "venvpack", *args], capture_output=True, text=True, env=env
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("envcache") / "hello"
    shutil.copytree(HELLO, root)
    done = subprocess.run(
        [str(UV), "lock", "--python", sys.executable, "--quiet"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return root


def _tar(project: Path, out: Path, cache: Path) -> tuple[bytes, str]:
    done = venvpack("tar", "-v", "--project", str(project), "-o", str(out), cache=cache)
    assert done.returncode == 0, done.stderr
    return out.read_bytes(), done.stderr


def test_an_application_only_rebuild_is_a_cold_build(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, log = _tar(project, tmp_path / "first.tar.zst", cache)
    assert "environment cache: stored" in log
    module = project / "src" / "hello" / "__init__.py"
    module.write_text(module.read_text() + "\nREBUILT = 'once more'\n")
    again, log = _tar(project, tmp_path / "again.tar.zst", cache)
    assert "environment cache: reused" in log
    assert "copy runtime from the cache" in log
    assert "graft libraries" not in log  # the project is pure Python: nothing to graft
    assert again != first
    cold, log = _tar(project, tmp_path / "cold.tar.zst", tmp_path / "empty-cache")
    assert "environment cache: reused" not in log
    assert again == cold
    listing = subprocess.run(
        [
            "tar",
            "-xOf",
            str(tmp_path / "again.tar.zst"),
            "hello/lib/python3.12/site-packages/hello/__init__.py",
        ],
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0:  # another interpreter version: find the module by name
        names = subprocess.run(
            ["tar", "-tf", str(tmp_path / "again.tar.zst")], capture_output=True, text=True
        ).stdout.split()
        path = next(n for n in names if n.endswith("site-packages/hello/__init__.py"))
        listing = subprocess.run(
            ["tar", "-xOf", str(tmp_path / "again.tar.zst"), path], capture_output=True, text=True
        )
    assert "REBUILT = 'once more'" in listing.stdout


def test_a_changed_entry_is_built_again(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, _ = _tar(project, tmp_path / "first.tar.zst", cache)
    (entry,) = (cache / "envs").glob("[0-9a-f]*")
    victim = next(p for p in sorted((entry / "tree").rglob("*.py")) if p.stat().st_size > 100)
    # Replaced, not written into: the entry's files are uv's cache's too (uv links wheels
    # into place and the entry links the tree), and an edit in place would reach it.
    text = victim.read_text() + "\nimport os; os.system('echo owned')\n"
    victim.unlink()
    victim.write_text(text)
    again, log = _tar(project, tmp_path / "again.tar.zst", cache)
    assert "discarded" in log
    assert "environment cache: reused" not in log
    assert again == first


def test_a_built_tree_shares_no_file_with_the_cache(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for out in ("one", "two"):  # stored by the first, placed (copied) by the second
        done = venvpack(
            "build", "-v", "--project", str(project), "-o", str(tmp_path / out), cache=cache
        )
        assert done.returncode == 0, done.stderr
    assert "environment cache: reused" in done.stderr

    def inodes(tree: Path) -> set[tuple[int, int]]:
        return {
            (p.stat().st_dev, p.stat().st_ino)
            for p in tree.rglob("*")
            if p.is_file() and not p.is_symlink()
        }

    cached = inodes(cache / "envs")
    assert cached
    assert not inodes(tmp_path / "one") & cached
    assert not inodes(tmp_path / "two") & cached
