"""Stage ``interpreter``: find a CPython and describe it.

The description comes from running the interpreter once with a small probe, so shims
(pyenv), venvs and distro layouts all reduce to the same facts: where the real binary,
the standard library, lib-dynload and libpython live, relative to the base prefix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from venvpack.elf import read_elf
from venvpack.errors import InterpreterError

__all__ = ["Interpreter", "describe", "find_interpreter"]

MIN_VERSION = (3, 9)

# Written to run on any Python, even 2.7, so that an unsupported interpreter still gets a
# precise message instead of a syntax error.
_PROBE = r"""
import json, os, platform, sys
out = {"implementation": platform.python_implementation(),
       "version_info": list(sys.version_info[:3])}
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
    })
sys.stdout.write(json.dumps(out))
"""


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

    @property
    def short_version(self) -> str:
        return f"{self.version_info[0]}.{self.version_info[1]}"

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.executable.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def describe(path: Path) -> Interpreter:
    """Run the probe with ``path`` and check it is a supported CPython."""
    try:
        proc = subprocess.run(
            [str(path), "-E", "-s", "-S", "-c", _PROBE],
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
    version_info = tuple(data["version_info"])
    dotted = ".".join(str(v) for v in version_info)
    if data["implementation"] != "CPython":
        raise InterpreterError(
            f"{path} is {data['implementation']} {dotted}; venvpack bundles CPython only"
        )
    if version_info < MIN_VERSION:
        raise InterpreterError(f"{path} is CPython {dotted}; venvpack needs CPython 3.9 or newer")
    exe = Path(data["executable"])
    libpython = None
    if data["shared"] and data["libdir"] and data["instsoname"]:
        candidate = Path(data["libdir"]) / data["instsoname"]
        # Debian ships libpython3.X.so but its /usr/bin/python3.X does not use it.
        if candidate.exists() and candidate.name in read_elf(exe).needed:
            libpython = candidate
    base = Path(data["base_prefix"])
    return Interpreter(
        executable=exe,
        version=data["version"],
        version_info=(version_info[0], version_info[1], version_info[2]),
        base_prefix=base,
        stdlib=Path(data["stdlib"]),
        lib_dynload=Path(data["lib_dynload"]) if data["lib_dynload"] else None,
        machine=data["machine"],
        libpython=libpython,
        libpl=Path(data["libpl"]) if data["libpl"] else None,
        include=Path(data["include"]) if data["include"] else None,
        sysconfigdata=data["sysconfigdata"],
        platlibdir=data["platlibdir"],
        source=_source_label(exe, base, data["schemes"]),
    )


def _source_label(exe: Path, base: Path, schemes: list[str]) -> str:
    pyenv_versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if pyenv_versions in exe.parents or "/.pyenv/versions/" in str(exe):
        return "pyenv"
    if "/uv/python/" in str(exe):
        return "uv"
    if "posix_local" in schemes or "deb_system" in schemes:
        return "debian"
    return "other"


_VERSION_RE = re.compile(r"^(?:python)?(3)\.(\d+)(?:\.(\d+))?$")


def find_interpreter(request: str | None) -> Interpreter:
    """Resolve ``--python``: None, a path, or a version such as ``3.12`` / ``3.12.1``."""
    if request is None:
        return describe(Path(sys.executable))
    match = _VERSION_RE.match(request)
    if match is None or "/" in request:
        path = Path(request).expanduser()
        if not path.exists():
            raise InterpreterError(f"no interpreter at {request}")
        if path.is_dir():
            raise InterpreterError(f"{request} is a directory, not an interpreter")
        return describe(path)
    major, minor, micro = match.group(1), match.group(2), match.group(3)
    for candidate in _candidates(f"{major}.{minor}", micro):
        try:
            found = describe(candidate)
        except InterpreterError:
            continue
        if micro is None or found.version_info[2] == int(micro):
            return found
    raise InterpreterError(
        f"no CPython {request} found on PATH, in pyenv, in uv's managed pythons or in /usr/bin"
    )


def _candidates(short: str, micro: str | None) -> list[Path]:
    """Places to look for CPython ``short`` (3.12), most specific first."""
    out: list[Path] = []
    on_path = shutil.which(f"python{short}")
    if on_path:
        out.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    out += _versioned_dirs(pyenv_root / "versions", short, micro, f"bin/python{short}")
    uv_dir = os.environ.get("UV_PYTHON_INSTALL_DIR") or str(
        Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "uv/python"
    )
    out += _versioned_dirs(Path(uv_dir), short, micro, f"bin/python{short}", prefix="cpython-")
    out.append(Path(f"/usr/bin/python{short}"))
    return [p for p in out if p.exists()]


def _versioned_dirs(
    parent: Path, short: str, micro: str | None, exe: str, prefix: str = ""
) -> list[Path]:
    """``parent/<prefix>3.12.N*/exe`` for every N, newest first (or exactly N)."""
    if not parent.is_dir():
        return []
    pattern = re.compile(
        re.escape(prefix + short + ".")
        + (re.escape(micro) if micro else r"(\d+)")
        + r"(?:[-+].*)?$"
    )
    found: list[tuple[int, Path]] = []
    for child in parent.iterdir():
        m = pattern.match(child.name)
        if m and (child / exe).exists():
            found.append((int(micro) if micro else int(m.group(1)), child / exe))
    return [p for _, p in sorted(found, reverse=True)]
