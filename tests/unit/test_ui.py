"""The reporter: which one a stream gets, what each draws for the pipeline's steps, and the
log record a program timing the steps reads."""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import pty
import re
import struct
import termios
from collections.abc import Iterator

import pytest

from venvpack import ui
from venvpack.cli import BUILD_STEPS
from venvpack.ui import stage


@pytest.fixture
def tty() -> Iterator[io.TextIOWrapper]:
    """A real terminal (the slave side of a pseudo-terminal) as a text stream."""
    master, slave = pty.openpty()
    stream = open(slave, "w", encoding="utf-8")  # noqa: SIM115 -- closed below
    try:
        yield stream
    finally:
        stream.close()
        os.close(master)


def test_a_terminal_gets_the_live_reporter(
    tty: io.TextIOWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CI", "NO_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    reporter = ui.make_reporter(ui.Verbosity.NORMAL, tty)
    assert isinstance(reporter, ui.TerminalReporter)
    assert reporter.color


@pytest.mark.parametrize(("variable", "value"), [("CI", "true"), ("TERM", "dumb")])
def test_ci_and_dumb_terminals_get_plain_lines(
    tty: io.TextIOWrapper, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(variable, value)
    reporter = ui.make_reporter(ui.Verbosity.NORMAL, tty)
    assert type(reporter) is ui.PlainReporter


def test_no_color(tty: io.TextIOWrapper, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    reporter = ui.make_reporter(ui.Verbosity.NORMAL, tty)
    assert isinstance(reporter, ui.TerminalReporter)
    assert not reporter.color


def test_pipes_get_plain_lines_and_quiet_gets_nothing() -> None:
    assert type(ui.make_reporter(ui.Verbosity.NORMAL, io.StringIO())) is ui.PlainReporter
    assert type(ui.make_reporter(ui.Verbosity.QUIET, io.StringIO())) is ui.Reporter


def run_build_steps(reporter: ui.Reporter) -> None:
    with ui.reporting(reporter):
        reporter.expect((*BUILD_STEPS, "pack"), output="dist")
        ui.current().plan([("python", "CPython 3.12.4 (pyenv)"), ("from", "uv.lock")])
        for name in BUILD_STEPS:
            with stage(name):
                logging.getLogger("venvpack").debug("detail of %s", name)
        with stage("pack", "app.deb"):
            for done in range(0, 101, 25):
                ui.current().progress(done, 100)
        reporter.summary("wrote dist/app.deb (1.0 MiB, glibc >= 2.17) in 1.0s")


def test_plain_lines_one_per_step() -> None:
    out = io.StringIO()
    reporter = ui.PlainReporter(out, ui.Verbosity.NORMAL)
    run_build_steps(reporter)
    lines = out.getvalue().splitlines()
    assert lines[0] == "venvpack: plan: python CPython 3.12.4 (pyenv), from uv.lock, output dist"
    steps = [line.rsplit(" ", 1)[0] for line in lines[1:-1]]
    assert steps == [
        "venvpack: copy runtime",
        "venvpack: install packages",
        "venvpack: graft libraries",
        "venvpack: relocate + byte-compile",
        "venvpack: audit",
        "venvpack: pack app.deb",
    ]
    assert all(line.endswith("s") for line in lines[1:-1])
    assert lines[-1] == "venvpack: wrote dist/app.deb (1.0 MiB, glibc >= 2.17) in 1.0s"
    assert list(reporter.timings) == [*BUILD_STEPS, "pack"]


def test_verbose_adds_the_steps_detail() -> None:
    out = io.StringIO()
    run_build_steps(ui.PlainReporter(out, ui.Verbosity.VERBOSE))
    assert "venvpack: detail of install" in out.getvalue().splitlines()
    normal = io.StringIO()
    run_build_steps(ui.PlainReporter(normal, ui.Verbosity.NORMAL))
    assert "detail of" not in normal.getvalue()


def test_terminal_redraws_one_line() -> None:
    out = io.StringIO()
    reporter = ui.TerminalReporter(out, ui.Verbosity.NORMAL, color=False)
    run_build_steps(reporter)
    text = out.getvalue()
    # Only the plan and the summary are lines; the steps are redrawn in place.
    assert text.count("\n") == 2
    assert text.startswith("venvpack: plan: python CPython 3.12.4 (pyenv)")
    for index, label in enumerate(ui.STEP_LABELS[name] for name in BUILD_STEPS):
        assert f"[{index + 1}/6] [" in text
        assert f"] {label} " in text
    assert "pack app.deb  50% " in text
    assert "pack app.deb finishing " in text
    assert text.endswith("\r\x1b[Kvenvpack: wrote dist/app.deb (1.0 MiB, glibc >= 2.17) in 1.0s\n")
    assert "\x1b[1m" not in text


def test_a_warning_does_not_tear_the_progress_line() -> None:
    out = io.StringIO()
    reporter = ui.TerminalReporter(out, ui.Verbosity.NORMAL, color=True)
    with ui.reporting(reporter):
        reporter.expect(["install"])
        with stage("install"):
            logging.getLogger("venvpack").warning("something odd")
    text = out.getvalue()
    # The live line is cleared, the warning printed whole, the line drawn again.
    before, after = text.split("\x1b[33mwarning:\x1b[0m something odd\n")
    assert before.endswith("\r\x1b[Kvenvpack: ")
    assert after.startswith("\r\x1b[Kvenvpack: ")
    assert text.endswith("\r\x1b[K")  # closed: nothing left on the line


def test_a_failed_step_leaves_a_clean_line_and_no_time() -> None:
    out = io.StringIO()
    reporter = ui.TerminalReporter(out, ui.Verbosity.NORMAL, color=False)
    with pytest.raises(RuntimeError), ui.reporting(reporter), stage("install"):
        raise RuntimeError("boom")
    assert out.getvalue().endswith("\r\x1b[K")
    assert reporter.timings == {}


def test_quiet_prints_nothing_but_errors(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = ui.make_reporter(ui.Verbosity.QUIET)
    with ui.reporting(reporter):
        with stage("audit"):
            logging.getLogger("venvpack").warning("a warning")
            logging.getLogger("venvpack").info("a note")
        reporter.summary("wrote x")
    assert capsys.readouterr().err == ""
    assert list(reporter.timings) == ["audit"]


class StageTimes(logging.Handler):
    """What a program timing the steps reads: the venvpack_stage extra of each record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.times: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        name = getattr(record, "venvpack_stage", None)
        if name is not None:
            self.times[name] = float(getattr(record, "venvpack_seconds", 0.0))


def test_benchmarks_still_read_stage_times_from_log_records() -> None:
    log = logging.getLogger("venvpack")
    saved = log.handlers[:], log.level
    handler = StageTimes()
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG)
    try:
        with stage("relocate"):
            pass
    finally:
        log.handlers[:], log.level = saved
    assert list(handler.times) == ["relocate"]
    assert handler.times["relocate"] >= 0


def test_a_vanished_stderr_does_not_hide_the_real_outcome() -> None:
    read, write = os.pipe()
    os.close(read)  # nobody reads stderr any more (a closed pipe, a hung-up terminal)
    stream = open(write, "w", encoding="utf-8")  # noqa: SIM115 -- closed below
    reporter = ui.TerminalReporter(stream, ui.Verbosity.NORMAL, color=False)

    def build() -> None:
        with ui.reporting(reporter), stage("install"):
            logging.getLogger("venvpack").warning("lost")
            raise KeyError("the real error")

    with pytest.raises(KeyError):
        build()
    with contextlib.suppress(OSError):
        stream.close()


def test_the_progress_line_fits_a_narrow_terminal() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    stream = open(slave, "w", encoding="utf-8")  # noqa: SIM115 -- closed below
    try:
        reporter = ui.TerminalReporter(stream, ui.Verbosity.NORMAL, color=False)
        with ui.reporting(reporter):
            reporter.expect(["pack"])
            with stage("pack", "a-very-long-application-name_1.0.0-1_amd64.deb"):
                ui.current().progress(1, 2)
        stream.close()
        # One read may return part of what was written: read until the closed side ends.
        chunks = []
        with contextlib.suppress(OSError):  # EIO once everything is read
            while chunk := os.read(master, 65536):
                chunks.append(chunk)
        screen = b"".join(chunks).decode()
    finally:
        if not stream.closed:
            stream.close()
        os.close(master)
    redraws = [r.removeprefix("\x1b[K") for r in screen.split("\r") if "[1/1]" in r]
    assert redraws
    assert all(len(r) <= 39 for r in redraws), redraws
    # The label keeps a few characters; the bar gives way.
    # The elapsed time is whatever a loaded machine took (0.0s, 0.3s ...).
    assert re.fullmatch(r"venvpack: \[1/1\] pack a-very~  50% [0-9]\.[0-9]s", redraws[-1])
