"""Session fixtures for clean-root tests; the machinery lives in ``sandbox.py``.

Every test under ``tests/integration/`` is marked ``integration`` by its directory
(:func:`pytest_collection_modifyitems`), so a new file there can never join ``make test-fast``
by forgetting a marker.

Roots are cached across runs (see ``sandbox.default_cache``), so only the first run pays for
debootstrap. A missing tool skips the test on a developer machine but fails it under ``CI=true``
(``sandbox.unavailable``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

import builds
import sandbox
import standalone

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in ``tests/integration/`` as ``integration``: the tier follows the
    directory, not a line each file has to remember."""
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox_cache() -> Path:
    """Where built roots are kept between runs."""
    return sandbox.default_cache()


@pytest.fixture(scope="session")
def glibc_root_dir(sandbox_cache: Path) -> Path:
    """Shared, read-only root of libc6 + dash + libc-only coreutils; use ``sandbox.run_in_root``."""
    missing = sandbox.missing_tools("bwrap", "dpkg-query")
    if missing:
        sandbox.unavailable(f"glibc root needs {', '.join(missing)} (apt-get install bubblewrap)")
    return sandbox.glibc_root(sandbox_cache)


def _debootstrap(suite: str, cache: Path) -> Path:
    problem = sandbox.debootstrap_problem()
    if problem:
        sandbox.unavailable(f"debootstrap {suite} root: {problem}")
    return sandbox.debootstrap_root(suite, cache)


@pytest.fixture(scope="session")
def bullseye_root(sandbox_cache: Path) -> Path:
    """Shared minbase Debian 11 root. Never write to it: take ``fresh_root(bullseye_root)``."""
    return _debootstrap("bullseye", sandbox_cache)


@pytest.fixture(scope="session")
def bullseye_glibc_root(sandbox_cache: Path) -> Path:
    """Like ``glibc_root_dir``, but bullseye's libc6 (glibc 2.31), dash and coreutils: where an
    artifact whose manifest claims a glibc floor of 2.31 or lower must run."""
    problem = sandbox.debootstrap_problem()
    if problem:
        sandbox.unavailable(f"bullseye glibc root: {problem}")
    return sandbox.old_glibc_root("bullseye", sandbox_cache)


@pytest.fixture(scope="session")
def standalone_python(sandbox_cache: Path) -> standalone.StandalonePython:
    """A python-build-standalone look-alike in uv's layout (``standalone.py``): its
    ``install_dir`` is what ``UV_PYTHON_INSTALL_DIR`` would name, ``executable`` the binary.
    Built from source in a bullseye root the first time (6 to 10 minutes), cached after."""
    problem = standalone.standalone_problem()
    if problem:
        sandbox.unavailable(f"standalone python fixture: {problem}")
    return standalone.standalone_python(sandbox_cache)


@pytest.fixture(scope="session")
def bookworm_root(sandbox_cache: Path) -> Path:
    """Shared minbase Debian 12 root. Never write to it: take ``fresh_root(bookworm_root)``."""
    return _debootstrap("bookworm", sandbox_cache)


@pytest.fixture(scope="session")
def trixie_root(sandbox_cache: Path) -> Path:
    """Shared minbase Debian 13 root. Never write to it: take ``fresh_root(trixie_root)``."""
    return _debootstrap("trixie", sandbox_cache)


@pytest.fixture
def fresh_root(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """``fresh_root(cached_root)`` → a private writable copy for ``sandbox.run_in_chroot``.

    Copies are removed at teardown: at ~150 MB each, pytest's kept ``tmp_path`` directories
    would otherwise fill the disk after a few runs."""
    made: list[Path] = []

    def make(root: Path) -> Path:
        dest = tmp_path / f"{root.name}-{len(made)}"
        made.append(dest)
        return sandbox.fresh_copy(root, dest)

    yield make
    for dest in made:
        shutil.rmtree(dest, ignore_errors=True)


@pytest.fixture(scope="session")
def hello_envs(tmp_path_factory: pytest.TempPathFactory) -> builds.Envs:
    """The example app built at 1.0.0 and 1.0.1 (real builds), shared by the packaging tests."""
    return builds.build_hello_versions(tmp_path_factory.mktemp("hello-envs"))
