"""python-build-standalone interpreters are first class.

The interpreter is ``standalone.py``'s PBS look-alike: built on glibc 2.31, libpython static in
``bin/python3.11``, ``RPATH=$ORIGIN/../lib`` as DT_RPATH, its non-glibc libraries in its own
``lib/``, a build prefix (``/install``) that does not exist here, uv's directory layout. Built from
it on this Debian 12 host, an environment must keep the interpreter's glibc floor: every library
it carries comes from the interpreter's tree, none from the host's newer ``/usr/lib``; and it
must run, moved, in a root that has nothing but bullseye's glibc 2.31.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection

import sandbox
from standalone import BUILD_DIR, BUILD_PREFIX, StandalonePython
from venvpack.audit import find_leaks
from venvpack.elf import glibc_floor, is_elf, read_elf
from venvpack.graft import find_elf_files, plan_grafts, system_library_dirs
from venvpack.manifest import BuiltEnv
from venvpack.platform import system_libraries

pytestmark = [pytest.mark.standalone, pytest.mark.roots]

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
VENVPACK = [sys.executable, "-m", "venvpack"]
BULLSEYE_GLIBC = (2, 31)
MANIFEST = ".venvpack/manifest.json"
MODULES = "ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, decimal, curses, readline, dbm"
IMPORTS = (
    f"import {MODULES}, dbm.gnu, dbm.ndbm, pyexpat, hashlib, sys\n"
    "sqlite3.connect(':memory:').execute('select 1')\n"
    "lzma.compress(b'x'); bz2.compress(b'x'); zlib.crc32(b'x'); uuid.uuid4()\n"
    "ctypes.CDLL(None); hashlib.sha256(b'x').hexdigest()\n"
    "print(ssl.OPENSSL_VERSION)\n"
    "print(sys.prefix)\n"
)
# What bullseye gives the fixture's extension modules, so what the environment must carry.
CARRIED = {
    "libssl.so.1.1",
    "libcrypto.so.1.1",
    "libffi.so.7",
    "libsqlite3.so.0",
    "liblzma.so.5",
    "libbz2.so.1.0",
    "libz.so.1",
    "libuuid.so.1",
    "libncursesw.so.6",
    "libtinfo.so.6",
    "libreadline.so.8",
    "libgdbm.so.6",
    "libexpat.so.1",
    "libmpdec.so.3",
}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _manifest_without_provenance(root: Path, needles: list[str]) -> list[str]:
    """Needles the manifest names outside ``grafted[].origin``, which records on purpose
    where each carried library was copied from (here: the interpreter's tree, in the cache)."""
    manifest = json.loads((root / MANIFEST).read_text())
    for graft in manifest["grafted"]:
        del graft["origin"]
    text = json.dumps(manifest)
    return [needle for needle in needles if needle in text]


def _build_id(path: Path) -> str:
    with path.open("rb") as fh:
        section = ELFFile(fh).get_section_by_name(".note.gnu.build-id")
        assert isinstance(section, NoteSection), path
        return str(next(iter(section.iter_notes()))["n_desc"])


# --------------------------------------------------------------------------- the fixture


def test_fixture_has_the_traits_of_python_build_standalone(
    standalone_python: StandalonePython,
) -> None:
    """Otherwise the tests below would prove nothing about PBS."""
    py = standalone_python
    assert py.alias.is_symlink()
    assert os.readlink(py.alias) == py.prefix.name
    assert (py.alias / "bin" / "python3.11").is_file()
    assert not Path(BUILD_PREFIX).exists()

    exe = read_elf(py.executable)
    assert exe.rpath == ("$ORIGIN/../lib",)  # DT_RPATH, so it serves dlopened modules too
    assert exe.runpath == ()
    assert not [n for n in exe.needed if n.startswith("libpython")]  # libpython is static
    stdlib = py.prefix / "lib" / "python3.11"
    assert (stdlib / "EXTERNALLY-MANAGED").is_file()
    sysconfigdata = next(stdlib.glob("_sysconfigdata_*.py")).read_text()
    assert f"'prefix': '{BUILD_PREFIX}'" in sysconfigdata
    makefile = next(stdlib.glob("config-3.11-*/Makefile")).read_text()
    assert f"prefix=\t\t{BUILD_PREFIX}" in makefile

    ssl_module = read_elf(next((stdlib / "lib-dynload").glob("_ssl.*.so")))
    assert "libssl.so.1.1" in ssl_module.needed
    assert ssl_module.rpath == ssl_module.runpath == ()  # only the executable's RPATH finds it
    assert {p.name for p in (py.prefix / "lib").glob("lib*.so*")} >= CARRIED
    infos = [read_elf(p) for p in find_elf_files(py.prefix)]
    assert _version(glibc_floor(infos)) <= BULLSEYE_GLIBC

    run = subprocess.run(
        [py.alias / "bin" / "python3.11", "-c", IMPORTS],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OpenSSL 1.1.1")


def test_graft_plan_takes_libraries_from_the_interpreters_tree(
    standalone_python: StandalonePython, tmp_path: Path
) -> None:
    """A miniature environment: the binary and the sqlite module, as ``runtime`` lays them out.

    The host has a libsqlite3.so.0 too (Debian 12's, needing a newer glibc): a planner that
    ignores the executable's DT_RPATH finds that one (checked where the host has it).
    Resolved as the loader does, the interpreter's own copy wins."""
    py = standalone_python
    root = tmp_path / "env"
    source_dynload = py.prefix / "lib" / "python3.11" / "lib-dynload"
    module = next(source_dynload.glob("_sqlite3.*.so"))
    dynload = root / "python" / "lib" / "python3.11" / "lib-dynload"
    dynload.mkdir(parents=True)
    (root / "python" / "bin").mkdir()
    exe = root / "python" / "bin" / "python3.11"
    shutil.copy(py.executable, exe)
    shutil.copy(module, dynload / module.name)
    lib = root / "python" / "lib"

    if any((d / "libsqlite3.so.0").exists() for d in system_library_dirs()):
        # The trap is real here: each file's own search path alone leads to the host's copy.
        naive = plan_grafts(root, lib, system_libraries())
        assert [g.source.parent for g in naive.grafts] != [py.prefix / "lib"]

    plan = plan_grafts(
        root,
        lib,
        system_libraries(),
        executable=exe,
        origins={root / "python": py.prefix, exe.parent: py.executable.parent},
    )
    assert {g.soname for g in plan.grafts} == {"libsqlite3.so.0"}
    assert [g.source for g in plan.grafts] == [py.prefix / "lib" / "libsqlite3.so.0"]
    updates = {u.paths[0]: u.runpath for u in plan.updates}
    assert updates == {dynload / module.name: ("$ORIGIN/../..",)}  # the binary keeps its RPATH


# --------------------------------------------------------------------------- an environment


@dataclass(frozen=True)
class Packed:
    env: BuiltEnv
    path: Path
    """The unpacked environment, moved away from where it was unpacked."""
    archive: Path


@pytest.fixture(scope="module")
def packed(standalone_python: StandalonePython, tmp_path_factory: pytest.TempPathFactory) -> Packed:
    base = tmp_path_factory.mktemp("standalone-tar")
    archive = base / "hello.tar.zst"
    # Found the way a uv user's interpreter is: by uv's installation key, in uv's directory.
    key = standalone_python.prefix.name
    result = subprocess.run(
        [*VENVPACK, "tar", "--project", str(HELLO), "--python", key, "-o", str(archive)],
        capture_output=True,
        text=True,
        cwd=base,
        check=False,
        env={**os.environ, "UV_PYTHON_INSTALL_DIR": str(standalone_python.install_dir)},
    )
    assert result.returncode == 0, result.stderr
    unpacked = base / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-C", str(unpacked), "-xf", str(archive)], check=True)
    moved = base / "moved here" / "hello"
    moved.parent.mkdir()
    os.rename(unpacked / "hello", moved)
    return Packed(env=BuiltEnv.load(moved), path=moved, archive=archive)


def test_found_as_a_uv_managed_python(packed: Packed, standalone_python: StandalonePython) -> None:
    python = packed.env.manifest.python
    assert (python.source, python.version) == ("uv", standalone_python.version)
    digest = hashlib.sha256(standalone_python.executable.read_bytes()).hexdigest()
    assert python.sha256 == digest


def test_glibc_floor_is_the_interpreters(packed: Packed) -> None:
    floor = packed.env.manifest.glibc_floor
    assert _version(floor) <= BULLSEYE_GLIBC, floor
    # The manifest's floor is what the tree really needs, read back independently.
    infos = [read_elf(p) for p in find_elf_files(packed.path)]
    assert _version(glibc_floor(infos)) <= BULLSEYE_GLIBC


def test_every_carried_library_comes_from_the_interpreters_tree(
    packed: Packed, standalone_python: StandalonePython
) -> None:
    grafted = {g.soname: Path(g.origin) for g in packed.env.manifest.grafted}
    assert set(grafted) >= CARRIED
    for soname, origin in grafted.items():
        assert _inside(origin, standalone_python.prefix.resolve()), (soname, origin)
    python_lib = packed.path / "python" / "lib"
    for soname in CARRIED:
        # The interpreter's copy (bullseye's), not the host's newer one: the same build, by
        # its GNU build-id (not the same bytes: grafting may have set a RUNPATH).
        carried = _build_id(python_lib / soname)
        assert carried == _build_id(standalone_python.prefix / "lib" / soname), soname


def test_runs_moved_in_a_glibc_2_31_root(packed: Packed, bullseye_glibc_root: Path) -> None:
    assert not sandbox.python_traces(bullseye_glibc_root)
    inside = "/srv/some where/hello"
    binds = {packed.path: inside}
    result = sandbox.run_in_root(bullseye_glibc_root, [f"{inside}/bin/hello"], binds=binds)
    assert result.returncode == 0, result.stderr
    assert f"hello from {inside}" in result.stdout

    result = sandbox.run_in_root(
        bullseye_glibc_root, [f"{inside}/bin/python", "-c", IMPORTS], binds=binds
    )
    assert result.returncode == 0, result.stderr
    openssl, prefix = result.stdout.splitlines()
    assert openssl.startswith("OpenSSL 1.1.1")
    assert prefix == inside


def test_runs_on_this_host_with_the_interpreter_hidden(
    packed: Packed, standalone_python: StandalonePython
) -> None:
    result = sandbox.hidden_run(
        [packed.path / "bin" / "python", "-c", IMPORTS],
        hide=[standalone_python.install_dir],
        tmp=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == str(packed.path)


def test_no_build_prefix_or_cache_path_in_text_files(
    packed: Packed, standalone_python: StandalonePython
) -> None:
    needles = [
        BUILD_PREFIX,
        BUILD_DIR,
        str(standalone_python.install_dir),
        str(standalone_python.install_dir.resolve()),
        str(sandbox.default_cache()),
    ]
    leaks = find_leaks(packed.path, needles)
    # Justified: the static binary embeds its configure-time PREFIX as getpath's last-resort
    # default, used only when no landmark is found (the bundled stdlib always is); and C
    # assert() messages name the compile directory. ELF files only: text must not name them.
    text_leaks = [(rel, n) for rel, n in leaks if not is_elf(packed.path / rel)]
    assert [leak for leak in text_leaks if leak[0] != MANIFEST] == []
    assert {n for rel, n in leaks if rel != MANIFEST} <= {BUILD_PREFIX, BUILD_DIR}
    assert _manifest_without_provenance(packed.path, needles) == []
    assert not (packed.path / "python" / "lib" / "python3.11" / "EXTERNALLY-MANAGED").exists()


def test_keep_dev_build_configuration_names_no_build_prefix(
    standalone_python: StandalonePython, tmp_path: Path
) -> None:
    """``--keep-dev`` keeps the config Makefile, python-config and the .pc file: all of them
    named ``/install`` in the source, and must now name the environment."""
    out = tmp_path / "dev"
    result = subprocess.run(
        [
            *VENVPACK,
            "build",
            "--project",
            str(HELLO),
            "--python",
            str(standalone_python.executable),
            "--keep-dev",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    makefile = next((out / "python" / "lib" / "python3.11").glob("config-3.11-*/Makefile"))
    assert "prefix=\t\t/opt/hello/python\n" in makefile.read_text()
    # "/usr/bin/install -c" is not the build prefix and must survive relocation.
    assert "INSTALL=\t/usr/bin/install -c" in makefile.read_text()
    needles = [BUILD_PREFIX, str(standalone_python.install_dir)]
    leaks = find_leaks(out, needles)
    assert [(rel, n) for rel, n in leaks if rel != MANIFEST and not is_elf(out / rel)] == []
    assert _manifest_without_provenance(out, needles) == []
    config = subprocess.run(
        [out / "python" / "bin" / "python3.11-config", "--includes"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert BUILD_PREFIX + "/" not in config.stdout


def test_the_sbom_names_a_uv_managed_interpreter_and_its_openssl(
    packed: Packed, standalone_python: StandalonePython
) -> None:
    """python-build-standalone brings its own libraries: OpenSSL is named with the version
    the interpreter reports, as the interpreter's, with no host package."""
    data = json.loads((packed.path / ".venvpack" / "sbom.cdx.json").read_text())
    (cpython,) = [c for c in data["components"] if c["name"] == "cpython"]
    props = {p["name"]: p["value"] for p in cpython["properties"]}
    assert props["venvpack:python-origin"] == "uv"
    assert cpython["purl"] == f"pkg:generic/cpython@{standalone_python.version}"
    reported = subprocess.run(
        [packed.path / "bin" / "python", "-c", "import ssl; print(ssl.OPENSSL_VERSION.split()[1])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    nested = [s for c in data["components"] for s in [c, *c.get("components", [])]]
    openssl = [
        c
        for c in nested
        if {"name": "venvpack:family", "value": "openssl"} in c.get("properties", [])
    ]
    assert openssl
    assert {c["version"] for c in openssl} == {reported}
    assert all("purl" not in c for c in openssl)  # it came with the interpreter, not the host
