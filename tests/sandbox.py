"""Sandboxes that prove an artifact runs where nothing of the build host exists.

A relocatable environment can look fine on the build host and still depend on it: a RUNPATH into
``~/.pyenv``, a stdlib found through a stale ``home``, ``libssl`` picked up from ``/usr/lib``. The
only convincing test runs the artifact somewhere those things are *absent*. This module gives
three such places, all built on bubblewrap (``bwrap``) because it needs no daemon, no image
registry and no network, and undoes every mount when the command exits:

* :func:`hidden_run` — the host itself, with the source interpreter made invisible
  (:func:`python_hide_list` says what to hide for a given interpreter);
* :func:`run_in_root` on :func:`glibc_root` — a root holding only Debian's ``libc6`` files,
  ``dash`` and the coreutils that need nothing but libc: whatever else the artifact needs, it
  must carry;
* :func:`run_in_chroot` on a :func:`fresh_copy` of :func:`debootstrap_root` — a minimal Debian
  (``--variant=minbase``, no Python) where ``dpkg -i`` of a produced package can really run.

Each of these roots exists for another machine too (:func:`machine_root`, ``aarch64`` on an
x86-64 host): its programs run through qemu-user, which binfmt_misc starts by their path
(:func:`foreign_problem` says why not). :func:`sysroot` gives another machine's files to
build from (Debian arm64's ``python3.11`` and its libraries), run with
``venvpack.platform.emulator(machine) + ["-L", sysroot]``.

Roots are built once into a cache directory (``$VENVPACK_TEST_CACHE`` or
``~/.cache/venvpack-tests``), atomically and under a lock, so parallel pytest workers share one
build and an interrupted build never leaves a half-made root behind.

Everything here runs as root (the test machines and CI do): bwrap then needs no setuid bit or
user namespace, debootstrap can create device nodes and ``chown``, and dpkg inside a chroot can
run maintainer scripts.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import NoReturn, Union

from venvpack.platform import emulation_problem
from venvpack.roots import (
    REQUIRED_COREUTILS,
    debootstrap_problem,
    elf_needed,
    fresh_copy,
    is_cached_root,
    missing_tools,
    python_traces,
)
from venvpack.roots import build_once as _build_once
from venvpack.roots import cache_key as _cache_key
from venvpack.roots import debootstrap_root as _debootstrap_root
from venvpack.roots import dpkg_files as _dpkg_files
from venvpack.roots import get_root as _get_root
from venvpack.roots import glibc_root as _glibc_root
from venvpack.roots import sysroot as _sysroot

__all__ = [
    "CHROOT_ENV",
    "HOST_ENV",
    "REQUIRED_COREUTILS",
    "ROOT_ENV",
    "Builder",
    "SandboxUnavailable",
    "build_once",
    "cache_key",
    "debootstrap_problem",
    "debootstrap_root",
    "default_cache",
    "elf_needed",
    "foreign_problem",
    "fresh_copy",
    "glibc_root",
    "hidden_run",
    "machine_root",
    "missing_tools",
    "old_glibc_root",
    "package_files",
    "python_hide_list",
    "python_traces",
    "run_in_chroot",
    "run_in_root",
    "sysroot",
    "unavailable",
]

StrPath = Union[str, "os.PathLike[str]"]

DEFAULT_TIMEOUT = 300.0
"""Seconds before a sandboxed command is killed; a hung artifact must fail, not hang CI."""


HOST_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
"""Default environment of :func:`hidden_run`: nothing inherited, so no ``PYTHONPATH``,
``VIRTUAL_ENV`` or pyenv shim directory of the calling test can rescue a broken artifact."""

ROOT_ENV: Mapping[str, str] = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
"""Default environment of :func:`run_in_root`. The glibc root has no locale files, so
``C.UTF-8`` does not load there: that is deliberate, distroless images behave the same."""

CHROOT_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
"""Default environment of :func:`run_in_chroot`: dpkg wants ``ldconfig`` and
``start-stop-daemon`` on PATH (both in sbin) and must never prompt."""

_ROOT = PurePosixPath("/")


class SandboxUnavailable(RuntimeError):
    """A tool the sandbox needs is missing, or we are not root; see :func:`unavailable`."""


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test on a developer machine, fail it under ``CI=true``.

    CI installs bubblewrap, debootstrap and the pyenv interpreters; a clean-root test that
    silently skips there would prove nothing."""
    import pytest  # only test code calls this; the rest of the module works without pytest

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: clean-root tests must not be skipped)")
    pytest.skip(reason)


