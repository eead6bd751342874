"""A python-build-standalone look-alike, built from source once and cached.

What users hand venvpack today is often a uv-managed python-build-standalone (PBS) interpreter.
PBS itself cannot be downloaded here, so this module builds an interpreter with
the traits that matter to venvpack, from Debian's copy of the upstream CPython source:

* built on an old glibc: inside a fresh copy of the cached ``debootstrap`` **bullseye** root
  (glibc 2.31), so nothing in it may need a newer glibc than that;
* ``--prefix=/install`` and no ``--enable-shared``: libpython is linked statically into
  ``bin/python3.11``; ``_sysconfigdata_*.py`` and ``config-3.11-*/Makefile`` name ``/install``,
  which does not exist on the machine that uses it;
* ``bin/python3.11`` has ``RPATH=$ORIGIN/../lib`` as **DT_RPATH** (``--disable-new-dtags``), and the
  non-glibc libraries its extension modules need (bullseye's libssl.so.1.1, libffi.so.7,
  libsqlite3, ncurses, readline, ...) are copied into its own ``lib/``. The ``lib-dynload``
  modules carry no search path of their own: they find those libraries only through the
  executable's DT_RPATH, which glibc also applies to objects dlopened into the process. That is
  the case a graft planner gets wrong if it looks only at each file's own RPATH/RUNPATH: it would
  copy the build host's (newer) libsqlite3 and raise the environment's glibc floor;
* an ``EXTERNALLY-MANAGED`` file in the stdlib;
* uv's layout: ``uv-python-<key>/cpython-3.11.N-linux-x86_64-gnu/`` plus the alias symlink
  ``cpython-3.11-linux-x86_64-gnu`` pointing at it, so a uv-style discovery test
  (``UV_PYTHON_INSTALL_DIR``) can use :attr:`StandalonePython.install_dir` as is.

Cost, measured on the 2-core test machine, which other test suites shared: cold, 302 s (a
fresh copy of the bullseye root, ``apt-get`` of the build dependencies, configure, ``make -j2``
without PGO/LTO, ``make install`` with its byte-compilation) plus 55 s for the bullseye
debootstrap when that is not cached yet; 572 s for both together with a load average of 8.
So 6 to 10 minutes in CI, once; 364 MB on disk. Afterwards it costs nothing: the result is
cached under :func:`sandbox.default_cache`, keyed by the upstream version and :data:`_FORMAT`,
built atomically under a lock like every cached root. Needs root, ``bwrap``, ``debootstrap``
and the Debian mirror.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import sandbox

__all__ = [
    "BUILD_DIR",
    "BUILD_PREFIX",
    "UPSTREAM_VERSION",
    "StandalonePython",
    "standalone_problem",
    "standalone_python",
]

SOURCE_SUITE = "bookworm"
"""Where the source comes from: bookworm's ``python3.11`` is upstream 3.11.2 (its orig tarball)."""
SOURCE_PACKAGE = "python3.11"
UPSTREAM_VERSION = "3.11.2"
"""Pinned so the cache key says what is inside; the build fails if the mirror has another one."""
BUILD_PREFIX = "/install"
"""PBS's build prefix: named by sysconfigdata and the config Makefile, absent everywhere else."""

BUILD_DIR = f"/build/Python-{UPSTREAM_VERSION}"
"""Where it was compiled: named by sysconfigdata (``abs_builddir``) and C assert messages."""

_FORMAT = 1  # bump when the build below changes, so an old cached interpreter is not reused
_BUILD_TIMEOUT = 3600.0
_SHORT = ".".join(UPSTREAM_VERSION.split(".")[:2])
_TRIPLE = "linux-x86_64-gnu"

