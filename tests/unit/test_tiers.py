"""The test tiers: a test's directory decides whether ``make test-fast`` runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parents[1]


PYTEST_COLLECT = (sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")


def _collect(marker: str, path: Path) -> subprocess.CompletedProcess[str]:
    """``pytest --collect-only -m marker path`` as ``make test-fast`` would run it."""
    return subprocess.run(
        [*PYTEST_COLLECT, "-m", marker, str(path)],
        capture_output=True,
        text=True,
        cwd=TESTS.parent,
        check=False,
    )


def test_every_integration_file_is_in_the_integration_tier() -> None:
    # test_sandbox.py declares only ``roots``: the directory adds ``integration``.
    result = _collect("integration", TESTS / "integration" / "test_sandbox.py")
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected, result.stdout
    assert all(line.startswith("tests/integration/") for line in collected)


def test_no_integration_test_runs_in_the_fast_tier() -> None:
    result = _collect(
        "not integration and not packaging and not roots and not standalone", TESTS / "integration"
    )
    # Exit 5: every test was deselected.
    assert result.returncode == 5, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines() if "::" in line]
