"""Stage ``base``: the part of a locked project's environment that its own sources do not
touch, built once per inputs and reused.

A uv project's environment is its interpreter, its locked dependencies and the project.
Everything but the project depends only on the interpreter, the lock and the options: the
runtime copy, the installed wheels, the grafted libraries, the relocation and the byte-code
of thousands of files. That *base* is kept in the build cache (``build_cache("envs")``),
keyed by those inputs, and an application-only rebuild links it into place and redoes only
what the project's own files touch. A cold build goes the same way (it stores the base,
then adds the project), so a rebuild is byte for byte what a cold build makes.

The cache is never changed in place: a base is linked into a staging directory whose later
steps replace files rather than write into them, and an entry records every file's size,
mode and modification time, checked when it is used; one that no longer matches (a file
edited, truncated, removed or added) is thrown away and built again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvpack.cache import build_cache
from venvpack.runtime import Runtime

__all__ = [
    "FORMAT",
    "Base",
    "BaseGraft",
    "base_key",
    "has",
    "link_tree",
    "lookup",
    "prune",
    "store",
]

log = logging.getLogger("venvpack")

FORMAT = "venvpack-env-1"
"""Part of every key: entries of an older layout are never read."""

_TREE = "tree"
_FACTS = "base.json"
_USED = ".used"


@dataclass(frozen=True)
class BaseGraft:
    """A library the base's graft stage copied in (the manifest lists it)."""

    soname: str
    origin: str
    path: str
    """Relative to the environment."""


@dataclass(frozen=True)
class Base:
    """What the later stages need to know of a base besides its files."""

    runtime: Runtime
    grafts: tuple[BaseGraft, ...]
    glibc_floor: str
    """The floor the base's files need (its launchers name it)."""
    sources: tuple[str, ...] = ()
    """The build host's files the grafted libraries were copied from: an entry is used
    only while each is as it was (a library upgraded on the host is grafted again)."""


def base_key(*parts: str) -> str:
    """The key of a base made from ``parts`` (each length-prefixed, so no two lists of
    parts give the same key)."""
    digest = hashlib.sha256()
    for part in (FORMAT, *parts):
        data = part.encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def _entry(key: str) -> Path | None:
    top = build_cache("envs")
    return top / key if top is not None else None


def has(key: str) -> bool:
    """Whether a base is stored under ``key`` (:func:`lookup` still checks it)."""
    entry = _entry(key)
    return entry is not None and (entry / _FACTS).is_file()


def lookup(key: str, root: Path, *, copy: bool) -> Base | None:
    """The base stored under ``key``, placed at ``root`` (hard links into the cache, or
    copies with ``copy``: a tree the user keeps must share no file with the cache); None
    when there is none, or when it no longer matches what was stored (then removed)."""
    entry = _entry(key)
    if entry is None or not (entry / _FACTS).is_file():
        return None
    try:
        facts = json.loads((entry / _FACTS).read_text(encoding="utf-8"))
        if _stats(facts["sources"]) != facts["source_stats"]:
            raise ValueError("a library it grafted changed on this host")
        if link_tree(entry / _TREE, root, copy=copy) != facts["files"]:
            raise ValueError("its files changed since it was stored")  # root goes below
        base = _base(facts, root)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("environment cache: %s discarded (%s)", key[:12], exc)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    with contextlib.suppress(OSError):
        (entry / _USED).touch()  # in use: kept by prune()
    log.debug("environment cache: reused %s", key[:12])
    return base


def store(key: str, root: Path, base: Base, *, copy: bool) -> None:
    """Keep the finished base at ``root`` under ``key``: hard links (``root``'s later steps
    replace files, never write into them), or copies with ``copy`` (a tree the user keeps).
    A cache that cannot be written only costs time."""
    entry = _entry(key)
    if entry is None or entry.exists():
        return
    work: Path | None = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
        link_tree(root, work / _TREE, copy=copy)
        facts = _facts(base, root)
        facts["files"] = _listing(work / _TREE)
        facts["source_stats"] = _stats(list(base.sources))
        (work / _FACTS).write_text(json.dumps(facts, sort_keys=True), encoding="utf-8")
        (work / _USED).touch()
        os.rename(work, entry)
        work = None
        log.debug("environment cache: stored %s", key[:12])
    except OSError as exc:
        log.debug("environment cache: %s not stored (%s)", key[:12], exc)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def prune(*, max_age: float = 30 * 86400, every: float = 86400, now: float | None = None) -> int:
    """Remove the entries no build used for ``max_age`` seconds, and those a killed build
    left half-written for a day, at most once per ``every`` seconds. Returns how many."""
    top = build_cache("envs")
    now = time.time() if now is None else now
    if top is None or not top.is_dir():
        return 0
    stamp = top / ".last-prune"
    with contextlib.suppress(OSError):
        if now - stamp.stat().st_mtime < every:
            return 0
    removed = 0
    for entry in sorted(top.iterdir()):
        if not entry.is_dir() or entry.is_symlink():
            continue
        used = entry / _USED
        try:
            age = now - (used.stat().st_mtime if used.exists() else entry.stat().st_mtime)
        except OSError:
            continue
        limit = every if entry.name.startswith(".tmp-") else max_age
        if age > limit:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    with contextlib.suppress(OSError):
        stamp.touch()
        os.utime(stamp, (now, now))
    return removed


