"""What the person or program running venvpack sees: the only module that knows terminals.

The output contract (docs/output.md): **stdout carries results only** -- the CLI prints the
artifact's path (or the environment's directory), or one JSON object with ``--json``;
everything here goes to stderr. The pipeline does not print: it announces its steps through
:func:`venvpack.ui.stage`, which tells the current :class:`Reporter`, and hands the
reporter's :meth:`~Reporter.progress` to emitters as their byte-progress callback. Log records
of the ``venvpack`` logger reach stderr through the reporter too (:class:`LogHandler`), so a
warning never tears the progress line.

Three reporters, chosen by :func:`make_reporter`:

- :class:`Reporter` draws nothing, only records step times (``-q``, library use, tests);
  with ``-q`` it still writes the warnings marked :data:`ALWAYS`;
- :class:`PlainReporter` writes one line per step with its time (pipes, CI, ``TERM=dumb``);
- :class:`TerminalReporter` on a terminal: a one-line plan, one progress line redrawn across
  the steps, a one-line summary; with ``-v`` each finished step also stays as a line.

Colour only on a terminal and never with ``NO_COLOR`` set (https://no-color.org).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import TextIO

from venvpack.interrupt import checkpoint

__all__ = [
    "ALWAYS",
    "STEP_LABELS",
    "LogHandler",
    "PlainReporter",
    "Reporter",
    "TerminalReporter",
    "Verbosity",
    "current",
    "is_terminal",
    "make_reporter",
    "printable",
    "reporting",
    "stage",
    "style",
]


ALWAYS = {"venvpack_always": True}
"""``extra=`` of a log record that ``-q`` must not hide: a warning that the build is not what
its inputs promise (a lock exists, but the requirements are resolved afresh)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` safe for a terminal: control characters (ESC, BEL, CR, C1 codes ...) shown
    as ``\\x1b``, bytes that were not UTF-8 (surrogateescape) as ``\\xff``; tabs kept,
    line breaks kept only with ``newlines``. Text read from an artifact passes through this
    before it is printed."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if newlines else text.replace("\n", "\\n")


class Verbosity(IntEnum):
    QUIET = 0
    """``-q``: errors only."""
    NORMAL = 1
    """Plan, steps, summary, warnings and notes."""
    VERBOSE = 2
    """``-v``: also each step's detail (the installer's output, commands run, times)."""


STEP_LABELS = {
    "runtime": "copy runtime",
    "install": "install packages",
    "graft": "graft libraries",
    "relocate": "relocate + byte-compile",
    "audit": "audit",
    "pack": "pack",
}
"""What the steps :func:`venvpack.ui.stage` names are called on screen."""


def is_terminal(stream: TextIO) -> bool:
    """``stream`` is an interactive terminal that can redraw a line: not a pipe, not a file,
    not ``TERM=dumb``, not CI (whose log viewers show every redraw as a line)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")


def style(text: str, *, color: bool, bold: bool = False, fg: str | None = None) -> str:
    """``text`` with ANSI styling when ``color``, else unchanged."""
    if not color:
        return text
    codes = (["1"] if bold else []) + ([_COLORS[fg]] if fg else [])
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text


_COLORS = {"red": "31", "green": "32", "yellow": "33", "cyan": "36", "dim": "2"}


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


@dataclass
class _Step:
    name: str
    label: str
    started: float
    done: int = 0
    total: int = 0


class Reporter:
    """Records how long each step took; shows nothing. Subclasses show."""

    def __init__(
        self, verbosity: Verbosity = Verbosity.QUIET, stream: TextIO | None = None
    ) -> None:
        self.verbosity = verbosity
        self.warnings = stream
        """Where a quiet reporter writes the warnings -q does not hide (:data:`ALWAYS`)."""
        self.timings: dict[str, float] = {}
        """Seconds per step name, in the order the steps finished (a repeated name adds up)."""
        self.started = time.monotonic()
        self.steps: list[str] = []
        """The steps expected (:meth:`expect`), for "step 3 of 6"."""
        self.output = ""
        """Where the result goes, for the plan line."""
        self._lock = threading.RLock()
        self._step: _Step | None = None

    def expect(self, steps: Sequence[str], output: str = "") -> None:
        """The steps the run will take, in order, so progress can say how far along it is,
        and where its result goes."""
        self.steps = list(steps)
        self.output = output

    def plan(self, items: Sequence[tuple[str, str]]) -> None:
        """What is about to be done, before any work: (what, value) pairs."""

    def start(self, name: str, detail: str = "") -> None:
        """Step ``name`` begins; ``detail`` says more (the artifact's file name)."""
        with self._lock:
            label = STEP_LABELS.get(name, name) + (f" {detail}" if detail else "")
            self._step = _Step(name, label, time.monotonic())
            if name not in self.steps:
                self.steps.append(name)

    def progress(self, done: int, total: int) -> None:
        """Bytes (or items) done of ``total`` within the current step; an emitter's callback."""
        with self._lock:
            if self._step is not None:
                self._step.done, self._step.total = done, total

    def finish(self, name: str, seconds: float) -> None:
        """Step ``name`` ended after ``seconds``."""
        with self._lock:
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            self._step = None

    def abort(self, name: str) -> None:
        """Step ``name`` failed or was interrupted: its error follows."""
        with self._lock:
            self._step = None

    def message(self, text: str, level: int = logging.INFO) -> None:
        """One line from the log (a warning, a note, a step's detail)."""
        if self.warnings is not None and level >= logging.WARNING:
            with contextlib.suppress(OSError, ValueError):
                self.warnings.write(f"venvpack: warning: {text}\n")
                self.warnings.flush()

    def summary(self, text: str) -> None:
        """The last line of a successful run."""

    def close(self) -> None:
        """Leave stderr clean for what follows (an error message)."""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class PlainReporter(Reporter):
    """One plain line per event: for pipes, CI logs and ``TERM=dumb``."""

    def __init__(self, stream: TextIO, verbosity: Verbosity, *, color: bool = False) -> None:
        super().__init__(verbosity)
        self.stream = stream
        self.color = color

    def _write(self, text: str) -> None:
        """Write and flush; a closed or vanished stderr (a hung-up terminal, a reader that
        went away) never turns into an error of its own, which would hide the real one."""
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()

    def _line(self, text: str) -> None:
        with self._lock:
            self._write(text + "\n")

    def plan(self, items: Sequence[tuple[str, str]]) -> None:
        items = [*items, ("output", self.output)] if self.output else list(items)
        text = ", ".join(f"{what} {value}" for what, value in items)
        self._line(f"venvpack: {style('plan:', color=self.color, bold=True)} {text}")

    def finish(self, name: str, seconds: float) -> None:
        step = self._step
        super().finish(name, seconds)
        label = step.label if step is not None else STEP_LABELS.get(name, name)
        self._line(f"venvpack: {label} {_duration(seconds)}")

    def message(self, text: str, level: int = logging.INFO) -> None:
        if level >= logging.WARNING:
            word = "warning" if level < logging.ERROR else "error"
            color = "yellow" if level < logging.ERROR else "red"
            text = f"{style(word + ':', color=self.color, fg=color)} {text}"
        self._line(f"venvpack: {text}")

    def summary(self, text: str) -> None:
        self._line(f"venvpack: {style(text, color=self.color, bold=True)}")


class TerminalReporter(PlainReporter):
    """A plan line, then one progress line redrawn across the steps, then a summary line."""

    WIDTH = 24
    """Characters of the progress bar."""
    TICK = 0.2
    """Seconds between redraws while a step runs (its clock keeps moving)."""

    def __init__(self, stream: TextIO, verbosity: Verbosity, *, color: bool = True) -> None:
        super().__init__(stream, verbosity, color=color)
        self._live = False
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self, name: str, detail: str = "") -> None:
        super().start(name, detail)
        self._draw()
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="venvpack-ui", daemon=True)
            self._ticker.start()

    def progress(self, done: int, total: int) -> None:
        super().progress(done, total)
        self._draw()

    def finish(self, name: str, seconds: float) -> None:
        with self._lock:
            step = self._step
            Reporter.finish(self, name, seconds)
            if self.verbosity >= Verbosity.VERBOSE:
                label = step.label if step is not None else STEP_LABELS.get(name, name)
                self._line(
                    f"venvpack: {style('done', color=self.color, fg='green')} {label} "
                    f"{_duration(seconds)}"
                )
            else:
                self._draw()

    def abort(self, name: str) -> None:
        super().abort(name)
        self._clear()

    def _line(self, text: str) -> None:
        with self._lock:
            self._clear()
            self._write(text + "\n")
            self._draw()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            self._step = None
            self._clear()

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK):
            self._draw()

    def _clear(self) -> None:
        if self._live:
            self._write("\r\x1b[K")
            self._live = False

    def _draw(self) -> None:
        with self._lock:
            step = self._step
            if step is None:
                self._clear()
                return
            total = max(len(self.steps), 1)
            index = self.steps.index(step.name) if step.name in self.steps else total - 1
            within = min(step.done / step.total, 1.0) if step.total else 0.0
            percent = f" {100 * within:3.0f}%" if step.total else ""
            if step.total and step.done >= step.total:
                # Everything is read; compression threads may still be finishing blocks.
                percent = " finishing"
            text = self._fit(
                f"[{index + 1}/{total}]",
                (index + within) / total,
                step.label,
                f"{percent} {_duration(time.monotonic() - step.started)}",
            )
            self._write("\r\x1b[K" + text)
            self._live = True

    def _fit(self, counter: str, fraction: float, label: str, tail: str) -> str:
        """The progress line within the terminal's width (a wrapped line could not be
        redrawn with \\r): the bar gives way first, then the label, then the bar altogether."""
        width = self._width() - 1
        bar_width = self.WIDTH

        def compose() -> str:
            filled = int(bar_width * fraction)
            bar = f" [{'#' * filled}{'-' * (bar_width - filled)}]" if bar_width else ""
            return f"venvpack: {counter}{bar} {label}{tail}"

        excess = len(compose()) - width
        if excess > 0:  # a shorter bar, down to 10
            bar_width = max(self.WIDTH - excess, 10)
            excess = len(compose()) - width
        if excess > 0 and len(label) > 12:  # a shorter label, down to 12
            label = label[: max(len(label) - excess - 1, 11)] + "~"
            excess = len(compose()) - width
        if excess > 0:  # no bar
            bar_width = 0
        text = compose()[:width]
        styled = style(counter, color=self.color, bold=True)
        return text.replace(counter, styled, 1) if text.startswith(f"venvpack: {counter}") else text

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return 80


class LogHandler(logging.Handler):
    """Sends the ``venvpack`` logger's records to the current reporter (one line each);
    step timings (``venvpack_stage``) are the reporter's own lines already."""

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "venvpack_stage"):
            return
        if current().verbosity is Verbosity.QUIET and not hasattr(record, "venvpack_always"):
            return  # -q shows errors only (the CLI's), and what ALWAYS marks
        try:
            current().message(record.getMessage(), record.levelno)
        except Exception:  # a log line must never fail a build
            self.handleError(record)


_current: Reporter = Reporter()


def current() -> Reporter:
    """The reporter steps are announced to: the CLI's while it runs, else a silent one."""
    return _current


def make_reporter(verbosity: Verbosity, stream: TextIO | None = None) -> Reporter:
    """The reporter for ``stream`` (stderr): silent with -q, live on a terminal, else plain."""
    stream = stream if stream is not None else sys.stderr
    if verbosity is Verbosity.QUIET:
        return Reporter(verbosity, stream)
    color = not os.environ.get("NO_COLOR")
    if is_terminal(stream):
        return TerminalReporter(stream, verbosity, color=color)
    return PlainReporter(stream, verbosity)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Make ``reporter`` current, with the ``venvpack`` logger going through it at its
    verbosity; restore the silent one afterwards (also on failure, leaving stderr clean)."""
    global _current
    log = logging.getLogger("venvpack")
    saved = (_current, log.handlers[:], log.level, log.propagate)
    levels = {
        Verbosity.QUIET: logging.WARNING,  # only ALWAYS's warnings pass LogHandler
        Verbosity.NORMAL: logging.INFO,
        Verbosity.VERBOSE: logging.DEBUG,
    }
    _current = reporter
    log.handlers[:] = [LogHandler()]
    log.setLevel(levels[reporter.verbosity])
    log.propagate = False
    try:
        yield reporter
    finally:
        reporter.close()
        _current = saved[0]
        log.handlers[:] = saved[1]
        log.setLevel(saved[2])
        log.propagate = saved[3]


@contextmanager
def stage(name: str, detail: str = "") -> Iterator[None]:
    """One step of the pipeline: the current reporter (:mod:`venvpack.ui`) is told when it
    starts and ends, and how long it took is logged at debug level with the step's name and
    seconds as the record's ``venvpack_stage`` and ``venvpack_seconds`` (for benchmarks)."""
    reporter = current()
    checkpoint()
    reporter.start(name, detail)
    started = time.monotonic()
    try:
        yield
        checkpoint()
    except BaseException:
        reporter.abort(name)
        raise
    seconds = time.monotonic() - started
    reporter.finish(name, seconds)
    logging.getLogger("venvpack").debug(
        "stage %s took %.2fs",
        name,
        seconds,
        extra={"venvpack_stage": name, "venvpack_seconds": seconds},
    )
