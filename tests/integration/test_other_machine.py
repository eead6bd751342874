"""Building for another machine, end to end on this x86-64 host: Debian 12 arm64's
python3.11 (a sysroot, never run but under qemu-user) makes a ``requests pyyaml`` and a
numpy tarball that hold aarch64 ELF files only and run, moved, in the arm64 root that holds
nothing but glibc; a .deb says ``arm64`` and installs in the arm64 debootstrap root with
dpkg under emulation, where its ``/usr/bin`` command runs; an .rpm says ``aarch64``; an
image is ``arm64``/``v8`` on a base of arm64 packages and its entrypoint runs; inspect
names the machine and a floor read from aarch64 symbol versions. A compiled sdist is
refused by name (uv builds it for this machine), a pure-Python one is accepted, and a
library of this host planted in an aarch64 environment is refused by the audit.

Each artifact is built once per run, shared by the pytest-xdist workers (one waits for
the other's build), so the emulated work is paid once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import sandbox
from venvpack.elf import is_elf, read_elf
from venvpack.errors import InstallError
from venvpack.glibc import parse_glibc
from venvpack.verify import verify_artifact

pytestmark = pytest.mark.roots

MACHINE = "aarch64"
EPOCH = "1700000000"
HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
MOVED = "/srv/moved app"
"""Where a tarball is unpacked in the root: not its prefix, with a space."""
HOST_LIBZ = Path("/lib/x86_64-linux-gnu/libz.so.1")


@dataclass(frozen=True)
class Arm64:
    sysroot: Path
    """Debian 12 arm64's required packages and python3.11, unpacked."""
    glibc: Path
    """arm64's libc6, dash and libc-only coreutils: nothing else."""
    shared: Path
    """A directory every xdist worker of this run sees, for the artifacts built once."""

    @property
    def python(self) -> str:
        return str(self.sysroot / "usr" / "bin" / "python3.11")


def venvpack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvpack", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
        timeout=900,
        check=False,
    )


def made(*args: str) -> Path:
    """The artifact ``venvpack ARGS -q`` wrote (its path, on stdout)."""
    proc = venvpack(*args, "-q")
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[0])


@pytest.fixture(scope="session")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> Arm64:
    problem = sandbox.foreign_problem(MACHINE)
    if problem:
        sandbox.unavailable(f"arm64 roots: {problem}")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return Arm64(
        sysroot=sandbox.sysroot("bookworm", MACHINE, ("python3.11",)),
        glibc=sandbox.machine_root("glibc", MACHINE),
        shared=shared / "arm64-artifacts",
    )


