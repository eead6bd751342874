"""`venvpack tar`: the archive runs wherever it is unpacked, is reproducible, and is never
left half-written. Also the example Makefile and the README's demo command."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

import sandbox
from venvpack.archive import Compression
from venvpack.build import build_environment
from venvpack.config import BuildSpec
from venvpack.emit.tar import TarEmitter
from venvpack.manifest import BuiltEnv

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
VENVPACK = [sys.executable, "-m", "venvpack"]
COMPRESSIONS = [Compression.ZSTD, Compression.GZIP, Compression.XZ, Compression.NONE]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> BuiltEnv:
    out = tmp_path_factory.mktemp("tar-env") / "hello"
    return build_environment(BuildSpec(requirements=(str(HELLO),), python="3.12"), out)


def _members(archive: Path) -> list[tarfile.TarInfo]:
    """Read back with Python's tarfile (zstd decoded by python-zstandard's reader, as
    tarfile before 3.14 has no zstd)."""
    if archive.suffix == ".zst":
        with (
            archive.open("rb") as raw,
            zstandard.ZstdDecompressor().stream_reader(raw) as fh,
            tarfile.open(fileobj=fh, mode="r|") as tf,
        ):
            return list(tf)
    with tarfile.open(archive) as tf:
        return tf.getmembers()


@pytest.mark.parametrize("compression", COMPRESSIONS, ids=lambda c: c.value)
def test_round_trip_runs_anywhere(
    compression: Compression, env: BuiltEnv, tmp_path: Path, glibc_root_dir: Path
) -> None:
    archive = TarEmitter(compression).emit(env, tmp_path / f"hello.tar{compression.suffix}")

    members = _members(archive)
    assert {m.name.split("/")[0] for m in members} == {"hello"}
    for m in members:
        assert not m.name.startswith("/")
        assert ".." not in m.name.split("/")
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "root", "root")
        assert m.issym() or not m.mode & 0o022, (m.name, oct(m.mode))
    assert any(m.issym() and m.name == "hello/bin/python" for m in members)

    unpacked = tmp_path / "unpacked with space"
    unpacked.mkdir()
    subprocess.run(["tar", "-C", str(unpacked), "-xf", str(archive)], check=True)
    hello = unpacked / "hello" / "bin" / "hello"
    for cwd in (tmp_path, Path("/")):
        result = subprocess.run([hello], capture_output=True, text=True, cwd=cwd, check=True)
        assert f"hello from {unpacked / 'hello'}" in result.stdout
    result = sandbox.run_in_root(
        glibc_root_dir, ["/srv/app/bin/hello"], binds={unpacked / "hello": "/srv/app"}
    )
    assert result.returncode == 0, result.stderr
    assert "hello from /srv/app" in result.stdout


def test_python_tarfile_and_bsdtar_unpack_it_too(env: BuiltEnv, tmp_path: Path) -> None:
    archive = TarEmitter(Compression.GZIP).emit(env, tmp_path / "hello.tar.gz")
    with tarfile.open(archive) as tf:
        if sys.version_info >= (3, 12):
            tf.extractall(tmp_path / "py", filter="tar")
        else:
            tf.extractall(tmp_path / "py")
    out = subprocess.run(
        [tmp_path / "py/hello/bin/hello"], capture_output=True, text=True, check=True
    )
    assert "markupsafe" in out.stdout
    if shutil.which("bsdtar"):
        (tmp_path / "bsd").mkdir()
        subprocess.run(["bsdtar", "-C", str(tmp_path / "bsd"), "-xf", str(archive)], check=True)
        out = subprocess.run(
            [tmp_path / "bsd/hello/bin/hello"], capture_output=True, text=True, check=True
        )
        assert "markupsafe" in out.stdout
    elif os.environ.get("CI"):
        pytest.fail("bsdtar (libarchive-tools) must be installed in CI")


def test_reproducible_from_scratch(tmp_path: Path) -> None:
    """Two full builds from the same inputs give byte-identical archives in every format."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    envs = []
    for run in ("a", "b"):
        out = tmp_path / run / "hello"
        subprocess.run(
            [*VENVPACK, "build", str(HELLO), "--python", "3.12", "-q", "-o", str(out)],
            check=True,
            env=env,
        )
        envs.append(out)
    for compression in (Compression.ZSTD, Compression.GZIP, Compression.XZ):
        digests = set()
        for out in envs:
            archive = out.parent / f"hello.tar{compression.suffix}"
            subprocess.run(
                [
                    *VENVPACK,
                    "tar",
                    "--from",
                    str(out),
                    "-q",
                    "--compression",
                    compression.value,
                    "-o",
                    str(archive),
                ],
                check=True,
                env=env,
            )
            digests.add(archive.read_bytes())
        assert len(digests) == 1, f"{compression.value} archives differ"


