"""The one place that runs subprocesses: argument lists only, never shell strings."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

from venvpack.errors import ToolMissingError, VenvpackError

__all__ = ["clean_python_env", "pipe", "run", "which"]

Arg = Union[str, "os.PathLike[str]"]

# Variables that would make a bundled interpreter look at the build host instead of itself.
_PYTHON_VARS = (
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONEXECUTABLE",
    "PYTHONSAFEPATH",
    "PYTHONPLATLIBDIR",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "__PYVENV_LAUNCHER__",
)


def clean_python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without variables that redirect a Python interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in _PYTHON_VARS}
    env["PYTHONNOUSERSITE"] = "1"
    if extra:
        env.update(extra)
    return env


def which(tool: str, hint: str = "") -> str:
    """Absolute path of ``tool`` on PATH, or a ToolMissingError that says how to get it."""
    found = shutil.which(tool)
    if found is None:
        raise ToolMissingError(f"{tool} not found on PATH" + (f"; {hint}" if hint else ""))
    return found


def run(
    args: Sequence[Arg],
    *,
    error: type[VenvpackError],
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = True,
    full_output: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; on failure raise ``error`` with ``what`` and the tool's last stderr line.

    Output is captured (and returned) unless ``capture`` is false, in which case it goes to
    the user's terminal, for long steps such as installing packages. With ``full_output``
    the error carries everything the tool wrote to stderr as its ``detail``: an installer's
    last line alone ("And because ... we can conclude ...") rarely says what went wrong.
    """
    argv = [os.fspath(a) for a in args]
    try:
        proc = subprocess.run(
            argv,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            capture_output=capture,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{what}: {argv[0]} not found") from exc
    except PermissionError as exc:
        raise error(f"{what}: {argv[0]} is not executable") from exc
    if proc.returncode != 0:
        summary = f"{what} failed (exit {proc.returncode})"
        if full_output and capture:
            output = (proc.stderr or "").strip() or (proc.stdout or "").strip()
            raise error(summary, detail=output)
        last = _last_line(proc.stderr or "") or _last_line(proc.stdout or "")
        raise error(summary + (f": {last}" if last else ""))
    return proc


def pipe(
    first: Sequence[Arg],
    second: Sequence[Arg],
    *,
    error: type[VenvpackError],
    what: str,
    cwd: Path | None = None,
) -> None:
    """``first | second`` without a shell (e.g. ``rpm2cpio x.rpm | cpio -id``); either
    failing raises ``error`` with ``what`` and that tool's last stderr line."""
    argv1 = [os.fspath(a) for a in first]
    argv2 = [os.fspath(a) for a in second]
    try:
        with subprocess.Popen(
            argv1, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as producer:
            consumer = subprocess.run(
                argv2, stdin=producer.stdout, capture_output=True, cwd=cwd, check=False
            )
            assert producer.stdout is not None
            assert producer.stderr is not None
            producer.stdout.close()
            producer_err = producer.stderr.read()
            producer.wait()
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{what}: {exc.filename} not found") from exc
    for argv, code, stderr in (
        (argv1, producer.returncode, producer_err),
        (argv2, consumer.returncode, consumer.stderr),
    ):
        if code != 0:
            last = _last_line(stderr.decode(errors="replace"))
            name = os.path.basename(argv[0])
            raise error(f"{what}: {name} failed (exit {code})" + (f": {last}" if last else ""))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
