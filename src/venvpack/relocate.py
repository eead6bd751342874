"""Stage ``relocate``: every file that named the build location or the source interpreter
gets a location-independent form.

- console scripts get a ``#!/bin/sh`` polyglot launcher that finds ``python`` next to its
  own resolved path (so ``/usr/bin/app -> /opt/app/bin/app`` works), never ``/usr/bin/env``;
- ``.pth`` lines and ``RECORD`` rows pointing into the tree become relative; rows of files
  changed here get new hashes;
- ``direct_url.json`` of local paths is dropped; URLs lose credentials, query strings and
  fragments other than a hash (``validate.public_url``);
- the runtime's sysconfigdata computes its prefix at import time; python-config, pkg-config
  and the build Makefile (``--keep-dev``) name the install prefix instead of the source;
- everything is byte-compiled to hash-based pycs by the bundled interpreter, so a
  read-only install under /opt starts fast and timestamps do not matter.
"""

from __future__ import annotations

import ast
import base64
import csv
import hashlib
import io
import json
import logging
import os
import pprint
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from venvpack.archive import available_cpus
from venvpack.cache import build_cache
from venvpack.elf import is_elf
from venvpack.errors import BuildError
from venvpack.pathtext import replace_path
from venvpack.proc import clean_python_env, run_all
from venvpack.runtime import Runtime
from venvpack.templates import render
from venvpack.validate import public_url

__all__ = [
    "binary_paths",
    "relocate",
    "relocate_added",
    "source_paths",
]

log = logging.getLogger("venvpack")

_SYSTEM_PREFIXES = frozenset({Path("/"), Path("/usr"), Path("/usr/local")})
_TOKEN = "@VENVPACK_PREFIX@"
# The Makefile's installation directories: where this interpreter's own files are. For a
# system prefix (Debian's /usr) they are rewritten as a whole, while /usr inside compiler
# flags, tool paths or TZPATH still means the system's.
_INSTALL_DIR_VARS = frozenset(
    {
        "prefix",
        "exec_prefix",
        "BINDIR",
        "LIBDIR",
        "INCLUDEDIR",
        "CONFINCLUDEDIR",
        "SCRIPTDIR",
        "datarootdir",
        "DESTSHARED",
        "LIBDEST",
        "BINLIBDEST",
        "DESTLIB",
        "MACHDESTLIB",
        "INCLUDEPY",
        "CONFINCLUDEPY",
        "LIBPC",
        "LIBPL",
        "WHEEL_PKG_DIR",
    }
)
# Installer bookkeeping that only makes sense on the build host: uv's cache keys carry build
# timestamps (breaking reproducible builds), its lock file is world-writable.
_INSTALLER_PRIVATE = ("uv_cache.json",)
_ROOT_LEFTOVERS = (".lock",)


def relocate(
    root: Path,
    runtime: Runtime,
    site_packages: Path,
    prefix: str,
    glibc_floor: str | None = None,
    *,
    compiler: Path | None = None,
) -> None:
    """Make the environment at ``root`` independent of where it was built; launchers refuse
    in one line to run on a glibc older than ``glibc_floor``. ``compiler`` is the
    interpreter that compiles the modules and installed the scripts when the bundled one is
    another machine's (the same major and minor version of this machine)."""
    _relocate_runtime_text(runtime, prefix)
    dist_infos = sorted(site_packages.glob("*.dist-info"))
    _relocate_distributions(root, site_packages, dist_infos, glibc_floor, compiler)
    compile_bytecode(runtime, [runtime.stdlib, site_packages], root, prefix, python=compiler)


