"""The bill of materials of an environment: what really ships, as CycloneDX 1.6 JSON.

An environment carries its SBOM at :data:`SBOM_PATH` (a ``*.cdx.json`` file that ``inspect``
and filesystem scanners find) and every artifact has a copy beside it
(``<artifact>.cdx.json``, written by :mod:`venvpack.pack`). docs/sbom.md describes it.

Two steps, so the model is testable without the writer:

- :func:`compose` reads the built tree, its manifest (the lock's sha256 of every wheel,
  the grafted libraries) and what the build host knows (:class:`HostPackages`: which
  Debian or RPM package a grafted library or the interpreter came from) into a
  :class:`Composition`;
- :func:`cyclonedx` writes it with cyclonedx-python-lib, deterministically: components
  sorted, bom-refs derived from paths and names, the serial number from a digest of the
  content, the timestamp from ``SOURCE_DATE_EPOCH`` (none without it).

Nothing the build host knows but the artifact must not carry goes in: no path outside the
tree, no user name, no index URL (which may hold a token); the wheel's file name and the
lock's sha256 identify it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from venvpack.cache import build_cache, write_entry
from venvpack.errors import ConfigError
from venvpack.manifest import BuiltEnv, Manifest
from venvpack.policy import load_json

if TYPE_CHECKING:
    import email.message

    from cyclonedx.model.bom import Bom
    from packaging.markers import Marker

__all__ = [
    "SBOM_PATH",
    "SBOM_SUFFIX",
    "Composition",
    "Family",
    "HostPackages",
    "LibraryReport",
    "NativeLibrary",
    "PythonDistribution",
    "SystemPackage",
    "beside",
    "compose",
    "cyclonedx",
    "families",
    "library_report",
    "read_sbom",
    "sbom_of",
    "security_libraries",
    "write_sbom",
]

log = logging.getLogger("venvpack")

SBOM_PATH = ".venvpack/sbom.cdx.json"
"""Where every environment carries its SBOM, beside the manifest. Scanners look for
``*.cdx.json`` files anywhere but ``.git`` (trivy) or in every directory (syft)."""
SBOM_SUFFIX = ".cdx.json"
"""What the SBOM beside an artifact adds to the artifact's file name."""
_NAMESPACE = uuid.UUID("5b1b8f9e-2f4c-5d53-9a0c-7c3e0b8f6a21")
"""The namespace of the serial numbers venvpack derives from an SBOM's content."""
_PLACEHOLDER = uuid.UUID(int=0)
_SCAN_LIMIT = 256 << 20
"""Files larger than this are not searched for a version string."""


# ----------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Family:
    """A native library whose vulnerabilities are tracked by its upstream version."""

    name: str
    files: re.Pattern[str]
    """Matches the file names of its shared libraries (``libssl.so.3``)."""
    version: re.Pattern[bytes] | None
    """Finds the upstream version in the file's bytes (group 1); None when it has none."""
    modules: tuple[str, ...]
    """Extension modules that link it statically when no shared library of the family
    ships (``_ssl``)."""
    interpreter: bool
    """Whether the interpreter binary and libpython are searched for it too: only for a
    version string that cannot be the interpreter's own (``3.11.7`` looks like SQLite's)."""
    cpe: tuple[str, str]
    """NVD's vendor and product."""

    def cpe_of(self, version: str | None) -> str:
        vendor, product = self.cpe
        return f"cpe:2.3:a:{vendor}:{product}:{version or '*'}:*:*:*:*:*:*:*"


@cache
def families() -> tuple[Family, ...]:
    """The families of ``policy/native-libraries.json``, validated."""
    data = load_json("native-libraries.json").get("families")
    if not isinstance(data, dict):
        raise ConfigError("native-libraries.json needs 'families' (object)")
    found = []
    for name, entry in sorted(data.items()):
        try:
            files = re.compile(entry["files"])
            version = None if entry["version"] is None else re.compile(entry["version"].encode())
            modules = tuple(str(m) for m in entry["modules"])
            interpreter = entry["interpreter"]
            vendor, product = entry["cpe"]
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise ConfigError(f"native-libraries.json: invalid family {name!r}: {exc}") from None
        if version is not None and version.groups != 1:
            raise ConfigError(f"native-libraries.json: {name}: 'version' needs one group")
        if not isinstance(interpreter, bool):
            raise ConfigError(f"native-libraries.json: {name}: 'interpreter' must be true or false")
        cpe = (str(vendor), str(product))
        found.append(Family(name, files, version, modules, interpreter, cpe))
    return tuple(found)


def _family_of(file_name: str) -> Family | None:
    return next((f for f in families() if f.files.search(file_name)), None)


# ----------------------------------------------------------------------------- host packages


