"""Stage ``interpreter``: find a CPython and describe it.

The description comes from running the interpreter once with a small probe, so shims
(pyenv), venvs and distro layouts all reduce to the same facts: where the real binary,
the standard library, lib-dynload and libpython live, relative to the base prefix.

Finding one for a request (``python_request``) looks where users keep interpreters: PATH,
pyenv, uv's managed pythons and ``/usr/bin``. Versions are read from file and directory names
first, so a request probes only the interpreters that can match. The probe has the last word,
and interpreters venvpack cannot bundle (PyPy, CPython < 3.9, free-threaded or debug builds)
are remembered with their reason: "3.8 is refused because ..." helps more than "not found".
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvpack.elf import is_elf, read_elf
from venvpack.errors import ElfError, InterpreterError
from venvpack.platform import emulator, host_libc, is_foreign, machine_of, uv_libc
from venvpack.python_request import Host, PythonRequest, parse_request, refusal
from venvpack.sysroot import Sysroot, find_sysroot

__all__ = [
    "Candidate",
    "Interpreter",
    "Refusal",
    "SearchPlaces",
    "candidates",
    "describe",
    "examine",
    "find_interpreter",
    "foreign_root",
    "host_interpreter",
    "host_platform",
    "probe_refusal",
    "search_places",
    "source_label",
]

MIN_VERSION = (3, 9)

# Written to run on any Python, even 2.7, so that an unsupported interpreter still gets a
# precise message instead of a syntax error.
_PROBE = r"""
import json, os, platform, sys
out = {"implementation": platform.python_implementation(),
       "version_info": list(sys.version_info[:3]),
       "executable": os.path.realpath(sys.executable)}
if sys.version_info >= (3, 9):
    import sysconfig
    base_exe = getattr(sys, "_base_executable", None) or sys.executable
    if sys.prefix == sys.base_prefix:
        base_exe = sys.executable
    cv = sysconfig.get_config_vars()
    dynload = [p for p in sys.path if os.path.basename(p) == "lib-dynload"]
    out.update({
        "version": platform.python_version(),
        "executable": os.path.realpath(base_exe),
        "base_prefix": sys.base_prefix,
        "base_exec_prefix": sys.base_exec_prefix,
        "stdlib": os.path.dirname(os.__file__),
        "lib_dynload": dynload[0] if dynload else None,
        "machine": platform.machine(),
        "shared": bool(cv.get("Py_ENABLE_SHARED")),
        "libdir": cv.get("LIBDIR"),
        "instsoname": cv.get("INSTSONAME"),
        "ldlibrary": cv.get("LDLIBRARY"),
        "libpl": cv.get("LIBPL"),
        "include": sysconfig.get_path("include"),
        "soabi": cv.get("SOABI"),
        "multiarch": cv.get("MULTIARCH"),
        "platlibdir": getattr(sys, "platlibdir", "lib"),
        "sysconfigdata": sysconfig._get_sysconfigdata_name(),
        "schemes": list(sysconfig.get_scheme_names()),
        "free_threaded": bool(cv.get("Py_GIL_DISABLED")),
        "debug": bool(cv.get("Py_DEBUG")) or hasattr(sys, "gettotalrefcount"),
    })
