"""The target platform: the machine an environment runs on, its C library family and the
oldest version of that library it needs; and the policy keyed by them.

Everything venvpack knows about a platform is data (``policy/platforms.json``, validated
when loaded): how an ELF header names the machine, the dynamic loader per C library
family, each package format's architecture name (keyed by the format's name: the format
module asks for its own), uv's spellings, and each family's system libraries. A
:class:`Platform` is read from an interpreter (:func:`of_interpreter`) or from one ELF file
(:func:`of_elf`): its header's machine, class and byte order, and the file name of its
PT_INTERP loader, which tells the family. Nothing outside this module, its data and the
format modules names a machine or a loader; a new platform is an entry in the data file,
and a new C library family an entry plus the few functions here that read it.
"""

from __future__ import annotations

import platform as _host
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from venvpack.elf import ElfInfo, read_elf
from venvpack.errors import ConfigError, ElfError, EmitError, ToolMissingError
from venvpack.policy import load_json

if TYPE_CHECKING:
    from venvpack.interpreter import Interpreter

__all__ = [
    "LibcPolicy",
    "MachinePolicy",
    "PackageArch",
    "Platform",
    "PlatformPolicy",
    "emulation_problem",
    "emulator",
    "host_libc",
    "host_machine",
    "is_foreign",
    "loaded_by_family",
    "machine_of",
    "of_elf",
    "of_interpreter",
    "package_arch",
    "policy",
    "system_libraries",
    "uv_arch_family",
    "uv_key_example",
    "uv_libc",
    "uv_libc_family",
    "uv_target",
]

_POLICY = "platforms.json"
_MACHINE_RE = re.compile(r"[A-Za-z0-9_]+")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_]*")
_SONAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+\.so(\.[0-9]+)*$")
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_FLOOR_RE = re.compile(r"[0-9]+\.[0-9]+")
_UV_LEVEL = re.compile(r"_v[1-4]$")
"""uv spells microarchitecture levels as a suffix of the machine (``_v2`` .. ``_v4``); a
level this CPU lacks fails later, in the interpreter's probe."""


@dataclass(frozen=True)
class Platform:
    """Where an environment runs."""

    machine: str
    """The architecture as ``platform.machine()`` spells it on the target."""
    libc: str
    """The C library family, a key of ``policy/platforms.json``'s ``libcs``."""
    floor: str | None = None
    """The oldest version of that C library the environment runs on (``MAJOR.MINOR``);
    None when not known yet."""

    def check(self) -> None:
        """ConfigError for values no build could have recorded (a tampered manifest)."""
        if not _MACHINE_RE.fullmatch(self.machine):
            raise ConfigError(f"invalid machine {self.machine!r}")
        if not _NAME_RE.fullmatch(self.libc):
            raise ConfigError(f"invalid C library family {self.libc!r}")
        if self.floor is not None and not _FLOOR_RE.fullmatch(self.floor):
            raise ConfigError(f"invalid C library floor {self.floor!r}: use MAJOR.MINOR")


@dataclass(frozen=True)
class PackageArch:
    """A package format's view of a machine."""

    arch: str
    """The format's architecture name (as its package manager prints it)."""
    libc: str | None
    """The C library package a dependency names, for formats whose data lists one."""
    variant: str | None = None
    """The format's CPU variant, where it names one (an OCI image's ``v8``)."""


@dataclass(frozen=True)
class MachinePolicy:
    """One machine of the data file."""

    name: str
    elf: tuple[str, int, bool] | None
    """(``e_machine`` as pyelftools names it, class, little-endian) when an ELF header names
    this machine; None for a spelling that shares another machine's header."""
    uv: tuple[str, ...]
    """How uv's installation keys spell it."""
    packages: Mapping[str, tuple[str, Mapping[str, str]]]
    """Per package format: its architecture name and its C library package per family."""
    loaders: Mapping[str, str]
    """The dynamic loader's file name per C library family."""
    variants: Mapping[str, str] = field(default_factory=dict)
    """Per package format that names one, its CPU variant (an OCI image's ``v8``)."""
    qemu: str | None = None
    """qemu-user's name for the machine (``qemu-<name>-static``), when qemu emulates it."""