def link_tree(source: Path, dest: Path, *, copy: bool) -> dict[str, list[int]]:
    """Recreate the tree ``source`` at ``dest``: directories with their modes, symlinks as
    they are, files hard-linked (or copied with ``copy``). Returns ``source``'s listing
    (:func:`_listing`), read on the same pass: a rebuild checks its base and links it in
    one walk of the cache entry."""
    place = shutil.copy2 if copy else os.link
    listing: dict[str, list[int]] = {}

    def fill(src: str, dst: str, prefix: str) -> None:
        with os.scandir(src) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            there = os.path.join(dst, entry.name)
            st = entry.stat(follow_symlinks=False)
            listing[prefix + entry.name] = _fact(entry.path, st)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(entry.path), there)
            elif stat.S_ISDIR(st.st_mode):
                os.mkdir(there)
                fill(entry.path, there, f"{prefix}{entry.name}/")
                shutil.copystat(entry.path, there)  # after its entries: their mtime
            else:
                place(entry.path, there)

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copystat(source, dest)
    fill(os.fspath(source), os.fspath(dest), "")
    return listing


def _listing(tree: Path) -> dict[str, list[int]]:
    """Every entry of ``tree`` by its relative path (see :func:`_fact`)."""
    out: dict[str, list[int]] = {}

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                out[prefix + entry.name] = _fact(entry.path, st)
                if stat.S_ISDIR(st.st_mode):
                    walk(entry.path, f"{prefix}{entry.name}/")

    walk(os.fspath(tree), "")
    return out


def _fact(path: str, st: os.stat_result) -> list[int]:
    """What a listing records of an entry: a file's size, mode and modification time, a
    link's target length, a directory's (or anything else's) mode."""
    if stat.S_ISREG(st.st_mode):
        return [st.st_size, st.st_mode, st.st_mtime_ns]
    if stat.S_ISLNK(st.st_mode):
        return [len(os.readlink(path)), st.st_mode, 0]
    return [0, st.st_mode, 0]


def _facts(base: Base, root: Path) -> dict[str, object]:
    r = base.runtime

    def rel(path: Path | None) -> str | None:
        return str(path.relative_to(root)) if path is not None else None

    return {
        "runtime": {
            "root": rel(r.root),
            "executable": rel(r.executable),
            "stdlib": rel(r.stdlib),
            "libpython": rel(r.libpython),
            "sysconfigdata": rel(r.sysconfigdata),
            "short_version": r.short_version,
            "version": r.version,
            "source_prefix": str(r.source_prefix),
            "build_prefix": str(r.build_prefix) if r.build_prefix is not None else None,
            "compile_dirs": [str(d) for d in r.compile_dirs],
            "origins": [[rel(tree), str(host)] for tree, host in r.origins],
        },
        "grafts": [[g.soname, g.origin, g.path] for g in base.grafts],
        "glibc_floor": base.glibc_floor,
        "sources": list(base.sources),
    }


def _base(facts: dict[str, object], root: Path) -> Base:
    data = facts["runtime"]
    assert isinstance(data, dict)

    def tree(value: object) -> Path | None:
        return root / str(value) if value is not None else None

    def required(value: object) -> Path:
        path = tree(value)
        if path is None:
            raise ValueError("a required runtime path is missing")
        return path

    runtime = Runtime(
        root=required(data["root"]),
        executable=required(data["executable"]),
        stdlib=required(data["stdlib"]),
        libpython=tree(data["libpython"]),
        sysconfigdata=tree(data["sysconfigdata"]),
        short_version=str(data["short_version"]),
        version=str(data["version"]),
        source_prefix=Path(str(data["source_prefix"])),
        build_prefix=Path(str(data["build_prefix"])) if data["build_prefix"] else None,
        compile_dirs=tuple(Path(str(d)) for d in _strings(data["compile_dirs"])),
        origins=tuple((required(t), Path(str(h))) for t, h in _pairs(data["origins"])),
    )
    grafts = tuple(BaseGraft(str(s), str(o), str(p)) for s, o, p in _triples(facts["grafts"]))
    sources = tuple(str(source) for source in _strings(facts["sources"]))
    return Base(runtime, grafts, str(facts["glibc_floor"]), sources)


def _stats(paths: object) -> list[list[int]]:
    """Size and modification time of each file (-1 for one that is gone)."""
    out = []
    for path in _strings(paths):
        try:
            st = os.stat(str(path))
        except OSError:
            out.append([-1, -1])
            continue
        out.append([st.st_size, st.st_mtime_ns])
    return out


def _strings(value: object) -> Sequence[object]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def _pairs(value: object) -> Iterator[tuple[object, object]]:
    for item in _strings(value):
        if not isinstance(item, list) or len(item) != 2:
            raise ValueError("not a pair")
        yield item[0], item[1]


def _triples(value: object) -> Iterator[tuple[object, object, object]]:
    for item in _strings(value):
        if not isinstance(item, list) or len(item) != 3:
            raise ValueError("not a triple")
        yield item[0], item[1], item[2]
