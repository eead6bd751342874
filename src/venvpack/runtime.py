"""Stage ``runtime``: copy the interpreter into ``<root>/python`` and prune it.

The layout below ``python/`` mirrors the source relative to its base prefix
(``bin/python3.X``, ``lib/python3.X``, ``lib/libpython3.X.so.1.0``), which is what CPython's
own path search expects to find next to its binary. Files are copied, never hardlinked:
later stages rewrite files, and the source interpreter must never change under its owner.

The interpreter executable is linked again from the source's static ``libpython3.X.a``
when the source's needs more than the C library -- a shared libpython (pyenv), or zlib and
expat built into it (Debian's ``/usr/bin/python3.X``) -- and the archive and a C compiler
are at hand: venvpack's own ``main`` (``packaging-templates/runtime/main.c``) linked with
it, exporting its symbols for extension modules, with every other library it needs
linked in statically where its archive exists, as python-build-standalone is built.
``python -m venv --copies`` (and ``venv.EnvBuilder()``) copy only the binary; a copy of one
that needs libpython or libz finds it through ``$ORIGIN/../lib`` nowhere outside the
environment and exits 127. The shared libpython is then kept only with ``--keep-dev``, for
embedding. That ``main`` takes the interpreter's home from ``/proc/self/exe``, so it finds
its standard library from wherever the tree is, whatever ``argv[0]`` says.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from venvpack import templates
from venvpack.cache import build_cache
from venvpack.elf import is_elf, is_pie, read_elf
from venvpack.errors import BuildError, ConfigError
from venvpack.interpreter import Interpreter
from venvpack.platform import system_libraries
from venvpack.proc import run
from venvpack.sysroot import Sysroot
from venvpack.validate import module_name

__all__ = ["Runtime", "copy_runtime", "exclude_modules", "validate_module_name"]

log = logging.getLogger("venvpack")

# A kept static interpreter is named by the SHA-256 of its bytes (docs/how-it-works.md).
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# Stdlib directories (relative to lib/python3.X) that a deployed application never needs.
_PRUNED_DIRS = frozenset(
    {
        "test",
        "idlelib",
        "turtledemo",
        "lib2to3/tests",
        "ctypes/test",
        "distutils/tests",
        "sqlite3/test",
        "unittest/test",
        "tkinter/test",
        "__phello__",
        "site-packages",
        "dist-packages",
    }
)
_TK_DIRS = frozenset({"tkinter"})
# sitecustomize.py is the build host's site hook (Debian links it to /etc/python3.X/, where the
# target's own file, or none, would run at every start); an application's belongs in its
# site-packages, which a stdlib copy would shadow. Upstream CPython installs none.
_PRUNED_FILES = frozenset({"EXTERNALLY-MANAGED", "turtle.py", "sitecustomize.py"})
# Extension modules that exist only for CPython's own test suite.
_TEST_EXTENSIONS = (
    "_test",
    "_ctypes_test.",
    "_xxtestfuzz.",
    "xxlimited.",
    "xxlimited_35.",
    "xxsubtype.",
)


@dataclass(frozen=True)
class Runtime:
    """The bundled interpreter inside an environment; all paths absolute."""

    root: Path
    """``<env>/python``: the interpreter's own prefix."""
    executable: Path
    """``python/bin/python3.X``."""
    stdlib: Path
    """``python/lib/python3.X``."""
    libpython: Path | None
    sysconfigdata: Path | None
    short_version: str
    version: str
    """Full version, e.g. ``3.12.1``."""
    source_prefix: Path
    """The source interpreter's base prefix, to find leftovers that name it."""
    build_prefix: Path | None
    """The prefix the source was configured with, when it is not where the source is:
    python-build-standalone's ``/install``, still named by its sysconfigdata, config Makefile
    and pkg-config files. None when it is ``source_prefix`` (pyenv, Debian)."""
    compile_dirs: tuple[Path, ...]
    """Where the source was compiled (its sysconfigdata's ``abs_builddir``, ``abs_srcdir``;
    pyenv's ``/tmp/python-build.*``): C ``__FILE__`` strings in its ELF files and the
    ``--keep-dev`` Makefile name it."""
    origins: tuple[tuple[Path, Path], ...]
    """(directory in ``root``, the source directory its files were copied from): where the
    copied files' ``$ORIGIN`` was, so the graft planner finds what they need where the loader
    found it (python-build-standalone's libraries in its own ``lib/``)."""


