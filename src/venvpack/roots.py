r"""Clean roots: places where nothing of the build host exists, to prove an artifact runs.

``venvpack verify`` and the test suite share them:

* ``glibc``: this host's ``libc6`` files, ``dash`` as ``/bin/sh`` and the coreutils that need
  only libc: whatever else an artifact needs, it must carry;
* ``glibc-2.31``: the same made of Debian 11's packages (glibc 2.31), from the bullseye root;
* ``bullseye``, ``bookworm``, ``trixie``: ``debootstrap --variant=minbase`` (no Python),
  where ``dpkg -i`` of a produced package really runs.

Each can be made for another machine (:data:`FOREIGN_GLIBC_SUITES` says whose packages the
glibc roots are then made of): its programs run through qemu-user, which binfmt_misc starts
by their path (:func:`venvpack.platform.emulation_problem` says whether it is ready). The
glibc roots are made of the machine's packages as they come (:func:`sysroot`, nothing run);
the Debian roots run debootstrap's second stage under emulation, several minutes once.
:func:`sysroot` also gives a build what another machine's interpreter needs: its files and
libraries, to be read or run with ``qemu-<name> -L SYSROOT``.

Roots are built once into a cache directory (``$VENVPACK_ROOTS``, else
``~/.cache/venvpack/roots``), atomically and under a lock, so concurrent runs share one build
and an interrupted build never leaves a half-made root behind. Building them needs root
(debootstrap creates device nodes and ``chown``\ s), ``dpkg`` and, for the Debian roots, the
Debian mirror (``$VENVPACK_DEBIAN_MIRROR`` overrides debootstrap's default).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Union

from venvpack.elf import defined_versions, is_elf, read_elf
from venvpack.errors import ConfigError, ToolMissingError
from venvpack.glibc import glibc_release
from venvpack.platform import emulation_problem, is_foreign

__all__ = [
    "DEBIAN_SUITES",
    "FOREIGN_GLIBC_SUITES",
    "NOBODY",
    "REQUIRED_COREUTILS",
    "ROOT_NAMES",
    "SANDBOX_IDS",
    "SANDBOX_ID_BASE",
    "build_once",
    "cache_key",
    "debootstrap_problem",
    "debootstrap_root",
    "default_cache",
    "dpkg_files",
    "elf_needed",
    "fresh_copy",
    "get_root",
    "glibc_root",
    "is_cached_root",
    "missing_tools",
    "python_traces",
    "root_glibc",
    "run_in",
    "run_untrusted",
    "sysroot",
]

StrPath = Union[str, "os.PathLike[str]"]

DEBOOTSTRAP_TIMEOUT = 1800.0
DEBIAN_SUITES = ("bullseye", "bookworm", "trixie")
ROOT_NAMES = ("glibc", "glibc-2.31", *DEBIAN_SUITES)
"""The clean roots ``verify --root`` knows."""
FOREIGN_GLIBC_SUITES = {"glibc": "bookworm", "glibc-2.31": "bullseye"}
"""For another machine, the Debian release whose libc6, dash and coreutils make each glibc
root (this host's are Debian 12's, bookworm, on the machines venvpack is tested on)."""


def default_cache() -> Path:
    """``$VENVPACK_ROOTS``, else ``~/.cache/venvpack/roots``. Delete it to rebuild (e.g. to
    pick up new Debian point releases)."""
    configured = os.environ.get("VENVPACK_ROOTS")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "venvpack" / "roots"


def get_root(name: str, cache: Path | None = None, machine: str | None = None) -> Path:
    """The cached root called ``name`` (one of :data:`ROOT_NAMES`) for ``machine`` (default:
    this host's), built on first use."""
    if name not in ROOT_NAMES:
        raise ConfigError(f"unknown root {name!r}: choose from {', '.join(ROOT_NAMES)}")
    if machine is not None and is_foreign(machine):
        if name in FOREIGN_GLIBC_SUITES:
            return glibc_root(cache, base=sysroot(FOREIGN_GLIBC_SUITES[name], machine, (), cache))
        return debootstrap_root(name, cache, machine)
    if name == "glibc":
        return glibc_root(cache)
    if name == "glibc-2.31":
        return glibc_root(cache, base=debootstrap_root("bullseye", cache))
    return debootstrap_root(name, cache)


def root_glibc(root: Path) -> tuple[int, int] | None:
    """The glibc version of the root, from its ``libc.so.6`` ("release version 2.31"; the
    newest GLIBC_x.y symbol version can be older: 2.31 added none)."""
    real_root = os.path.realpath(root)
    for lib in ("usr/lib", "lib", "usr/lib64", "lib64"):
        for candidate in [*sorted((root / lib).glob("*/libc.so.6")), root / lib / "libc.so.6"]:
            path = os.path.realpath(candidate)
            if not os.path.isfile(path) or not path.startswith(real_root + "/"):
                continue
            return glibc_release(Path(path).read_bytes()) or _newest_verdef(Path(path))
    return None


def _newest_verdef(path: Path) -> tuple[int, int] | None:
    found = [m for m in map(_GLIBC_VERSION.match, defined_versions(path)) if m]
    return max(((int(m.group(1)), int(m.group(2))) for m in found), default=None)


_GLIBC_VERSION = re.compile(r"^GLIBC_(\d+)\.(\d+)$")


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

_GLIBC_ROOT_FORMAT = 1  # bump when _populate_glibc_root changes, so old caches are not reused
_DEBOOTSTRAP_FORMAT = 1
_SYSROOT_FORMAT = 1
_DEB_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_PYTHON_NAME = re.compile(r"^(lib)?python[23]")


def missing_tools(*tools: str) -> list[str]:
    """The subset of ``tools`` not found on PATH (so fixtures can say exactly what to install)."""
    return [tool for tool in tools if shutil.which(tool) is None]


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(cache: Path, name: str, build: Callable[[Path], None]) -> Path:
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


def is_cached_root(root: Path) -> bool:
    """True for a directory made by :func:`build_once` (it has a ``.lock`` sibling): writing
    into it would corrupt every later use, so only a :func:`fresh_copy` may be written."""
    resolved = Path(os.path.realpath(root))
    return (resolved.parent / f"{resolved.name}.lock").exists()


def cache_key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _arch(machine: str | None = None) -> str:
    """Debian's architecture name for ``machine`` (None, or this host's: as dpkg says)."""
    if machine is not None and is_foreign(machine):
        from venvpack.emit.deb import debian_arch  # the Debian format names architectures

        return debian_arch(machine).arch
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _dpkg_query(base: Path, *args: str) -> str:
    """``dpkg-query`` on the system at ``base`` (the host for ``/``, else a debootstrap root)."""
    admin = [] if base == Path("/") else [f"--admindir={base / 'var/lib/dpkg'}"]
    return subprocess.run(
        ["dpkg-query", *admin, *args], capture_output=True, text=True, check=True
    ).stdout


def dpkg_files(package: str, base: Path = Path("/")) -> list[Path]:
    """Files of ``package`` as installed on the system at ``base``, absolute in that system."""
    out = _dpkg_query(base, "-L", package)
    # Skip "/." and the "diverted by"/"package diverts" lines dpkg adds for diversions.
    return [Path(line) for line in out.splitlines() if line.startswith("/") and line != "/."]


def elf_needed(path: StrPath) -> list[str]:
    """DT_NEEDED entries of an ELF file ([] for anything that is not a dynamic ELF)."""
    if not is_elf(Path(path)):
        return []
    return list(read_elf(Path(path)).needed)


def _copy_into(root: Path, path: Path, base: Path = Path("/")) -> None:
    """Copy one file, symlink or directory of the system at ``base`` to the same path under
    ``root``.

    Writing through ``root``'s own relative merged-usr links (``lib -> usr/lib``) puts files
    where they are on the source; symlinks are copied as symlinks, never followed."""
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


def _populate_glibc_root(root: Path, base: Path = Path("/")) -> None:
    """Fill ``root`` with libc6's files, dash as /bin/sh and the libc-only coreutils of the
    system at ``base`` (this host, or a debootstrap root of an older Debian)."""
    for name in _MERGED_USR_LINKS:
        host = base / name
        if host.is_symlink() and not os.readlink(host).startswith("/"):
            target = os.readlink(host)
            (root / target).mkdir(parents=True, exist_ok=True)
            os.symlink(target, root / name)

    libc_files = dpkg_files("libc6", base)
    for path in libc_files:
        _copy_into(root, path, base)
    libc_names = {path.name for path in libc_files}

    def on_base(path: Path) -> Path:
        return base / str(path).lstrip("/")

    def libc_only(binary: Path) -> bool:
        return set(elf_needed(on_base(binary))) <= libc_names

    dash = next(p for p in dpkg_files("dash", base) if p.name == "dash" and p.parent.name == "bin")
    if not libc_only(dash):
        raise RuntimeError(f"{dash} needs more than libc6: {elf_needed(on_base(dash))}")
    _copy_into(root, dash, base)
    os.symlink("dash", root / "bin" / "sh")

    included = set()
    for path in dpkg_files("coreutils", base):
        real = on_base(path)
        is_binary = path.parent.name == "bin" and real.is_file() and not real.is_symlink()
        if is_binary and libc_only(path):
            _copy_into(root, path, base)
            included.add(path.name)
    lacking = [name for name in REQUIRED_COREUTILS if name not in included]
    if lacking:
        raise RuntimeError(f"coreutils needing more than libc6 on this host: {lacking}")

    for name, mode in (("tmp", 0o1777), ("dev", 0o755), ("proc", 0o555), ("root", 0o700)):
        (root / name).mkdir(exist_ok=True)
        (root / name).chmod(mode)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")


def glibc_root(cache: Path | None = None, base: Path = Path("/")) -> Path:
    """A root with nothing but Debian's libc6, ``dash`` as ``/bin/sh`` and coreutils that need
    only libc (see :data:`REQUIRED_COREUTILS`), plus empty ``/tmp``, ``/dev``, ``/proc``,
    ``/root`` and an ``/etc/passwd`` with root.

    An artifact that runs here carries every library it needs except glibc itself: there is no
    libssl, libffi, libsqlite3, zlib, no locale data and no Python. Copied from the host's
    installed packages: 19 MB, built in about a second, no network. Cached under
    ``cache`` (default :func:`default_cache`), keyed by the libc6/dash/coreutils versions.
    Shared between tests: use it through :func:`run_in_root`, which binds it read-only.
    """
    cache = cache if cache is not None else default_cache()
    versions = _dpkg_query(
        base, "-W", "-f", "${Package}=${Version}\n", "libc6", "dash", "coreutils"
    )
    # The base's own architecture: another machine's root must not share the host's name.
    arch = (
        _arch() if base == Path("/") else _dpkg_query(base, "-W", "-f", "${Architecture}", "libc6")
    )
    key = cache_key(versions, arch, str(_GLIBC_ROOT_FORMAT))
    if base == Path("/"):
        return build_once(cache, f"glibc-root-{arch}-{key}", _populate_glibc_root)
    return build_once(
        cache, f"glibc-root-from-{arch}-{key}", lambda root: _populate_glibc_root(root, base)
    )


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


def _debootstrap(
    options: Sequence[str], suite: str, work: Path, mirror: str | None, what: str
) -> None:
    """Run ``debootstrap OPTIONS SUITE WORK [MIRROR]`` to make ``what`` (``a bookworm
    root``); ToolMissingError with debootstrap's own error line (a mirror out of reach, a
    suite without the architecture) and its log's end."""
    command = ["debootstrap", *options, suite, str(work)]
    if mirror:
        command.append(mirror)  # otherwise debootstrap's own default Debian mirror
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT, check=False
    )
    if result.returncode != 0:
        said = [
            line.removeprefix("E: ")
            for line in (result.stdout + "\n" + result.stderr).splitlines()
            if line.startswith("E: ")
        ]
        reason = said[-1] if said else f"debootstrap failed (exit status {result.returncode})"
        log = work / "debootstrap" / "debootstrap.log"
        detail = log.read_text(errors="replace")[-3000:] if log.exists() else result.stderr
        raise ToolMissingError(f"cannot make {what}: {reason}", detail.strip())