@dataclass(frozen=True)
class LibcPolicy:
    """One C library family of the data file."""

    name: str
    uv: str
    """How uv's installation keys spell it (a prefix: ``gnueabihf`` is glibc, too)."""
    system_libraries: frozenset[str]
    """Sonames the family provides, without the loaders (each machine names its own)."""
    loaded_by_family: tuple[str, ...]
    uv_target: str = ""
    """uv's ``--python-platform`` spelling, with ``{machine}``, ``{major}`` and ``{minor}``."""
    uv_targets: tuple[tuple[int, int], ...] = ()
    """The library versions uv has a ``--python-platform`` for, oldest first."""


@dataclass(frozen=True)
class PlatformPolicy:
    machines: Mapping[str, MachinePolicy]
    libcs: Mapping[str, LibcPolicy]
    default_libcs: tuple[str, ...]


@cache
def policy() -> PlatformPolicy:
    """``policy/platforms.json``, validated: ConfigError naming what is wrong."""
    data = load_json(_POLICY)
    libcs = {name: _libc(name, entry) for name, entry in _object(data, "libcs").items()}
    machines = {name: _machine(name, e, libcs) for name, e in _object(data, "machines").items()}
    default = data.get("default-libcs")
    if not isinstance(default, list) or not default or not set(default) <= set(libcs):
        raise ConfigError(f"{_POLICY}: 'default-libcs' must list families of 'libcs'")
    spelled: dict[str, str] = {}
    for machine in machines.values():
        for text in machine.uv:
            if spelled.setdefault(text, machine.name) != machine.name:
                raise ConfigError(f"{_POLICY}: uv spelling {text!r} names two machines")
    headers = [m.elf for m in machines.values() if m.elf is not None]
    if len(headers) != len(set(headers)):
        raise ConfigError(f"{_POLICY}: two machines read the same from an ELF header")
    return PlatformPolicy(machines, libcs, tuple(default))


def _object(data: Mapping[str, object], key: str, where: str = "") -> dict[str, object]:
    value = data.get(key)
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{_POLICY}: {where}{key!r} must be a non-empty object")
    return value


def _strings(value: object, what: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and pattern.fullmatch(v) for v in value
    ):
        raise ConfigError(f"{_POLICY}: {what} must be a list of names, got {value!r}")
    return tuple(value)


def _libc(name: str, entry: object) -> LibcPolicy:
    if not _NAME_RE.fullmatch(name) or not isinstance(entry, dict):
        raise ConfigError(f"{_POLICY}: invalid C library family {name!r}")
    uv = entry.get("uv")
    if not isinstance(uv, str) or not _NAME_RE.fullmatch(uv):
        raise ConfigError(f"{_POLICY}: {name} needs uv's name for it")
    system = _strings(entry.get("system-libraries"), f"{name} system-libraries", _SONAME_RE)
    loaded = _strings(entry.get("loaded-by-family", []), f"{name} loaded-by-family", _SONAME_RE)
    if set(loaded) & set(system):
        raise ConfigError(f"{_POLICY}: {name} both provides and loads {set(loaded) & set(system)}")
    target = entry.get("uv-target", {"pattern": "", "versions": []})
    pattern = target.get("pattern") if isinstance(target, dict) else None
    versions = target.get("versions") if isinstance(target, dict) else None
    if (
        not isinstance(pattern, str)
        or not isinstance(versions, list)
        or not all(isinstance(v, str) and _FLOOR_RE.fullmatch(v) for v in versions)
    ):
        raise ConfigError(f"{_POLICY}: {name}: 'uv-target' needs a pattern and versions")
    targets = tuple(sorted((int(v.split(".")[0]), int(v.split(".")[1])) for v in versions))
    return LibcPolicy(name, uv, frozenset(system), loaded, pattern, targets)


