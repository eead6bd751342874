"""Terminal descriptions for the bundled ncurses (``curses``, ``readline``).

ncurses finds a terminal's description in ``$TERMINFO``, ``~/.terminfo``, ``$TERMINFO_DIRS``
and then in a list of directories compiled into the library
(Debian: ``/etc/terminfo:/lib/terminfo:/usr/share/terminfo``). A target with only glibc has
none of them, and ``curses.setupterm("xterm")`` fails. The environment carries the common
descriptions (``policy/terminfo.json``) in ``python/share/terminfo``, copied from the
directories that compiled-in list names on the build host, and the list in the carried
library is overwritten in place to name that directory at the install prefix, where deb and
rpm put it (the list holds absolute paths only, as ``PREFIX`` in libpython does; no variable
has to be set). Elsewhere the interpreter venvpack links adds that directory as the last
entry of ``TERMINFO_DIRS`` itself (``packaging-templates/runtime/main.c``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from venvpack.errors import ConfigError
from venvpack.policy import load_json

__all__ = ["carry_terminfo", "terminals"]

log = logging.getLogger("venvpack")

# A C string made only of absolute directories ending in "terminfo", separated by ":".
_COMPILED_DIRS = re.compile(rb"(?<=\x00)(/[^\x00:]*terminfo(?::/[^\x00:]*terminfo)*)(?=\x00)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$")


def terminals() -> tuple[str, ...]:
    """Terminal names every environment carries (policy data, validated)."""
    names = load_json("terminfo.json").get("terminals")
    if not isinstance(names, list) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
        raise ConfigError("terminfo.json: 'terminals' must be a list of terminal names")
    return tuple(names)


def carry_terminfo(lib_dir: Path, runtime_root: Path, prefix: str) -> list[tuple[str, str]]:
    """Copy the descriptions into ``<runtime_root>/share/terminfo``; return the (compiled
    list, replacement) pairs for the libraries in ``lib_dir`` that carry such a list."""
    target = runtime_root / "share" / "terminfo"
    installed = f"{prefix.rstrip('/')}/python/share/terminfo"
    pairs: list[tuple[str, str]] = []
    for library in sorted(lib_dir.glob("lib*.so*")):
        if library.is_symlink() or not library.is_file():
            continue
        data = library.read_bytes()
        if b"terminfo" not in data:  # a byte search first: the pattern is slow over MBs
            continue
        for match in _COMPILED_DIRS.finditer(data):
            compiled = os.fsdecode(match.group(1))
            _copy_entries(compiled.split(":"), target)
            if (compiled, installed) not in pairs:
                pairs.append((compiled, installed))
    return pairs if target.is_dir() else []


def _copy_entries(sources: list[str], target: Path) -> None:
    for name in terminals():
        for directory in sources:
            entry = Path(directory) / name[0] / name
            if entry.is_file():
                dest = target / name[0] / name
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(os.path.realpath(entry), dest)
                break
        else:
            log.debug("no terminfo entry for %s in %s", name, ":".join(sources))
