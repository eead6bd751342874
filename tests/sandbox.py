"""Sandboxes that prove an artifact runs where nothing of the build host exists (DESIGN.md §5).

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

Roots are built once into a cache directory (``$VENVPACK_TEST_CACHE`` or
``~/.cache/venvpack-tests``), atomically and under a lock, so parallel pytest workers share one
build and an interrupted build never leaves a half-made root behind.

Everything here runs as root (the test machines and CI do): bwrap then needs no setuid bit or
user namespace, debootstrap can create device nodes and ``chown``, and dpkg inside a chroot can
run maintainer scripts.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Callable, NoReturn, Union

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

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
    "fresh_copy",
    "glibc_root",
    "hidden_run",
    "missing_tools",
    "old_glibc_root",
    "package_files",
    "python_hide_list",
    "python_traces",
    "run_in_chroot",
    "run_in_root",
    "unavailable",
]

StrPath = Union[str, "os.PathLike[str]"]

DEFAULT_TIMEOUT = 300.0
"""Seconds before a sandboxed command is killed; a hung artifact must fail, not hang CI."""

DEBOOTSTRAP_TIMEOUT = 1800.0

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

REQUIRED_COREUTILS = (
    "realpath",
    "dirname",
    "basename",
    "cat",
    "env",
    "echo",
    "true",
    "false",
    "rm",
    "sleep",
    "readlink",
    "head",
    "uname",
)
"""Coreutils the glibc root must have; building it fails if one of them needs more than libc.
On Debian 12 ``ls``, ``mkdir``, ``cp``, ``mv``, ``id``, ``stat``, ``install``, ``mkfifo`` and
``mknod`` link ``libselinux`` (and ``cp``/``mv``/``install`` ``libacl``/``libattr``), ``expr``
and ``factor`` link ``libgmp``: they are left out rather than dragging those libraries in."""

_GLIBC_ROOT_FORMAT = 1  # bump when _glibc_root_builder changes, so old caches are not reused
_DEBOOTSTRAP_FORMAT = 1
_ROOT = PurePosixPath("/")
_MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_PYTHON_NAME = re.compile(r"^(lib)?python[23]")


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


def missing_tools(*tools: str) -> list[str]:
    """The subset of ``tools`` not found on PATH (so fixtures can say exactly what to install)."""
    return [tool for tool in tools if shutil.which(tool) is None]


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


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Builder = Callable[[Path], None]
"""Fills a new directory (given empty) with what :func:`build_once` caches."""


def build_once(cache: Path, name: str, build: Builder) -> Path:
    """``cache/name``, built by ``build(tmpdir)`` once: in a temporary directory next to it,
    renamed into place only when complete, under ``cache/name.lock`` so that concurrent pytest
    workers wait for one build instead of racing (the directory existing means it is whole)."""
    final = cache / name
    if final.is_dir():
        return final
    with _locked(cache / f"{name}.lock"):
        if final.is_dir():
            return final
        for stale in cache.glob(f".{name}.tmp-*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=cache))
        try:
            build(work)
            work.chmod(0o755)  # mkdtemp makes it 0700; it becomes "/" of a root
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return final


def _is_cached_root(root: Path) -> bool:
    """True for a directory made by :func:`build_once` (it has a ``.lock`` sibling): writing
    into it would corrupt every later test, so writable runs refuse it."""
    resolved = Path(os.path.realpath(root))
    return (resolved.parent / f"{resolved.name}.lock").exists()


def cache_key(*parts: str) -> str:
    """A short digest of ``parts`` (versions, architecture, a format number) for cache names."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def package_files(root: Path, package: str) -> list[Path]:
    """The paths dpkg lists for ``package`` installed in ``root`` (``/`` for the host), as seen
    from inside ``root``. Read with ``dpkg-query --admindir``, so another Debian release's root
    (a debootstrap copy) is read without running anything inside it."""
    admindir = root / "var" / "lib" / "dpkg"
    out = subprocess.run(
        ["dpkg-query", f"--admindir={admindir}", "-L", package],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Skip "/." and the "diverted by"/"package diverts" lines dpkg adds for diversions.
    return [Path(line) for line in out.splitlines() if line.startswith("/") and line != "/."]


def elf_needed(path: StrPath) -> list[str]:
    """DT_NEEDED entries of an ELF file ([] for anything that is not a dynamic ELF)."""
    with open(path, "rb") as handle:
        if handle.read(4) != b"\x7fELF":
            return []
        handle.seek(0)
        dynamic = ELFFile(handle).get_section_by_name(".dynamic")
        if not isinstance(dynamic, DynamicSection):
            return []
        return [str(getattr(tag, "needed")) for tag in dynamic.iter_tags("DT_NEEDED")]  # noqa: B009 (set by setattr)


def _copy_into(root: Path, path: Path, base: Path) -> None:
    """Copy one file, symlink or directory at ``path`` in the root ``base`` to the same path
    under ``root``.

    Writing through ``root``'s own relative merged-usr links (``lib -> usr/lib``) puts files
    where they are in ``base``; symlinks are copied as symlinks, never followed."""
    dest = root / str(path).lstrip("/")
    source = base / str(path).lstrip("/")
    if source.is_symlink():
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(dest):
            os.symlink(os.readlink(source), dest)
    elif source.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
    elif source.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
    # else: listed by dpkg but absent (dpkg path-exclude, e.g. docs): nothing to copy


def _glibc_root_builder(base: Path) -> Builder:
    """Fills a root with ``base``'s libc6 files, dash as /bin/sh and the libc-only coreutils
    (``base`` is ``/`` for the host, or a debootstrap root for an older glibc)."""

    def populate(root: Path) -> None:
        for name in _MERGED_USR_LINKS:
            link = base / name
            if link.is_symlink() and not os.readlink(link).startswith("/"):
                target = os.readlink(link)
                (root / target).mkdir(parents=True, exist_ok=True)
                os.symlink(target, root / name)

        libc_files = package_files(base, "libc6")
        for path in libc_files:
            _copy_into(root, path, base)
        libc_names = {path.name for path in libc_files}

        def libc_only(binary: Path) -> bool:
            return set(elf_needed(_on(base, PurePosixPath(binary)))) <= libc_names

        dash = next(
            p for p in package_files(base, "dash") if p.name == "dash" and p.parent.name == "bin"
        )
        if not libc_only(dash):
            needed = elf_needed(_on(base, PurePosixPath(dash)))
            raise RuntimeError(f"{dash} needs more than libc6: {needed}")
        _copy_into(root, dash, base)
        os.symlink("dash", root / "bin" / "sh")

        included = set()
        for path in package_files(base, "coreutils"):
            inside = _on(base, PurePosixPath(path))
            is_binary = path.parent.name == "bin" and inside.is_file() and not inside.is_symlink()
            if is_binary and libc_only(path):
                _copy_into(root, path, base)
                included.add(path.name)
        lacking = [name for name in REQUIRED_COREUTILS if name not in included]
        if lacking:
            raise RuntimeError(f"coreutils needing more than libc6 in {base}: {lacking}")

        for name, mode in (("tmp", 0o1777), ("dev", 0o755), ("proc", 0o555), ("root", 0o700)):
            (root / name).mkdir(exist_ok=True)
            (root / name).chmod(mode)
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (root / "etc" / "group").write_text("root:x:0:\n")

    return populate


def _glibc_root_from(base: Path, label: str, cache: Path | None) -> Path:
    cache = cache if cache is not None else default_cache()
    admindir = base / "var" / "lib" / "dpkg"
    versions = subprocess.run(
        [
            "dpkg-query",
            f"--admindir={admindir}",
            "-W",
            "-f",
            "${Package}=${Version}\n",
            "libc6",
            "dash",
            "coreutils",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    arch = _arch()
    key = cache_key(versions, arch, str(_GLIBC_ROOT_FORMAT))
    return build_once(cache, f"glibc-root-{label}{arch}-{key}", _glibc_root_builder(base))


def glibc_root(cache: Path | None = None) -> Path:
    """A root with nothing but Debian's libc6, ``dash`` as ``/bin/sh`` and coreutils that need
    only libc (see :data:`REQUIRED_COREUTILS`), plus empty ``/tmp``, ``/dev``, ``/proc``,
    ``/root`` and an ``/etc/passwd`` with root.

    An artifact that runs here carries every library it needs except glibc itself: there is no
    libssl, libffi, libsqlite3, zlib, no locale data and no Python. Copied from the host's
    installed packages: 19 MB, built in about a second, no network. Cached under
    ``cache`` (default :func:`default_cache`), keyed by the libc6/dash/coreutils versions.
    Shared between tests: use it through :func:`run_in_root`, which binds it read-only.
    """
    return _glibc_root_from(Path("/"), "", cache)


def old_glibc_root(suite: str, cache: Path | None = None) -> Path:
    """:func:`glibc_root`, but with the libc6, dash and coreutils of the ``debootstrap`` root of
    ``suite`` (``bullseye``: glibc 2.31) instead of the host's.

    What an artifact that claims an old glibc floor is run in: it must carry everything but
    glibc, and everything it carries must also be content with that older glibc. Built in about
    a second from the cached :func:`debootstrap_root` (which needs root and the mirror once).
    """
    base = debootstrap_root(suite, cache)
    return _glibc_root_from(base, f"{suite}-", cache)


def python_traces(root: Path) -> list[Path]:
    """Every file or directory under ``root`` whose name starts like a Python interpreter,
    library or stdlib (``python3*``, ``python2*``, ``libpython*``), not following symlinks.
    A clean root must return []. (Debian's ``/usr/share/gcc/python`` — gdb pretty-printers, not a
    Python — does not match.)"""
    found = []
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if _PYTHON_NAME.match(name):
                found.append(Path(directory) / name)
    return sorted(found)


def debootstrap_problem() -> str | None:
    """Why :func:`debootstrap_root` cannot work here, or None."""
    missing = missing_tools("debootstrap", "bwrap", "dpkg")
    if missing:
        return f"missing {', '.join(missing)}; apt-get install debootstrap bubblewrap"
    if os.geteuid() != 0:
        return "debootstrap and chroot installs need root"
    return None


def _populate_debootstrap(suite: str, mirror: str | None) -> Callable[[Path], None]:
    def build(work: Path) -> None:
        command = ["debootstrap", "--variant=minbase", suite, str(work)]
        if mirror:
            command.append(mirror)  # otherwise debootstrap's own default Debian mirror
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT, check=False
        )
        if result.returncode != 0:
            log = work / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-3000:] if log.exists() else result.stderr
            raise RuntimeError(f"debootstrap {suite} failed ({result.returncode}):\n{detail}")
        # debootstrap keeps the downloaded .debs; they would be copied by every fresh_copy.
        for deb in (work / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            deb.unlink()
        traces = python_traces(work)
        if traces:
            raise RuntimeError(
                f"debootstrap --variant=minbase {suite} contains Python ({traces[:5]}); "
                "a clean-root test on it would prove nothing"
            )

    return build


def debootstrap_root(suite: str, cache: Path | None = None) -> Path:
    """A ``debootstrap --variant=minbase <suite>`` root (bullseye, bookworm, trixie, ...),
    built once into ``cache`` (default :func:`default_cache`); asserted to contain no Python.

    Needs root and the Debian mirror (``$VENVPACK_DEBIAN_MIRROR`` overrides debootstrap's
    default). The result is shared: never write to it — take a :func:`fresh_copy` and use
    :func:`run_in_chroot` on the copy (which refuses the cached root itself).
    """
    problem = debootstrap_problem()
    if problem:
        raise SandboxUnavailable(problem)
    cache = cache if cache is not None else default_cache()
    name = f"debootstrap-{suite}-{_arch()}-v{_DEBOOTSTRAP_FORMAT}"
    mirror = os.environ.get("VENVPACK_DEBIAN_MIRROR")
    return build_once(cache, name, _populate_debootstrap(suite, mirror))


def fresh_copy(root: Path, dest: Path) -> Path:
    """A private, writable copy of ``root`` at ``dest`` (which must not exist yet); returns it.

    ``cp -a --reflink=auto``: a reflink where the filesystem can (btrfs, xfs), a plain copy
    elsewhere — for a 175 MB minbase on ext4, about 1 s on an idle machine and up to ~12 s with
    two cores busy (measured). Hardlinks would be instant but are not used: dpkg
    replaces files by rename, but maintainer scripts, ``update-alternatives`` and tests may
    append to files in place, which would silently change the shared cache.
    """
    if os.path.lexists(dest):
        raise FileExistsError(f"{dest} exists; fresh_copy makes a new directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(root), str(dest)], check=True)
    return dest


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
    if writable and _is_cached_root(root):
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