def relocate_added(
    root: Path,
    runtime: Runtime,
    site_packages: Path,
    prefix: str,
    dist_infos: list[Path],
    glibc_floor: str | None = None,
    *,
    compiler: Path | None = None,
) -> None:
    """:func:`relocate` for distributions installed over a relocated environment (a
    project over its reused base): the same steps, on their files only. The runtime and
    every other distribution are left as they are."""
    _relocate_distributions(root, site_packages, dist_infos, glibc_floor, compiler)
    modules = sorted({m for d in dist_infos for m in _recorded_modules(d, site_packages)})
    if modules:
        compile_bytecode(runtime, modules, root, prefix, python=compiler)


def _relocate_distributions(
    root: Path,
    site_packages: Path,
    dist_infos: list[Path],
    glibc_floor: str | None,
    compiler: Path | None,
) -> None:
    """Launchers for the scripts, relative ``.pth`` lines, no build-host URL or installer
    leftover, and the RECORDs of ``dist_infos`` saying what their files now are."""
    changed: set[Path] = set()
    removed: set[Path] = set()
    installers = (compiler,) if compiler is not None else ()
    changed |= rewrite_scripts(root / "bin", root, glibc_floor, installers=installers)
    changed |= _relocate_pth(site_packages, root)
    for dist_info in dist_infos:
        _clean_direct_url(dist_info, changed, removed)
        for name in _INSTALLER_PRIVATE:
            if (dist_info / name).is_file():
                (dist_info / name).unlink()
                removed.add(dist_info / name)
    for name in _ROOT_LEFTOVERS:
        if (root / name).is_file():
            (root / name).unlink()
    for dist_info in dist_infos:
        _rewrite_record(dist_info, root, changed, removed)


def _recorded_modules(dist_info: Path, site_packages: Path) -> Iterable[Path]:
    """The ``.py`` files a distribution's RECORD lists inside ``site_packages``."""
    for path in recorded_files(dist_info, site_packages):
        if path.suffix == ".py" and _inside(path, site_packages):
            yield path


def recorded_files(dist_info: Path, site_packages: Path) -> Iterable[Path]:
    """The regular files a distribution's RECORD lists (its paths are relative to
    ``site_packages``; its scripts lie beyond it, in ``bin/``)."""
    try:
        text = (dist_info / "RECORD").read_text(encoding="utf-8")
    except OSError:
        return
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            continue
        path = Path(os.path.normpath(site_packages / row[0]))
        if path.is_file() and not path.is_symlink():
            yield path


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


# -- launchers ---------------------------------------------------------------------------


def launcher_header(glibc_floor: str | None = None) -> bytes:
    """The first lines of every console script: sh finds python, python skips the lines.

    With ``glibc_floor``, sh first looks for the file of each older glibc that names its
    version (``libc-2.31.so``: 2.17 to 2.33; 2.34 and later name none) with ``[ -e ]``, a
    builtin: the check starts no process (docs/development.md: Measurements)."""
    parts = glibc_floor.split(".") if glibc_floor else []
    floor = (int(parts[0]), int(parts[1])) if len(parts) >= 2 else (2, 17)
    older = [f"2.{m}" for m in range(min(floor[1], 34) - 1, 16, -1)] if floor[0] == 2 else []
    return render("venv/launcher", floor=glibc_floor or "", old_versions=" ".join(older)).encode()


def rewrite_scripts(
    bindir: Path, root: Path, glibc_floor: str | None = None, *, installers: tuple[Path, ...] = ()
) -> set[Path]:
    """Give every script in ``bindir`` whose interpreter lives in ``root`` (or is one of
    ``installers``, which installed them for another machine) the launcher."""
    changed: set[Path] = set()
    header = launcher_header(glibc_floor)
    for path in sorted(bindir.iterdir()):
        if path.is_symlink() or not path.is_file() or is_elf(path):
            continue
        data = path.read_bytes()
        body = _script_body(data, root, installers)
        if body is None:
            continue
        _replace_bytes(path, header + body)
        changed.add(path)
    return changed