sys.stdout.write(json.dumps(out))
"""

# Where a candidate was found; on a version tie the earlier origin wins. uv's managed
# pythons (python-build-standalone) come first: they are built to be copied (static
# OpenSSL/sqlite, $ORIGIN RPATH), then pyenv's own builds, then whatever PATH holds, and
# Debian's last, whose sysconfig patches (dist-packages, posix_local) travel badly.
ORIGINS = ("uv", "pyenv", "PATH", "system")

# python3, python3.12 (and python2.7, so that "2.7" is refused with its reason).
_EXE_NAME = re.compile(r"^python(\d)(?:\.(\d+))?$")
_PYENV_NAME = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(t?)")
_NO_MICRO = 10_000


@dataclass(frozen=True)
class Interpreter:
    """A CPython installation, described by itself."""

    executable: Path
    """The real binary (symlinks and shims resolved)."""
    version: str
    version_info: tuple[int, int, int]
    base_prefix: Path
    stdlib: Path
    lib_dynload: Path | None
    machine: str
    libpython: Path | None
    """The shared libpython the binary links to, or None for a static build (Debian)."""
    libpl: Path | None
    include: Path | None
    sysconfigdata: str
    platlibdir: str
    source: str
    """``pyenv``, ``uv``, ``debian`` or ``other``: where it came from, for the manifest."""
    sysroot: Sysroot | None = None
    """For an interpreter of another machine, the root its files are read from (every path
    above lies inside it); None for one that runs here."""
    multiarch: str | None = None
    """Its ``MULTIARCH`` (``aarch64-linux-gnu``): the loader's default directories."""

    @property
    def short_version(self) -> str:
        return f"{self.version_info[0]}.{self.version_info[1]}"

    @property
    def foreign(self) -> bool:
        """Whether it is another machine's, read from a root rather than run here."""
        return self.sysroot is not None

    def target_path(self, path: Path) -> Path:
        """``path`` as the interpreter's own machine names it (inside its root)."""
        return self.sysroot.target(path) if self.sysroot is not None else path

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.executable.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


@dataclass(frozen=True)
class Refusal:
    """A Python that runs but that venvpack will not bundle, and why."""

    executable: Path
    implementation: str
    """``CPython``, ``PyPy`` ... as the interpreter names itself."""
    version_info: tuple[int, int, int]
    build: str
    """``free-threaded``, ``debug`` or empty for the default build."""
    reason: str

    def message(self) -> str:
        dotted = ".".join(map(str, self.version_info))
        build = f" ({self.build})" if self.build else ""
        return (
            f"{self.implementation} {dotted}{build} at {self.executable} is refused: {self.reason}"
        )


@dataclass(frozen=True)
class SearchPlaces:
    """Where discovery looks, read from the environment once (tests set the variables)."""

    path_dirs: tuple[Path, ...]
    pyenv_root: Path
    uv_dir: Path
    """``$UV_PYTHON_INSTALL_DIR``, else ``$XDG_DATA_HOME/uv/python``, else
    ``~/.local/share/uv/python``: where uv installs managed pythons."""
    uv_default_dir: Path
    """uv's directory without ``$UV_PYTHON_INSTALL_DIR``: what it installed there earlier is
    still uv's, for the ``source`` label."""
    system_bin: Path = Path("/usr/bin")
    sysroot: Path | None = None
    """``--sysroot``: the root another machine's interpreter is read from."""

    def summary(self) -> str:
        return (
            f"looked on PATH, in pyenv at {self.pyenv_root / 'versions'}, "
            f"in uv's managed pythons at {self.uv_dir}, in {self.system_bin}"
        )


@dataclass(frozen=True)
class Candidate:
    """An executable that may be the requested Python, before it is probed."""

    path: Path
    hint: tuple[int, ...]
    """The version its file or directory name promises: ``(3,)``, ``(3, 12)``, ``(3, 12, 1)``."""
    origin: str
    """One of ``ORIGINS``."""

    def origin_rank(self) -> int:
        """0 for the most preferred origin (see ``ORIGINS``)."""
        return ORIGINS.index(self.origin)

    def ceiling(self) -> tuple[int, int, int]:
        """The newest version this candidate can turn out to be."""
        padded = (*self.hint, _NO_MICRO, _NO_MICRO, _NO_MICRO)
        return (padded[0], padded[1], padded[2])


def search_places(environ: Mapping[str, str]) -> SearchPlaces:
    """The places to look, following the variables pyenv and uv themselves read."""
    home = Path(environ.get("HOME") or Path.home())
    data_home = Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    default_uv = data_home / "uv" / "python"
    # An empty PATH entry means the current directory; an interpreter that happens to sit
    # in the working directory should not be picked up silently.
    dirs = tuple(Path(d) for d in environ.get("PATH", "").split(os.pathsep) if d)
    return SearchPlaces(
        path_dirs=dirs,
        pyenv_root=Path(environ.get("PYENV_ROOT") or home / ".pyenv"),
        uv_dir=Path(environ.get("UV_PYTHON_INSTALL_DIR") or default_uv),
        uv_default_dir=default_uv,
    )