# What CPython's configure looks for, from bullseye. No tk-dev: PBS's tkinter is out of scope,
# and venvpack prunes tkinter by default anyway.
_BUILD_DEPENDS = (
    "gcc",
    "make",
    "libc6-dev",
    "pkg-config",
    "xz-utils",
    "libssl-dev",
    "libffi-dev",
    "zlib1g-dev",
    "libsqlite3-dev",
    "libbz2-dev",
    "liblzma-dev",
    "libncursesw5-dev",
    "libreadline-dev",
    "uuid-dev",
    "libgdbm-dev",
    "libgdbm-compat-dev",
    "libexpat1-dev",
    "libmpdec-dev",
)

# Runs inside the bullseye copy. LINKFORSHARED is what configure adds to the link of the
# python binary only, so the DT_RPATH lands on bin/python3.11 and on no extension module.
# ``$$`` is make's escape for ``$`` and the backslash keeps the recipe's shell off it.
# System expat and libmpdec (PBS bundles both) make two more carried libraries to resolve.
_BUILD_SCRIPT = r"""
set -eu
cd /build
tar -xf {orig}
cd {build_dir}
./configure --prefix={prefix} --with-ensurepip=no --with-system-expat \
    --with-system-libmpdec \
    'LINKFORSHARED=-Xlinker -export-dynamic -Wl,--disable-new-dtags -Wl,-rpath,\$$ORIGIN/../lib' \
    >/build/configure.log 2>&1 || {{ tail -50 /build/configure.log; exit 1; }}
make -j"$(nproc)" >/build/make.log 2>&1 || {{ tail -80 /build/make.log; exit 1; }}
make install DESTDIR=/out >/build/install.log 2>&1 || {{ tail -50 /build/install.log; exit 1; }}
"""


@dataclass(frozen=True)
class StandalonePython:
    """The built interpreter, laid out as ``uv python install`` would."""

    install_dir: Path
    """uv's ``python`` directory (what ``UV_PYTHON_INSTALL_DIR`` would name)."""
    prefix: Path
    """``install_dir/cpython-3.11.N-linux-x86_64-gnu``: the interpreter's real prefix."""
    alias: Path
    """``install_dir/cpython-3.11-linux-x86_64-gnu``, a symlink to ``prefix``."""
    executable: Path
    """``prefix/bin/python3.11``."""
    version: str


def standalone_problem() -> str | None:
    """Why :func:`standalone_python` cannot build here, or None."""
    return sandbox.debootstrap_problem()


def standalone_python(cache: Path | None = None) -> StandalonePython:
    """The cached PBS look-alike; built on first use (see the module docstring for the cost)."""
    cache = cache if cache is not None else sandbox.default_cache()
    key = sandbox.cache_key(SOURCE_SUITE, SOURCE_PACKAGE, UPSTREAM_VERSION, str(_FORMAT))
    install_dir = sandbox.build_once(cache, f"uv-python-{UPSTREAM_VERSION}-{key}", _build(cache))
    prefix = install_dir / f"cpython-{UPSTREAM_VERSION}-{_TRIPLE}"
    return StandalonePython(
        install_dir=install_dir,
        prefix=prefix,
        alias=install_dir / f"cpython-{_SHORT}-{_TRIPLE}",
        executable=prefix / "bin" / f"python{_SHORT}",
        version=UPSTREAM_VERSION,
    )