def _script_body(data: bytes, root: Path, installers: tuple[Path, ...] = ()) -> bytes | None:
    """The script without its interpreter lines, if they point into ``root`` (or name one
    of ``installers``); else None."""
    if not data.startswith(b"#!"):
        return None
    first, _, rest = data.partition(b"\n")
    interp = first[2:].strip()
    target = os.fsencode(root) + b"/"
    if interp.startswith(target) or interp in {os.fsencode(p) for p in installers}:
        return rest
    if interp == b"/bin/sh" and rest.startswith(b"'''exec' "):
        line, _, after = rest.partition(b"\n")
        if target in line and after.startswith(b"' '''"):
            return after.partition(b"\n")[2]
    return None


# -- .pth, direct_url.json, RECORD --------------------------------------------------------


def _relocate_pth(site_packages: Path, root: Path) -> set[Path]:
    """Absolute lines into ``root`` become relative. Read as bytes: ``site`` accepts a .pth
    in the locale's encoding (latin-1, say), and every other byte must stay as it was."""
    changed: set[Path] = set()
    for pth in sorted(site_packages.glob("*.pth")):
        lines = pth.read_bytes().splitlines(keepends=True)
        out = []
        for line in lines:
            text = os.fsdecode(line.rstrip(b"\r\n"))
            if text.startswith("/") and (Path(text) == root or root in Path(text).parents):
                line = os.fsencode(os.path.relpath(text, site_packages)) + b"\n"
            out.append(line)
        if out != lines:
            _replace_bytes(pth, b"".join(out))
            changed.add(pth)
    return changed


def _clean_direct_url(dist_info: Path, changed: set[Path], removed: set[Path]) -> None:
    path = dist_info / "direct_url.json"
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        url = str(data["url"])
    except (ValueError, KeyError, TypeError):
        path.unlink()
        removed.add(path)
        return
    parts = urlsplit(url)
    if parts.scheme == "file":
        # A build-host path means nothing on the target; without the file the
        # distribution reads as installed from an index, which is what it now is.
        path.unlink()
        removed.add(path)
        return
    public = public_url(url)
    if public != url:
        data["url"] = public
        _replace_bytes(path, (json.dumps(data, sort_keys=True) + "\n").encode())
        changed.add(path)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _rewrite_record(dist_info: Path, root: Path, changed: set[Path], removed: set[Path]) -> None:
    record = dist_info / "RECORD"
    if not record.is_file():
        return
    base = dist_info.parent
    # Undecodable bytes (a file name in another encoding) are carried through unchanged.
    text = record.read_text(encoding="utf-8", errors="surrogateescape")
    rows = list(csv.reader(io.StringIO(text)))
    out: list[list[str]] = []
    dirty = False
    for row in rows:
        if not row:
            continue
        name = row[0]
        full = Path(os.path.normpath(base / name))
        if os.path.isabs(name) and (root in full.parents):
            name = os.path.relpath(full, base)
            dirty = True
        if full in removed:
            dirty = True
            continue
        if full in changed and len(row) >= 3 and row[1]:
            data = full.read_bytes()
            row = [name, _record_hash(data), str(len(data))]
            dirty = True
        else:
            row = [name, *row[1:]]
        out.append(row)
    if dirty:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(out)
        _replace_bytes(record, buf.getvalue().encode("utf-8", errors="surrogateescape"))


# -- the runtime's own build configuration -------------------------------------------------


def source_paths(runtime: Runtime) -> list[tuple[str, str]]:
    """(source path, path relative to the runtime root) pairs to replace, longest first."""
    pairs: list[tuple[str, str]] = []
    if runtime.build_prefix is not None and runtime.build_prefix not in _SYSTEM_PREFIXES:
        # python-build-standalone's /install: its files name it, and it is the runtime too.
        pairs.append((str(runtime.build_prefix), ""))
    if runtime.source_prefix not in _SYSTEM_PREFIXES:
        pairs.append((str(runtime.source_prefix), ""))
    else:
        short = runtime.short_version
        src = runtime.source_prefix
        pairs += [
            (str(src / "lib" / f"python{short}"), f"lib/python{short}"),
            (str(src / "include" / f"python{short}"), f"include/python{short}"),
            (str(src / "bin" / f"python{short}"), f"bin/python{short}"),
        ]
    return sorted(pairs, key=lambda p: -len(p[0]))


