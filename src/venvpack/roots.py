r"""Clean roots: places where nothing of the build host exists, to prove an artifact runs.

``venvpack verify`` and the test suite share them (DESIGN.md §5):

* ``glibc``: this host's ``libc6`` files, ``dash`` as ``/bin/sh`` and the coreutils that need
  only libc: whatever else an artifact needs, it must carry;
* ``glibc-2.31``: the same made of Debian 11's packages (glibc 2.31), from the bullseye root;
* ``bullseye``, ``bookworm``, ``trixie``: ``debootstrap --variant=minbase`` (no Python),
  where ``dpkg -i`` of a produced package really runs.

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
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Union

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection

from venvpack.errors import ConfigError, ToolMissingError

__all__ = [
    "DEBIAN_SUITES",
    "NOBODY",
    "REQUIRED_COREUTILS",
    "ROOT_NAMES",
    "debootstrap_problem",
    "debootstrap_root",
    "default_cache",
    "elf_needed",
    "fresh_copy",
    "get_root",
    "glibc_root",
    "is_cached_root",
    "missing_tools",
    "python_traces",
    "root_glibc",
    "run_in",
]

StrPath = Union[str, "os.PathLike[str]"]

DEBOOTSTRAP_TIMEOUT = 1800.0
DEBIAN_SUITES = ("bullseye", "bookworm", "trixie")
ROOT_NAMES = ("glibc", "glibc-2.31", *DEBIAN_SUITES)
"""The clean roots ``verify --root`` knows."""


def default_cache() -> Path:
    """``$VENVPACK_ROOTS``, else ``~/.cache/venvpack/roots``. Delete it to rebuild (e.g. to
    pick up new Debian point releases)."""
    configured = os.environ.get("VENVPACK_ROOTS")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "venvpack" / "roots"


def get_root(name: str, cache: Path | None = None) -> Path:
    """The cached root called ``name`` (one of :data:`ROOT_NAMES`), built on first use."""
    if name == "glibc":
        return glibc_root(cache)
    if name == "glibc-2.31":
        return glibc_root(cache, base=debootstrap_root("bullseye", cache))
    if name in DEBIAN_SUITES:
        return debootstrap_root(name, cache)
    raise ConfigError(f"unknown root {name!r}: choose from {', '.join(ROOT_NAMES)}")


def root_glibc(root: Path) -> tuple[int, int] | None:
    """The glibc version of the root, from its ``libc.so.6`` ("release version 2.31"; the
    newest GLIBC_x.y symbol version can be older: 2.31 added none)."""
    real_root = os.path.realpath(root)
    for lib in ("usr/lib", "lib", "usr/lib64", "lib64"):
        for candidate in [*sorted((root / lib).glob("*/libc.so.6")), root / lib / "libc.so.6"]:
            path = os.path.realpath(candidate)
            if not os.path.isfile(path) or not path.startswith(real_root + "/"):
                continue
            data = Path(path).read_bytes()
            m = re.search(rb"release version (\d+)\.(\d+)", data)
            if m:
                return int(m.group(1)), int(m.group(2))
            return _newest_verdef(Path(path))
    return None


def _newest_verdef(path: Path) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    with path.open("rb") as fh:
        for section in ELFFile(fh).iter_sections():
            if isinstance(section, GNUVerDefSection):
                for _verdef, auxes in section.iter_versions():
                    for aux in auxes:
                        m = re.match(r"^GLIBC_(\d+)\.(\d+)$", aux.name)
                        if m:
                            version = (int(m.group(1)), int(m.group(2)))
                            best = version if best is None else max(best, version)
    return best


def is_cached_root(root: Path) -> bool:
    """True for a directory made by :func:`_build_once` (it has a ``.lock`` sibling): writing
    into it would corrupt every later use, so only a :func:`fresh_copy` may be written."""
    return _is_cached_root(root)


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


def _build_once(cache: Path, name: str, build: Callable[[Path], None]) -> Path:
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
    """True for a directory made by :func:`_build_once` (it has a ``.lock`` sibling): writing
    into it would corrupt every later test, so writable runs refuse it."""
    resolved = Path(os.path.realpath(root))
    return (resolved.parent / f"{resolved.name}.lock").exists()


def _cache_key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _dpkg_query(base: Path, *args: str) -> str:
    """``dpkg-query`` on the system at ``base`` (the host for ``/``, else a debootstrap root)."""
    admin = [] if base == Path("/") else [f"--admindir={base / 'var/lib/dpkg'}"]
    return subprocess.run(
        ["dpkg-query", *admin, *args], capture_output=True, text=True, check=True
    ).stdout


def _dpkg_files(package: str, base: Path = Path("/")) -> list[Path]:
    """Files of ``package`` as installed on the system at ``base``, absolute in that system."""
    out = _dpkg_query(base, "-L", package)
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

    libc_files = _dpkg_files("libc6", base)
    for path in libc_files:
        _copy_into(root, path, base)
    libc_names = {path.name for path in libc_files}

    def on_base(path: Path) -> Path:
        return base / str(path).lstrip("/")

    def libc_only(binary: Path) -> bool:
        return set(elf_needed(on_base(binary))) <= libc_names

    dash = next(p for p in _dpkg_files("dash", base) if p.name == "dash" and p.parent.name == "bin")
    if not libc_only(dash):
        raise RuntimeError(f"{dash} needs more than libc6: {elf_needed(on_base(dash))}")
    _copy_into(root, dash, base)
    os.symlink("dash", root / "bin" / "sh")

    included = set()
    for path in _dpkg_files("coreutils", base):
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
    arch = _arch()
    key = _cache_key(versions, arch, str(_GLIBC_ROOT_FORMAT))
    if base == Path("/"):
        return _build_once(cache, f"glibc-root-{arch}-{key}", _populate_glibc_root)
    return _build_once(
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
        raise ToolMissingError(f"cannot make a {suite} root: {problem}")
    cache = cache if cache is not None else default_cache()
    name = f"debootstrap-{suite}-{_arch()}-v{_DEBOOTSTRAP_FORMAT}"
    mirror = os.environ.get("VENVPACK_DEBIAN_MIRROR")
    return _build_once(cache, name, _populate_debootstrap(suite, mirror))


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
    if writable and _is_cached_root(root):
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
