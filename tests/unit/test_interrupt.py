"""SIGINT, SIGTERM and SIGHUP become one Interrupted, once; repeats are ignored."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest

from venvpack import interrupt
from venvpack.interrupt import SIGNALS, Interrupted, checkpoint, orderly_signals


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    interrupt._received.clear()  # the next test is a new run


@pytest.mark.usefixtures("restore_handlers")
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_signal_interrupts_once(signum: int, code: int) -> None:
    cleaned = []

    def work() -> None:
        with orderly_signals():
            try:
                os.kill(os.getpid(), signum)
                time.sleep(5)  # the handler runs here
                pytest.fail("not interrupted")
            finally:
                os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C during cleanup
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                cleaned.append(True)

    with pytest.raises(Interrupted) as caught:
        work()
    assert isinstance(caught.value, KeyboardInterrupt)
    assert (caught.value.signum, caught.value.exit_code) == (signum, code)
    assert cleaned == [True]
    assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in SIGNALS)


@pytest.mark.usefixtures("restore_handlers")
def test_handlers_come_back_when_nothing_happened() -> None:
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    with orderly_signals():
        assert all(signal.getsignal(sig) not in (before[sig],) for sig in SIGNALS)
    assert {sig: signal.getsignal(sig) for sig in SIGNALS} == before


def _swallowed(signum: int) -> None:
    """Receive ``signum`` where the raise is swallowed, as logging's after-fork hook does."""
    with contextlib.suppress(BaseException):
        os.kill(os.getpid(), signum)
        time.sleep(5)


@pytest.mark.usefixtures("restore_handlers")
def test_a_swallowed_interruption_is_raised_again() -> None:
    """A handler that runs where exceptions are swallowed (logging's after-fork hook, a
    ``__del__``) loses its raise; the run still ends interrupted, at the next checkpoint."""
    reached = []

    def work() -> None:
        with orderly_signals():
            _swallowed(signal.SIGHUP)
            reached.append("after the swallowed signal")
            checkpoint()
            reached.append("past the checkpoint")

    with pytest.raises(Interrupted) as caught:
        work()
    assert reached == ["after the swallowed signal"]
    assert caught.value.exit_code == 129


@pytest.mark.usefixtures("restore_handlers")
def test_a_new_run_starts_clean() -> None:
    def work() -> None:
        with orderly_signals():
            _swallowed(signal.SIGTERM)
            checkpoint()

    with pytest.raises(Interrupted):
        work()
    with orderly_signals():
        checkpoint()


@pytest.mark.usefixtures("restore_handlers")
def test_a_forked_child_dies_of_the_signal_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C reaches the whole process group, also a child between fork and exec (which runs
    the inherited handler in the interpreter's after-fork hooks): it dies of the signal,
    never raising there into a traceback, and the parent is not the one interrupted."""
    import subprocess

    def signal_self() -> None:
        os.kill(os.getpid(), signal.SIGINT)

    with orderly_signals():
        child = subprocess.Popen(["true"], preexec_fn=signal_self)
        assert child.wait() == -signal.SIGINT
        checkpoint()  # nothing was received here
    assert "Traceback" not in capfd.readouterr().err
