"""Where venvpack writes: staging directories, and the one rule for putting an artifact --
a file or a directory -- at its output path.

Everything venvpack makes beside an output (an environment being built, an archive being
written, rpmbuild's work area) lives in one *staging directory* named
``.venvpack-<pid>-<random>``, made by :func:`staging_dir` and removed when the work ends,
also on errors and interruptions. A run killed by SIGKILL (or a power cut) cannot clean up:
:func:`reap` removes staging directories whose owner process is gone, and every new staging
directory reaps its siblings first. Only names of exactly that pattern, owned by this user,
are ever reaped.

:func:`atomic_output` is the output rule. The artifact is made in a staging directory and
renamed into place when complete, so the output path always holds either the old artifact,
complete, or the new one:

- without ``replace`` the final rename refuses to replace anything (``renameat2`` with
  ``RENAME_NOREPLACE``), so of two runs racing for one output the second fails with "already
  exists" instead of silently replacing the first;
- with ``replace`` a file is replaced by ``rename``; a directory is exchanged with the new one
  (``RENAME_EXCHANGE``), then removed -- and only when ``replaceable`` recognises it as
  something venvpack made. Nothing else is ever deleted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import Callable

from venvpack.errors import ConfigError, EmitError, OutputExistsError, VenvpackError
from venvpack.interrupt import checkpoint

__all__ = [
    "STAGING_PREFIX",
    "atomic_output",
    "check_replaceable",
    "is_staging_name",
    "reap",
    "refuse_overlap",
    "remove_tree",
    "staging_dir",
]

STAGING_PREFIX = ".venvpack-"
_STAGING_RE = re.compile(r"\.venvpack-([1-9][0-9]{0,9})-[0-9a-f]{12}")

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def is_staging_name(name: str) -> bool:
    """Whether ``name`` is a staging directory's name (``.venvpack-<pid>-<12 hex>``)."""
    return _STAGING_RE.fullmatch(name) is not None