def _populate_debootstrap(
    suite: str, mirror: str | None, arch: str | None, what: str
) -> Callable[[Path], None]:
    def build(work: Path) -> None:
        # Another machine's root: debootstrap runs the second stage's programs (dpkg,
        # maintainer scripts) in it, through qemu-user started by binfmt_misc.
        options = ["--variant=minbase", *([f"--arch={arch}"] if arch else [])]
        _debootstrap(options, suite, work, mirror, what)
        # debootstrap keeps the packages it downloaded; they would be copied by every
        # fresh_copy. apt's cache holds nothing else but its lock and partial/.
        for cached in (work / "var" / "cache" / "apt" / "archives").iterdir():
            if cached.is_file() and not cached.is_symlink() and cached.name != "lock":
                cached.unlink()
        traces = python_traces(work)
        if traces:
            raise RuntimeError(
                f"debootstrap --variant=minbase {suite} contains Python ({traces[:5]}); "
                "a clean-root test on it would prove nothing"
            )

    return build


def debootstrap_root(suite: str, cache: Path | None = None, machine: str | None = None) -> Path:
    """A ``debootstrap --variant=minbase <suite>`` root (bullseye, bookworm, trixie, ...) for
    ``machine`` (default: this host's), built once into ``cache`` (default
    :func:`default_cache`); asserted to contain no Python.

    Needs root and the Debian mirror (``$VENVPACK_DEBIAN_MIRROR`` overrides debootstrap's
    default); for another machine also qemu-user registered with binfmt_misc, which runs
    debootstrap's second stage (several minutes). The result is shared: never write to it —
    take a :func:`fresh_copy` and use :func:`run_in_chroot` on the copy (which refuses the
    cached root itself).
    """
    problem = debootstrap_problem()
    foreign = machine is not None and is_foreign(machine)
    if not problem and machine is not None and foreign:
        problem = emulation_problem(machine)
    what = f"a {machine} {suite} root" if foreign else f"a {suite} root"
    if problem:
        raise ToolMissingError(f"cannot make {what}: {problem}")
    cache = cache if cache is not None else default_cache()
    arch = _arch(machine)
    name = f"debootstrap-{suite}-{arch}-v{_DEBOOTSTRAP_FORMAT}"
    mirror = os.environ.get("VENVPACK_DEBIAN_MIRROR")
    build = _populate_debootstrap(suite, mirror, arch if foreign else None, what)
    return build_once(cache, name, build)