# --------------------------------------------------------------------------- helpers


def _bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable("bwrap not found on PATH; apt-get install bubblewrap")
    return found


def default_cache() -> Path:
    """Where built roots live between test runs: ``$VENVPACK_TEST_CACHE`` or
    ``~/.cache/venvpack-tests``. Delete it to rebuild (e.g. to pick up new Debian point
    releases); keys include package versions and a format number, so stale roots are rare."""
    configured = os.environ.get("VENVPACK_TEST_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "venvpack-tests"


def _posix(path: StrPath) -> PurePosixPath:
    """A normalised absolute sandbox path (bwrap destinations must be absolute)."""
    text = os.fspath(path)
    if not text.startswith("/"):
        raise ValueError(f"sandbox paths must be absolute: {text!r}")
    return PurePosixPath(os.path.normpath(text))


def _inside(path: PurePosixPath, dirs: Iterable[PurePosixPath]) -> bool:
    return any(path == d or d in path.parents for d in dirs)


def _on(base: Path, path: PurePosixPath) -> Path:
    """The host path that backs sandbox ``path`` when ``base`` is bound at ``/``."""
    return base / str(path.relative_to(_ROOT))


def _shadow(
    base: Path, at: PurePosixPath, *, writable: bool, skip: Iterable[PurePosixPath]
) -> list[str]:
    """Replace directory ``at`` by a tmpfs that re-binds each of its original entries.

    This is how a bind mount gets a mount point that does not exist, without creating it in the
    real tree: bwrap would ``mkdir`` it on the host (``--bind / /``) or fail (read-only root).
    bubblewrap 0.8 (Debian 12) has no ``--tmp-overlay``; this is the same idea by hand. New
    entries directly in ``at`` land in the tmpfs and vanish; entries below are the real ones.
    """
    bind = "--bind" if writable else "--ro-bind"
    skipped = set(skip)
    args = [] if at == _ROOT else ["--tmpfs", str(at)]  # bwrap's own new root is a tmpfs
    host_dir = _on(base, at)
    for name in sorted(os.listdir(host_dir)):
        inner = at / name
        if inner in skipped:
            continue
        source = host_dir / name
        if source.is_symlink():
            args += ["--symlink", os.readlink(source), str(inner)]
        else:
            args += [bind, str(source), str(inner)]
    return args


def _layout(
    *,
    base: Path,
    writable: bool,
    tmp: bool,
    hide: Sequence[PurePosixPath] = (),
    binds: Mapping[Path, PurePosixPath],
    shadow_missing: bool,
) -> list[str]:
    """bwrap mount arguments: ``base`` at ``/``, fresh /dev, /proc, /dev/shm (and /tmp), hidden
    paths, then the extra binds (parents before children so nested binds work)."""
    special = [PurePosixPath("/dev"), PurePosixPath("/proc")]
    if tmp:
        special.append(PurePosixPath("/tmp"))

    hidden: list[PurePosixPath] = []
    for path in sorted(set(hide), key=lambda p: len(p.parts)):
        if _inside(path, special) or _inside(path, hidden):
            continue  # already covered (or gone): a second mount would only add a mount point
        if os.path.lexists(_on(base, path)):
            hidden.append(path)
    hidden_dirs = [p for p in hidden if _on(base, p).is_dir()]

    fresh = special + hidden_dirs  # empty tmpfs in the sandbox, whatever the host has there
    bind_dests = sorted(binds.values(), key=lambda p: len(p.parts))
    shadows: set[PurePosixPath] = set()
    if shadow_missing:
        for dest in bind_dests:
            others = [d for d in bind_dests if d != dest]
            if _inside(dest, fresh) or _inside(dest, others):
                continue  # its mount point is made in a tmpfs or a bind source, not in base
            existing = dest
            while not os.path.lexists(_on(base, existing)):
                existing = existing.parent
            if existing != dest:
                shadows.add(existing)

    bind = "--bind" if writable else "--ro-bind"
    args: list[str] = []
    if _ROOT in shadows:
        args += _shadow(base, _ROOT, writable=writable, skip=special)
    else:
        args += [bind, str(base), "/"]
    args += ["--dev", "/dev", "--proc", "/proc"]
    # bwrap's --dev does make an empty /dev/shm, but mode 0755 on the /dev tmpfs; a real system
    # has a sticky, world-writable tmpfs there (POSIX semaphores for multiprocessing live in it).
    args += ["--perms", "1777", "--tmpfs", "/dev/shm"]
    if tmp:
        args += ["--perms", "1777", "--tmpfs", "/tmp"]
    for path in sorted(shadows - {_ROOT}, key=lambda p: len(p.parts)):
        args += _shadow(base, path, writable=writable, skip=())
    for path in hidden:
        if path in hidden_dirs:
            args += ["--tmpfs", str(path)]
        else:
            # A char device cannot be executed (EACCES) and reads as nothing: the file is gone
            # for every practical purpose, and no mount point has to be created for it.
            args += ["--ro-bind", "/dev/null", str(path)]
    # bwrap creates missing parents of a mount point with mode 0700, which would lock out an
    # artifact running as a service user; make them 0755 explicitly, after any bind they are in.
    mounted: list[tuple[PurePosixPath, Path]] = []
    made: set[PurePosixPath] = set()

    def exists(path: PurePosixPath) -> bool:
        if path in made or path in fresh:
            return True
        for dest, source in reversed(mounted):
            if _inside(path, [dest]):
                return os.path.lexists(source / str(path.relative_to(dest)))
        return not _inside(path, fresh) and os.path.lexists(_on(base, path))

    for source, dest in sorted(binds.items(), key=lambda item: len(item[1].parts)):
        if not os.path.lexists(source):
            raise FileNotFoundError(f"bind source does not exist: {source}")
        for parent in reversed(list(dest.parents)[:-1]):  # from the top, without "/"
            if not exists(parent):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--bind", str(source), str(dest)]
        mounted.append((dest, source))
    return args


def _namespaces(network: bool) -> list[str]:
    """Own pid namespace (leftover daemons die with the command), own IPC, and no network unless
    asked: an artifact that quietly downloads what it lacks must fail here."""
    args = ["--unshare-pid", "--unshare-ipc", "--die-with-parent"]
    if not network:
        args.append("--unshare-net")
    return args


def _exec(
    mounts: list[str],
    argv: Sequence[StrPath],
    *,
    cwd: StrPath,
    env: Mapping[str, str],
    network: bool,
    timeout: float,
    check: bool,
) -> subprocess.CompletedProcess[str]:
    command = [
        _bwrap(),
        *mounts,
        *_namespaces(network),
        "--chdir",
        str(_posix(cwd)),
        "--",
        *(os.fspath(a) for a in argv),
    ]
    return subprocess.run(
        command,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def _binds(binds: Mapping[Path, StrPath]) -> dict[Path, PurePosixPath]:
    return {Path(os.path.abspath(src)): _posix(dest) for src, dest in binds.items()}


# --------------------------------------------------------------------------- the host, hidden


def hidden_run(
    argv: Sequence[StrPath],
    *,
    hide: Sequence[StrPath],
    binds: Mapping[Path, StrPath] | None = None,
    cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None,
    tmp: bool = True,
    network: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` on the host's own root with every path in ``hide`` invisible.

    The host root is bound writable (``--bind / /``): only what is hidden differs from the build
    host, so a failure points at exactly that. Hidden directories become an empty tmpfs; hidden
    files (symlinks are hidden through their target) are covered by ``/dev/null``, which cannot be
    executed. ``binds`` maps a host source to a path inside (spaces allowed); a missing mount
    point is created in a tmpfs that shadows its nearest existing parent, never on the host.
    ``/tmp`` is an empty tmpfs unless ``tmp=False`` — pytest's ``tmp_path`` lives there, so bind
    it (``binds={tmp_path: tmp_path}``) or pass ``tmp=False``. ``cwd`` defaults to ``/``;
    ``env`` to :data:`HOST_ENV`. The result is returned whatever the exit status
    (unless ``check``); stdout and stderr are captured as text.
    """
    hide_paths = [_posix(os.path.realpath(p)) for p in hide]
    mounts = _layout(
        base=Path("/"),
        writable=True,
        tmp=tmp,
        hide=hide_paths,
        binds=_binds(binds or {}),
        shadow_missing=True,
    )
    return _exec(
        mounts,
        argv,
        cwd=cwd if cwd is not None else "/",
        env=env if env is not None else HOST_ENV,
        network=network,
        timeout=timeout,
        check=check,
    )


def _pyenv_root_of(prefix: Path) -> Path | None:
    """The pyenv root holding ``prefix`` (``<root>/versions/<name>``), if it is a pyenv Python."""
    candidates = []
    if os.environ.get("PYENV_ROOT"):
        candidates.append(Path(os.path.realpath(os.environ["PYENV_ROOT"])))
    candidates += [p.parent for p in prefix.parents if p.name == "versions"]
    for root in candidates:
        if (root / "versions") in prefix.parents:
            return root
    return None


def python_hide_list(source_prefix: StrPath) -> list[Path]:
    """What to hide so that an interpreter installed at ``source_prefix`` is gone.

    * a pyenv interpreter: the whole pyenv root (other versions and shims could stand in for it);
    * Debian's ``/usr`` (or ``/usr/local``) Python: every ``python3*`` executable, stdlib and
      ``dist-packages`` directory under ``/usr`` and ``/usr/local``, and ``libpython3*``;
    * anything else (uv-managed, a custom prefix): the prefix itself.

    Only existing paths are returned. System libraries such as libssl stay: a root without them
    is :func:`glibc_root`'s job, not this one's.
    """
    prefix = Path(os.path.realpath(source_prefix))
    pyenv_root = _pyenv_root_of(prefix)
    if pyenv_root is not None:
        return [pyenv_root]
    if prefix in (Path("/usr"), Path("/usr/local")):
        patterns = [
            "/usr/bin/python3*",
            "/usr/local/bin/python3*",
            "/usr/lib/python3*",
            "/usr/local/lib/python3*",
            "/usr/lib/*/libpython3*",
            "/usr/local/lib/libpython3*",
        ]
        found = {Path(p) for pattern in patterns for p in glob.glob(pattern)}
        return sorted(found)
    return [prefix] if prefix.exists() else []


# --------------------------------------------------------------------------- cached roots
# The machinery lives in venvpack.roots (``venvpack verify`` needs it too); tests keep their
# own cache directory, default_cache() above.


def glibc_root(cache: Path | None = None) -> Path:
    """A root with nothing but this host's libc6, ``dash`` and libc-only coreutils
    (:func:`venvpack.roots.glibc_root`), cached under ``cache`` (default
    :func:`default_cache`). Shared between tests: use it through :func:`run_in_root`."""
    return _glibc_root(cache if cache is not None else default_cache())


def debootstrap_root(suite: str, cache: Path | None = None) -> Path:
    """A ``debootstrap --variant=minbase <suite>`` root (:func:`venvpack.roots.debootstrap_root`)
    in ``cache`` (default :func:`default_cache`). Never write to it: take a :func:`fresh_copy`."""
    problem = debootstrap_problem()
    if problem:
        raise SandboxUnavailable(problem)
    return _debootstrap_root(suite, cache if cache is not None else default_cache())


def old_glibc_root(suite: str, cache: Path | None = None) -> Path:
    """:func:`glibc_root`, but with the libc6, dash and coreutils of the ``debootstrap`` root of
    ``suite`` (``bullseye``: glibc 2.31) instead of the host's.

    What an artifact that claims an old glibc floor is run in: it must carry everything but
    glibc, and everything it carries must also be content with that older glibc. Built in about
    a second from the cached :func:`debootstrap_root` (which needs root and the mirror once).
    """
    cache = cache if cache is not None else default_cache()
    return _glibc_root(cache, base=debootstrap_root(suite, cache))


def foreign_problem(machine: str) -> str | None:
    """Why :func:`sysroot` or :func:`machine_root` cannot serve ``machine`` here (no
    debootstrap, not root, binfmt_misc not starting its programs), or None."""
    return debootstrap_problem() or emulation_problem(machine)


def sysroot(
    suite: str, machine: str, packages: tuple[str, ...] = (), cache: Path | None = None
) -> Path:
    """``machine``'s files of ``suite``'s required packages and ``packages``, unpacked as they
    come (:func:`venvpack.roots.sysroot`), in ``cache`` (default :func:`default_cache`).
    Needs no emulation; never write to it."""
    problem = debootstrap_problem()
    if problem:
        raise SandboxUnavailable(problem)
    return _sysroot(suite, machine, packages, cache if cache is not None else default_cache())


def machine_root(name: str, machine: str, cache: Path | None = None) -> Path:
    """The clean root ``name`` (``glibc``, ``glibc-2.31``, ``bullseye``, ``bookworm``,
    ``trixie``: :data:`venvpack.roots.ROOT_NAMES`) made of ``machine``'s packages, in
    ``cache`` (default :func:`default_cache`). The glibc roots come from :func:`sysroot`
    without emulation; the Debian ones run debootstrap's second stage under qemu (minutes,
    once). Use them as the host's: :func:`run_in_root`, :func:`fresh_copy`."""
    problem = foreign_problem(machine)
    if problem:
        raise SandboxUnavailable(problem)
    return _get_root(name, cache if cache is not None else default_cache(), machine)


Builder = Callable[[Path], None]
"""Fills a new directory (given empty) with what :func:`build_once` caches."""


def build_once(cache: Path, name: str, build: Builder) -> Path:
    """``cache/name``, built by ``build(tmpdir)`` once, atomically and under a lock (the
    directory existing means it is whole): for test fixtures other than roots."""
    return _build_once(cache, name, build)


def cache_key(*parts: str) -> str:
    """A short digest of ``parts`` (versions, architecture, a format number) for cache names."""
    return _cache_key(*parts)


def package_files(root: Path, package: str) -> list[Path]:
    """The paths dpkg lists for ``package`` installed in ``root`` (``/`` for the host), as seen
    from inside ``root``, read with ``dpkg-query --admindir`` without running anything there."""
    return _dpkg_files(package, root)


# --------------------------------------------------------------------------- running in roots


def run_in_root(
    root: Path,
    argv: Sequence[StrPath],
    *,
    binds: Mapping[Path, StrPath] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: StrPath = "/",
    writable: bool = False,
    network: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``root`` as ``/`` (fresh /dev, /proc, /dev/shm and /tmp tmpfs).

    Read-only by default, so the shared cached root stays pristine: a bind destination missing
    from it (``{env_dir: "/opt/my app"}``) gets its mount point in a tmpfs over the nearest
    existing parent. ``writable=True`` binds the root writable and lets bwrap create mount
    points in it — only for a private copy (a cached root is refused). ``env`` defaults to
    :data:`ROOT_ENV`; nothing of the caller's environment leaks in.
    """
    root = Path(os.path.realpath(root))
    if writable and is_cached_root(root):
        raise ValueError(f"{root} is a shared cached root; run on a fresh_copy() of it")
    mounts = _layout(
        base=root,
        writable=writable,
        tmp=True,
        binds=_binds(binds or {}),
        shadow_missing=not writable,
    )
    return _exec(
        mounts,
        argv,
        cwd=cwd,
        env=env if env is not None else ROOT_ENV,
        network=network,
        timeout=timeout,
        check=check,
    )


def run_in_chroot(
    root: Path,
    argv: Sequence[StrPath],
    *,
    binds: Mapping[Path, StrPath] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: StrPath = "/",
    network: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as root inside a writable Debian root (a :func:`fresh_copy`), as a chroot
    would, but with /proc, /dev and a tmpfs /tmp that dpkg and maintainer scripts need, and no
    mounts left behind. Changes persist in the copy between calls, so a test can ``dpkg -i``,
    run the installed command, then ``dpkg --purge`` and inspect what is left."""
    return run_in_root(
        root,
        argv,
        binds=binds,
        env=env if env is not None else CHROOT_ENV,
        cwd=cwd,
        writable=True,
        network=network,
        timeout=timeout,
        check=check,
    )