@dataclass(frozen=True)
class SystemPackage:
    """The build host's package a file came from."""

    type: str
    """The purl type: ``deb`` or ``rpm``."""
    namespace: str
    """The distribution (``debian``, ``ubuntu``, ``fedora``)."""
    name: str
    version: str
    """The package's full version (``3.0.19-1~deb12u1``)."""
    arch: str
    distro: str
    """``debian-12``: the distribution's release, the purl's ``distro`` qualifier."""
    epoch: str = ""
    """An RPM package's epoch (a Debian version holds its own)."""

    @property
    def purl(self) -> str:
        from packageurl import PackageURL

        qualifiers = {"arch": self.arch}
        if self.distro:
            qualifiers["distro"] = self.distro
        if self.epoch:
            qualifiers["epoch"] = self.epoch
        return str(
            PackageURL(self.type, self.namespace, self.name, self.version, qualifiers=qualifiers)
        )

    @property
    def upstream_version(self) -> str:
        """The version without epoch and distribution revision (``3.0.19``)."""
        version = self.version.split(":", 1)[-1]
        return version.rsplit("-", 1)[0] if "-" in version else version


class HostPackages:
    """Which package of the build host owns a file. dpkg's database is read directly (its
    file lists, one pass, instead of a ``dpkg -S`` per file); on an RPM distribution the
    RPM database is asked once per file. A host with neither names no package."""

    def __init__(self, owners: Mapping[str, SystemPackage]) -> None:
        self._owners = owners

    @classmethod
    def none(cls) -> HostPackages:
        return cls({})

    @classmethod
    def read(
        cls,
        wanted: Iterable[str | os.PathLike[str]] | None = None,
        *,
        dpkg: Path | None = None,
        rpmdb: Path | None = None,
        os_release: Path | None = None,
    ) -> HostPackages:
        """The packages that own the files ``wanted`` on the build host (every file dpkg
        lists, when None; an RPM database is only asked about ``wanted``). ``dpkg`` and
        ``rpmdb`` name the databases (default: the host's, as the policy lists them)."""
        release = _os_release(os_release or Path("/etc/os-release"))
        dpkg = dpkg or _database("dpkg")
        if dpkg is not None and (dpkg / "status").is_file():
            return cls(_remembered_dpkg_owners(dpkg, wanted, release))
        rpmdb = rpmdb or _database("rpmdb")
        if rpmdb is not None and rpmdb.is_dir() and wanted is not None:
            return cls(_rpm_owners(rpmdb, wanted, release))
        return cls.none()

    def owner(self, path: str | os.PathLike[str]) -> SystemPackage | None:
        """The package that installed ``path`` (resolved; ``/lib`` and ``/usr/lib`` are one
        directory on merged-/usr systems, so either spelling is found)."""
        if not self._owners:
            return None
        return self._owners.get(_merged_usr(os.path.realpath(path))) or self._owners.get(
            _merged_usr(str(path))
        )


def _database_policy(name: str) -> dict[str, object]:
    table = load_json("native-libraries.json").get("package-databases")
    entry = table.get(name) if isinstance(table, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("purl"), str):
        raise ConfigError(f"native-libraries.json: package-databases needs {name!r} with 'purl'")
    paths = entry.get("paths")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ConfigError(f"native-libraries.json: {name}: 'paths' must be a list of paths")
    return entry


def _database(name: str) -> Path | None:
    """Where the host keeps the database ``name`` (the first of the policy's paths there)."""
    paths = _database_policy(name)["paths"]
    assert isinstance(paths, list)
    return next((Path(p) for p in paths if Path(p).is_dir()), None)


def _distro(release: Mapping[str, str], default: str) -> tuple[str, str]:
    """The purl namespace (``debian``) and ``distro`` qualifier (``debian-12``)."""
    namespace = release.get("ID", default)
    version = release.get("VERSION_ID") or release.get("VERSION_CODENAME", "")
    return namespace, f"{namespace}-{version}" if version else ""


def _wanted_keys(wanted: Iterable[str | os.PathLike[str]]) -> set[str]:
    keys = set()
    for path in wanted:
        keys |= {_merged_usr(str(path)), _merged_usr(os.path.realpath(path))}
    return keys


_OWNERS_FORMAT = "venvpack-dpkg-owners-1"