def _machine(name: str, entry: object, libcs: Mapping[str, LibcPolicy]) -> MachinePolicy:
    if not _MACHINE_RE.fullmatch(name) or not isinstance(entry, dict):
        raise ConfigError(f"{_POLICY}: invalid machine {name!r}")
    known = {"elf", "uv", "packages", "loaders", "qemu"}
    if not set(entry) <= known:
        raise ConfigError(f"{_POLICY}: {name}: unknown keys {sorted(set(entry) - known)}")
    elf = entry.get("elf")
    header: tuple[str, int, bool] | None = None
    if elf is not None:
        if (
            not isinstance(elf, dict)
            or not isinstance(elf.get("machine"), str)
            or elf.get("class") not in (32, 64)
            or elf.get("endian") not in ("little", "big")
        ):
            raise ConfigError(f"{_POLICY}: {name}: 'elf' needs machine, class and endian")
        header = (elf["machine"], elf["class"], elf["endian"] == "little")
    uv = _strings(entry.get("uv", []), f"{name} uv", _MACHINE_RE)
    packages = entry.get("packages", {})
    if not isinstance(packages, dict):
        raise ConfigError(f"{_POLICY}: {name}: 'packages' must be an object")
    archs = {fmt: _package(name, fmt, value, libcs) for fmt, value in packages.items()}
    variants = {fmt: arch[2] for fmt, arch in archs.items() if arch[2] is not None}
    loaders = entry.get("loaders", {})
    if not isinstance(loaders, dict) or not all(
        family in libcs and isinstance(soname, str) and _SONAME_RE.fullmatch(soname)
        for family, soname in loaders.items()
    ):
        raise ConfigError(f"{_POLICY}: {name}: 'loaders' maps C library families to sonames")
    qemu = entry.get("qemu")
    if qemu is not None and not (isinstance(qemu, str) and _NAME_RE.fullmatch(qemu)):
        raise ConfigError(f"{_POLICY}: {name}: invalid qemu name {qemu!r}")
    packaged = {fmt: (arch, libc) for fmt, (arch, libc, _) in archs.items()}
    return MachinePolicy(name, header, uv, packaged, dict(loaders), variants, qemu)


def _package(
    machine: str, fmt: str, entry: object, libcs: Mapping[str, LibcPolicy]
) -> tuple[str, Mapping[str, str], str | None]:
    arch = entry.get("arch") if isinstance(entry, dict) else None
    if not _NAME_RE.fullmatch(fmt) or not isinstance(arch, str) or not _NAME_RE.fullmatch(arch):
        raise ConfigError(f"{_POLICY}: invalid {fmt} architecture {arch!r} for {machine!r}")
    assert isinstance(entry, dict)
    libc = entry.get("libc", {})
    if not isinstance(libc, dict) or not set(entry) <= {"arch", "libc", "variant"}:
        raise ConfigError(f"{_POLICY}: {machine}: {fmt} takes 'arch', 'libc' and 'variant'")
    variant = entry.get("variant")
    if variant is not None and not (isinstance(variant, str) and _NAME_RE.fullmatch(variant)):
        raise ConfigError(f"{_POLICY}: {machine}: invalid {fmt} variant {variant!r}")
    for family, package in libc.items():
        if family not in libcs:
            raise ConfigError(f"{_POLICY}: {machine}: unknown C library family {family!r}")
        if not isinstance(package, str) or not _PACKAGE_RE.fullmatch(package):
            raise ConfigError(f"{_POLICY}: {machine}: invalid libc package {package!r}")
    return arch, dict(libc), variant


# -- reading a platform ------------------------------------------------------------------


def machine_of(info: ElfInfo) -> str | None:
    """The machine an ELF file's header names (``platform.machine()`` spelling), or None
    for one the data does not know."""
    header = (info.machine, info.elfclass, info.little_endian)
    return next((m.name for m in policy().machines.values() if m.elf == header), None)


