"""The base of an image: the default one, a minimal glibc system assembled from the build
host's own packages, distroless-style, with no daemon and no registry; and the checks a
base image given with ``--base`` passes (its glibc, its CA bundle).

It holds what a program venvpack packed needs of a system and nothing else: the files of
the C library's packages (``libc6``, and ``libgcc-s1``, whose ``libgcc_s.so.1`` glibc
dlopens for ``pthread_exit``), the CA bundle ``update-ca-certificates`` made, tzdata's
zoneinfo, netbase's ``/etc/services`` and friends, ``os-release``, and generated
``/etc/passwd``, ``/etc/group`` and ``/etc/nsswitch.conf`` with ``root`` and ``nonroot``
(65532, as distroless names it, home ``/home/nonroot``), ``/tmp`` (1777) and ``/root``.

The files are read from a root directory (``/`` by default; a sysroot of another
architecture works the same), through dpkg's own records there -- ``var/lib/dpkg/status``
and ``var/lib/dpkg/info/<package>[:<arch>].list`` -- without running anything. A package
counts once its files are unpacked (a sysroot made without running anything records them
so); what runs later, its maintainer scripts, is what makes the CA bundle, so a root that
lacks the bundle or an architecture-independent package (``Architecture: all``: tzdata,
netbase) may take it from another system (``data_root``, this host's), never a package
of one architecture. Their documentation is left out except the copyright files. What it
used is recorded (:attr:`Base.packages`) for the image's annotations. The plan is
reproducible: the same packages give the same layer.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from venvpack.archive import TarPlan
from venvpack.errors import ArtifactError, ConfigError, EmitError
from venvpack.glibc import glibc_release

if TYPE_CHECKING:
    from venvpack.oci.image import Layer, LoadedImage

__all__ = [
    "CA_BUNDLE",
    "NONROOT",
    "PACKAGES",
    "Base",
    "default_base",
    "dpkg_status",
    "has_ca_bundle",
    "image_glibc",
]

NONROOT = 65532
"""The uid and gid of the unprivileged user (distroless's ``nonroot``)."""
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
"""Where the CA certificates are, as one PEM file (the bundled OpenSSL is pointed at it)."""

PACKAGES = ("libc6", "libgcc-s1", "tzdata", "netbase", "ca-certificates")
"""The packages whose files (``ca-certificates``: its generated bundle) make the base."""

_OS_RELEASE = ("usr/lib/os-release", "etc/os-release")
_UNPACKED = frozenset(
    {"unpacked", "half-configured", "triggers-awaited", "triggers-pending", "installed"}
)
"""dpkg's states in which every file of the package is in place."""
_KEPT_DOCS = re.compile(r"usr/share/doc/[^/]+/copyright")
_LEFT_OUT = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/lintian/")
_LIBC_NAME = re.compile(r"libc\.so\.6|libc-[0-9]+\.[0-9]+\.so")
"""glibc's C library: ``libc.so.6``, a link to ``libc-2.31.so`` before glibc 2.34."""
_SHORT_LINKS = 40
"""How many symlinks may be followed resolving one directory of the root (a loop stops)."""


@dataclass(frozen=True)
class Base:
    """The default base as one layer's plan, and what it was made of."""

    plan: TarPlan
    packages: Mapping[str, str]
    """Each package used and its version, for the image's annotations."""
    glibc: tuple[int, int]
    """The glibc release its ``libc.so.6`` is (``2.36``): the newest floor it runs."""


def default_base(
    root: Path = Path("/"),
    *,
    dpkg_arch: str | None = None,
    mtime: int | None = None,
    packages: Sequence[str] = PACKAGES,
    data_root: Path | None = None,
) -> Base:
    """The default base made of ``root``'s packages for dpkg architecture ``dpkg_arch``
    (None: the one installed), every entry dated ``mtime``. A package ``root`` lacks that
    ``data_root`` has for every architecture, and the CA bundle, are taken from
    ``data_root`` (another machine's sysroot: this host). EmitError naming the package to
    install when one is missing."""
    status = dpkg_status(root)
    data_status = dpkg_status(data_root) if data_root is not None else []
    plan = TarPlan(mtime=mtime)
    used: dict[str, str] = {}
    added: set[str] = set()
    for package in packages:
        source, entry = root, _installed(status, package, dpkg_arch)
        if entry is None and data_root is not None:
            source, entry = data_root, _installed(data_status, package, "all")
        if entry is None:
            raise EmitError(
                f"the default base needs the package {package}"
                + (f":{dpkg_arch}" if dpkg_arch else "")
                + f" in {root} (apt-get install {package}), or give --base"
            )
        used[package] = entry["Version"]
        if package == "ca-certificates":
            continue  # its bundle is generated, not in its file list: added below
        for path in _listed(source, package, entry.get("Architecture", "all")):
            _add(plan, source, path, added)
    bundle = _bundle(root)
    if bundle is None and data_root is not None:
        bundle = _bundle(data_root)
        entry = _installed(data_status, "ca-certificates", "all")
        if bundle is not None and entry is not None:
            used["ca-certificates"] = entry["Version"]  # whose bundle it is
    if bundle is None:
        raise EmitError(
            f"the default base needs the CA bundle /{CA_BUNDLE} in {root} "
            "(apt-get install ca-certificates), or give --base"
        )
    plan.add_file(CA_BUNDLE, bundle.read_bytes())
    for name in _OS_RELEASE:
        found = _resolve(root, name)
        if found is not None and stat.S_ISREG(os.stat(found).st_mode):
            plan.add_file(_OS_RELEASE[1], found.read_bytes())
            break
    base_files = _installed(status, "base-files", dpkg_arch)
    if base_files is not None:
        used["base-files"] = base_files["Version"]
    _accounts(plan)
    glibc = _glibc_of(plan)
    if glibc is None:
        raise EmitError(f"the default base found no libc.so.6 in {root}'s libc6")
    return Base(plan, dict(sorted(used.items())), glibc)


def _bundle(root: Path) -> Path | None:
    """The CA bundle ``update-ca-certificates`` wrote in ``root``, if there is one."""
    bundle = _resolve(root, CA_BUNDLE)
    if bundle is None or not stat.S_ISREG(os.lstat(bundle).st_mode):
        return None
    return bundle


def _accounts(plan: TarPlan) -> None:
    """``root`` and ``nonroot``, their homes, ``/tmp``, and name lookups from files."""
    plan.add_file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/sbin/nologin\n"
        + f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n".encode(),
    )
    plan.add_file("etc/group", f"root:x:0:\nnonroot:x:{NONROOT}:\n".encode())
    plan.add_file(
        "etc/nsswitch.conf",
        b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
        b"networks: files\nprotocols: files\nservices: files\n",
    )
    plan.add_dir("root", 0o700, keep_mode=True)
    plan.add_dir("home", 0o755)
    plan.add_dir("home/nonroot", 0o700, owner=(NONROOT, NONROOT), keep_mode=True)
    plan.add_dir("tmp", 0o1777, keep_mode=True)