def sysroot(
    suite: str, machine: str, packages: tuple[str, ...] = (), cache: Path | None = None
) -> Path:
    """The files of Debian ``suite``'s required packages and ``packages`` (with what they
    depend on) for ``machine``, unpacked as they come: a root to read another machine's
    programs and libraries from (``qemu-aarch64 -L SYSROOT``), made without running any of
    them. Built once into ``cache`` (default :func:`default_cache`), keyed by the suite,
    the machine's Debian architecture and the package list.

    ``debootstrap --foreign`` (its first stage: resolving and downloading, unpacking the
    required packages), then every downloaded package unpacked over it and recorded as
    unpacked (not configured: no maintainer script ran) in its dpkg database, so
    ``dpkg-query --admindir=SYSROOT/var/lib/dpkg`` says which package a file is from.
    Needs root and the Debian mirror (``$VENVPACK_DEBIAN_MIRROR``); no emulation.
    """
    problem = debootstrap_problem()
    if problem:
        raise ToolMissingError(f"cannot make a {suite} sysroot: {problem}")
    wanted = tuple(sorted(set(packages)))
    bad = [name for name in wanted if not _DEB_PACKAGE.match(name)]
    if bad:
        raise ConfigError(f"not a Debian package name: {', '.join(map(repr, bad))}")
    cache = cache if cache is not None else default_cache()
    arch = _arch(machine)
    key = cache_key(suite, arch, *wanted, str(_SYSROOT_FORMAT))
    mirror = os.environ.get("VENVPACK_DEBIAN_MIRROR")

    def build(work: Path) -> None:
        options = ["--foreign", f"--arch={arch}", "--variant=minbase"]
        options += [f"--include={','.join(wanted)}"] if wanted else []
        _debootstrap(options, suite, work, mirror, f"a {machine} {suite} sysroot")
        admin = work / "var" / "lib" / "dpkg"
        (admin / "info").mkdir(parents=True, exist_ok=True)
        # Format 1: list files named package:arch for Multi-Arch: same packages, as dpkg
        # itself keeps them (without it dpkg-query looks for unqualified names).
        (admin / "info" / "format").write_text("1\n")
        # debootstrap lists every package it downloaded: "name /var/cache/apt/archives/...".
        debpaths = (work / "debootstrap" / "debpaths").read_text(encoding="utf-8")
        with open(admin / "status", "a", encoding="utf-8") as status:
            for line in sorted(filter(None, debpaths.splitlines())):
                package = work / line.split(" ", 1)[1].lstrip("/")
                status.write(_unpack_recorded(package, work))
                package.unlink()
        # The second stage's scripts: useless without the packages, and no part of a root.
        shutil.rmtree(work / "debootstrap")

    return build_once(cache, f"sysroot-{suite}-{arch}-{key}", build)