def copy_runtime(interp: Interpreter, dest: Path, *, with_tk: bool, keep_dev: bool) -> Runtime:
    """Copy ``interp`` into ``dest`` (``<env>/python``), pruned, with debug info stripped."""
    short = interp.short_version
    base = interp.base_prefix
    bindir = dest / "bin"
    bindir.mkdir(parents=True)
    exe = bindir / f"python{short}"
    static = _needs_relinking(interp) and _link_static(interp, exe)
    if not static:
        shutil.copy2(interp.executable, exe)
    os.symlink(exe.name, bindir / "python3")
    origins = [(dest, base), (bindir, interp.executable.parent)]

    stdlib = dest / _under(base, interp.stdlib, f"lib/python{short}")
    ignore = _make_ignore(interp.stdlib, with_tk=with_tk, keep_dev=keep_dev, libpl=interp.libpl)
    shutil.copytree(interp.stdlib, stdlib, symlinks=True, ignore=ignore)
    origins.append((stdlib, interp.stdlib))
    if interp.lib_dynload is not None and not _inside(interp.lib_dynload, interp.stdlib):
        target = dest / _under(base, interp.lib_dynload, f"lib/python{short}/lib-dynload")
        shutil.copytree(interp.lib_dynload, target, symlinks=True, ignore=ignore)
        origins.append((target, interp.lib_dynload))
    (stdlib / "site-packages").mkdir(exist_ok=True)

    libpython = None
    if interp.libpython is not None and (keep_dev or not static):
        libpython = dest / "lib" / interp.libpython.name
        libpython.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(interp.libpython, libpython)
        origins.append((libpython.parent, interp.libpython.parent))
    if keep_dev:
        _copy_dev(interp, dest, libpython)

    _materialise_outside_links(dest, origins, interp.sysroot)
    sysconfigdata = stdlib / f"{interp.sysconfigdata}.py"
    build_vars = _build_vars(sysconfigdata) if sysconfigdata.exists() else {}
    _copy_wheel_dir(build_vars.get("WHEEL_PKG_DIR"), base, dest)
    build_prefix = _absolute(build_vars.get("prefix"))
    compile_dirs = {_absolute(build_vars.get(key)) for key in ("abs_builddir", "abs_srcdir")}
    if not interp.foreign:  # this machine's strip does not know another machine's files
        _strip_debug(dest)
    return Runtime(
        root=dest,
        executable=exe,
        stdlib=stdlib,
        libpython=libpython,
        sysconfigdata=sysconfigdata if sysconfigdata.exists() else None,
        short_version=short,
        version=interp.version,
        source_prefix=interp.target_path(base),
        build_prefix=build_prefix if build_prefix not in (None, base) else None,
        compile_dirs=tuple(sorted(d for d in compile_dirs if d is not None and d != Path("/"))),
        origins=tuple(origins),
    )


CACHE_KINDS = ("pyc", "static-python", "seals", "dpkg-owners")
"""What :func:`build_cache` keeps for builds file by file (``envs``, whole environments, is
pruned entry by entry by :mod:`venvpack.envcache`; ``roots`` beside them belong to verify)."""