def dpkg_status(root: Path) -> list[dict[str, str]]:
    """The stanzas of ``root``'s ``var/lib/dpkg/status`` (fields by name, continuation
    lines dropped). ConfigError when the root has no dpkg database."""
    path = root / "var/lib/dpkg/status"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path} ({exc.strerror}): the default base is made of a Debian "
            "system's packages; give --base on other systems"
        ) from None
    stanzas: list[dict[str, str]] = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if fields.get("Package"):
            stanzas.append(fields)
    return stanzas


def _installed(
    status: list[dict[str, str]], package: str, dpkg_arch: str | None
) -> dict[str, str] | None:
    """``package``'s stanza when its files are in place, for ``dpkg_arch`` (None: any) or
    for every architecture (``all``)."""
    for entry in status:
        if entry.get("Package") != package or not entry.get("Version"):
            continue
        state = entry.get("Status", "").split()[-1:]
        if not state or state[0] not in _UNPACKED:
            continue
        arch = entry.get("Architecture", "all")
        if dpkg_arch is None or arch in (dpkg_arch, "all"):
            return entry
    return None


def _listed(root: Path, package: str, arch: str) -> Iterator[str]:
    """The paths ``package``'s list file names, relative and without documentation."""
    info = root / "var/lib/dpkg/info"
    candidates = [info / f"{package}:{arch}.list", info / f"{package}.list"]
    listing = next((c for c in candidates if c.is_file()), None)
    if listing is None:
        raise EmitError(f"dpkg lists no files of {package} in {info}")
    for line in listing.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        path = line.strip().lstrip("/")
        if not path or path == ".":
            continue
        if path.startswith(_LEFT_OUT) and not _KEPT_DOCS.fullmatch(path):
            continue
        yield path