def binary_paths(runtime: Runtime, prefix: str) -> list[tuple[str, str]]:
    """(build-host path, replacement) for C strings in the runtime's ELF files.

    The source prefix becomes ``<prefix>/python``: libpython's configure-time ``PREFIX`` is
    getpath's last resort when the interpreter cannot find itself (started with an ``argv[0]``
    that resolves nowhere, as ``exec -a name`` does; Linux getpath never reads
    ``/proc/self/exe``), and the install prefix is where it then is for deb and rpm and for a
    tarball unpacked there. The compile directory only ever appears in assertion messages.
    """
    installed = prefix.rstrip("/") + "/python"
    pairs = [(old, installed) for old, rel in source_paths(runtime) if rel == ""]
    pairs += [(str(d), "") for d in runtime.compile_dirs if str(d) not in dict(pairs)]
    return pairs


def _substitute(text: str, pairs: list[tuple[str, str]], new_root: str) -> str:
    # As paths, not substrings: "/install" must not touch "/usr/bin/install".
    for old, rel in pairs:
        text = replace_path(text, old, new_root + ("/" + rel if rel else ""))
    return text


def _relocate_runtime_text(runtime: Runtime, prefix: str) -> None:
    pairs = source_paths(runtime)
    _restore_stdlib_shebangs(runtime)
    if runtime.sysconfigdata is not None:
        _rewrite_sysconfigdata(runtime, pairs)
    installed = prefix.rstrip("/") + "/python"
    # The Makefile and python-config of --keep-dev name the compile directory, too.
    dev_pairs = sorted(
        [*pairs, *((str(d), "") for d in runtime.compile_dirs if str(d) not in dict(pairs))],
        key=lambda p: -len(p[0]),
    )
    for path in _dev_text_files(runtime):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        root = "${pcfiledir}/../.." if path.suffix == ".pc" else installed
        new = _drop_rpath(_substitute(text, dev_pairs, root), root)
        if new != text:
            _replace_bytes(path, new.encode("utf-8", errors="surrogateescape"))


def _restore_stdlib_shebangs(runtime: Runtime) -> None:
    """Distributions point stdlib shebangs at their python (Debian: ``#! /usr/bin/python3.11``);
    give them back upstream's ``#! /usr/bin/env python3``, which names no build-host path."""
    prefixes = [runtime.source_prefix, runtime.build_prefix]
    sources = tuple(os.fsencode(p / "bin") + b"/python" for p in prefixes if p is not None)
    for path in sorted(runtime.stdlib.rglob("*.py")):
        with path.open("rb") as fh:
            head = fh.read(256)
        if not head.startswith(b"#!"):
            continue
        first, _, _ = head.partition(b"\n")
        if first[2:].strip().startswith(sources):
            data = path.read_bytes()
            _replace_bytes(path, b"#! /usr/bin/env python3" + data[len(first) :])


def _drop_rpath(text: str, root: str) -> str:
    """``text`` without linker flags that put an absolute run path into ``root``
    (pyenv's ``-Wl,-rpath,<prefix>/lib``): an extension built later against the environment
    would keep the build location's absolute RUNPATH, and on Linux extension modules do not
    link libpython, so they need no path to it."""
    pattern = r"[ \t]*-Wl,-(?:rpath[,=]|R)" + re.escape(root) + r"(?:/[^\s'\"]*)?(?=[\s'\"]|$)"
    return re.sub(pattern, "", text)