def _build(cache: Path) -> sandbox.Builder:
    def build(work: Path) -> None:
        bullseye = sandbox.debootstrap_root("bullseye", cache)
        scratch = sandbox.fresh_copy(bullseye, work / ".build-root")
        try:
            out = _compile(scratch)
            prefix = work / f"cpython-{UPSTREAM_VERSION}-{_TRIPLE}"
            # A rename within one filesystem: the tree the build made, byte for byte.
            os.rename(out, prefix)
            _carry_libraries(scratch, prefix)
            # PEP 668 marker, as PBS ships it (venvpack must not carry it into environments).
            (prefix / "lib" / f"python{_SHORT}" / "EXTERNALLY-MANAGED").write_text(
                "[externally-managed]\nError=This Python installation is managed by uv and "
                "should not be modified.\n"
            )
            os.symlink(prefix.name, work / f"cpython-{_SHORT}-{_TRIPLE}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return build


def _in_root(root: Path, argv: list[str], *, network: bool = False, cwd: str = "/") -> str:
    result = sandbox.run_in_chroot(
        root, argv, network=network, cwd=cwd, timeout=_BUILD_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}) in the bullseye build root:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def _compile(root: Path) -> Path:
    """Download the source and build dependencies into ``root``, build, return the installed
    tree (``root/out/install``)."""
    # apt over plain http needs only name resolution; the host's apt config is never touched.
    shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
    mirror = os.environ.get("VENVPACK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    (root / "etc" / "apt" / "sources.list.d" / "source.list").write_text(
        f"deb-src {mirror} {SOURCE_SUITE} main\n"
    )
    (root / "build").mkdir()
    _in_root(root, ["apt-get", "-q", "update"], network=True)
    _in_root(
        root,
        ["apt-get", "-q", "install", "-y", "--no-install-recommends", *_BUILD_DEPENDS],
        network=True,
    )
    _in_root(
        root,
        ["apt-get", "-q", "source", "--download-only", SOURCE_PACKAGE],
        network=True,
        cwd="/build",
    )
    origs = sorted((root / "build").glob(f"{SOURCE_PACKAGE}_*.orig.tar.*"))
    if len(origs) != 1:
        raise RuntimeError(f"expected one orig tarball from apt-get source, got {origs}")
    found = re.match(rf"{re.escape(SOURCE_PACKAGE)}_([0-9.]+)\.orig\.", origs[0].name)
    if found is None or found.group(1) != UPSTREAM_VERSION:
        raise RuntimeError(
            f"{SOURCE_SUITE}'s {SOURCE_PACKAGE} is now {origs[0].name}; "
            f"update UPSTREAM_VERSION (and the tests that name it)"
        )
    with tarfile.open(origs[0]) as tar:  # cheap sanity check before a long build
        top = tar.next()
    if top is None or not top.name.startswith(f"Python-{UPSTREAM_VERSION}"):
        raise RuntimeError(f"{origs[0].name} does not hold Python-{UPSTREAM_VERSION}")
    script = _BUILD_SCRIPT.format(orig=origs[0].name, build_dir=BUILD_DIR, prefix=BUILD_PREFIX)
    (root / "build" / "build.sh").write_text(script)
    _in_root(root, ["sh", "/build/build.sh"])
    return root / "out" / BUILD_PREFIX.lstrip("/")


def _carry_libraries(root: Path, prefix: Path) -> None:
    """Copy into ``prefix/lib`` every non-glibc library the tree's ELF files need, from the
    bullseye root, transitively: the interpreter carries its own dependencies, as PBS does
    (PBS links most of them statically; copying them is the form that tests a graft planner).

    Resolved by soname in bullseye's multiarch directories; glibc's own libraries (those of
    bullseye's libc6 package) stay behind, as the target provides them."""
    glibc = {p.name for p in sandbox.package_files(root, "libc6")}
    search = [root / "lib" / "x86_64-linux-gnu", root / "usr" / "lib" / "x86_64-linux-gnu"]
    lib = prefix / "lib"
    pending = [p for p in prefix.rglob("*") if p.is_file() and not p.is_symlink()]
    seen: set[str] = set()
    while pending:
        path = pending.pop()
        for name in sandbox.elf_needed(path):
            if name in glibc or name in seen:
                continue
            seen.add(name)
            source = next((d / name for d in search if (d / name).exists()), None)
            if source is None:
                raise RuntimeError(f"{name}, needed by {path}, is not in the bullseye root")
            # By content and under its soname, as the loader looks it up.
            shutil.copyfile(os.path.realpath(source), lib / name)
            (lib / name).chmod(0o644)
            pending.append(lib / name)