def uv_target(machine: str, libc: str, release: tuple[int, int]) -> str:
    """uv's ``--python-platform`` for wheels that run on ``machine`` with C library
    ``libc`` of version ``release``: the newest platform uv names that the release covers
    (``aarch64-manylinux_2_36``). EmitError when uv has none for them."""
    entry = policy().machines.get(machine)
    family = policy().libcs.get(libc)
    if entry is None or family is None or not entry.uv or not family.uv_targets:
        raise EmitError(f"uv cannot install wheels for {machine} with {libc}")
    fitting = [v for v in family.uv_targets if v <= release]
    if not fitting:
        oldest = ".".join(map(str, family.uv_targets[0]))
        raise EmitError(f"{libc} {release[0]}.{release[1]} is older than {oldest}, uv's oldest")
    major, minor = max(fitting)
    return family.uv_target.format(machine=entry.uv[0], major=major, minor=minor)


def of_elf(info: ElfInfo, floor: str | None = None) -> Platform:
    """The platform a program runs on: its header's machine, and the C library family whose
    loader its PT_INTERP names. ElfError for a file that says neither."""
    header = (info.machine, info.elfclass, info.little_endian)
    machine = next((m for m in policy().machines.values() if m.elf == header), None)
    if machine is None:
        raise ElfError(f"{info.path}: no known machine is {info.machine} ({info.elfclass}-bit)")
    if info.interpreter is None:
        raise ElfError(f"{info.path} names no program interpreter (PT_INTERP)")
    loader = PurePosixPath(info.interpreter).name
    libc = next((f for f, name in machine.loaders.items() if name == loader), None)
    if libc is None:
        raise ElfError(f"{info.path}: no known C library has the loader {loader}")
    return Platform(machine.name, libc, floor)


def of_interpreter(interp: Interpreter, floor: str | None = None) -> Platform:
    """The platform an interpreter runs on: the machine it reports itself (an environment's
    architecture names follow it), the C library family of its executable's loader."""
    return Platform(interp.machine, of_elf(read_elf(interp.executable)).libc, floor)


def host_machine() -> str:
    """The machine this process runs on, as ``platform.machine()`` spells it."""
    return _host.machine()


def is_foreign(machine: str) -> bool:
    """Whether programs of ``machine`` need emulation here: another ELF header than this
    host's (i686 programs run natively on x86_64 only with a 32-bit userland, so they count
    as foreign too)."""
    return machine != host_machine()


def emulator(machine: str) -> list[str]:
    """The command that runs one program of ``machine`` on this host, under qemu-user
    (``qemu-aarch64-static``, or a dynamically linked ``qemu-aarch64``); followed by
    ``-L SYSROOT`` it finds the program's loader and libraries in a root of that machine.
    ToolMissingError when qemu-user is not installed or does not know the machine."""
    entry = policy().machines.get(machine)
    name = entry.qemu if entry is not None else None
    if name is None:
        raise ToolMissingError(f"qemu-user cannot run {machine} programs")
    for command in (f"qemu-{name}-static", f"qemu-{name}"):
        found = shutil.which(command)
        if found is not None:
            return [found]
    raise ToolMissingError(
        f"running {machine} programs here needs qemu-user: apt-get install qemu-user-static"
    )


BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


def emulation_problem(machine: str, binfmt: Path = BINFMT_DIR) -> str | None:
    """Why programs of ``machine`` cannot be started here by their path (inside a sandbox,
    where no emulator can be named), or None when they can: natively, or because
    binfmt_misc has an enabled qemu-user entry for the machine that the kernel opens when it
    is registered (flag ``F``), so that it also works in another root."""
    if not is_foreign(machine):
        return None
    entry = policy().machines.get(machine)
    name = entry.qemu if entry is not None else None
    if name is None:
        return f"{machine} programs cannot be emulated here (qemu-user does not know {machine})"
    how = (
        f"apt-get install qemu-user-static binfmt-support, then (as root) mount binfmt_misc "
        f"if {binfmt} is empty (mount -t binfmt_misc binfmt_misc {binfmt}) and run "
        f"update-binfmts --enable qemu-{name}"
    )
    try:
        text = (binfmt / f"qemu-{name}").read_text(encoding="ascii", errors="replace")
    except OSError:
        return f"{machine} programs do not run here: {how}"
    lines = text.splitlines()
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    if not lines or lines[0].strip() != "enabled":
        return f"qemu-{name} is registered but disabled: {how}"
    if "F" not in flags:
        return (
            f"qemu-{name} is registered without the F flag, so it cannot run programs in "
            "another root: install qemu-user-static (its registration has it)"
        )
    return None


