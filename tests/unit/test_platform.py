"""The platform seam: one data file validated on load, a platform read from real ELF files and
interpreters, the policy keyed by it, and the manifest recording it."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

from fakes import fake_manifest
from venvpack import platform
from venvpack.elf import is_elf, read_elf
from venvpack.errors import ConfigError, ElfError, EmitError
from venvpack.interpreter import describe
from venvpack.manifest import Manifest
from venvpack.platform import Platform
from venvpack.policy import load_json

PYENV = Path.home() / ".pyenv/versions"
Change = Callable[[Any], object]


def test_the_data_file_loads_and_every_machine_is_consistent() -> None:
    data = platform.policy()
    assert data.default_libcs
    for machine in data.machines.values():
        for fmt, (arch, packages) in machine.packages.items():
            assert platform.package_arch(machine.name, fmt, fmt).arch == arch
            assert set(packages) <= set(data.libcs), machine.name
        assert set(machine.loaders) <= set(data.libcs), machine.name
    # Every loader of a default family is a system library: never grafted.
    allow = platform.system_libraries()
    for machine in data.machines.values():
        for family in data.default_libcs:
            if family in machine.loaders:
                assert machine.loaders[family] in allow
    assert not set(platform.loaded_by_family()) & allow


def _clear_caches() -> None:
    platform.policy.cache_clear()
    platform.system_libraries.cache_clear()
    platform.loaded_by_family.cache_clear()


@pytest.fixture
def damaged(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Change], None]]:
    """Serve a changed copy of the shipped data file to the loader; caches cleared after."""

    def serve(change: Change) -> None:
        data = load_json("platforms.json")
        change(data)
        monkeypatch.setattr(platform, "load_json", lambda name: data)
        _clear_caches()

    yield serve
    monkeypatch.undo()
    _clear_caches()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("machines"), "'machines' must be a non-empty object"),
        (lambda d: d["machines"]["x86_64"]["packages"]["rpm"].update(arch="X 86"), "invalid rpm"),
        (lambda d: d["machines"]["x86_64"]["packages"]["deb"].update(arch=6), "invalid deb"),
        (
            lambda d: d["machines"]["x86_64"]["packages"]["deb"]["libc"].update(glibc="Libc 6"),
            "libc package",
        ),
        (lambda d: d["machines"]["x86_64"]["packages"]["deb"].update(os="linux"), "takes 'arch'"),
        (lambda d: d["machines"]["x86_64"].update(color="red"), "unknown keys"),
        (lambda d: d["machines"]["x86_64"]["loaders"].update(glibc="ld linux"), "'loaders' maps"),
        (lambda d: d["machines"]["aarch64"]["uv"].append("amd64"), "names two machines"),
        (lambda d: d["machines"]["i386"].update(elf=d["machines"]["i686"]["elf"]), "ELF header"),
        (lambda d: d["libcs"]["glibc"].pop("uv"), "uv's name"),
        (lambda d: d["libcs"]["glibc"]["system-libraries"].append("../x"), "list of names"),
        (lambda d: d.update({"default-libcs": ["bionic"]}), "default-libcs"),
        (
            lambda d: d["libcs"]["glibc"]["loaded-by-family"].append("libc.so.6"),
            "both provides and loads",
        ),
    ],
)
def test_a_damaged_data_file_is_refused_naming_what_is_wrong(
    damaged: Callable[[Change], None], change: Change, message: str
) -> None:
    damaged(change)
    with pytest.raises(ConfigError, match=message):
        platform.policy()


def test_package_architecture_names_and_unknown_machines() -> None:
    """Each format module asks for its own names (``emit.deb.debian_arch`` ...)."""
    assert platform.package_arch("x86_64", "deb", "Debian") == platform.PackageArch(
        "amd64", "libc6"
    )
    assert platform.package_arch("alpha", "deb", "Debian", libc="glibc").libc == "libc6.1"
    assert platform.package_arch("armv7l", "rpm", "RPM") == platform.PackageArch("armv7hl", None)
    with pytest.raises(EmitError, match="no Debian architecture known for machine 'pdp11'"):
        platform.package_arch("pdp11", "deb", "Debian")
    with pytest.raises(EmitError, match="no RPM architecture known for machine 'i386'"):
        platform.package_arch("i386", "rpm", "RPM")  # RPM distributions have no i386 glibc


@pytest.mark.parametrize(
    ("key", "host", "same"),
    [
        ("x86_64_v3", "x86_64", True),
        ("amd64", "x86_64", True),
        ("arm64", "aarch64", True),
        ("armv7", "armv7l", True),
        ("riscv64gc", "riscv64", True),
        ("aarch64", "x86_64", False),
        ("sparc", "sparc", True),  # unknown to the data: compared as written
    ],
)
def test_uv_spellings_name_machines(key: str, host: str, same: bool) -> None:
    assert (platform.uv_arch_family(key) == platform.uv_arch_family(host)) is same


def test_uv_libc_spellings() -> None:
    assert platform.uv_libc("glibc") == "gnu"
    assert platform.uv_libc_family("gnueabihf") == platform.uv_libc_family("gnu") == "glibc"
    assert platform.uv_libc_family("musl") == "musl"


def _programs() -> list[Path]:
    found = sorted(PYENV.glob("*/bin/python3.*")) if PYENV.is_dir() else []
    found += [Path(sys.executable).resolve()]
    return [p for p in found if not p.is_symlink() and is_elf(p)]


def test_a_program_names_its_platform_as_its_header_and_loader_say() -> None:
    """Checked against pyelftools' reading of the same header and PT_INTERP."""
    for path in _programs():
        with path.open("rb") as fh:
            elf = ELFFile(fh)
            interp = next(s for s in elf.iter_segments() if isinstance(s, InterpSegment))
            header = (elf["e_machine"], elf.elfclass, elf.little_endian)
            loader = Path(interp.get_interp_name()).name
        found = platform.of_elf(read_elf(path), floor="2.17")
        entry = platform.policy().machines[found.machine]
        assert entry.elf == header
        assert entry.loaders[found.libc] == loader
        assert found.floor == "2.17"