def prune_build_cache(
    *, max_age: float = 30 * 86400, every: float = 86400, now: float | None = None
) -> int:
    """Remove cache entries not used for ``max_age`` seconds (a hit touches its entry), at
    most once per ``every`` seconds per kind (a stamp file says when it last ran), so the
    cache holds what recent builds use instead of growing with every release of every
    dependency. A part file (written, then renamed into place within seconds) older than a
    day was left by a killed build and goes at once. Returns how many files were removed; a
    cache that cannot be read or written only stays as it is."""
    now = time.time() if now is None else now
    removed = 0
    for kind in CACHE_KINDS:
        top = build_cache(kind)
        if top is None or not top.is_dir():
            continue
        stamp = top / ".last-prune"
        try:
            if now - stamp.stat().st_mtime < every:
                continue
        except OSError:
            pass  # never pruned
        for parent, _dirs, files in os.walk(top, topdown=False):
            for name in files:
                path = os.path.join(parent, name)
                limit = every if name.startswith(".tmp-") or name.endswith(".tmp") else max_age
                try:
                    if path != str(stamp) and now - os.lstat(path).st_mtime > limit:
                        os.unlink(path)
                        removed += 1
                except OSError:
                    pass  # another build's, being replaced or already gone
            if parent != str(top):
                with contextlib.suppress(OSError):
                    os.rmdir(parent)  # only when empty
        with contextlib.suppress(OSError):
            stamp.touch()
            os.utime(stamp, (now, now))
    return removed


def _file_identity(path: Path) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _beyond_libc(path: Path) -> tuple[str, ...]:
    """What the program ``path`` needs besides the C library family's own libraries."""
    system = system_libraries()
    return tuple(n for n in read_elf(path).needed if n not in system)


def _needs_relinking(interp: Interpreter) -> bool:
    """Whether a copy of the source's executable would need more than the C library (its
    shared libpython, or zlib and expat linked in by name as Debian's are): it is then
    linked again. python-build-standalone's needs only the C library and keeps its own,
    and with it the old C library it was linked against. Another machine's interpreter is
    kept as it is: this machine's compiler links for this machine only (what its copy
    needs is grafted from its root)."""
    if interp.foreign:
        return False
    return interp.libpython is not None or bool(_beyond_libc(interp.executable))