def host_libc() -> str:
    """The C library family of this process: glibc when ``platform.libc_ver()`` says so,
    else musl, the only other Linux C library uv names."""
    return "glibc" if _host.libc_ver()[0] == "glibc" else "musl"


# -- policy keyed by the platform ----------------------------------------------------------


def package_arch(machine: str, fmt: str, label: str, libc: str | None = None) -> PackageArch:
    """How package format ``fmt`` names ``machine`` (``platform.machine()``), with its C
    library package of family ``libc`` (the data's first default family when None) where
    the data lists one. EmitError for a machine the format has no name for, naming the
    format by ``label`` (``Debian``)."""
    entry = policy().machines.get(machine)
    found = entry.packages.get(fmt) if entry is not None else None
    if found is None:
        known = ", ".join(sorted(m for m, e in policy().machines.items() if fmt in e.packages))
        raise EmitError(f"no {label} architecture known for machine {machine!r} (known: {known})")
    arch, packages = found
    variant = entry.variants.get(fmt) if entry is not None else None
    return PackageArch(arch, packages.get(libc or policy().default_libcs[0]), variant)


@cache
def system_libraries(families: tuple[str, ...] | None = None) -> frozenset[str]:
    """Sonames the target system provides (never grafted) for C library ``families`` (the
    data's default when None): each family's libraries and its loader on every machine."""
    data = policy()
    out: set[str] = set()
    for family in families if families is not None else data.default_libcs:
        libc = data.libcs.get(family)
        if libc is None:
            raise ConfigError(f"unknown system library family {family!r}")
        out |= libc.system_libraries
        out |= {m.loaders[family] for m in data.machines.values() if family in m.loaders}
    return frozenset(out)


@cache
def loaded_by_family(families: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Sonames the C library ``families`` load by themselves at run time without being part
    of them (glibc dlopens ``libgcc_s.so.1``): every environment carries these."""
    data = policy()
    out: list[str] = []
    for family in families if families is not None else data.default_libcs:
        libc = data.libcs.get(family)
        if libc is None:
            raise ConfigError(f"unknown system library family {family!r}")
        out += [soname for soname in libc.loaded_by_family if soname not in out]
    return tuple(out)


def uv_arch_family(arch: str) -> str:
    """The machine a uv architecture spelling names (levels and aliases folded), or the
    spelling itself when the data does not know it."""
    arch = _UV_LEVEL.sub("", arch)
    for machine in policy().machines.values():
        if arch in machine.uv:
            return machine.name
    return arch


def uv_key_example(version: str = "3.12.4") -> str:
    """An installation key as uv names its CPython builds, for the first machine of the data
    and its default C library family (an example for messages and help)."""
    data = policy()
    machine = next(iter(data.machines.values()))
    return f"cpython-{version}-linux-{machine.uv[0]}-{uv_libc(data.default_libcs[0])}"


def uv_libc(family: str) -> str:
    """uv's name for C library ``family`` (the family itself when the data has none)."""
    libc = policy().libcs.get(family)
    return libc.uv if libc is not None else family


def uv_libc_family(text: str) -> str:
    """The C library family a uv libc spelling names (uv's spelling of a family, followed by
    an ABI such as ``eabihf``, names it too), or the spelling itself."""
    for libc in policy().libcs.values():
        if text.startswith(libc.uv):
            return libc.name
    return text