def _dev_text_files(runtime: Runtime) -> Iterable[Path]:
    yield from sorted((runtime.root / "lib" / "pkgconfig").glob("*.pc"))
    yield from sorted(runtime.root.joinpath("bin").glob("python*-config"))
    for config in sorted(runtime.stdlib.glob("config-*")):
        for name in ("Makefile", "Setup", "Setup.local", "python-config.py", "config.c"):
            if (config / name).is_file():
                yield config / name


def _rewrite_sysconfigdata(runtime: Runtime, pairs: list[tuple[str, str]]) -> None:
    """Turn the literal build variables into ones computed from the file's own location."""
    assert runtime.sysconfigdata is not None
    path = runtime.sysconfigdata
    tree = ast.parse(path.read_text(encoding="utf-8"))
    values: dict[str, object] | None = None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "build_time_vars"
        ):
            values = ast.literal_eval(node.value)
    if not isinstance(values, dict):
        raise BuildError(f"{path.name}: no build_time_vars literal to relocate")
    # The directory the interpreter itself was compiled in (pyenv: /tmp/python-build.*)
    # names a build host too; it now reads as the runtime's own prefix.
    build_dirs = {
        str(values[key]): ""
        for key in ("abs_builddir", "abs_srcdir")
        if isinstance(values.get(key), str)
        and str(values[key]).startswith("/")
        and len(str(values[key])) > 1
        and str(values[key]) not in {p for p, _ in pairs}
    }
    all_pairs = sorted([*pairs, *build_dirs.items()], key=lambda p: -len(p[0]))
    marked = {
        k: _drop_rpath(_substitute(v, all_pairs, _TOKEN), _TOKEN) if isinstance(v, str) else v
        for k, v in values.items()
    }
    if runtime.source_prefix in _SYSTEM_PREFIXES:
        system = str(runtime.source_prefix).rstrip("/")
        for key in _INSTALL_DIR_VARS & marked.keys():
            value = marked[key]
            if isinstance(value, str) and (value == system or value.startswith(system + "/")):
                marked[key] = _TOKEN + value[len(system) :]
    depth = len(runtime.stdlib.relative_to(runtime.root).parts)
    up = ", ".join(['".."'] * depth)
    source = (
        "# Build configuration of the bundled interpreter, rewritten by venvpack: paths are\n"
        "# computed from this file's location, so the environment can live anywhere.\n"
        "import os as _os\n\n"
        "_HERE = _os.path.dirname(_os.path.abspath(__file__))\n"
        f"_PREFIX = _os.path.normpath(_os.path.join(_HERE, {up}))\n"
        f"_TOKEN = {_TOKEN!r}\n"
        f"_build_time_vars = {pprint.pformat(marked, width=100)}\n"
        "build_time_vars = {\n"
        "    k: (v.replace(_TOKEN, _PREFIX) if isinstance(v, str) else v)\n"
        "    for k, v in _build_time_vars.items()\n"
        "}\n"
        "del _build_time_vars\n"
    )
    _replace_bytes(path, source.encode("utf-8"))


# -- bytecode ------------------------------------------------------------------------------

