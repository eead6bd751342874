"""``venvpack verify`` in clean roots: good artifacts of all three formats pass (the .deb in
trixie too), every seeded fault fails and is named, an old glibc root is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_inspect_real import SEEDS

import sandbox
from venvpack.archive import Compression
from venvpack.build import build_environment
from venvpack.config import BuildSpec
from venvpack.emit.deb import DebEmitter, DebOptions
from venvpack.emit.rpm import RpmEmitter, RpmOptions
from venvpack.emit.tar import TarEmitter
from venvpack.manifest import BuiltEnv
from venvpack.verify import verify_artifact

pytestmark = [pytest.mark.integration, pytest.mark.roots]

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> BuiltEnv:
    missing = sandbox.missing_tools("bwrap", "setpriv", "tar", "dpkg-query")
    if missing:
        sandbox.unavailable(f"verify needs {', '.join(missing)}")
    return build_environment(BuildSpec(project=HELLO), tmp_path_factory.mktemp("vfy") / "hello")


@pytest.fixture(scope="module")
def cache() -> Path:
    return sandbox.default_cache()


def _tar(env: BuiltEnv, dest: Path) -> Path:
    return TarEmitter(Compression.ZSTD, 3).emit(env, dest)


def test_tarball_passes_and_is_refused_by_an_older_glibc(
    env: BuiltEnv, tmp_path: Path, cache: Path
) -> None:
    report = verify_artifact(
        _tar(env, tmp_path / "hello.tar.zst"), ["glibc", "glibc-2.31"], cache=cache
    )
    here = [c for c in report.checks if c.root in ("-", "glibc")]
    assert all(c.status == "ok" for c in here), here
    steps = {(c.step, c.target) for c in here}
    assert {("import", "hello"), ("import", "markupsafe"), ("command", "hello --help")} <= steps
    assert ("moved command", "hello --help") in steps
    old = [c for c in report.checks if c.root == "glibc-2.31"]
    assert [c.status for c in old] == ["refused"]
    assert old[0].detail.startswith(f"refused: needs glibc {env.manifest.glibc_floor}")
    assert not report.ok


def test_deb_passes_in_bookworm_and_trixie(env: BuiltEnv, tmp_path: Path, cache: Path) -> None:
    if sandbox.debootstrap_problem():
        sandbox.unavailable(f"debootstrap roots: {sandbox.debootstrap_problem()}")
    deb = DebEmitter(DebOptions(maintainer="T <t@example.org>", compression="zstd"))
    report = verify_artifact(
        deb.emit(env, tmp_path / "hello.deb"), ["bookworm", "trixie"], cache=cache
    )
    assert report.ok, [c for c in report.checks if c.status != "ok"]
    assert {c.root for c in report.checks} == {"-", "bookworm", "trixie"}


def test_rpm_passes(env: BuiltEnv, tmp_path: Path, cache: Path) -> None:
    if sandbox.missing_tools("rpmbuild", "rpm", "rpm2cpio", "cpio"):
        sandbox.unavailable("rpm tools missing")
    rpm = RpmEmitter(RpmOptions()).emit(env, tmp_path / "hello.rpm")
    report = verify_artifact(rpm, ["glibc"], run=["python -c 'import ssl, sqlite3'"], cache=cache)
    assert report.ok, [c for c in report.checks if c.status != "ok"]
    assert any(c.target.startswith("python -c") for c in report.checks)


@pytest.mark.parametrize("seed", list(SEEDS))
def test_seeded_fault_fails_verification(
    env: BuiltEnv, tmp_path: Path, cache: Path, seed: str
) -> None:
    tree = tmp_path / "hello"
    shutil.copytree(env.root, tree, symlinks=True)
    make, expected = SEEDS[seed]
    where = make(tree)
    artifact = _tar(BuiltEnv.load(tree), tmp_path / "hello.tar.zst")
    report = verify_artifact(artifact, ["glibc"], cache=cache)
    assert not report.ok
    failed = [c for c in report.checks if c.status == "failed"]
    named = [c for c in failed if c.step == "inspect"]
    assert any(c.target == where for c in named) or seed == "deleted grafted library", failed
    assert any(any(f"[{code}]" in c.detail for c in named) for code in expected), failed


def test_launcher_says_in_one_line_that_glibc_is_too_old(
    env: BuiltEnv, tmp_path: Path, cache: Path
) -> None:
    """Unpacked in glibc-2.31 anyway: one line instead of the loader's errors."""
    from venvpack.roots import get_root, run_in

    root = get_root("glibc-2.31", cache)
    tree = tmp_path / "tree"
    shutil.copytree(env.root, tree, symlinks=True)
    proc = run_in(root, ["/tmp/app/bin/hello"], binds={tree: "/tmp/app"})
    assert proc.returncode == 1
    assert proc.stderr == (
        f"hello: needs glibc ≥ {env.manifest.glibc_floor}, this system has 2.31\n"
    )