def _add(plan: TarPlan, root: Path, listed: str, added: set[str]) -> None:
    """Add ``listed`` at its real place in the root (``lib/x`` is ``usr/lib/x`` on a
    merged-/usr system, and the layer has the same ``lib`` symlink), once."""
    parent = _resolve(root, str(PurePosixPath(listed).parent))
    if parent is None:
        return
    name = PurePosixPath(listed).name
    arcname = str(parent.relative_to(root) / name) if parent != root else name
    host = parent / name
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return  # removed or diverted since: dpkg's list is a record, not a promise
    _links_above(plan, root, listed, added)
    if arcname in added:
        return
    if stat.S_ISDIR(st.st_mode):
        return  # made as a parent where something lies in it
    added.add(arcname)
    plan.add_path(host, arcname)


def _links_above(plan: TarPlan, root: Path, listed: str, added: set[str]) -> None:
    """The symlinks among ``listed``'s parents in the root (``lib -> usr/lib``), as links."""
    parts = PurePosixPath(listed).parts[:-1]
    for i in range(1, len(parts) + 1):
        host = _resolve(root, "/".join(parts[: i - 1]) or ".")
        if host is None:
            return
        path = host / parts[i - 1]
        if not path.is_symlink():
            continue
        arcname = str(path.relative_to(root))
        if arcname not in added:
            added.add(arcname)
            plan.add_symlink(arcname, os.readlink(path))


def _resolve(root: Path, relative: str) -> Path | None:
    """Where ``relative`` (a path in the root) really is, following its symlinks as they
    would be followed inside the root (an absolute target is from the root); None when it
    leaves the root, loops or is missing."""
    current = root
    pending = [p for p in PurePosixPath(relative).parts if p not in ("/", ".")]
    followed = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if current == root:
                return None
            current = current.parent
            continue
        nxt = current / part
        try:
            st = os.lstat(nxt)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            followed += 1
            if followed > _SHORT_LINKS:
                return None
            target = os.readlink(nxt)
            if target.startswith("/"):
                current = root
            pending = [p for p in PurePosixPath(target).parts if p not in ("/", ".")] + pending
            continue
        current = nxt
    return current


def _glibc_of(plan: TarPlan) -> tuple[int, int] | None:
    for entry in plan.entries:
        name = PurePosixPath(entry.arcname).name
        if _LIBC_NAME.fullmatch(name) and isinstance(entry.source, (str, Path)):
            with open(entry.source, "rb") as handle:
                found = glibc_release(handle.read())
            if found is not None:
                return found
    return None


# -- checks of a base image ---------------------------------------------------------------


def image_glibc(loaded: LoadedImage) -> tuple[int, int] | None:
    """The glibc release of the image's ``libc.so.6`` (the highest layer that has one);
    None when it has none (a musl or an empty image)."""
    found: tuple[int, int] | None = None
    for layer in loaded.layers:
        for _name, data in _layer_files(loaded, layer, _libc_member):
            release = glibc_release(data)
            if release is not None:
                found = release
    return found


def has_ca_bundle(loaded: LoadedImage) -> bool:
    """Whether the image has :data:`CA_BUNDLE`, the file the bundled OpenSSL is pointed at."""
    return any(
        True
        for layer in loaded.layers
        for _ in _layer_files(loaded, layer, lambda n: n.lstrip("./") == CA_BUNDLE)
    )


def _libc_member(name: str) -> bool:
    return _LIBC_NAME.fullmatch(PurePosixPath(name).name) is not None


_MEMBER_LIMIT = 64 << 20
"""The largest member of a base's layer read for a check (a libc.so.6 is about 2 MiB)."""


def _layer_files(
    loaded: LoadedImage, layer: Layer, wanted: Callable[[str], bool]
) -> Iterable[tuple[str, bytes]]:
    """The regular members of ``layer`` whose names ``wanted`` accepts, with their data
    (at most 64 MiB each): the layer read as a stream, nothing written."""
    path = loaded.store.path(layer.descriptor.digest)
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                if member.isreg() and wanted(member.name) and member.size <= _MEMBER_LIMIT:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield member.name, handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"base layer {layer.descriptor.digest}: unreadable ({exc})") from None