def _remembered_dpkg_owners(
    dpkg: Path, wanted: Iterable[str | os.PathLike[str]] | None, release: Mapping[str, str]
) -> dict[str, SystemPackage]:
    """:func:`_dpkg_owners`, kept in the build cache for the same files asked about the same
    database: reading every list of a host's database is a quarter of a second of each
    build, and each build of a project asks about the same grafted libraries. The key holds
    the files (and where their links lead), the release, and the size, inode and times of
    dpkg's status file and info directory, which every install, upgrade or removal
    rewrites."""
    top = build_cache("dpkg-owners")
    if wanted is None or top is None:
        return _dpkg_owners(dpkg, wanted, release)
    wanted = list(wanted)
    keys = sorted(_wanted_keys(wanted))
    try:
        state = [
            [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
            for st in (os.stat(dpkg / "status"), os.stat(dpkg / "info"))
        ]
    except OSError:
        return _dpkg_owners(dpkg, wanted, release)
    key = json.dumps([_OWNERS_FORMAT, str(dpkg), state, sorted(release.items()), keys])
    place = top / f"{hashlib.sha256(key.encode()).hexdigest()}.json"
    try:
        recorded = json.loads(place.read_text(encoding="utf-8"))
        owners = {path: SystemPackage(**fields) for path, fields in recorded.items()}
        os.utime(place)  # in use: kept by the cache's pruning
        return owners
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    owners = _dpkg_owners(dpkg, wanted, release)
    text = json.dumps({path: vars(package) for path, package in owners.items()}, sort_keys=True)
    try:
        write_entry(place, text)
    except OSError as exc:
        log.debug("sbom: the owners of %d files not cached (%s)", len(keys), exc)
    return owners


def _dpkg_owners(
    dpkg: Path, wanted: Iterable[str | os.PathLike[str]] | None, release: Mapping[str, str]
) -> dict[str, SystemPackage]:
    kind = str(_database_policy("dpkg")["purl"])
    namespace, distro = _distro(release, "debian")
    keys = None if wanted is None else _wanted_keys(wanted)
    packages = _dpkg_status((dpkg / "status").read_text(encoding="utf-8", errors="replace"))
    owners: dict[str, SystemPackage] = {}
    info = dpkg / "info"
    # A list that names none of the wanted files' names is skipped unread line by line: the
    # few files a build asks about are in a handful of the host's thousands of lists.
    names = None
    if keys is not None:
        names = re.compile(b"|".join(re.escape(os.fsencode(os.path.basename(k))) for k in keys))
    for listing in sorted(info.glob("*.list")) if info.is_dir() else ():
        name, _, arch = listing.name[: -len(".list")].partition(":")
        found = packages.get((name, arch)) or packages.get((name, ""))
        if found is None:
            continue
        data = listing.read_bytes()
        if names is not None and (not keys or not names.search(data)):
            continue
        package = SystemPackage(kind, namespace, name, found[0], arch or found[1], distro)
        for line in data.decode("utf-8", errors="replace").splitlines():
            key = _merged_usr(line)
            if keys is None or key in keys:
                owners.setdefault(key, package)
    return owners


def _rpm_owners(
    rpmdb: Path, wanted: Iterable[str | os.PathLike[str]], release: Mapping[str, str]
) -> dict[str, SystemPackage]:
    """Ask the RPM database which package owns each real file of ``wanted``; a file no
    package owns (a pyenv interpreter) is left out."""
    from venvpack.errors import BuildError
    from venvpack.proc import run

    policy = _database_policy("rpmdb")
    query = policy.get("query")
    if not isinstance(query, list) or not all(isinstance(a, str) for a in query):
        raise ConfigError("native-libraries.json: rpmdb: 'query' must be a command line")
    kind = str(policy["purl"])
    namespace, distro = _distro(release, "fedora")
    owners: dict[str, SystemPackage] = {}
    for path in sorted({os.path.realpath(p) for p in wanted}):
        argv = [a.replace("{db}", str(rpmdb)) for a in query]
        try:
            done = run([*argv, path], error=BuildError, what="asking the RPM database")
        except BuildError:
            continue  # owned by no package
        fields = (done.stdout.splitlines() or [""])[0].split("\t")
        if len(fields) != 4:
            continue
        name, epoch, version, arch = fields
        package = SystemPackage(
            kind, namespace, name, version, arch, distro, epoch if epoch != "0" else ""
        )
        owners[_merged_usr(path)] = package
    return owners


def _merged_usr(path: str) -> str:
    for top in ("/usr/lib", "/usr/bin", "/usr/sbin"):
        if path.startswith(top + "/"):
            return path[len("/usr") :]
    return path


def _os_release(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("\"'").lower()
    return values


def _dpkg_status(text: str) -> dict[tuple[str, str], tuple[str, str]]:
    """``(package, arch) -> (version, arch)`` of every installed package; also under
    ``(package, "")`` for lists named without an architecture."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line and not line[0].isspace():
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if not fields.get("Status", "").endswith(" installed"):
            continue
        name, version, arch = (
            fields.get("Package"),
            fields.get("Version"),
            fields.get("Architecture"),
        )
        if name and version and arch:
            found[(name, arch)] = (version, arch)
            found.setdefault((name, ""), (version, arch))
    return found


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class NativeLibrary:
    """A native library that ships, or one linked statically into a file that ships."""

    path: str
    """Relative to the environment root."""
    sha256: str
    """Of the file as it ships (after the graft stage patched it)."""
    origin: str
    """``grafted`` (copied from the build host), ``interpreter`` (came with it), ``wheel``
    (vendored by a wheel in ``<name>.libs/``) or ``static`` (linked into ``path``)."""
    family: str | None = None
    version: str | None = None
    """The library's upstream version."""
    version_from: str | None = None
    """``file`` (read from its bytes) or ``package`` (the system package's version)."""
    package: SystemPackage | None = None
    cpe: str | None = None

    @property
    def name(self) -> str:
        """The file name, or the family for a statically linked one."""
        if self.origin == "static":
            return self.family or "?"
        return Path(self.path).name


@dataclass(frozen=True)
class PythonDistribution:
    name: str
    """Normalised (PEP 503)."""
    version: str
    sha256: str | None
    hash_of: str
    """What ``sha256`` is the digest of: ``wheel`` or ``sdist`` (the file the lock names),
    or ``RECORD`` (the installed file list with every file's own digest, without a lock)."""
    file: str | None = None
    """The wheel or sdist file name the lock names."""
    license: str | None = None
    summary: str = ""
    requires: tuple[str, ...] = ()
    """Installed distributions it requires (Requires-Dist, markers evaluated)."""
    libraries: tuple[NativeLibrary, ...] = ()
    """What the wheel vendors in ``<name>.libs/``."""
    embedded: tuple[Mapping[str, str], ...] = ()
    """Components of the SBOMs the wheel carries (PEP 770): name, version, purl, cpe, sbom."""

    @property
    def purl(self) -> str:
        return f"pkg:pypi/{self.name}@{self.version}"


@dataclass(frozen=True)
class Interpreter:
    version: str
    origin: str
    """The manifest's ``python.source``: ``pyenv``, ``debian``, ``uv`` (a uv-managed
    python-build-standalone), ``other``."""
    path: str
    sha256: str
    package: SystemPackage | None = None
    """The distribution's package the source interpreter came from (Debian's python3.11)."""
    static: tuple[NativeLibrary, ...] = ()

    @property
    def cpe(self) -> str:
        return f"cpe:2.3:a:python:python:{self.version}:*:*:*:*:*:*:*"


@dataclass(frozen=True)
class Composition:
    """Everything an environment ships, as :func:`cyclonedx` writes it."""

    name: str
    version: str
    summary: str
    license: str | None
    homepage: str | None
    app: PythonDistribution | None
    """The application's own distribution, if one is installed."""
    python: Interpreter
    distributions: tuple[PythonDistribution, ...]
    """Every other installed distribution."""
    libraries: tuple[NativeLibrary, ...]
    """Native libraries of the interpreter tree: grafted and those it came with."""
    glibc_floor: str
    venvpack_version: str
    source_kind: str | None = None
    lock_files: tuple[tuple[str, str], ...] = field(default=())
    """``(name, sha256)`` of the lock or requirements files the set came from."""


def security_libraries(composition: Composition) -> list[tuple[NativeLibrary, str]]:
    """The libraries of a tracked family, with what shipped them (``grafted``, ``python``,
    or a distribution's name), sorted by family and path: what ``inspect`` lists."""
    found: list[tuple[NativeLibrary, str]] = []
    for lib in (*composition.libraries, *composition.python.static):
        if lib.family:
            found.append((lib, "python" if lib.origin != "grafted" else "grafted"))
    for dist in (*composition.distributions, *((composition.app,) if composition.app else ())):
        found += [(lib, dist.name) for lib in dist.libraries if lib.family]
    return sorted(found, key=lambda item: (item[0].family or "", item[0].path))


@dataclass(frozen=True)
class LibraryReport:
    """A security-relevant native library, as ``inspect`` reports it."""

    family: str
    version: str | None
    """Its upstream version (read from the file, else its package's)."""
    path: str
    """The file that ships it, relative to the environment root."""
    shipped_by: str
    """``grafted`` (copied from the build host), ``python`` (came with the interpreter,
    shared or linked in) or the name of the distribution whose wheel vendors it."""
    package: str | None
    """The build host's package it came from (a purl), as the environment's SBOM says."""

    @property
    def origin(self) -> str:
        """``grafted from deb libssl3 3.0.19-1~deb12u2``: for a person."""
        if self.package is None:
            return self.shipped_by
        from packageurl import PackageURL

        purl = PackageURL.from_string(self.package)
        return f"{self.shipped_by} from {purl.type} {purl.name} {purl.version}"


def library_report(root: Path, manifest: Manifest) -> tuple[LibraryReport, ...]:
    """The security-relevant native libraries of the environment at ``root``: versions
    read from the files themselves, origins from the SBOM it carries (when it has one)."""
    packages = _sbom_packages(root)
    try:
        composition = compose(BuiltEnv(root, manifest))
    except OSError as exc:  # a tree read back may be short of what its manifest says
        log.debug("cannot read the native libraries of %s: %s", root, exc)
        return ()
    return tuple(
        LibraryReport(
            family=lib.family or "",
            version=lib.version or packages.get(lib.path, (None, None))[1],
            path=lib.path,
            shipped_by=by,
            package=packages.get(lib.path, (None, None))[0],
        )
        for lib, by in security_libraries(composition)
    )


def _sbom_packages(root: Path) -> dict[str, tuple[str, str | None]]:
    """``path -> (purl, version)`` of the system packages the environment's own SBOM
    names, with the version it gives the library."""
    path = root / SBOM_PATH
    if not _inside(root, path):
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found: dict[str, tuple[str, str | None]] = {}
    stack = list(data.get("components", [])) if isinstance(data, dict) else []
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            continue
        stack += item.get("components", []) if isinstance(item.get("components"), list) else []
        props = item.get("properties")
        where = [
            p.get("value")
            for p in (props if isinstance(props, list) else [])
            if isinstance(p, dict) and p.get("name") == "venvpack:path"
        ]
        purl = item.get("purl")
        system = isinstance(purl, str) and not purl.startswith(("pkg:pypi/", "pkg:generic/"))
        if where and isinstance(where[0], str) and system:
            version = item.get("version")
            found[where[0]] = (str(purl), version if isinstance(version, str) else None)
    return found


# ----------------------------------------------------------------------------- reading the tree


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path`` is a regular file really inside ``root``: a tree read back from an
    artifact nobody trusts may hold symlinks (of files or directories) that leave it."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real.startswith(top + os.sep) and os.path.isfile(real)


def _read_version(family: Family, path: Path) -> str | None:
    if family.version is None:
        return None
    try:
        if path.stat().st_size > _SCAN_LIMIT:
            return None
        match = family.version.search(path.read_bytes())
    except OSError:
        return None
    return match.group(1).decode("ascii", "replace") if match else None


def _libraries(
    root: Path,
    files: Iterable[Path],
    origin_of: Mapping[Path, str],
    host: HostPackages,
    grafted_from: Mapping[Path, str],
) -> tuple[NativeLibrary, ...]:
    """The shared libraries ``files`` as components: family, version (from the file, else
    another file of the family beside it, else the package), package, CPE."""
    paths = sorted(p for p in files if _inside(root, p) and not p.is_symlink())
    packages = {p: host.owner(grafted_from[p]) if p in grafted_from else None for p in paths}
    read: dict[Path, str | None] = {}
    # libssl carries no version string, libcrypto of the same package does.
    by_family: dict[tuple[str, str | None], str] = {}
    for path in paths:
        family = _family_of(path.name)
        if family is not None:
            version = read[path] = _read_version(family, path)
            package = packages[path]
            key = (family.name, package.name if package else None)
            if version and key not in by_family:
                by_family[key] = version
    made = []
    for path in paths:
        family = _family_of(path.name)
        package = packages[path]
        version, version_from = read.get(path), "file"
        if version is None and family is not None:
            version = by_family.get((family.name, package.name if package else None))
        if version is None and package is not None:
            version, version_from = package.upstream_version, "package"
        made.append(
            NativeLibrary(
                path=str(path.relative_to(root)),
                sha256=_sha256(path),
                origin=origin_of[path],
                family=family.name if family else None,
                version=version,
                version_from=version_from if version else None,
                package=package,
                cpe=family.cpe_of(version) if family else None,
            )
        )
    return tuple(made)


def _static(root: Path, candidates: list[Path], shipped: set[str]) -> tuple[NativeLibrary, ...]:
    """Families no shared library of which ships, found by their version string in the
    interpreter or the extension modules that would link them (python-build-standalone
    links OpenSSL, SQLite and more statically)."""
    found = []
    for family in families():
        if family.name in shipped or family.version is None:
            continue
        named = [
            p
            for p in candidates
            if p.name.split(".", 1)[0] in family.modules
            or (family.interpreter and p.name.startswith(("python", "libpython")))
        ]
        for path in named:
            version = _read_version(family, path)
            if version:
                found.append(
                    NativeLibrary(
                        path=str(path.relative_to(root)),
                        sha256=_sha256(path),
                        origin="static",
                        family=family.name,
                        version=version,
                        version_from="file",
                        cpe=family.cpe_of(version),
                    )
                )
                break
    return tuple(found)


def _record_paths(root: Path, dist_info: Path) -> list[str]:
    if not _inside(root, dist_info / "RECORD"):
        return []
    try:
        text = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    import csv

    return [row[0] for row in csv.reader(text.splitlines()) if row]


def _embedded_sboms(root: Path, dist_info: Path) -> tuple[Mapping[str, str], ...]:
    """The components of the CycloneDX SBOMs a wheel carries in ``.dist-info/sboms/``
    (PEP 770); documents in another format (SPDX) are left out."""
    found: list[dict[str, str]] = []
    directory = dist_info / "sboms"
    if not directory.is_dir():
        return ()
    for path in sorted(directory.iterdir()):
        if not _inside(root, path) or path.is_symlink():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        components = data.get("components") if isinstance(data, dict) else None
        if not isinstance(components, list) or data.get("bomFormat") != "CycloneDX":
            continue
        for item in components:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            entry = {"name": item["name"], "sbom": path.name}
            for key in ("version", "purl", "cpe"):
                if isinstance(item.get(key), str):
                    entry[key] = item[key]
            found.append(entry)
    return tuple(found)


def _environment_markers(python_version: str) -> dict[str, str]:
    from packaging.markers import default_environment

    env = {key: str(value) for key, value in default_environment().items()}
    major, minor = python_version.split(".")[:2]
    env.update(
        python_version=f"{major}.{minor}",
        python_full_version=python_version,
        implementation_version=python_version,
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def _requires(
    message: email.message.Message, installed: set[str], env: dict[str, str]
) -> tuple[str, ...]:
    """The installed distributions ``message`` requires. A requirement only an extra asks
    for counts when what it names is installed: the lock or the resolver decided that."""
    from packaging.requirements import InvalidRequirement, Requirement

    found = set()
    for text in message.get_all("Requires-Dist", []):
        try:
            req = Requirement(str(text))
        except InvalidRequirement:
            continue
        name = str(canonicalize_name(req.name))
        if name not in installed:
            continue
        marker: Marker | None = req.marker
        if marker is None or _holds(marker, env):
            found.add(name)
    return tuple(sorted(found))


def _holds(marker: Marker, env: dict[str, str]) -> bool:
    from packaging.markers import InvalidMarker

    try:
        if marker.evaluate({**env, "extra": ""}):
            return True
        return "extra" in str(marker) and marker.evaluate({**env, "extra": _any_extra(marker)})
    except (InvalidMarker, ValueError, TypeError):
        return False


def _any_extra(marker: Marker) -> str:
    found = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", str(marker))
    return found.group(1) if found else ""


def _distributions(
    root: Path, site_packages: Path, manifest: Manifest
) -> dict[str, PythonDistribution]:
    # The composition's readers, imported when an SBOM is composed (packing a finished
    # environment copies the one it carries).
    import email.parser
    import email.policy

    from venvpack.metadata import read_app_metadata

    locked = {d.name: d for d in manifest.distributions}
    infos: dict[str, tuple[Path, email.message.Message]] = {}
    for dist_info in sorted(site_packages.glob("*.dist-info")):
        if not _inside(root, dist_info / "METADATA"):
            continue
        try:
            raw = (dist_info / "METADATA").read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        message = email.parser.Parser(policy=email.policy.compat32).parsestr(raw)
        if message.get("Name"):
            infos[str(canonicalize_name(message["Name"]))] = (dist_info, message)
    env = _environment_markers(manifest.python.version)
    made = {}
    for name, (dist_info, message) in sorted(infos.items()):
        record = _record_paths(root, dist_info)
        vendored = sorted(
            {
                site_packages / entry
                for entry in record
                if ".libs/" in entry and ".so" in Path(entry).name and ".." not in entry
            }
        )
        libs = _libraries(root, vendored, dict.fromkeys(vendored, "wheel"), HostPackages.none(), {})
        entry = locked.get(name)
        metadata = read_app_metadata(site_packages, name, root)
        sha256: str | None
        if entry is not None and entry.sha256:
            sha256, hash_of, file = entry.sha256, _kind_of(entry.file), entry.file
        else:
            record_file = dist_info / "RECORD"
            sha256 = _sha256(record_file) if _inside(root, record_file) else None
            hash_of, file = "RECORD", None
        made[name] = PythonDistribution(
            name=name,
            version=str(message.get("Version", "")),
            sha256=sha256,
            hash_of=hash_of,
            file=file,
            license=metadata.license if metadata else None,
            summary=metadata.summary if metadata else "",
            requires=tuple(r for r in _requires(message, set(infos), env) if r != name),
            libraries=libs,
            embedded=_embedded_sboms(root, dist_info),
        )
    return made


def _kind_of(file: str | None) -> str:
    return "wheel" if file and file.endswith(".whl") else "sdist"


def compose(
    env: BuiltEnv, host: HostPackages | None = None, *, interpreter: Path | None = None
) -> Composition:
    """What ``env`` ships. ``host`` names the packages grafted libraries (and the source
    ``interpreter``) came from; without it (an environment read back later) none is named."""
    host = host or HostPackages.none()
    root, m = env.root, env.manifest
    short = ".".join(m.python.version.split(".")[:2])
    site_packages = root / "lib" / f"python{short}" / "site-packages"
    dists = _distributions(root, site_packages, m) if site_packages.is_dir() else {}
    app_key = (
        str(canonicalize_name(m.metadata.name)) if m.metadata else str(canonicalize_name(m.name))
    )
    app = dists.pop(app_key, None)

    lib_dir = root / "python" / "lib"
    grafted = {root / g.path: g.origin for g in m.grafted}
    shared = [p for p in lib_dir.glob("*.so*")] if lib_dir.is_dir() else []
    shared += [p for p in grafted if p.parent != lib_dir]
    origin_of = {p: "grafted" if p in grafted else "interpreter" for p in shared}
    libraries = _libraries(root, origin_of, origin_of, host, grafted)

    executable = root / m.python.executable
    dynload = lib_dir / f"python{short}" / "lib-dynload"
    candidates = sorted(dynload.glob("*.so")) if dynload.is_dir() else []
    candidates = [executable, *(p for p in shared if p.name.startswith("libpython")), *candidates]
    shipped = {lib.family for lib in libraries if lib.family}
    python = Interpreter(
        version=m.python.version,
        origin=m.python.source,
        path=m.python.executable,
        sha256=_sha256(executable) if _inside(root, executable) else m.python.sha256,
        package=host.owner(interpreter) if interpreter is not None else None,
        static=_static(root, [p for p in candidates if _inside(root, p)], shipped),
    )
    metadata = m.metadata
    return Composition(
        name=m.name,
        version=m.version,
        summary=metadata.summary if metadata else "",
        license=metadata.license if metadata else None,
        homepage=metadata.homepage if metadata else None,
        app=app,
        python=python,
        distributions=tuple(dists.values()),
        libraries=libraries,
        glibc_floor=m.glibc_floor,
        venvpack_version=m.venvpack_version,
        source_kind=m.source.kind if m.source else None,
        lock_files=tuple((f.name, f.sha256) for f in m.source.files) if m.source else (),
    )


# ----------------------------------------------------------------------------- CycloneDX


def cyclonedx(composition: Composition, *, epoch: int | None = None) -> str:
    """``composition`` as CycloneDX 1.6 JSON; the same composition (and ``epoch``, the
    metadata's timestamp: ``SOURCE_DATE_EPOCH``, none when None) gives the same bytes."""
    from cyclonedx.output.json import JsonV1Dot6

    bom = _bom(composition, epoch)
    bom.serial_number = _PLACEHOLDER
    draft = JsonV1Dot6(bom).output_as_string(indent=2)
    serial = uuid.uuid5(_NAMESPACE, hashlib.sha256(draft.encode()).hexdigest())
    # The document with its serial number in place of the placeholder, as serialising it
    # again would write it (once is a tenth of a second).
    placeholder = f'"urn:uuid:{_PLACEHOLDER}"'
    assert draft.count(placeholder) == 1
    return draft.replace(placeholder, f'"urn:uuid:{serial}"') + "\n"


def _bom(c: Composition, epoch: int | None) -> Bom:
    from cyclonedx.model import (
        ExternalReference,
        ExternalReferenceType,
        HashAlgorithm,
        HashType,
        Property,
        XsUri,
    )
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentScope, ComponentType
    from cyclonedx.model.license import LicenseExpression
    from packageurl import PackageURL

    def props(**values: str | None) -> list[Property]:
        return [
            Property(name=f"venvpack:{key.replace('_', '-')}", value=value)
            for key, value in values.items()
            if value
        ]

    def hashes(sha256: str | None) -> list[HashType]:
        return [HashType(alg=HashAlgorithm.SHA_256, content=sha256)] if sha256 else []

    def library(lib: NativeLibrary, ref: str) -> Component:
        package = lib.package
        return Component(
            name=lib.name,
            version=lib.version,
            type=ComponentType.LIBRARY,
            bom_ref=ref,
            purl=PackageURL.from_string(package.purl) if package else None,
            cpe=lib.cpe,
            hashes=hashes(lib.sha256),
            properties=props(
                path=lib.path,
                origin=lib.origin,
                family=lib.family,
                version_from=lib.version_from,
                package=f"{package.name} {package.version}" if package else None,
            ),
        )

    def distribution(d: PythonDistribution, kind: ComponentType) -> Component:
        subs = [library(lib, f"{d.purl}#{lib.path}") for lib in d.libraries]
        for index, item in enumerate(d.embedded):
            subs.append(
                Component(
                    name=item["name"],
                    version=item.get("version"),
                    bom_ref=f"{d.purl}#sbom-{index}",
                    purl=PackageURL.from_string(item["purl"])
                    if _purl_ok(item.get("purl"))
                    else None,
                    cpe=item.get("cpe"),
                    properties=props(sbom=item["sbom"]),
                )
            )
        return Component(
            name=d.name,
            version=d.version,
            type=kind,
            bom_ref=d.purl,
            purl=PackageURL("pypi", name=d.name, version=d.version),
            description=d.summary or None,
            hashes=hashes(d.sha256),
            licenses=[LicenseExpression(d.license)] if d.license else [],
            components=subs,
            properties=props(hash_of=d.hash_of, file=d.file),
        )

    bom = Bom()
    # The library stamps the time it runs: SOURCE_DATE_EPOCH, or no time at all.
    stamp = datetime.fromtimestamp(epoch, tz=timezone.utc) if epoch is not None else None
    bom.metadata.timestamp = stamp  # type: ignore[assignment]
    bom.metadata.tools.components.add(
        Component(
            name="venvpack",
            version=c.venvpack_version or None,
            type=ComponentType.APPLICATION,
            bom_ref="tool:venvpack",
        )
    )
    if c.app is not None:
        app = distribution(c.app, ComponentType.APPLICATION)
        app.properties.update(props(application=c.name, application_version=c.version))
    else:
        app = Component(
            name=c.name,
            version=c.version,
            type=ComponentType.APPLICATION,
            bom_ref=f"application:{c.name}@{c.version}",
            description=c.summary or None,
            licenses=[LicenseExpression(c.license)] if c.license else [],
        )
    app.properties.update(
        props(installed_from=c.source_kind)
        + [Property(name="venvpack:input", value=f"{n} sha256:{s}") for n, s in c.lock_files]
    )
    if c.homepage:
        app.external_references.add(
            ExternalReference(type=ExternalReferenceType.WEBSITE, url=XsUri(c.homepage))
        )
    bom.metadata.component = app

    py = c.python
    python = Component(
        name="cpython",
        version=py.version,
        type=ComponentType.APPLICATION,
        bom_ref=f"cpython@{py.version}",
        purl=(
            PackageURL.from_string(py.package.purl)
            if py.package
            else PackageURL("generic", name="cpython", version=py.version)
        ),
        cpe=py.cpe,
        hashes=hashes(py.sha256),
        components=[library(lib, f"cpython@{py.version}#{lib.family}") for lib in py.static],
        properties=props(
            path=py.path,
            python_origin=py.origin,
            package=f"{py.package.name} {py.package.version}" if py.package else None,
        ),
    )
    natives = [library(lib, f"file:{lib.path}") for lib in c.libraries]
    dists = {d.name: distribution(d, ComponentType.LIBRARY) for d in c.distributions}
    glibc = Component(
        name="glibc",
        type=ComponentType.LIBRARY,
        bom_ref="target:glibc",
        scope=ComponentScope.REQUIRED,
        description=(
            f"Provided by the target system, not shipped: version {c.glibc_floor} or newer"
            if c.glibc_floor
            else "Provided by the target system, not shipped"
        ),
        properties=props(shipped="false", minimum_version=c.glibc_floor or None),
    )
    for component in (python, *natives, *dists.values(), glibc):
        bom.components.add(component)

    app_requires = c.app.requires if c.app else tuple(dists)
    bom.register_dependency(app, [python, *(dists[n] for n in app_requires if n in dists)])
    bom.register_dependency(python, [*natives, glibc])
    for d in c.distributions:
        bom.register_dependency(dists[d.name], [dists[n] for n in d.requires if n in dists])
    for component in (*natives, glibc):
        bom.register_dependency(component, [])
    return bom


def _purl_ok(text: str | None) -> bool:
    from packageurl import PackageURL

    if not text:
        return False
    try:
        PackageURL.from_string(text)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------- files


def write_sbom(
    env: BuiltEnv, host: HostPackages | None = None, *, interpreter: Path | None = None
) -> Path:
    """Write ``env``'s SBOM at :data:`SBOM_PATH` inside it; return its path."""
    text = cyclonedx(compose(env, host, interpreter=interpreter), epoch=_source_date_epoch())
    path = env.root / SBOM_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sbom_of(env: BuiltEnv) -> str:
    """The SBOM ``env`` carries; made now, without the build host's packages, for an
    environment made before venvpack wrote one."""
    path = env.root / SBOM_PATH
    if path.is_file() and not path.is_symlink():
        return path.read_text(encoding="utf-8")
    return cyclonedx(compose(env), epoch=_source_date_epoch())


def read_sbom(artifact: Path) -> str:
    """The SBOM inside ``artifact`` (an environment directory or any format's artifact),
    read through the contained reader; CheckFailed when it carries none."""
    from venvpack.errors import CheckFailed
    from venvpack.unpack import open_artifact, read_inside

    with open_artifact(artifact) as opened:
        data = read_inside(opened.root, opened.root / SBOM_PATH)
    if data is None:
        raise CheckFailed(
            f"{artifact} carries no SBOM ({SBOM_PATH}): it was made by another tool or "
            "by a venvpack that wrote none"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckFailed(f"{artifact}: {SBOM_PATH} is not UTF-8 text") from None


def beside(artifact: Path) -> Path:
    """Where the SBOM of ``artifact`` goes: ``<artifact>.cdx.json``."""
    return artifact.with_name(artifact.name + SBOM_SUFFIX)


def _source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)