def test_interrupted_compression_leaves_nothing(env: BuiltEnv, tmp_path: Path) -> None:
    out_dir = tmp_path / "dist"
    out_dir.mkdir()
    dest = out_dir / "hello.tar.xz"
    proc = subprocess.Popen(
        [
            *VENVPACK,
            "tar",
            "--from",
            str(env.root),
            "--compression",
            "xz",
            "--level",
            "9",
            "-o",
            str(dest),
        ],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not os.listdir(out_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.listdir(out_dir), "the archive's temporary file never appeared"
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert os.listdir(out_dir) == []


def test_copy_mode_tarball_is_relocated_by_its_documented_step(
    tmp_path: Path, glibc_root_dir: Path
) -> None:
    archive = tmp_path / "copy.tar.zst"
    result = subprocess.run(
        [
            *VENVPACK,
            "tar",
            str(HELLO),
            "--python",
            "3.11",
            "--python-link",
            "copy",
            "-o",
            str(archive),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "run <dir>/bin/venvpack-relocate" in result.stderr
    (tmp_path / "x").mkdir()
    subprocess.run(["tar", "-C", str(tmp_path / "x"), "-xf", str(archive)], check=True)
    tree = tmp_path / "x" / "hello"
    binds = {tree: "/srv/elsewhere"}
    # The interpreter finds its standard library from its own file, so the commands run
    # before the step; the step makes pyvenv.cfg's home, and so the base interpreter a venv
    # made from the tree records, the bundled interpreter where the tree now is.
    base = "import sys; print(sys._base_executable)"
    hello_and_base = [
        "/bin/sh",
        "-c",
        f"/srv/elsewhere/bin/hello && /srv/elsewhere/bin/python -c '{base}'",
    ]
    before = sandbox.run_in_root(glibc_root_dir, hello_and_base, binds=binds)
    assert before.returncode == 0, before.stderr
    assert "hello from /srv/elsewhere" in before.stdout
    assert not before.stdout.splitlines()[-1].startswith("/srv/elsewhere/python/bin/")
    copy = tmp_path / "writable"
    shutil.copytree(tree, copy, symlinks=True)
    binds = {copy: "/srv/elsewhere"}
    fixed = sandbox.run_in_root(
        glibc_root_dir, ["/srv/elsewhere/bin/venvpack-relocate"], binds=binds
    )
    assert fixed.returncode == 0, fixed.stderr
    after = sandbox.run_in_root(glibc_root_dir, hello_and_base, binds=binds)
    assert after.returncode == 0, after.stderr
    assert "hello from /srv/elsewhere" in after.stdout
    assert after.stdout.splitlines()[-1].startswith("/srv/elsewhere/python/bin/")


@pytest.mark.parametrize(
    ("target", "flags", "pattern"),
    [
        ("tar", "-q", "hello-1.0.0-linux-*.tar.zst"),
        (
            "deb",
            "-q --compression gzip --maintainer 'Ex Ample <ex@example.org>'",
            "hello_1.0.0-1_*.deb",
        ),
        ("rpm", "-q", "hello-1.0.0-1.*.rpm"),
    ],
)
def test_example_makefile_targets(target: str, flags: str, pattern: str, tmp_path: Path) -> None:
    """The Makefile users copy into their projects builds each format into dist/."""
    project = tmp_path / "project"
    shutil.copytree(HELLO, project)
    venvpack = Path(sys.executable).parent / "venvpack"
    make = [
        "make",
        "--no-print-directory",
        "-C",
        str(project),
        target,
        f"VENVPACK={venvpack}",
        "PY=3.12",
        f"VENVPACK_FLAGS={flags}",
    ]
    printed = subprocess.run(make, check=True, capture_output=True, text=True).stdout
    (artifact,) = (project / "dist").glob(pattern)
    # The target prints the artifact's path and keeps it for the next step of a pipeline.
    assert printed == f"{artifact}\n"
    assert (project / "dist" / f"{target}.path").read_text() == printed
    if target == "tar":  # a second run replaces the artifact instead of failing on it
        subprocess.run(make, check=True)
        assert len(list((project / "dist").glob(pattern))) == 1


def test_readme_demo_command(tmp_path: Path) -> None:
    """`make demo` from the README: packs examples/hello, unpacks it elsewhere, runs it."""
    result = subprocess.run(
        [
            "make",
            "-C",
            str(REPO),
            "demo",
            f"DEMO={tmp_path}/demo",
            f"BIN={Path(sys.executable).parent}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"hello from {tmp_path}/demo/unpacked here/hello" in result.stdout