# One worker compiles every ``count``-th module (from ``index``) of the sorted walk that
# compileall.compile_dir would make: no process pool inside the bundled interpreter, whose
# workers would outlive an interrupted venvpack; venvpack starts and stops the workers.
#
# A module copied unchanged from the source interpreter, whose own pyc there is valid (a
# timestamp pyc of the same magic, matching the source's mtime and size, as the import
# system checks it), is not compiled again: its code object is loaded, given the co_filename
# compile_file would give it, and written as the same checked hash-based pyc compile_file
# writes (optimisation level 0, the source's mode). Compiling is ~8x the cost of that.
#
# Anything else is looked up in the pyc cache (:func:`pyc_cache_dir`) under a key of the
# interpreter (magic number, sys.version, optimisation level), the invalidation mode, the
# co_filename and the SHA-256 of the module's bytes: a hit is the pyc an earlier build
# compiled from the same inputs, its bytes exactly; a miss is compiled and stored. A build's
# pycs are thus those of the first build with these inputs. An entry holds the SHA-256 of
# the pyc it stores: one whose pyc no longer matches it (altered, cut short) is removed,
# counted (the worker's last line of output) and compiled again.
_COMPILE = r"""
import compileall, hashlib, importlib.util, json, marshal, os, py_compile, struct, sys
import tempfile, types
from importlib._bootstrap_external import _calc_mode, _code_to_hash_pyc, _write_atomic
root, prefix, index, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
config = json.loads(sys.argv[5])
copied, cache = config["copied"], config["cache"]
FORMAT = b"venvpack-pyc-2"  # entries before their digest was kept are never read
discarded = 0
modules = []
for directory in sys.argv[6:]:
    if directory.endswith(".py") and os.path.isfile(directory):
        modules.append(directory)  # one module, not a tree
        continue
    for parent, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        modules += [os.path.join(parent, f) for f in sorted(files) if f.endswith(".py")]

def dfile_of(fullname):
    # compileall.compile_file's stripdir/prependdir, step for step.
    fullname_parts = fullname.split(os.path.sep)
    ddir_parts = list(fullname_parts)
    for spart, opart in zip(root.split(os.path.sep), fullname_parts):
        if spart == opart:
            ddir_parts.remove(spart)
    return os.path.join(prefix, os.path.join(*ddir_parts))

def refile(code, name):
    consts = tuple(
        refile(c, name) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=name, co_consts=consts)

def reuse(path):
    for tree, origin in copied:
        if path.startswith(tree + os.path.sep):
            source = origin + path[len(tree):]
            break
    else:
        return False
    head, name = os.path.split(source)
    cached = os.path.join(
        head, "__pycache__", name[:-3] + "." + sys.implementation.cache_tag + ".pyc"
    )
    try:
        with open(cached, "rb") as fh:
            data = fh.read()
        st = os.stat(source)
        with open(source, "rb") as fh:
            original = fh.read()
        with open(path, "rb") as fh:
            text = fh.read()
    except OSError:
        return False
    if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER or text != original:
        return False
    flags, mtime, size = struct.unpack("<III", data[4:16])
    if flags or mtime != int(st.st_mtime) & 0xFFFFFFFF or size != st.st_size & 0xFFFFFFFF:
        return False
    code = refile(marshal.loads(memoryview(data)[16:]), dfile_of(path))
    cfile = importlib.util.cache_from_source(path)
    os.makedirs(os.path.dirname(cfile), exist_ok=True)
    pyc = _code_to_hash_pyc(code, importlib.util.source_hash(text), True)
    _write_atomic(cfile, pyc, _calc_mode(path))
    return True

def cached(path):
    # (the cache entry for path, None without a cache; the cached pyc, None on a miss)
    global discarded
    if cache is None:
        return None, None
    try:
        with open(path, "rb") as fh:
            text = fh.read()
    except OSError:
        return None, None
    key = hashlib.sha256()
    for part in (
        FORMAT,
        importlib.util.MAGIC_NUMBER,
        sys.version.encode(),
        str(sys.flags.optimize).encode(),
        b"checked-hash",
        dfile_of(path).encode(),
        hashlib.sha256(text).digest(),
    ):
        key.update(len(part).to_bytes(8, "little") + part)
    digest = key.hexdigest()
    entry = os.path.join(cache, digest[:2], digest[2:] + ".entry")
    try:
        with open(entry, "rb") as fh:
            data = fh.read()
    except OSError:
        return entry, None
    # The entry is the pyc's SHA-256 and the pyc: a pyc altered after it was stored (its
    # code object replaced under the same 16-byte header), or cut short, is not used.
    pyc = data[32:]
    good = (
        hashlib.sha256(pyc).digest() == data[:32]
        and pyc[:4] == importlib.util.MAGIC_NUMBER
        and pyc[4:8] == b"\x03\x00\x00\x00"
        and pyc[8:16] == importlib.util.source_hash(text)
    )
    if not good:
        discarded += 1
        try:
            os.unlink(entry)
        except OSError:
            pass
        return entry, None
    try:
        os.utime(entry)  # in use: kept by venvpack.runtime.prune_build_cache
    except OSError:
        pass
    return entry, pyc

def store(entry, cfile):
    tmp = None
    try:
        with open(cfile, "rb") as fh:
            data = fh.read()
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(entry), suffix=".tmp")
        with open(fd, "wb") as fh:
            fh.write(hashlib.sha256(data).digest() + data)
        os.replace(tmp, entry)
    except OSError:
        # A cache that cannot be written only costs time; a full disk leaves no part file.
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass

for path in modules[index::count]:
    if reuse(path):
        continue
    entry, data = cached(path)
    cfile = importlib.util.cache_from_source(path)
    if data is not None:
        os.makedirs(os.path.dirname(cfile), exist_ok=True)
        _write_atomic(cfile, data, _calc_mode(path))
        continue
    compiled = compileall.compile_file(
        path, quiet=2, force=True, stripdir=root, prependdir=prefix,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )
    if compiled and entry is not None:
        store(entry, cfile)
print(json.dumps({"discarded": discarded}))
"""