def once(arm64: Arm64, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(directory)``'s artifact, built once in this run whichever worker asks first
    (``build`` returns the path it wrote, inside the directory)."""

    def fill(directory: Path) -> None:
        (directory / "artifact").write_text(build(directory).name)

    directory = sandbox.build_once(arm64.shared, name, fill)
    return directory / (directory / "artifact").read_text()


@pytest.fixture(scope="session")
def app_tar(arm64: Arm64) -> Path:
    return once(
        arm64,
        "app-tar",
        lambda d: made("tar", "--python", arm64.python, "requests", "pyyaml", "-o", f"{d}/"),
    )


@pytest.fixture(scope="session")
def numpy_tar(arm64: Arm64) -> Path:
    return once(
        arm64,
        "numpy-tar",
        lambda d: made("tar", "--python", arm64.python, "numpy", "-o", f"{d}/"),
    )


@pytest.fixture(scope="session")
def normalizer_deb(arm64: Arm64) -> Path:
    """charset-normalizer (mypyc-compiled: aarch64 extension modules) with its
    ``normalizer`` command linked into /usr/bin."""
    return once(
        arm64,
        "deb",
        lambda d: made(
            "deb",
            "--python",
            arm64.python,
            "charset-normalizer",
            "--maintainer",
            "A <a@example.org>",
            "-o",
            f"{d}/",
        ),
    )


def unpacked(tarball: Path, into: Path) -> Path:
    """The environment directory of ``tarball`` (zstd) unpacked below ``into`` by tar."""
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--zstd", "-xf", str(tarball), "-C", str(into)], check=True)
    (top,) = list(into.iterdir())
    return top


def elf_machines(tree: Path) -> dict[str, set[str]]:
    """Every ELF file in ``tree`` (symlinks not followed) by the machine its header names."""
    machines: dict[str, set[str]] = {}
    for directory, _dirs, files in os.walk(tree):
        for name in files:
            path = Path(directory, name)
            if path.is_symlink() or not is_elf(path):
                continue
            machine = read_elf(path).machine
            machines.setdefault(machine, set()).add(str(path.relative_to(tree)))
    return machines


# -- tarballs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["app", "numpy"])
def test_tarballs_hold_aarch64_elf_files_only(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    tarball: Path = request.getfixturevalue(f"{which}_tar")
    assert tarball.name.endswith("-linux-aarch64.tar.zst"), tarball.name
    env = unpacked(tarball, tmp_path)
    machines = elf_machines(env)
    assert set(machines) == {"EM_AARCH64"}, {m: sorted(f)[:5] for m, f in machines.items()}
    # the interpreter, the grafted libraries and the wheels' extension modules
    files = machines["EM_AARCH64"]
    assert "python/lib/libssl.so.3" in files
    assert any(f.endswith(".cpython-311-aarch64-linux-gnu.so") for f in files), sorted(files)


def test_requests_pyyaml_run_moved_in_the_arm64_glibc_root(
    arm64: Arm64, app_tar: Path, tmp_path: Path
) -> None:
    env = unpacked(app_tar, tmp_path)
    code = (
        "import platform, ssl, sqlite3, ctypes, lzma, yaml, requests; "
        "ssl.create_default_context(); "
        "sqlite3.connect(':memory:').execute('select 1'); "
        "assert lzma.decompress(lzma.compress(b'x')) == b'x'; "
        "ctypes.CDLL(None); "
        "print(platform.machine(), yaml.safe_load('a: [1, 2]'), requests.__version__ > '2')"
    )
    proc = sandbox.run_in_root(arm64.glibc, [f"{MOVED}/bin/python", "-c", code], binds={env: MOVED})
    assert (proc.returncode, proc.stdout) == (0, "aarch64 {'a': [1, 2]} True\n"), proc.stderr
    # a console script, through its launcher (/bin/sh is the root's dash, aarch64 too)
    proc = sandbox.run_in_root(
        arm64.glibc, [f"{MOVED}/bin/normalizer", "--version"], binds={env: MOVED}
    )
    assert proc.returncode == 0, proc.stderr
    assert "Charset-Normalizer" in proc.stdout + proc.stderr


def test_numpy_computes_moved_in_the_arm64_glibc_root(
    arm64: Arm64, numpy_tar: Path, tmp_path: Path
) -> None:
    env = unpacked(numpy_tar, tmp_path)
    code = (
        "import platform, numpy as np; "
        "a = np.arange(1, 10, dtype=float).reshape(3, 3) + np.eye(3); "
        "print(platform.machine(), int(round(np.linalg.det(a))), int(np.arange(10).sum()))"
    )
    proc = sandbox.run_in_root(arm64.glibc, [f"{MOVED}/bin/python", "-c", code], binds={env: MOVED})
    assert (proc.returncode, proc.stdout) == (0, "aarch64 -2 45\n"), proc.stderr


def test_inspect_names_the_machine_and_the_aarch64_floor(app_tar: Path, tmp_path: Path) -> None:
    proc = venvpack("inspect", "--json", str(app_tar))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    env = unpacked(app_tar, tmp_path)
    manifest = json.loads((env / ".venvpack" / "manifest.json").read_text())
    assert report["machine"] == manifest["platform"]["machine"] == MACHINE
    floor = report["glibc"]["floor"]
    assert floor == manifest["platform"]["floor"] == manifest["glibc_floor"]
    assert parse_glibc(floor) >= (2, 17)  # aarch64's first glibc
    # the file that sets it is an aarch64 one whose symbol version is that floor
    setter = env / report["glibc"]["file"]
    assert read_elf(setter).machine == "EM_AARCH64"
    assert report["glibc"]["symbol_version"] == f"GLIBC_{floor}"
    text = venvpack("inspect", str(app_tar)).stdout
    assert "  machine: aarch64" in text.splitlines(), text


def test_verify_checks_the_tarball_in_the_arm64_debian_root(arm64: Arm64, app_tar: Path) -> None:
    check = "python -c 'import platform, ssl, yaml; print(platform.machine())'"
    report = verify_artifact(app_tar, ["bookworm"], run=[check], cache=sandbox.default_cache())
    assert report.ok, [c for c in report.checks if c.status != "ok"]
    steps = {(c.step, c.target) for c in report.checks}
    assert {("import", "yaml"), ("command", check), ("moved command", check)} <= steps


# -- system packages ---------------------------------------------------------------------------


def test_the_deb_is_arm64_and_installs_with_dpkg_under_emulation(
    arm64: Arm64, normalizer_deb: Path, tmp_path: Path
) -> None:
    field = subprocess.run(
        ["dpkg-deb", "-f", str(normalizer_deb), "Architecture"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert field.stdout == "arm64\n"
    assert normalizer_deb.name.endswith("_arm64.deb"), normalizer_deb.name
    root = sandbox.fresh_copy(sandbox.machine_root("bookworm", MACHINE), tmp_path / "root")
    binds = {normalizer_deb.parent: "/tmp/pkg"}
    deb = f"/tmp/pkg/{normalizer_deb.name}"
    proc = sandbox.run_in_chroot(root, ["dpkg", "-i", deb], binds=binds)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = sandbox.run_in_chroot(root, ["/usr/bin/normalizer", "--version"])
    assert proc.returncode == 0, proc.stderr
    assert "Charset-Normalizer" in proc.stdout + proc.stderr
    proc = sandbox.run_in_chroot(root, ["uname", "-m"])
    assert proc.stdout == "aarch64\n"


def test_the_rpm_is_aarch64(arm64: Arm64, tmp_path: Path) -> None:
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        sandbox.unavailable("rpmbuild not found; apt-get install rpm")
    rpm = made(
        "rpm",
        "--python",
        arm64.python,
        "requests",
        "--name",
        "reqapp",
        "--version",
        "1.0",
        "-o",
        f"{tmp_path}/",
    )
    assert rpm.name == "reqapp-1.0-1.aarch64.rpm"
    arch = subprocess.run(
        ["rpm", "-qp", "--qf", "%{ARCH}", str(rpm)], capture_output=True, text=True, check=True
    )
    assert arch.stdout == "aarch64"


# -- images -----------------------------------------------------------------------------------


def skopeo(*args: str) -> dict[str, object]:
    tool = shutil.which("skopeo")
    if tool is None:
        sandbox.unavailable("skopeo not found; apt-get install skopeo")
    proc = subprocess.run([tool, "inspect", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_an_image_is_arm64_on_a_base_of_arm64_packages(arm64: Arm64, tmp_path: Path) -> None:
    image = made("oci", "--python", arm64.python, str(HELLO), "-o", f"{tmp_path}/hello.tar")
    raw = skopeo("--raw", f"oci-archive:{image}")
    config = skopeo("--config", f"oci-archive:{image}")
    assert (config["architecture"], config["variant"], config["os"]) == ("arm64", "v8", "linux")
    annotations = raw["annotations"]
    assert isinstance(annotations, dict)
    packages = annotations["io.github.venvpack.base.packages"]
    assert "libc6=2.36-" in packages, packages
    assert "libgcc-s1=" in packages, packages
    # the base's libc6 is the sysroot's: every ELF file of every layer is aarch64
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with tarfile.open(image) as outer:
        outer.extractall(tmp_path / "layout", filter="tar")
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((tmp_path / "layout" / "blobs" / "sha256" / digest).read_text())
    for layer in manifest["layers"]:
        blob = tmp_path / "layout" / "blobs" / "sha256" / layer["digest"].split(":")[1]
        with tarfile.open(blob) as archive:
            archive.extractall(rootfs, filter="tar")
    machines = elf_machines(rootfs)
    assert set(machines) == {"EM_AARCH64"}, {m: sorted(f)[:5] for m, f in machines.items()}
    assert (rootfs / "etc/ssl/certs/ca-certificates.crt").stat().st_size > 100_000
    # verify runs the entrypoint with --help in the unpacked image, under binfmt
    report = verify_artifact(image, ["glibc"], cache=sandbox.default_cache())
    assert report.ok, [c for c in report.checks if c.status != "ok"]
    assert any(c.step == "entrypoint" and c.status == "ok" for c in report.checks)

    # an arm64 image as --base, and scratch
    on_top = made(
        "oci",
        "--python",
        arm64.python,
        str(HELLO),
        "--base",
        f"oci-archive:{image}",
        "-o",
        f"{tmp_path}/on-top.tar",
    )
    top = skopeo("--config", f"oci-archive:{on_top}")
    assert (top["architecture"], top["variant"]) == ("arm64", "v8")
    layers = skopeo(f"oci-archive:{on_top}")["Layers"]
    assert isinstance(layers, list)
    assert len(layers) == len(manifest["layers"]) + 3  # its own, without a base of theirs
    alone = made(
        "oci",
        "--python",
        arm64.python,
        str(HELLO),
        "--base",
        "scratch",
        "-o",
        f"{tmp_path}/alone.tar",
    )
    assert skopeo("--config", f"oci-archive:{alone}")["architecture"] == "arm64"


def test_an_arm64_image_from_a_tree_names_what_to_give(arm64: Arm64, tmp_path: Path) -> None:
    """``--from`` knows no root to read the base's packages from; this host has no arm64
    libc6 (no dpkg multiarch here)."""
    tree = made("build", "--python", arm64.python, str(HELLO), "-o", str(tmp_path / "env"))
    proc = venvpack("oci", "-q", "--from", str(tree), "-o", str(tmp_path / "hello.tar"))
    assert proc.returncode == 7
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "give --base" in proc.stderr
    assert "arm64 libc6" in proc.stderr
    assert not (tmp_path / "hello.tar").exists()
    alone = made("oci", "--from", str(tree), "--base", "scratch", "-o", str(tmp_path / "s.tar"))
    assert skopeo("--config", f"oci-archive:{alone}")["architecture"] == "arm64"


# -- refusals ---------------------------------------------------------------------------------


def test_a_compiled_sdist_is_refused_by_name(arm64: Arm64, tmp_path: Path) -> None:
    """netifaces publishes no wheel for Linux cp311: uv builds its sdist for this machine."""
    out = tmp_path / "out" / "ni.tar.zst"
    proc = venvpack("tar", "-q", "--python", arm64.python, "netifaces", "-o", str(out))
    assert proc.returncode == InstallError.exit_code, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("venvpack: error:")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("venvpack: error: netifaces "), proc.stderr
    assert "aarch64" in errors[0]
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_pure_python_sdist_is_accepted(arm64: Arm64, tmp_path: Path) -> None:
    """A project with a setup.py and nothing else: uv builds it on this machine into a
    ``py3-none-any`` wheel, which runs anywhere."""
    project = tmp_path / "purely"
    (project / "purely").mkdir(parents=True)
    (project / "purely" / "__init__.py").write_text("ANSWER = 42\n")
    (project / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='purely', version='0.1', packages=['purely'])\n"
    )
    tarball = made(
        "tar", "--python", arm64.python, str(project), "--name", "purely", "-o", f"{tmp_path}/out/"
    )
    env = unpacked(tarball, tmp_path / "unpacked")
    site = env / "lib" / "python3.11" / "site-packages"
    assert (site / "purely" / "__init__.py").is_file()
    wheel = (next(site.glob("purely-0.1.dist-info")) / "WHEEL").read_text()
    assert "Tag: py3-none-any" in wheel


def test_a_host_library_planted_in_an_aarch64_tree_is_refused(arm64: Arm64, tmp_path: Path) -> None:
    tree = made("build", "--python", arm64.python, str(HELLO), "-o", str(tmp_path / "env"))
    planted = tree / "python" / "lib" / "libz.so.1"
    assert read_elf(planted).machine == "EM_AARCH64"  # grafted from the sysroot
    planted.unlink()
    shutil.copyfile(os.path.realpath(HOST_LIBZ), planted)
    out = tmp_path / "out.tar.zst"
    proc = venvpack("tar", "-q", "--from", str(tree), "-o", str(out))
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "python/lib/libz.so.1: a file for x86_64" in proc.stderr, proc.stderr
    assert not out.exists()
    report = json.loads(venvpack("inspect", "--json", str(tree)).stdout)
    codes = {(p["code"], p["path"]) for p in report["problems"]}
    assert ("foreign-machine", "python/lib/libz.so.1") in codes, codes
    assert report["self_contained"] is False