def host_platform() -> Host:
    """This machine as uv's installation keys name it (``<os>-<arch>-<libc>``)."""
    system = platform.system().lower()
    os_name = {"darwin": "macos"}.get(system, system)
    libc = "none"
    if os_name == "linux":
        libc = uv_libc(host_libc())
    return Host(os=os_name, arch=platform.machine().lower(), libc=libc)


def examine(path: Path, places: SearchPlaces | None = None) -> Interpreter | Refusal:
    """Probe ``path``: a supported CPython, or a Python refused with its reason.

    A program of another machine is probed under qemu-user with its root (``--sysroot``, or
    the directory above it holding its loader) as the place its loader and libraries are
    looked up; the paths it reports are then paths of this host inside that root.

    Raises InterpreterError only when ``path`` is not a Python at all.
    """
    if places is None:
        places = search_places(os.environ)
    foreign = _foreign_loader(path)
    root = None
    if foreign is not None:
        machine, loader = foreign
        root = find_sysroot(path, loader, places.sysroot)
        data = _probe(path, [*emulator(machine), "-L", str(root.path)])
        data = _into_root(data, root)
    elif places.sysroot is not None:
        raise InterpreterError(
            f"{path} runs on this machine: --sysroot is for an interpreter of another one"
        )
    else:
        data = _probe(path)
    refused = probe_refusal(data, path)
    if refused is not None:
        return refused
    return _interpreter(data, path, places, root)


def _foreign_loader(path: Path) -> tuple[str, str] | None:
    """(machine, loader) when ``path`` is a program of another machine; None otherwise
    (a program of this one, a script, a shim)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.is_file() or not is_elf(real):
            return None
        info = read_elf(real)
    except (OSError, ElfError):
        return None
    machine = machine_of(info)
    if machine is None or not is_foreign(machine):
        return None
    if info.interpreter is None:
        raise InterpreterError(f"{path} is a {machine} file but not a program")
    return machine, info.interpreter


_PATH_FACTS = (
    "executable",
    "base_prefix",
    "base_exec_prefix",
    "stdlib",
    "lib_dynload",
    "libdir",
    "libpl",
    "include",
)


def _into_root(data: dict[str, Any], root: Sysroot) -> dict[str, Any]:
    """The probe's paths as paths of this host, found as qemu-user found them: those it
    computed from its own location already are; its build-time ones (``LIBDIR``,
    ``LIBPL``) name the target's places, which are the root's when it has them."""
    out = dict(data)
    for key in _PATH_FACTS:
        value = out.get(key)
        if isinstance(value, str) and value.startswith("/"):
            out[key] = str(root.find(value))
    return out


def foreign_root(request: str | None, sysroot: Path | None) -> tuple[str, Sysroot] | None:
    """When ``--python request`` (with ``--sysroot``) names another machine's interpreter:
    that machine and the root its files are read from, told by ELF headers alone, so a
    format can ask before the build (nothing runs). None for an interpreter of this machine,
    or when only the build's probe can tell (a prefix directory, nothing found yet)."""
    if request is None and sysroot is None:
        return None
    wanted = parse_request(request or "3")
    if wanted.path is not None:
        paths = [wanted.path.expanduser()]
    elif sysroot is not None:
        places = _in_sysroot(search_places(os.environ), sysroot)
        paths = [c.path for c in candidates(wanted, places, host_platform())]
    else:
        return None
    for path in paths:
        found = _foreign_loader(path)
        if found is not None:
            machine, loader = found
            return machine, find_sysroot(path, loader, sysroot)
    return None