def _link_static(interp: Interpreter, exe: Path) -> bool:
    """Link ``exe`` as a static interpreter from the source's ``libpython3.X.a``; False (and
    the reason logged) when there is no archive or no compiler, or the link fails."""
    if interp.libpl is None:
        return False
    archive = interp.libpl / f"libpython{interp.short_version}.a"
    sysconfigdata = interp.stdlib / f"{interp.sysconfigdata}.py"
    build_vars = _build_vars(sysconfigdata) if sysconfigdata.is_file() else {}
    cc = shutil.which(build_vars.get("CC", "cc").split()[0] or "cc") or shutil.which("cc")
    if not archive.is_file() or cc is None:
        why = "no C compiler" if cc is None else f"no {archive.name}"
        needs = ", ".join(_beyond_libc(interp.executable)) or interp.libpython
        log.warning(
            "%s: keeping the interpreter as it is, so a copy of it made outside the "
            "environment ('python -m venv --copies' from it) needs %s and cannot start "
            "where the system lacks it",
            why,
            needs,
        )
        return False
    # Only libraries: -L and -Wl,-rpath of LIBS name the source's prefix. MODLIBS: what the
    # modules built into libpython need (Debian's zlib and pyexpat: -lz -lexpat).
    libs = dict.fromkeys(
        flag
        for key in ("LIBS", "SYSLIBS", "LIBM", "MODLIBS")
        for flag in build_vars.get(key, "").split()
        if flag.startswith("-l")
    )
    system = {_link_name(soname) for soname in system_libraries()}
    linked_in = [lib for lib in libs if lib[2:] not in system and _archive(cc, lib[2:])]
    main = exe.with_name("venvpack-main.c")
    args: list[str | Path] = [
        cc,
        "-O2",
        "-o",
        exe,
        main,
        "-Wl,--export-dynamic",
        "-Wl,--as-needed",
        # Every member, as CPython links its own static python from the objects: an
        # extension module may need a C-API function nothing in the core calls
        # (3.13's _testinternalcapi: _PyInterpreterConfig_InitFromDict).
        "-Wl,--whole-archive",
        archive,
        "-Wl,--no-whole-archive",
        *(lib for lib in libs if lib not in linked_in),
    ]
    if linked_in:
        # In, but not exported: a wheel's own zlib must not bind to this one.
        names = ":".join(f"lib{lib[2:]}.a" for lib in linked_in)
        args += ["-Wl,-Bstatic", *linked_in, "-Wl,-Bdynamic", f"-Wl,--exclude-libs,{names}"]
    if not is_pie(interp.executable):
        args.append("-no-pie")  # linked as the source was: Debian's archive is not PIC
    main_text = templates.render("runtime/main.c", short_version=interp.short_version)
    # The link takes most of the runtime stage (docs/measurements.md) and gives the same
    # bytes for the same archive, compiler and linker: an earlier build's result is copied.
    # They are known by path, size, mtime and inode (hashing the 60 MB archive would cost
    # much of what the cache saves); a reinstalled interpreter or compiler is another key.
    ld = shutil.which("ld")
    key = hashlib.sha256(
        "\0".join(
            [
                main_text,
                *map(str, args[5:]),
                _file_identity(archive),
                _file_identity(Path(cc)),
                _file_identity(Path(ld)) if ld else "",
            ]
        ).encode()
    ).hexdigest()
    cache = build_cache("static-python")
    kept = cache / key if cache is not None else None
    if kept is not None and _copy_kept(kept, exe):
        return True
    main.write_text(main_text, encoding="utf-8")
    try:
        run(args, error=BuildError, what="linking a static interpreter")
    except BuildError as exc:
        log.warning("%s; keeping the shared-libpython interpreter", exc)
        exe.unlink(missing_ok=True)
        return False
    finally:
        main.unlink()
    os.chmod(exe, 0o755)
    if kept is not None:
        _keep(exe, kept)
    return True


def _link_name(soname: str) -> str:
    """``-l`` name of a soname: ``libm.so.6`` -> ``m``."""
    return soname.removeprefix("lib").split(".so", 1)[0]


def _archive(cc: str, name: str) -> bool:
    """Whether the compiler finds the static ``lib<name>.a`` (it prints the bare name when
    it finds none)."""
    try:
        found = run([cc, f"-print-file-name=lib{name}.a"], error=BuildError, what="cc").stdout
    except BuildError:
        return False
    return os.path.isabs(found.strip())