def _unpack_recorded(package: Path, root: Path) -> str:
    """Unpack the Debian ``package`` into ``root`` through its merged-/usr links (``bin ->
    usr/bin``), as dpkg would, and write its file list to ``root``'s dpkg database; its
    status paragraph. (``dpkg --field`` and ``--fsys-tarfile`` hand the package to dpkg's
    own archive tool.)"""
    control = subprocess.run(
        ["dpkg", "--field", str(package)], capture_output=True, text=True, check=True
    ).stdout
    fields = {}
    for line in control.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    data = subprocess.run(
        ["dpkg", "--fsys-tarfile", str(package)], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        listed = ["/" + PurePosixPath(name).as_posix() for name in archive.getnames()]
    # dpkg's own -x would replace the merged-/usr links by directories (tar's default).
    subprocess.run(
        ["tar", "-x", "--keep-directory-symlink", "-C", str(root)],
        input=data,
        capture_output=True,
        check=True,
    )
    name = fields["Package"]
    if fields.get("Multi-Arch") == "same":
        name += f":{fields['Architecture']}"
    info = root / "var" / "lib" / "dpkg" / "info" / f"{name}.list"
    info.write_text("".join(f"{path}\n" for path in listed), encoding="utf-8")
    rest = [line for line in control.rstrip("\n").splitlines() if not line.startswith("Package:")]
    return (
        "\n".join([f"Package: {fields['Package']}", "Status: install ok unpacked", *rest]) + "\n\n"
    )


def fresh_copy(root: Path, dest: Path, *, untrusted: bool = False) -> Path:
    """A private, writable copy of ``root`` at ``dest`` (which must not exist yet); returns it.

    ``cp -a --reflink=auto``: a reflink where the filesystem can (btrfs, xfs), a plain copy
    elsewhere, which costs seconds for a minbase root (docs/measurements.md). Hardlinks
    would be instant but are not used: dpkg replaces files by rename, but maintainer
    scripts, ``update-alternatives`` and tests may append to files in place, which would
    silently change the shared cache.

    With ``untrusted``, every entry of the copy is then owned by its own uid and gid plus
    :data:`SANDBOX_ID_BASE`, so that root inside :func:`run_untrusted` owns what root owns in
    ``root`` (and a service user what it owns), and nothing else.
    """
    if os.path.lexists(dest):
        raise FileExistsError(f"{dest} exists; fresh_copy makes a new directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(root), str(dest)], check=True)
    if untrusted:
        _shift_owners(dest)
    return dest


def _shift_owners(tree: Path) -> None:
    """Add :data:`SANDBOX_ID_BASE` to the owner and group of everything in ``tree`` (once per
    inode: ``cp -a`` keeps hardlinks), never following a symlink. ``chown`` clears
    set-user-ID and set-group-ID bits: they are put back."""
    seen: set[int] = set()
    for directory, dirnames, filenames in os.walk(tree):
        paths = [directory] if directory == str(tree) else []
        for path in paths + [os.path.join(directory, n) for n in dirnames + filenames]:
            st = os.lstat(path)
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                if st.st_ino in seen:
                    continue
                seen.add(st.st_ino)
            if st.st_uid >= SANDBOX_IDS or st.st_gid >= SANDBOX_IDS:
                raise ValueError(f"{path}: owner {st.st_uid}:{st.st_gid} is beyond the sandbox")
            uid, gid = SANDBOX_ID_BASE + st.st_uid, SANDBOX_ID_BASE + st.st_gid
            os.chown(path, uid, gid, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(st.st_mode))


# -- running in a root ------------------------------------------------------------------

NOBODY = 65534
"""The unprivileged user tarballs are unpacked and run as."""


def _parents_under_tmp(dest: str) -> list[str]:
    """Mount points below the sandbox's fresh ``/tmp`` need their parents made 0755 (bwrap
    would make them 0700, locking out an unprivileged user)."""
    parts = Path(dest).parents
    return [str(p) for p in reversed(list(parts)) if str(p).startswith("/tmp/")]


def _inner_args(root: str, binds: list[tuple[str, str]], *, writable: bool, proc: str) -> list[str]:
    args = ["--bind" if writable else "--ro-bind", root, "/", "--dev", "/dev"]
    args += ["--proc", "/proc"] if proc == "new" else ["--ro-bind", "/proc", "/proc"]
    args += ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/dev/shm"]
    made: set[str] = set()
    for source, dest in binds:
        for parent in _parents_under_tmp(dest):
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--bind", source, dest]
    return args


def run_in(
    root: Path,
    argv: list[str],
    *,
    binds: dict[Path, str] | None = None,
    env: dict[str, str] | None = None,
    user: int | None = None,
    writable: bool = False,
    network: bool = False,
    timeout: float = 300.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``root`` as ``/`` (fresh /dev, /proc, /tmp), without the network.

    ``binds`` maps host paths to sandbox paths below ``/tmp`` (spaces allowed) or existing
    directories. With ``user``, the command runs as that uid (and gid) with no capabilities:
    bwrap runs as root only to bind the root, whose cache directory that user may not
    traverse, then drops to ``user`` and sandboxes itself once more. Writable only for a
    :func:`fresh_copy` (a cached root is refused)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise ToolMissingError("bwrap not found on PATH; apt-get install bubblewrap")
    if writable and is_cached_root(root):
        raise ValueError(f"{root} is a shared cached root; run on a fresh_copy() of it")
    pairs = [(os.path.abspath(src), dest) for src, dest in (binds or {}).items()]
    tail = ["--unshare-pid", "--die-with-parent", "--chdir", "/"]
    tail += [] if network else ["--unshare-net"]
    if user is None:
        command = [bwrap, *_inner_args(str(root), pairs, writable=writable, proc="new")]
        command += [*tail, "--unshare-ipc", "--", *argv]
    else:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise ToolMissingError("setpriv not found on PATH; apt-get install util-linux")
        outer = [bwrap, "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        outer += ["--perms", "0755", "--tmpfs", "/run", "--perms", "0755", "--dir", "/run/vp"]
        outer += ["--ro-bind", str(root), "/run/vp/root"]
        staged: list[tuple[str, str]] = []
        for i, (src, dest) in enumerate(pairs):
            outer += ["--bind", src, f"/run/vp/b{i}"]
            staged.append((f"/run/vp/b{i}", dest))
        outer += ["--unshare-pid", "--die-with-parent", "--"]
        drop = [setpriv, f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]
        inner = [bwrap, *_inner_args("/run/vp/root", staged, writable=False, proc="bind")]
        command = [*outer, *drop, *inner, *tail, "--", *argv]
    return subprocess.run(
        command,
        env=env if env is not None else {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- running untrusted code --------------------------------------------------------------

SANDBOX_ID_BASE = 0x76700000
"""The host uid and gid that uid and gid 0 of :func:`run_untrusted`'s user namespace are
(1987051520; uid ``n`` inside is this plus ``n``, for :data:`SANDBOX_IDS` ids). Chosen far from
every range in use: login accounts (1000-60000), useradd's ``/etc/subuid`` ranges (100000 to
600100000 by default), systemd-nspawn's container range (524288-1879048191) and systemd's
foreign range (0x7FFE0000), below 2^31 for tools that read ids as signed numbers."""
SANDBOX_IDS = 65536
"""Ids mapped into the sandbox: root, the system and service users a maintainer script may
create (adduser picks them below 1000), ``nobody`` (65534)."""

_HOST_SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@contextlib.contextmanager
def _user_namespace() -> Iterator[int]:
    """A file descriptor of a new user namespace mapping ids 0 to ``SANDBOX_IDS - 1`` to the
    host's :data:`SANDBOX_ID_BASE` onwards.

    ``unshare --user`` makes it and waits; its maps are written from here (root of the host
    may map any range; util-linux 2.38's ``--map-users`` runs ``newuidmap``, which wants an
    ``/etc/subuid`` entry). The namespace lives on through the descriptor."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise ToolMissingError("unshare not found on PATH; apt-get install util-linux")
    holder = subprocess.Popen(
        [unshare, "--user", "--", "sleep", "infinity"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    namespace = None
    try:
        if _unshared(holder.pid, holder.poll):
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{holder.pid}/{name}", "w") as handle:
                    handle.write(f"0 {SANDBOX_ID_BASE} {SANDBOX_IDS}\n")
            namespace = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        holder.kill()
        _out, err = holder.communicate()
    if namespace is None:
        raise ToolMissingError("cannot create a user namespace (unshare --user)", err.strip())
    try:
        yield namespace
    finally:
        os.close(namespace)


def _unshared(pid: int, exited: Callable[[], int | None]) -> bool:
    """Wait until process ``pid`` is in a user namespace of its own; False if it exits first."""
    own = os.stat("/proc/self/ns/user").st_ino
    deadline = time.monotonic() + 30
    while exited() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # gone, or between its exec and unshare(2)
            if os.stat(f"/proc/{pid}/ns/user").st_ino != own:
                return True
        time.sleep(0.001)
    return False


def _host_system() -> list[str]:
    """bwrap arguments making the sandbox's ``/`` this host's ``/usr`` (read-only) and what
    a program of it needs to start (its merged-usr links, ``/etc/ld.so.cache``), nothing more."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _HOST_SYSTEM_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return [*args, "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]


def run_untrusted(
    root: Path,
    argv: list[str],
    *,
    root_at: str = "/",
    files: dict[Path, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as root of a sandbox that has no capability on the host, with ``root`` (a
    :func:`fresh_copy` made ``untrusted``) writable at ``root_at``.

    The sandbox is a user namespace whose ids 0-65535 are the host's :data:`SANDBOX_ID_BASE`
    onwards, so root inside owns the copy and nothing of the host; every other namespace
    (mount, pid, network, IPC, UTS, cgroup) is its own, and ``CAP_SYS_ADMIN`` is dropped, so
    nothing can be mounted or remounted writable even there. With ``root_at="/"`` the copy is
    the whole file system; elsewhere, ``/`` is this host's ``/usr`` read-only, for a host tool
    that acts on a root from outside (``rpm --root``) and whose scripts may escape a chroot.
    ``files`` are bound read-only, each as a single file (paths below ``/tmp``, a fresh
    tmpfs, as are ``/dev/shm``, ``/dev`` and ``/proc``). Mounts live and die with the
    sandbox's own mount namespace: nothing stays mounted on the host. ``root`` and ``files``
    are bound by the sandbox's ids, which have no rights on the host: every directory above
    them must be searchable by others (mode ``o+x``).
    """
    bwrap, nsenter = shutil.which("bwrap"), shutil.which("nsenter")
    if bwrap is None or nsenter is None:
        raise ToolMissingError("running packages needs bwrap and nsenter (bubblewrap, util-linux)")
    if is_cached_root(root):
        raise ValueError(f"{root} is a shared cached root; run on a fresh_copy() of it")
    if os.lstat(root).st_uid != SANDBOX_ID_BASE:
        raise ValueError(f"{root} is not the sandbox's; make it with fresh_copy(untrusted=True)")
    layout = [] if root_at == "/" else _host_system()
    layout += ["--bind", str(root), root_at, "--dev", "/dev", "--proc", "/proc"]
    layout += ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/dev/shm"]
    for source, dest in (files or {}).items():
        layout += ["--ro-bind", os.path.abspath(source), dest]
    namespaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    namespaces += ["--unshare-cgroup", "--die-with-parent", "--new-session"]
    with _user_namespace() as userns:
        # nsenter keeps the descriptor open for bwrap and the sandbox: it names the namespace
        # they are already in, nothing more.
        enter = [nsenter, f"--user=/proc/self/fd/{userns}", "--setuid=0", "--setgid=0", "--"]
        sandbox = [bwrap, *layout, *namespaces, "--cap-drop", "CAP_SYS_ADMIN", "--chdir", "/"]
        return subprocess.run(
            [*enter, *sandbox, "--", *argv],
            env=env if env is not None else {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            pass_fds=(userns,),
            check=False,
        )