def host_interpreter(interp: Interpreter) -> Interpreter:
    """A CPython of this machine with ``interp``'s major and minor version: what installs
    wheels for ``interp`` and compiles its modules when ``interp`` is another machine's
    (bytecode depends on the version, not on the machine)."""
    try:
        return find_interpreter(interp.short_version)
    except InterpreterError as exc:
        raise InterpreterError(
            f"building with {interp.machine} CPython {interp.version} needs a CPython "
            f"{interp.short_version} of this machine as well, to install wheels and compile "
            f"modules with ({exc})"
        ) from None


def describe(path: Path) -> Interpreter:
    """Run the probe with ``path`` and check it is a supported CPython."""
    return _accepted(examine(path))


def _accepted(found: Interpreter | Refusal) -> Interpreter:
    if isinstance(found, Refusal):
        raise InterpreterError(found.message())
    return found


def find_interpreter(
    request: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    sysroot: Path | None = None,
) -> Interpreter:
    """Resolve ``--python``: None (the Python running venvpack), a path, or any spelling
    ``python_request.parse_request`` accepts; the newest matching CPython wins. With
    ``sysroot`` a request that is not a path is looked for in the root's ``/usr/local/bin``
    and ``/usr/bin`` only (None then means ``python3``)."""
    places = search_places(os.environ if environ is None else environ)
    if sysroot is not None:
        places = _in_sysroot(places, sysroot)
        request = request or "3"
    if request is None:
        return describe(Path(sys.executable))
    wanted = parse_request(request)
    host = host_platform()
    reason = refusal(wanted, host)
    if reason is not None:
        raise InterpreterError(reason)
    if wanted.path is not None:
        return _at_path(wanted.path, places)
    return _choose(wanted, candidates(wanted, places, host), places)


def candidates(request: PythonRequest, places: SearchPlaces, host: Host) -> list[Candidate]:
    """Every executable whose name admits ``request``, one per real file, unprobed.

    When two names reach the same binary (uv's ``cpython-3.12-...`` alias of
    ``cpython-3.12.4-...``, ``/usr/bin/python3`` of ``python3.11``), the one from the
    preferred origin, then the most precise name, is kept; only then are names filtered, so
    an alias cannot bring back an interpreter its real name rules out.
    """
    found = [
        *_from_uv(places.uv_dir, host),
        *_from_pyenv(places.pyenv_root),
        *_from_path(places.path_dirs),
        *_from_system(places.system_bin),
    ]
    unique: dict[str, Candidate] = {}
    for candidate in sorted(found, key=_preference):
        unique.setdefault(os.path.realpath(candidate.path), candidate)
    return [c for c in unique.values() if request.might_admit(c.hint)]


def _preference(candidate: Candidate) -> tuple[int, int, bool, str]:
    """Which of several names of one binary to keep: origin, precision, its own name."""
    renamed = candidate.path.name != os.path.basename(os.path.realpath(candidate.path))
    return (candidate.origin_rank(), -len(candidate.hint), renamed, str(candidate.path))


def _choose(request: PythonRequest, found: list[Candidate], places: SearchPlaces) -> Interpreter:
    """Probe newest-first and stop once nothing left can beat the best match.

    The best is the newest version, then the preferred origin; refusals are kept only to
    name one when nothing acceptable matches.
    """
    best: Interpreter | None = None
    best_rank = ((0, 0, 0), 0)
    refused: list[Refusal] = []
    for candidate in sorted(found, key=lambda c: (_negated(c.ceiling()), c.origin_rank())):
        if best is not None and best_rank[0] > candidate.ceiling():
            break
        try:
            result = examine(candidate.path, places)
        except InterpreterError:
            continue  # not a Python after all, e.g. a pyenv shim for a version not selected
        if not request.admits(result.version_info):
            continue
        if isinstance(result, Refusal):
            refused.append(result)
            continue
        rank = (result.version_info, -candidate.origin_rank())
        if best is None or rank > best_rank:
            best, best_rank = result, rank
    if best is not None:
        return best
    if refused:
        raise InterpreterError(max(refused, key=lambda r: r.version_info).message())
    raise InterpreterError(f"no {request.describe()} found ({places.summary()})")


