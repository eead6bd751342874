"""A root of another machine's files that an interpreter is read from (``--sysroot``).

An aarch64 interpreter built for Debian arm64 lives in an arm64 root: its loader, the
libraries its modules need and its own paths all name places inside that root, as the
target will see them (``/usr/lib/aarch64-linux-gnu/libssl.so.3``). On the build host those
files are below the root's directory. This module maps between the two views and looks
things up the way the target's loader and filesystem would, never on the build host:
absolute symlinks and absolute search paths are taken inside the root.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from venvpack.errors import InterpreterError

__all__ = ["Sysroot", "find_sysroot"]

_MAX_LINKS = 40
"""Symlinks followed in one lookup before it counts as a loop (the kernel allows 40)."""


@dataclass(frozen=True)
class Sysroot:
    """The directory on this host that is ``/`` for the target's files."""

    path: Path

    def host(self, target: str | os.PathLike[str]) -> Path:
        """Where the target's absolute ``target`` lies on this host. A path already inside
        the root is kept: the interpreter, run with ``-L``, reports its own location as a
        path of this host."""
        candidate = Path(os.path.normpath(target))
        if self.contains(candidate):
            return candidate
        return self.path / PurePosixPath(candidate).relative_to("/")

    def target(self, host: str | os.PathLike[str]) -> Path:
        """How the target names the file at ``host``: a path inside the root as the root's
        own; one outside it (an interpreter tree kept elsewhere, python-build-standalone's)
        as it is."""
        path = Path(os.path.normpath(host))
        if not self.contains(path):
            return path
        return Path("/") / path.relative_to(self.path)

    def find(self, target: str) -> Path:
        """The file qemu-user opens for the absolute ``target`` when it runs a program with
        this root (``-L``): the root's, when the root has one; else this host's when this
        host has one; else (neither has it) the root's, where the target would have it."""
        inside = self.host(target)
        outside = Path(os.path.normpath(target))
        if os.path.lexists(inside) or not os.path.lexists(outside):
            return inside
        return outside

    def contains(self, path: Path) -> bool:
        return path == self.path or self.path in path.parents

    def resolve(self, host: Path) -> Path:
        """``os.path.realpath`` as the target sees it: a link to ``/usr/lib/x`` leads to the
        root's ``usr/lib/x``, and ``..`` never climbs out of the root. A missing component
        or a loop ends the lookup where it is. A path outside the root is this host's."""
        if not self.contains(Path(os.path.normpath(host))):
            return Path(os.path.realpath(host))
        parts = list(PurePosixPath(self.target(host)).parts[1:])
        done: list[str] = []
        followed = 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            current = self.path.joinpath(*done, part)
            if not current.is_symlink():
                done.append(part)
                continue
            followed += 1
            if followed > _MAX_LINKS:
                done.append(part)
                break
            link = os.readlink(current)
            if link.startswith("/"):
                done = []
            parts = [*PurePosixPath(link).parts[1 if link.startswith("/") else 0 :], *parts]
        return self.path.joinpath(*done)

    def library_dirs(self, multiarch: str | None) -> tuple[Path, ...]:
        """The directories the target's loader searches after a file's own search path, as
        ``ld.so.conf`` inside the root (with its includes) and the defaults name them."""
        dirs: list[str] = []
        self._read_conf(self.host("/etc/ld.so.conf"), dirs, set())
        defaults = [f"/lib/{multiarch}", f"/usr/lib/{multiarch}"] if multiarch else []
        defaults += ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
        out: list[Path] = []
        for entry in dirs + defaults:
            directory = self.resolve(self.host(entry))
            if directory not in out and directory.is_dir():
                out.append(directory)
        return tuple(out)

    def _read_conf(self, path: Path, out: list[str], seen: set[Path]) -> None:
        if path in seen or not path.is_file():
            return
        seen.add(path)
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line or line.startswith("hwcap"):
                continue
            if line.startswith("include"):
                words = line.split(None, 1)
                pattern = words[1] if len(words) > 1 else ""
                if not pattern.startswith("/"):
                    pattern = str(self.target(path.parent) / pattern)
                for match in sorted(glob.glob(str(self.host(pattern)))):
                    self._read_conf(Path(match), out, seen)
            else:
                out.extend(p for p in line.replace(",", " ").split() if p.startswith("/"))


def find_sysroot(program: Path, loader: str, given: Path | None) -> Sysroot:
    """The root ``program`` (a program of another machine, whose loader is ``loader``, its
    PT_INTERP) is read from: ``given`` (``--sysroot``), else the outermost directory above it
    that holds that loader (outermost: with a merged ``/usr``, the root's ``usr`` holds
    ``lib/<loader>`` too). InterpreterError when there is none, or ``given`` lacks it."""
    relative = PurePosixPath(loader).relative_to("/") if loader.startswith("/") else None
    if relative is None:
        raise InterpreterError(f"{program} names a relative program interpreter {loader!r}")
    if given is not None:
        root = Sysroot(Path(os.path.abspath(given)))
        if not root.resolve(root.path / relative).is_file():
            raise InterpreterError(
                f"--sysroot {given} has no {loader}, the loader {program.name} needs: give "
                "the root of the machine the interpreter was built for"
            )
        return root
    for parent in reversed(Path(os.path.abspath(program)).parents):
        if parent == Path("/"):
            continue
        root = Sysroot(parent)
        if root.resolve(parent / relative).is_file():
            return root
    raise InterpreterError(
        f"{program} runs on another machine and no directory above it holds its loader "
        f"{loader}: give --sysroot, the root it was installed in"
    )