def test_a_library_or_unknown_machine_names_no_platform(tmp_path: Path) -> None:
    library = next((p for p in Path(sys.base_prefix).glob("lib/python3*/lib-dynload/*.so")), None)
    if library is None:
        pytest.skip("no extension module to read")
    with pytest.raises(ElfError, match="no program interpreter"):
        platform.of_elf(read_elf(library))
    info = dataclasses.replace(read_elf(_programs()[0]), machine="EM_PDP11")
    with pytest.raises(ElfError, match="no known machine is EM_PDP11"):
        platform.of_elf(info)
    info = dataclasses.replace(read_elf(_programs()[0]), interpreter="/lib/ld-elsewhere.so.1")
    with pytest.raises(ElfError, match=r"no known C library has the loader ld-elsewhere\.so\.1"):
        platform.of_elf(info)


def test_an_interpreter_names_its_own_machine_and_its_loader_family() -> None:
    interp = describe(Path(sys.executable))
    found = platform.of_interpreter(interp, floor="2.31")
    assert found == Platform(interp.machine, platform.host_libc(), "2.31")


# -- the manifest ---------------------------------------------------------------------------


def test_the_manifest_records_the_platform_and_reads_it_back() -> None:
    manifest = fake_manifest(platform=Platform("x86_64", "glibc", "2.34"))
    data = json.loads(manifest.to_json())
    assert data["platform"] == {"machine": "x86_64", "libc": "glibc", "floor": "2.34"}
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.target == manifest.platform


def test_an_old_manifest_without_a_platform_still_loads() -> None:
    old = json.loads(fake_manifest().to_json())
    assert "platform" not in old
    manifest = Manifest.from_json(json.dumps(old))
    assert manifest.platform is None
    assert manifest.target == Platform("x86_64", "glibc", "2.34")


@pytest.mark.parametrize(
    ("platform_data", "message"),
    [
        ({"machine": "x86_64/..", "libc": "glibc", "floor": "2.34"}, "invalid machine"),
        ({"machine": "x86_64", "libc": "Glibc 2", "floor": "2.34"}, "C library family"),
        ({"machine": "x86_64", "libc": "glibc", "floor": "2.34\n"}, "C library floor"),
        ({"machine": "aarch64", "libc": "glibc", "floor": "2.34"}, "is not the interpreter's"),
        ({"machine": "x86_64", "libc": "glibc", "floor": "2.17"}, "is not glibc_floor"),
        ({"machine": "x86_64", "libc": 6, "floor": "2.34"}, "must be a string"),
        ({"machine": "x86_64", "libc": "glibc", "floor": "2.34", "os": "x"}, "unexpected"),
    ],
)
def test_a_tampered_platform_is_refused(platform_data: object, message: str) -> None:
    data = json.loads(fake_manifest().to_json())
    data["platform"] = platform_data
    with pytest.raises((ConfigError, ValueError), match=message):
        Manifest.from_json(json.dumps(data))


# -- another machine ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ((2, 36), "aarch64-manylinux_2_36"),
        ((2, 30), "aarch64-manylinux_2_28"),  # uv names no 2.29 or 2.30
        ((2, 27), "aarch64-manylinux_2_17"),
        ((2, 45), "aarch64-manylinux_2_40"),  # the newest uv knows
    ],
)
def test_uv_target_is_the_newest_platform_the_release_covers(
    release: tuple[int, int], expected: str
) -> None:
    assert platform.uv_target("aarch64", "glibc", release) == expected


def test_uv_target_refuses_what_uv_cannot_name() -> None:
    with pytest.raises(EmitError, match=r"older than 2\.17"):
        platform.uv_target("aarch64", "glibc", (2, 12))
    with pytest.raises(EmitError, match="cannot install wheels for vax"):
        platform.uv_target("vax", "glibc", (2, 36))


def test_a_header_names_its_machine() -> None:
    assert platform.machine_of(read_elf(Path(sys.executable).resolve())) == (
        platform.host_machine()
    )
    assert not platform.is_foreign(platform.host_machine())


def _binfmt(tmp_path: Path, text: str | None) -> Path:
    tmp_path.mkdir(exist_ok=True)
    if text is not None:
        (tmp_path / "qemu-aarch64").write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (None, "aarch64 programs do not run here: apt-get install qemu-user-static"),
        ("disabled\ninterpreter /usr/bin/qemu-aarch64\nflags: F\n", "registered but disabled"),
        ("enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: P\n", "without the F flag"),
        ("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n", None),
    ],
)
def test_emulation_problems_say_how_to_enable_it(
    tmp_path: Path, entry: str | None, problem: str | None
) -> None:
    if platform.host_machine() == "aarch64":
        pytest.skip("aarch64 programs run natively here")
    found = platform.emulation_problem("aarch64", binfmt=_binfmt(tmp_path / "binfmt", entry))
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
        assert "\n" not in found
    assert platform.emulation_problem(platform.host_machine(), binfmt=tmp_path) is None


def test_an_emulator_for_a_machine_qemu_does_not_know_is_refused() -> None:
    from venvpack.errors import ToolMissingError

    with pytest.raises(ToolMissingError, match="cannot run alpha programs"):
        platform.emulator("alpha")