def _in_sysroot(places: SearchPlaces, sysroot: Path) -> SearchPlaces:
    """Where a request is looked for in another machine's root: its own bin directories."""
    root = Path(os.path.abspath(sysroot))
    if not root.is_dir():
        raise InterpreterError(f"--sysroot {sysroot} is not a directory")
    nowhere = root / "nonexistent"  # no pyenv or uv of the build host inside the root
    return SearchPlaces(
        path_dirs=(root / "usr" / "local" / "bin",),
        pyenv_root=nowhere,
        uv_dir=nowhere,
        uv_default_dir=nowhere,
        system_bin=root / "usr" / "bin",
        sysroot=root,
    )


def _negated(version: tuple[int, int, int]) -> tuple[int, int, int]:
    return (-version[0], -version[1], -version[2])


def _at_path(path: Path, places: SearchPlaces) -> Interpreter:
    """An explicit path: an interpreter, or a prefix or venv directory holding one."""
    given = path.expanduser()
    if not given.exists():
        raise InterpreterError(f"no interpreter at {path}")
    if given.is_dir():
        inside = _first_file(given / "bin", ["python3", "python"])
        if inside is None:
            raise InterpreterError(f"{path} is a directory, not an interpreter")
        given = inside
    return _accepted(examine(given, places))


def _from_uv(uv_dir: Path, host: Host) -> Iterator[Candidate]:
    """``<uv>/cpython-3.12.4-<os>-<arch>-<libc>/bin/python3.12`` and its aliases."""
    for entry in _listing(uv_dir):
        try:
            key = parse_request(entry.name)
        except InterpreterError:
            continue  # .lock, .cache, .temp ...
        if key.implementation != "cpython" or key.platform is None or len(key.version) < 2:
            continue
        if not host.runs(key.platform):
            continue
        exe = _versioned_exe(entry / "bin", key.version, key.free_threaded)
        if exe is not None:
            yield Candidate(exe, key.version, "uv")


def _from_pyenv(root: Path) -> Iterator[Candidate]:
    """``<root>/versions/3.12.1/bin/python3.12``; PyPy, conda and virtualenv names skipped."""
    for entry in _listing(root / "versions"):
        match = _PYENV_NAME.match(entry.name)
        if match is None:
            continue
        hint = tuple(int(part) for part in match.groups()[:3] if part is not None)
        exe = _versioned_exe(entry / "bin", hint, bool(match.group(4)))
        if exe is not None:
            yield Candidate(exe, hint, "pyenv")


def _from_path(dirs: Iterable[Path]) -> Iterator[Candidate]:
    """``python3`` and ``python3.X`` in every PATH directory (pyenv shims included)."""
    for directory in dirs:
        for entry in _listing(directory):
            hint = _exe_hint(entry)
            if hint is not None:
                yield Candidate(entry, hint, "PATH")


def _from_system(bindir: Path) -> Iterator[Candidate]:
    """The distribution's ``/usr/bin/python3.X``."""
    for entry in _listing(bindir):
        hint = _exe_hint(entry)
        if hint is not None and len(hint) == 2:
            yield Candidate(entry, hint, "system")


def _exe_hint(path: Path) -> tuple[int, ...] | None:
    """The version a ``python3[.X]`` name promises, refined by where its symlinks lead."""
    own = _EXE_NAME.match(path.name)
    if own is None or not _is_executable(path):
        return None
    hint = _name_hint(own)
    target = _EXE_NAME.match(os.path.basename(os.path.realpath(path)))
    if target is None:
        return hint
    # /usr/bin/python3 -> python3.11 promises 3.11; a link to another major is not trusted.
    resolved = _name_hint(target)
    return resolved if resolved[:1] == hint[:1] and len(resolved) > len(hint) else hint


def _name_hint(match: re.Match[str]) -> tuple[int, ...]:
    return tuple(int(part) for part in match.groups() if part is not None)


