"""Which layer of an image each file of an environment goes in: bottom up, what changes
less often below what changes more often.

1. :data:`INTERPRETER`: ``python/``, the bundled interpreter;
2. :data:`THIRD_PARTY`: the site-packages entries the ``RECORD`` files of every
   distribution but the application's own hold, their console scripts, the libraries
   grafted for them (outside ``python/``) and the byte-code of their modules (which a
   ``RECORD`` may not list);
3. :data:`APPLICATION`: everything left -- the application's distribution, the launchers and
   the rest of ``bin/``, ``pyvenv.cfg``, ``.venvpack/``.

A namespace package two of them share is split file by file. The application is the
distribution the manifest's metadata names (:attr:`venvpack.manifest.AppMetadata.paths`).
"""

from __future__ import annotations

import csv
import os
import posixpath
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from venvpack.manifest import Manifest

__all__ = ["APPLICATION", "INTERPRETER", "LAYERS", "THIRD_PARTY", "split_layers"]

INTERPRETER = "interpreter"
THIRD_PARTY = "third-party distributions"
APPLICATION = "application"
LAYERS = (INTERPRETER, THIRD_PARTY, APPLICATION)
"""venvpack's own layers, bottom up (an image's base comes below them)."""


def split_layers(root: Path, manifest: Manifest) -> dict[str, list[str]]:
    """Every path of the environment at ``root`` (files, symlinks and empty directories,
    relative to it) in exactly one of venvpack's layers, by layer name, sorted. A
    directory that holds something is in no list: each layer makes the parents it needs."""
    owners = _Owners(root, manifest)
    layers: dict[str, list[str]] = {name: [] for name in LAYERS}
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(directory)
        rel_dir = here.relative_to(root).as_posix()
        links = [d for d in dirs if (here / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links]
        for name in [*files, *links]:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            layers[owners.layer_of(rel)].append(rel)
        if not files and not dirs and not links and rel_dir != ".":
            layers[owners.layer_of(rel_dir)].append(rel_dir)
    return {name: sorted(paths) for name, paths in layers.items()}


class _Owners:
    """Which layer a path of the environment belongs to: the interpreter's tree, what the
    third-party distributions' RECORDs hold (with the byte-code of their modules and the
    libraries grafted for them), or the application."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        app = manifest.metadata
        app_paths = {p.rstrip("/") for p in (app.paths if app is not None else ())}
        self.site_dirs: list[str] = []
        self.third_files: set[str] = set()
        self.app_files: set[str] = set()
        self.third_tops: set[str] = set()
        self.app_tops: set[str] = set(app_paths)
        for site in sorted(root.glob("lib/python3*/site-packages")):
            if site.is_symlink() or not site.is_dir():
                continue
            site_rel = site.relative_to(root).as_posix()
            self.site_dirs.append(site_rel)
            for dist_info in sorted(site.glob("*.dist-info")):
                info_rel = dist_info.relative_to(root).as_posix()
                is_app = info_rel in app_paths
                files, tops = self.app_files, self.app_tops
                if not is_app:
                    files, tops = self.third_files, self.third_tops
                tops.add(info_rel)
                for path in _record_paths(dist_info / "RECORD", site_rel):
                    files.add(path)
                    if path.startswith(site_rel + "/"):
                        tops.add("/".join(path.split("/")[: site_rel.count("/") + 2]))
        self.third_tops -= self.app_tops  # a namespace both use: file by file
        prefix = "python/"
        self.grafted = {g.path for g in manifest.grafted if not g.path.startswith(prefix)}

    def layer_of(self, rel: str) -> str:
        if rel == "python" or rel.startswith("python/"):
            return INTERPRETER
        if rel in self.third_files or rel in self.grafted:
            return THIRD_PARTY
        if rel in self.app_files:
            return APPLICATION
        source = _source_of_bytecode(rel)
        if source is not None and source != rel:
            return self.layer_of(source)
        for site in self.site_dirs:
            if rel.startswith(site + "/"):
                top = "/".join(rel.split("/")[: site.count("/") + 2])
                if top in self.third_tops:
                    return THIRD_PARTY
                break
        return APPLICATION


def _record_paths(record: Path, site_rel: str) -> Iterable[str]:
    """The paths a RECORD lists, relative to the environment root (a console script's
    ``../../../bin/x`` is ``bin/x``); those leaving the environment are dropped."""
    try:
        text = record.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for row in csv.reader(text.splitlines()):
        if not row or not row[0]:
            continue
        path = posixpath.normpath(posixpath.join(site_rel, row[0]))
        if not path.startswith("../") and path != ".." and not path.startswith("/"):
            yield path


def _source_of_bytecode(rel: str) -> str | None:
    """``pkg/mod.py`` for ``pkg/__pycache__/mod.cpython-311.pyc``: byte-code goes where its
    source goes, whether or not a RECORD lists it."""
    path = PurePosixPath(rel)
    if path.parent.name != "__pycache__" or path.suffix != ".pyc":
        return None
    return str(path.parent.parent / (path.name.split(".", 1)[0] + ".py"))
