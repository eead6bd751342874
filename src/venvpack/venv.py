"""Stage ``venv``: the virtual-environment skeleton around the bundled runtime.

``bin/python`` reaches ``python/bin/python3.X`` by a relative symlink (runs anywhere), a
copy or a hardlink (runs at the prefix, with an absolute ``home``). ``pyvenv.cfg`` is
written twice: during the build it names the build location, so installers accept the
environment; ``finalize`` writes what the environment carries (docs/how-it-works.md,
"Finding itself").

In symlink mode the shipped ``pyvenv.cfg`` says ``home =``, with an empty value, on purpose.
CPython 3.11+ (``Modules/getpath.py``) sets ``sys._base_executable`` to the *resolved*
``bin/python`` only when the file has a ``home`` key; without one it stays ``<env>/bin/python``,
and ``python -m venv`` (IDEs, tox, nox, pre-commit, pipx) then writes ``home = <env>/bin``, where
no stdlib is: the new venv falls back to the compile-time prefix. An empty ``home`` gives the
resolved base executable and leaves the directory unset, so getpath takes it from that resolved
binary (``python/bin``) and finds the bundled stdlib from any location; a new venv gets
``home = <env>/python/bin``. 3.9 and 3.10 (``getpath.c``) resolve the symlink before reading
any ``pyvenv.cfg`` and never read this one, and ``site`` only records the empty value in
``sys._home``, which sysconfig treats as unset. (A relative ``home`` would be read against the
current directory; PEP 796's relative ``home`` is not in any release yet.)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from venvpack import __version__
from venvpack.config import LinkMode
from venvpack.runtime import Runtime
from venvpack.templates import render

__all__ = ["create_skeleton", "finalize_pyvenv_cfg", "render_pyvenv_cfg"]

ACTIVATE_SCRIPTS = ("activate", "activate.fish")
RELOCATE_SCRIPT = "venvpack-relocate"


def render_pyvenv_cfg(pairs: Sequence[tuple[str, str]]) -> str:
    """``pyvenv.cfg`` from ordered key/value pairs; values may not span lines."""
    lines = []
    for key, value in pairs:
        if "\n" in value or "\r" in value or "=" in key:
            raise ValueError(f"pyvenv.cfg entry {key!r} cannot hold a line break")
        lines.append(f"{key} = {value}".rstrip(" ") + "\n")
    return "".join(lines)


def _pairs(home: str | None, runtime: Runtime, link_mode: LinkMode) -> list[tuple[str, str]]:
    pairs = [("home", home)] if home is not None else []
    pairs += [
        ("include-system-site-packages", "false"),
        ("version", runtime.version),
        ("venvpack", __version__),
        ("venvpack-python-link", link_mode.value),
    ]
    return pairs


def create_skeleton(root: Path, runtime: Runtime, link_mode: LinkMode, prompt: str) -> Path:
    """Make ``bin/``, ``lib/python3.X/site-packages``, the python links, activate scripts and
    a build-time ``pyvenv.cfg``. Returns the environment's ``bin/python``."""
    short = runtime.short_version
    bindir = root / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    (root / "lib" / f"python{short}" / "site-packages").mkdir(parents=True, exist_ok=True)
    if not (root / "lib64").exists():
        os.symlink("lib", root / "lib64")
    python = bindir / "python"
    if link_mode is LinkMode.SYMLINK:
        os.symlink(os.path.relpath(runtime.executable, bindir), python)
    elif link_mode is LinkMode.HARDLINK:
        os.link(runtime.executable, python)
    else:
        shutil.copy2(runtime.executable, python)
    for alias in ("python3", f"python{short}"):
        os.symlink("python", bindir / alias)
    for name in ACTIVATE_SCRIPTS:
        (bindir / name).write_text(render(f"venv/{name}", prompt=prompt), encoding="utf-8")
    if link_mode is not LinkMode.SYMLINK:
        # A real bin/python needs an absolute home: this documented step moves it.
        relocate_script = bindir / RELOCATE_SCRIPT
        relocate_script.write_text(render(f"venv/{RELOCATE_SCRIPT}"), encoding="utf-8")
        relocate_script.chmod(0o755)
    home = str(runtime.executable.parent)
    (root / "pyvenv.cfg").write_text(
        render_pyvenv_cfg(_pairs(home, runtime, link_mode)), encoding="utf-8"
    )
    return python


def finalize_pyvenv_cfg(root: Path, runtime: Runtime, link_mode: LinkMode, prefix: str) -> None:
    """The shipped ``pyvenv.cfg``: an empty ``home`` in symlink mode, ``<prefix>/python/bin``
    else.

    With an empty ``home`` CPython finds its base by following the ``bin/python`` symlink,
    which works from any location, and reports that resolved binary as
    ``sys._base_executable`` (see the module docstring); a stale or relative ``home`` would
    break.
    """
    home = "" if link_mode is LinkMode.SYMLINK else f"{prefix.rstrip('/')}/python/bin"
    path = root / "pyvenv.cfg"
    tmp = path.with_name("pyvenv.cfg.tmp")
    tmp.write_text(render_pyvenv_cfg(_pairs(home, runtime, link_mode)), encoding="utf-8")
    os.replace(tmp, path)