def _versioned_exe(bindir: Path, version: tuple[int, ...], free_threaded: bool) -> Path | None:
    short = ".".join(map(str, version[:2]))
    names = [f"python{short}t", f"python{short}"] if free_threaded else [f"python{short}"]
    return _first_file(bindir, names)


def _first_file(directory: Path, names: list[str]) -> Path | None:
    for name in names:
        path = directory / name
        if _is_executable(path):
            return path
    return None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _listing(directory: Path) -> list[Path]:
    """The entries of ``directory`` in a stable order, or none if it cannot be read."""
    try:
        return sorted(directory.iterdir())
    except OSError:
        return []


def _probe(path: Path, runner: list[str] | None = None) -> dict[str, Any]:
    """The probe's facts about ``path`` (run through ``runner``, an emulator, when given);
    InterpreterError if it is not a Python."""
    try:
        proc = subprocess.run(
            [*(runner or []), str(path), "-E", "-s", "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InterpreterError(f"{path} is not a Python interpreter ({exc})") from None
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = None
    if proc.returncode != 0 or not isinstance(data, dict):
        raise InterpreterError(f"{path} is not a Python interpreter")
    return data


def probe_refusal(data: Mapping[str, Any], path: Path) -> Refusal | None:
    """Why the probed Python cannot be bundled, or None if it can."""
    info = data["version_info"]
    version = (int(info[0]), int(info[1]), int(info[2]))
    implementation = str(data["implementation"])
    build = "free-threaded" if data.get("free_threaded") else "debug" if data.get("debug") else ""
    if implementation != "CPython":
        reason = "venvpack bundles CPython only"
    elif version[:2] < MIN_VERSION:
        reason = "venvpack needs CPython 3.9 or newer"
    elif build:
        reason = f"venvpack does not support {build} builds yet"
    else:
        return None
    executable = Path(data.get("executable") or path)
    return Refusal(executable, implementation, version, build, reason)


def _interpreter(
    data: dict[str, Any], path: Path, places: SearchPlaces, root: Sysroot | None = None
) -> Interpreter:
    version_info = data["version_info"]
    exe = Path(data["executable"])
    libpython = None
    if data["shared"] and data["libdir"] and data["instsoname"]:
        candidate = Path(data["libdir"]) / data["instsoname"]
        # Debian ships libpython3.X.so but its /usr/bin/python3.X does not use it.
        if candidate.exists() and candidate.name in read_elf(exe).needed:
            libpython = candidate
    return Interpreter(
        executable=exe,
        version=data["version"],
        version_info=(version_info[0], version_info[1], version_info[2]),
        base_prefix=Path(data["base_prefix"]),
        stdlib=Path(data["stdlib"]),
        lib_dynload=Path(data["lib_dynload"]) if data["lib_dynload"] else None,
        machine=data["machine"],
        libpython=libpython,
        libpl=Path(data["libpl"]) if data["libpl"] else None,
        include=Path(data["include"]) if data["include"] else None,
        sysconfigdata=data["sysconfigdata"],
        platlibdir=data["platlibdir"],
        source=source_label(path, exe, data["schemes"], places),
        sysroot=root,
        multiarch=data.get("multiarch") or None,
    )


def source_label(given: Path, exe: Path, schemes: list[str], places: SearchPlaces) -> str:
    """``uv``, ``pyenv``, ``debian`` or ``other``, for the manifest.

    uv is decided by where the interpreter was *found* as well as where it resolves to:
    an alias directory, or a managed python that symlinks elsewhere, is still uv's.
    """
    uv_dirs = {places.uv_dir, places.uv_default_dir}
    uv_dirs |= {Path(os.path.realpath(d)) for d in uv_dirs}
    for path in (Path(os.path.abspath(given.expanduser())), exe):
        if any(d in path.parents for d in uv_dirs):
            return "uv"
    if places.pyenv_root / "versions" in exe.parents or "/.pyenv/versions/" in str(exe):
        return "pyenv"
    if "posix_local" in schemes or "deb_system" in schemes:
        return "debian"
    return "other"