def pyc_cache_dir() -> Path | None:
    """Where compiled modules are kept between builds (``~/.cache/venvpack/pyc``; see
    :func:`venvpack.runtime.build_cache`)."""
    return build_cache("pyc")


def compile_bytecode(
    runtime: Runtime, dirs: list[Path], root: Path, prefix: str, *, python: Path | None = None
) -> None:
    """Hash-based pycs for ``dirs`` (trees, or single modules), by the bundled interpreter
    (or ``python``, one of this
    machine with its major and minor version, for another machine's), one worker per CPU; the
    source interpreter's valid pycs of modules copied unchanged are reused, not recompiled,
    and so is what an earlier build compiled from the same inputs (:func:`pyc_cache_dir`).

    ``co_filename`` is recorded as under ``prefix`` rather than the build directory;
    CPython corrects it to the real location when it loads the pyc anyway.
    """
    for directory in dirs:
        if directory.is_file():
            continue  # a module: compiled over its stale pyc, if any
        for cache in sorted(directory.rglob("__pycache__")):
            for pyc in cache.glob("*.pyc"):
                pyc.unlink()
    workers = available_cpus()
    # Deepest first, so a module maps through the most specific copied directory.
    origins = sorted(runtime.origins, key=lambda pair: -len(pair[0].parts))
    kept = pyc_cache_dir()
    config = json.dumps(
        {
            "copied": [[str(tree), str(origin)] for tree, origin in origins],
            "cache": str(kept) if kept is not None else None,
        }
    )
    compiler = python or runtime.executable
    base: list[str | Path] = [compiler, "-E", "-s", "-B", "-c", _COMPILE, root, prefix]
    results = run_all(
        [[*base, str(index), str(workers), config, *dirs] for index in range(workers)],
        error=BuildError,
        what="byte-compiling",
        env=clean_python_env(),
    )
    discarded = sum(_discarded(result.stdout or "") for result in results)
    if discarded:
        log.debug(
            "pyc cache: %d entr%s did not match the digest stored with %s, compiled again",
            discarded,
            "y" if discarded == 1 else "ies",
            "it" if discarded == 1 else "them",
        )


def _discarded(stdout: str) -> int:
    """How many cache entries a byte-compiling worker threw away (its last output line)."""
    lines = stdout.strip().splitlines()
    try:
        count = json.loads(lines[-1])["discarded"] if lines else 0
    except (ValueError, KeyError, TypeError):
        return 0
    return count if isinstance(count, int) else 0


def _replace_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` as a new file renamed over ``path``: never modify a file in place,
    since installers hardlink files from their caches."""
    tmp = path.with_name(path.name + ".venvpack-tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)
