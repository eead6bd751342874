"""The one place that runs subprocesses: argument lists only, never shell strings.

Every child is started in a process group of its own and, on Linux, asked to die with
venvpack (``PR_SET_PDEATHSIG``). When venvpack is interrupted (SIGINT, SIGTERM, SIGHUP turned
into :class:`~venvpack.interrupt.Interrupted`) or fails while children run, their whole groups
are stopped before the exception goes on: a Ctrl-C sent to venvpack's PID alone, or a
``kill``, never leaves an installer or a byte-compile worker running. SIGKILL cannot be
caught; the parent-death signal stops the direct children then.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import IO, Callable, Union

from venvpack.errors import ToolMissingError, VenvpackError
from venvpack.interrupt import checkpoint

__all__ = ["clean_python_env", "pipe", "run", "run_all", "which"]

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
_PR_SET_PDEATHSIG = 1
# How long a stopped child's group gets to exit on SIGTERM before it is killed.
_GRACE_SECONDS = 3.0


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
    return run_all(
        [args], error=error, what=what, env=env, cwd=cwd, capture=capture, full_output=full_output
    )[0]


def run_all(
    commands: Sequence[Sequence[Arg]],
    *,
    error: type[VenvpackError],
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = True,
    full_output: bool = False,
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``commands`` at the same time (e.g. one worker per CPU) and wait for them all;
    the first that failed raises as :func:`run` says. If anything goes wrong while they run
    -- an interruption included -- every one of them is stopped first."""
    children: list[tuple[subprocess.Popen[bytes], IO[bytes] | None, IO[bytes] | None]] = []
    results = []
    out: IO[bytes] | None
    err: IO[bytes] | None
    with ExitStack() as files:
        try:
            for args in commands:
                # Captured output goes to files, not pipes: several children never block
                # on a full pipe while their parent waits for another one.
                out = files.enter_context(tempfile.TemporaryFile()) if capture else None
                err = files.enter_context(tempfile.TemporaryFile()) if capture else None
                children.append((_start(args, error, what, env, cwd, out, err), out, err))
            for proc, out, err in children:
                proc.wait()
                results.append(
                    subprocess.CompletedProcess(proc.args, proc.returncode, _read(out), _read(err))
                )
            checkpoint()
        except BaseException:
            stop([proc for proc, _, _ in children])
            raise
    for result in results:
        if result.returncode != 0:
            summary = f"{what} failed (exit {result.returncode})"
            if full_output and capture:
                output = (result.stderr or "").strip() or (result.stdout or "").strip()
                raise error(summary, detail=output)
            last = _last_line(result.stderr or "") or _last_line(result.stdout or "")
            raise error(summary + (f": {last}" if last else ""))
    return results


def _start(
    args: Sequence[Arg],
    error: type[VenvpackError],
    what: str,
    env: Mapping[str, str] | None,
    cwd: Path | None,
    out: IO[bytes] | None,
    err: IO[bytes] | None,
) -> subprocess.Popen[bytes]:
    """Start one child in a new session (its own process group) that dies with venvpack."""
    argv = [os.fspath(a) for a in args]
    try:
        return subprocess.Popen(
            argv,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{what}: {argv[0]} not found") from exc
    except PermissionError as exc:
        raise error(f"{what}: {argv[0]} is not executable") from exc


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop the process groups of ``procs`` (children started by :func:`run_all`): SIGTERM,
    a few seconds' grace, then SIGKILL; every child is reaped."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_SECONDS
    for proc in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        # Also after the leader exited: what it started in its group goes with it.
        _signal_group(proc.pid, signal.SIGKILL)
    for proc in procs:
        proc.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _read(handle: IO[bytes] | None) -> str:
    if handle is None:
        return ""
    handle.seek(0)
    return handle.read().decode("utf-8", errors="replace")


@cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, loaded before any fork (ctypes must not load libraries in a child)."""
    if not hasattr(os, "getppid") or os.uname().sysname != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """What a child runs before exec so that the kernel kills it when venvpack dies."""
    prctl = _prctl()
    if prctl is None:
        return None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # venvpack died before the signal was armed
            os._exit(1)

    return arm


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
