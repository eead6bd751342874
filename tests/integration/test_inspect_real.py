"""``venvpack inspect`` on real environments: a good build and its three artifacts pass, each
seeded fault is caught and named, environments made by uv and ``python -m venv`` are not
self-contained, and ``--max-glibc`` names the file and symbol version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from venvpack.archive import Compression
from venvpack.build import build_environment, find_patchelf
from venvpack.config import BuildSpec
from venvpack.emit.deb import DebEmitter, DebOptions
from venvpack.emit.rpm import RpmEmitter, RpmOptions
from venvpack.emit.tar import TarEmitter
from venvpack.inspect import inspect_artifact, schema_text
from venvpack.manifest import BuiltEnv

pytestmark = [pytest.mark.integration]

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> BuiltEnv:
    return build_environment(BuildSpec(project=HELLO), tmp_path_factory.mktemp("insp") / "hello")


@pytest.fixture
def copy(env: BuiltEnv, tmp_path: Path) -> Path:
    dest = tmp_path / "hello"
    shutil.copytree(env.root, dest, symlinks=True)
    return dest


def _site(root: Path) -> Path:
    return next(root.glob("lib/python3.*/site-packages"))


def _patchelf(*args: str | Path) -> None:
    subprocess.run([find_patchelf(), *map(str, args)], check=True)


def _speedups(root: Path) -> Path:
    return next(_site(root).glob("markupsafe/_speedups*.so"))


def seed_absolute_rpath(root: Path) -> str:
    target = _speedups(root)
    _patchelf("--set-rpath", "/usr/lib/x86_64-linux-gnu", target)
    return str(target.relative_to(root))


def seed_deleted_graft(root: Path) -> str:
    (root / "python" / "lib" / "libffi.so.8").unlink()
    return "python/lib/libffi.so.8"


def seed_absolute_shebang(root: Path) -> str:
    script = root / "bin" / "hello"
    script.write_text("#!/usr/bin/python3\nfrom hello import main\nmain()\n")
    return "bin/hello"


def seed_stale_home(root: Path) -> str:
    cfg = root / "pyvenv.cfg"
    cfg.write_text(cfg.read_text() + "home = /root/.pyenv/versions/3.11.0/bin\n")
    return "pyvenv.cfg"


def seed_ungrafted_libssl(root: Path) -> str:
    target = _speedups(root)
    _patchelf("--add-needed", "libssl.so.1.1", target)
    return str(target.relative_to(root))


def seed_pth_to_build_dir(root: Path) -> str:
    pth = _site(root) / "_dev.pth"
    pth.write_text("/home/me/dist/.venvpack-build-a1b2c3d4/env/src\n")
    return str(pth.relative_to(root))


def seed_file_naming_build_dir(root: Path) -> str:
    path = _site(root) / "hello" / "built.txt"
    path.write_text("built in /home/me/out/.hello.q1w2e3r4.venvpack/env\n")
    return str(path.relative_to(root))


SEEDS: dict[str, tuple[Callable[[Path], str], set[str]]] = {
    "absolute RPATH": (seed_absolute_rpath, {"runpath-absolute"}),
    "deleted grafted library": (seed_deleted_graft, {"grafted-missing"}),
    "absolute shebang": (seed_absolute_shebang, {"shebang-outside"}),
    "stale absolute home": (seed_stale_home, {"pyvenv-cfg-outside"}),
    "ungrafted libssl": (seed_ungrafted_libssl, {"unresolved-library"}),
    ".pth to the build directory": (seed_pth_to_build_dir, {"pth-outside", "build-path"}),
    "file naming the build directory": (seed_file_naming_build_dir, {"build-path"}),
}


def test_good_environment_is_self_contained(env: BuiltEnv) -> None:
    report = inspect_artifact(env.root)
    assert report.problems == ()
    assert report.interpreter.bundled
    assert report.glibc.floor == env.manifest.glibc_floor
    assert report.glibc.file is not None
    assert all(g.present for g in report.grafted)
    assert report.sizes.interpreter > 0
    assert report.sizes.grafted > 0
    jsonschema.validate(json.loads(report.to_json()), json.loads(schema_text()))


@pytest.mark.parametrize("seed", list(SEEDS))
def test_seeded_fault_is_named(copy: Path, seed: str) -> None:
    make, expected = SEEDS[seed]
    where = make(copy)
    report = inspect_artifact(copy)
    found = {(p.code, p.path) for p in report.problems}
    assert found, f"{seed} not caught"
    assert {code for code, _ in found} <= expected | {"unresolved-library"}, found
    for code in expected:
        assert (code, where) in found or any(c == code for c, _ in found), (code, found)
    if seed == "deleted grafted library":  # whoever needed it is named too
        assert any(
            p.code == "unresolved-library" and "libffi.so.8" in p.message for p in report.problems
        )
    else:
        assert any(path == where for _, path in found), (where, found)


def test_packed_artifacts_pass(env: BuiltEnv, tmp_path: Path) -> None:
    artifacts = [
        TarEmitter(Compression.ZSTD, None).emit(env, tmp_path / "hello.tar.zst"),
        TarEmitter(Compression.GZIP, None).emit(env, tmp_path / "hello.tgz"),
        DebEmitter(DebOptions(maintainer="T <t@example.org>", compression="zstd")).emit(
            env, tmp_path / "hello.deb"
        ),
    ]
    if shutil.which("rpmbuild") and shutil.which("rpm2cpio") and shutil.which("cpio"):
        artifacts.append(RpmEmitter(RpmOptions()).emit(env, tmp_path / "hello.rpm"))
    for artifact in artifacts:
        report = inspect_artifact(artifact)
        assert report.problems == (), (artifact, report.problems)
        assert report.glibc.floor == env.manifest.glibc_floor


def test_max_glibc_names_file_and_symbol_version(env: BuiltEnv) -> None:
    report = inspect_artifact(env.root, max_glibc="2.31")
    problem = next(p for p in report.problems if p.code == "glibc-above-max")
    assert problem.path == report.glibc.file
    assert report.glibc.symbol_version is not None
    assert report.glibc.symbol_version in problem.message
    assert "build on an older distribution" in problem.message
    # The interpreter itself (pyenv's, built on this Debian 12 host) needs a newer glibc:
    # the static python3.X that venvpack links, or libpython where one is shipped.
    interpreter = env.manifest.python.executable
    assert any(
        a["path"] == interpreter or a["path"].startswith("python/lib/libpython")
        for a in report.glibc.above_max
    ), report.glibc.above_max


def test_uv_venv_is_not_self_contained(tmp_path: Path) -> None:
    uv = BIN / "uv"
    if not uv.exists():
        pytest.skip("uv not installed beside venvpack")
    venv = tmp_path / "uvenv"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, venv], check=True, env=env)
    report = inspect_artifact(venv)
    codes = {p.code for p in report.problems}
    assert {"python-link-outside", "no-interpreter", "pyvenv-cfg-outside"} <= codes
    home = next(p for p in report.problems if p.code == "pyvenv-cfg-outside")
    assert "home =" in home.message
    assert not report.self_contained


def test_python_m_venv_is_not_self_contained(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    report = inspect_artifact(venv)
    codes = {p.code for p in report.problems}
    assert {"no-interpreter", "pyvenv-cfg-outside"} <= codes
    assert "build-path" in codes  # activate names where the venv was made


def test_build_stops_before_packing_above_max_glibc(tmp_path: Path) -> None:
    """An environment built on this Debian 12 host needs more than bullseye's 2.31."""
    out = tmp_path / "hello.tar.zst"
    argv = ["tar", "--project", str(HELLO), "--max-glibc", "2.31", "-o", str(out), "-q"]
    result = subprocess.run(
        [sys.executable, "-m", "venvpack", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 6, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("venvpack: error: python/lib/")
    assert "GLIBC_2.3" in line
    assert "above --max-glibc 2.31" in line
    assert "build on an older distribution" in line
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_excluding_the_optional_module_lowers_the_floor(env: BuiltEnv, tmp_path: Path) -> None:
    """On Debian 12, libcrypt (grafted for _crypt alone) needs 2.36, the interpreter 2.35."""
    major, minor = (int(p) for p in env.manifest.glibc_floor.split("."))
    below = f"{major}.{minor - 1}"
    report = inspect_artifact(env.root, max_glibc=below)
    if not report.glibc.optional_modules:
        pytest.skip(
            f"on this host more than optional modules need glibc {env.manifest.glibc_floor}"
        )
    built = build_environment(
        BuildSpec(project=HELLO, max_glibc=below, exclude_modules=report.glibc.optional_modules),
        tmp_path / "env",
    )
    floor = tuple(int(p) for p in built.manifest.glibc_floor.split("."))
    assert floor <= (major, minor - 1)
    grafted = {g.soname for g in built.manifest.grafted}
    assert not grafted & {g.soname for g in env.manifest.grafted if g.path == report.glibc.file}