def staging_dir(directory: Path, *, error: type[VenvpackError] = EmitError) -> Path:
    """A new, private staging directory in ``directory`` (created if missing), named after
    this process; stale ones left there by dead runs are reaped first."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create a directory in {directory}: {exc.strerror}") from None
    reap(directory)
    while True:
        path = directory / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise error(f"cannot create a directory in {directory}: {exc.strerror}") from None
        return path


def reap(directory: Path) -> list[Path]:
    """Remove the staging directories in ``directory`` whose owner process is gone.

    Only real directories (never symlinks) named ``.venvpack-<pid>-<12 hex>``, owned by the
    current user, whose ``<pid>`` no longer runs. Returns what was removed.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = _STAGING_RE.fullmatch(entry.name)
        if match is None or _alive(int(match[1])):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        path = Path(entry.path)
        remove_tree(path)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_tree(path: Path) -> None:
    """Remove ``path`` (a directory or anything else), never following symlinks; read-only
    directories inside (rpmbuild makes some) are made writable first."""
    if path.is_symlink() or not path.is_dir():
        with suppress(FileNotFoundError):
            path.unlink()
        return
    try:
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    for parent, dirs, _ in os.walk(path):
        for name in dirs:
            child = os.path.join(parent, name)
            if not os.path.islink(child):
                with suppress(OSError):
                    os.chmod(child, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def check_replaceable(
    dest: Path, replace: bool, replaceable: Callable[[Path], bool] | None = None
) -> None:
    """Refuse ``dest`` when it exists and may not be replaced: always without ``replace``;
    with it, when it is a directory that ``replaceable`` does not recognise (a file or a
    symlink named as the output is replaced)."""
    if not os.path.lexists(dest):
        return
    if not replace:
        raise OutputExistsError(f"{dest} already exists (use --force to replace it)")
    if dest.is_dir() and not dest.is_symlink() and (replaceable is None or not replaceable(dest)):
        raise OutputExistsError(
            f"{dest} is a directory venvpack did not make; refusing to replace it, "
            "also with --force (remove it yourself, or choose another output)"
        )


def refuse_overlap(
    dest: Path, protected: Mapping[str, Path], *, inside: Mapping[str, Path] | None = None
) -> None:
    """ConfigError when ``dest`` is or contains one of the ``protected`` directories
    (replacing it would delete them), or lies in one of the ``inside`` directories.

    Keys say what each directory is, for the message. Symlinks are resolved first.
    """
    target = Path(os.path.realpath(dest))
    for what, directory in protected.items():
        real = Path(os.path.realpath(directory))
        if target == real or target in real.parents:
            relation = "is" if target == real else "contains"
            raise ConfigError(
                f"output {dest} {relation} {what} ({directory}); venvpack never replaces it"
            )
    for what, directory in (inside or {}).items():
        real = Path(os.path.realpath(directory))
        if target == real or real in target.parents:
            raise ConfigError(
                f"output {dest} is inside {what} ({directory}): it would be packed into the "
                "next artifact; write it elsewhere"
            )


@contextmanager
def atomic_output(
    dest: Path,
    *,
    replace: bool = False,
    replaceable: Callable[[Path], bool] | None = None,
    error: type[VenvpackError] = EmitError,
) -> Iterator[Path]:
    """A path to make the artifact at -- a file or a directory, named like ``dest`` inside a
    new staging directory beside it, whose other space the block may use as scratch -- moved
    to ``dest`` when the block succeeds. The staging directory is removed in every case.

    See the module's docstring for ``replace`` and ``replaceable``; both are checked before
    the block runs and again at the rename.
    """
    dest = Path(os.path.abspath(dest))
    check_replaceable(dest, replace, replaceable)
    stage = staging_dir(dest.parent, error=error)
    made = stage / dest.name
    try:
        yield made
        if not os.path.lexists(made):
            raise error(f"nothing was written for {dest}")
        checkpoint()
        try:
            if made.is_file() and not made.is_symlink():
                _fsync(made)
            _commit(made, dest, replace, replaceable)
        except OSError as exc:
            raise error(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        remove_tree(stage)


def _commit(
    made: Path, dest: Path, replace: bool, replaceable: Callable[[Path], bool] | None
) -> None:
    """Move ``made`` to ``dest``; what ``dest`` held before ends up at ``made``'s path."""
    if not replace or not os.path.lexists(dest):
        try:
            rename_noreplace(made, dest)
            return
        except FileExistsError:
            if not replace:
                raise OutputExistsError(
                    f"{dest} already exists (use --force to replace it)"
                ) from None
    check_replaceable(dest, replace, replaceable)
    dest_is_dir = dest.is_dir() and not dest.is_symlink()
    if not dest_is_dir and not made.is_dir():
        os.replace(made, dest)
        return
    try:
        _renameat2(made, dest, _RENAME_EXCHANGE)
    except _Unsupported:
        # No atomic exchange here: the old artifact goes aside (still complete) for the
        # instant between the two renames.
        aside = made.with_name(made.name + ".old")
        os.rename(dest, aside)
        os.rename(made, dest)
        os.rename(aside, made)


def rename_noreplace(src: Path, dest: Path) -> None:
    """Rename ``src`` to ``dest``, or FileExistsError if ``dest`` exists (even if it only just
    appeared: the check and the rename are one system call where the kernel offers it)."""
    try:
        _renameat2(src, dest, _RENAME_NOREPLACE)
        return
    except _Unsupported:
        pass
    if src.is_dir() and not src.is_symlink():
        # Claim the name with an exclusive mkdir, then rename onto that empty directory.
        os.mkdir(dest)
        try:
            os.rename(src, dest)
        except BaseException:
            os.rmdir(dest)
            raise
    else:
        os.link(src, dest, follow_symlinks=False)
        os.unlink(src)


class _Unsupported(Exception):
    """renameat2 (or the flag) is not available for this file system or system."""


@cache
def _libc_renameat2() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function: Callable[..., int] = libc.renameat2
    except (OSError, AttributeError):
        return None
    return function


def _renameat2(src: Path, dest: Path, flags: int) -> None:
    function = _libc_renameat2()
    if function is None:
        raise _Unsupported
    if function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dest), flags) == 0:
        return
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        raise _Unsupported
    raise OSError(code, os.strerror(code), str(dest))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
