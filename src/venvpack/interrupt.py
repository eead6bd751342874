"""One way to stop: SIGINT, SIGTERM and SIGHUP all unwind venvpack like Ctrl-C.

The first of them raises :class:`Interrupted` (a ``KeyboardInterrupt``) in the main thread,
so every ``finally`` runs: children are stopped (:mod:`venvpack.proc`) and staging
directories removed (:mod:`venvpack.output`). Further signals are ignored from then on, so a
second Ctrl-C cannot break the cleanup into a traceback. The CLI exits with 128 + the
signal's number (130, 143, 129). SIGKILL cannot be caught: :func:`venvpack.output.reap`
removes what such a run left, the next time anything is written there.

Raising from a signal handler has one gap: Python runs the handler wherever the main thread
happens to be, and a few places swallow exceptions (logging's after-fork hook while a child
is started, ``__del__`` methods, weakref callbacks) -- the run would then go on and succeed
with exit 0 after a Ctrl-C. So the signal is also remembered, and :func:`checkpoint` raises
it again: at every step boundary, after children finish, before an artifact is renamed into
place, and when the command returns (:func:`venvpack.cli.main`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["SIGNALS", "Interrupted", "checkpoint", "orderly_signals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that interrupt venvpack in an orderly way."""


class Interrupted(KeyboardInterrupt):
    """venvpack received one of :data:`SIGNALS`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process killed by it."""
        return 128 + self.signum


_received: list[int] = []
"""The signal that interrupted this process, once one has (it is never forgotten: the process
is on its way out)."""


def checkpoint() -> None:
    """Raise :class:`Interrupted` if a signal came, even if its first raise was swallowed."""
    if _received:
        raise Interrupted(_received[0])


@contextmanager
def orderly_signals() -> Iterator[None]:
    """Turn :data:`SIGNALS` into :class:`Interrupted` inside the block (main thread only).

    The previous handlers come back when the block ends, unless a signal came: then the
    process is on its way out and further signals stay ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    owner = os.getpid()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            # A forked worker (byte-compilation's process pool) inherits this handler; a
            # Ctrl-C sent to the process group can reach it inside the interpreter's own
            # after-fork hooks, where a raise becomes a traceback on the shared stderr.
            # It dies of the signal instead, quietly; its parent unwinds.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        _received.append(signum)
        raise Interrupted(signum)

    _received.clear()  # a new run (several in one process: tests, library callers)
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, interrupt)
    try:
        yield
    finally:
        if not _received:
            for number, handler in previous.items():
                signal.signal(number, handler)