def _keep(exe: Path, kept: Path) -> None:
    """Store ``exe`` in the directory ``kept`` under the name of its SHA-256, hashed while it
    is copied: written to a temporary file and renamed, so no build sees part of it."""
    tmp: str | None = None
    try:
        kept.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=kept, prefix=".tmp-")
        digest = hashlib.sha256()
        with open(fd, "wb") as out, open(exe, "rb") as src:
            while block := src.read(1 << 20):
                digest.update(block)
                out.write(block)
        os.replace(tmp, kept / digest.hexdigest())
    except OSError as exc:
        log.debug("cannot keep the static interpreter in %s: %s", kept, exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a full disk leaves no part file behind


def _copy_kept(kept: Path, exe: Path) -> bool:
    """Copy the static interpreter kept in the directory ``kept`` to ``exe`` if its bytes
    still have the SHA-256 it is named by; False when there is none (a pruning run of
    another build may remove it at any time) or it does not match (it is removed, and the
    caller links again)."""
    try:
        names = sorted(n for n in os.listdir(kept) if _SHA256_HEX.fullmatch(n))
    except OSError:
        return False
    for name in names:
        digest = hashlib.sha256()
        try:
            with open(kept / name, "rb") as src, open(exe, "wb") as out:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
        except OSError:
            exe.unlink(missing_ok=True)
            continue
        if digest.hexdigest() != name:
            log.debug(
                "static-python cache: %s does not match the digest it is filed under; "
                "discarded, linking again",
                kept / name,
            )
            exe.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                (kept / name).unlink()
            continue
        with contextlib.suppress(OSError):
            os.utime(kept / name)  # in use: kept by prune_build_cache
        os.chmod(exe, 0o755)
        log.debug("static interpreter from %s", kept / name)
        return True
    return False


def _build_vars(sysconfigdata: Path) -> dict[str, str]:
    """The string build variables of a ``_sysconfigdata_*.py`` file, read without running it.

    The interpreter's ``sysconfig.get_config_var("prefix")`` cannot tell: it reports where the
    interpreter runs from, while every other build variable still names the configured one.
    """
    try:
        tree = ast.parse(sysconfigdata.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["build_time_vars"]
            and isinstance(node.value, ast.Dict)
        ):
            return {
                key.value: value.value
                for key, value in zip(node.value.keys, node.value.values)
                if isinstance(key, ast.Constant)
                and isinstance(key.value, str)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            }
    return {}


def _absolute(value: str | None) -> Path | None:
    return Path(os.path.normpath(value)) if value and value.startswith("/") else None


def _materialise_outside_links(
    dest: Path, origins: list[tuple[Path, Path]], sysroot: Sysroot | None = None
) -> None:
    """Replace every symlink in ``dest`` whose target is outside it by a copy of the target
    as the source interpreter saw it (dropped when that is missing): a link out of the tree
    names a build-host file that the target has, or has not, or has in another version.
    In another machine's root (``sysroot``) an absolute link leads into that root."""
    mapping = sorted(origins, key=lambda item: -len(item[0].parts))
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in [*filenames, *dirnames]:
            link = Path(dirpath, name)
            if not link.is_symlink():
                continue
            text = os.readlink(link)
            if not os.path.isabs(text) and _inside(
                Path(os.path.normpath(link.parent / text)), dest
            ):
                continue
            source_dir = next(
                (
                    host / link.parent.relative_to(tree)
                    for tree, host in mapping
                    if _inside(link.parent, tree)
                ),
                None,
            )
            if source_dir is None and not os.path.isabs(text):
                link.unlink()  # leads out of the tree to a place nothing maps: not shipped
                log.debug("%s linked out of the tree to %s: dropped", link, text)
                continue
            if sysroot is not None:  # another machine's links lead into its root
                target = sysroot.resolve(
                    sysroot.find(text)
                    if os.path.isabs(text)
                    else (source_dir or link.parent) / text
                )
            else:
                target = Path(os.path.realpath((source_dir or link.parent) / text))
            link.unlink()
            if target.is_dir():
                shutil.copytree(target, link, symlinks=False)
            elif target.is_file():
                shutil.copy2(target, link)
            log.debug(
                "%s linked out of the tree to %s: %s",
                link,
                target,
                "copied" if target.exists() else "dropped",
            )


def _copy_wheel_dir(configured: str | None, base: Path, dest: Path) -> None:
    """The wheels ``ensurepip`` installs from, when the source was configured
    ``--with-wheel-pkg-dir`` (Debian, Fedora: ``/usr/share/python-wheels``, outside the
    stdlib): copied to the same place below the runtime, where the relocated sysconfig's
    ``WHEEL_PKG_DIR`` then points."""
    if not configured or not configured.startswith("/"):
        return
    wheel_dir = Path(os.path.normpath(configured))
    if not wheel_dir.is_dir() or not _inside(wheel_dir, base):
        return
    target = dest / wheel_dir.relative_to(base)
    target.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(wheel_dir.glob("*.whl")):
        shutil.copyfile(os.path.realpath(wheel), target / wheel.name)


def _under(base: Path, path: Path, fallback: str) -> Path:
    """``path`` relative to ``base``, or ``fallback`` when it lies outside it."""
    try:
        return path.relative_to(base)
    except ValueError:
        return Path(fallback)


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
    except ValueError:
        return False
    return True


def _make_ignore(
    top: Path, *, with_tk: bool, keep_dev: bool, libpl: Path | None
) -> Callable[[str, list[str]], set[str]]:
    pruned = set(_PRUNED_DIRS) | (set() if with_tk else set(_TK_DIRS))

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = os.path.relpath(directory, top)
        rel = "" if rel == "." else rel + "/"
        out: set[str] = set()
        for name in names:
            pruned_here = (
                name == "__pycache__"
                or name in _PRUNED_FILES
                or name.endswith(".a")
                or rel + name in pruned
                or (not with_tk and name.startswith("_tkinter."))
                or (rel.endswith("lib-dynload/") and name.startswith(_TEST_EXTENSIONS))
                or (not keep_dev and rel == "" and name.startswith("config-"))
                or (not keep_dev and os.path.join(directory, name) == str(libpl))
            )
            if pruned_here:
                out.add(name)
        return out

    return ignore


def _copy_dev(interp: Interpreter, dest: Path, libpython: Path | None) -> None:
    """Headers, pkg-config files and python-config, for building extensions later."""
    base = interp.base_prefix
    if interp.include is not None and interp.include.is_dir():
        shutil.copytree(
            interp.include,
            dest / _under(base, interp.include, "include"),
            symlinks=True,
            dirs_exist_ok=True,
        )
    pkgconfig = base / "lib" / "pkgconfig"
    if pkgconfig.is_dir() and _inside(pkgconfig, base) and base != Path("/usr"):
        shutil.copytree(pkgconfig, dest / "lib" / "pkgconfig", symlinks=True)
    config = interp.executable.parent / f"python{interp.short_version}-config"
    if config.exists() and not is_elf(config):
        shutil.copy2(config, dest / "bin" / config.name)
    if libpython is not None:
        dev_link = libpython.parent / f"libpython{interp.short_version}.so"
        if not dev_link.exists():
            os.symlink(libpython.name, dev_link)


def _strip_debug(tree: Path) -> None:
    """Remove debug sections from the interpreter's ELF files (30 MB -> a few for libpython).

    One ``strip`` process for all files that carry debug info; skipped when no strip tool
    exists, since the result is only bigger, not wrong.
    """
    strip = shutil.which("strip")
    if strip is None:
        log.debug("no strip tool found; keeping debug info in the runtime")
        return
    targets = [
        p
        for p in sorted(tree.rglob("*"))
        if p.is_file() and not p.is_symlink() and is_elf(p) and read_elf(p).has_debug
    ]
    if targets:
        log.debug("stripping debug info from %d runtime files", len(targets))
        run([strip, "--strip-debug", *targets], error=BuildError, what="strip --strip-debug")


validate_module_name = module_name
"""An ``--exclude-module`` value (:func:`venvpack.validate.module_name`)."""


def exclude_modules(runtime: Runtime, names: tuple[str, ...]) -> None:
    """Remove the extension modules ``names`` from ``lib-dynload`` before grafting, so that
    the libraries only they needed are never grafted; a name with no extension module there
    (pure Python, built in, already pruned) is an error, never silently nothing."""
    dynload = runtime.stdlib / "lib-dynload"
    for name in names:
        found = sorted(dynload.glob(f"{name}.*so")) if dynload.is_dir() else []
        found = [p for p in found if p.name.split(".", 1)[0] == name]
        if not found:
            raise ConfigError(
                f"--exclude-module {name}: no such extension module in the runtime's "
                "lib-dynload (only stdlib extension modules can be left out)"
            )
        for path in found:
            path.unlink()
            log.info("left out %s", path.name)
