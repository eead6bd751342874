"""The manifest every venvpack environment carries at ``.venvpack/manifest.json``.

It is the contract between the build pipeline and the emitters: an emitter needs nothing
but an environment directory, and reads what it must know (name, version, prefix, target
platform and C library floor, commands) from here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from venvpack.config import validate_name, validate_version
from venvpack.errors import ConfigError
from venvpack.platform import Platform

__all__ = [
    "MANIFEST_PATH",
    "SCHEMA",
    "AppMetadata",
    "BuiltEnv",
    "Distribution",
    "GraftedLibrary",
    "InputFile",
    "InstallSource",
    "Manifest",
    "Platform",
    "PythonInfo",
    "is_environment",
]

MANIFEST_PATH = ".venvpack/manifest.json"
_MACHINE_RE = re.compile(r"[A-Za-z0-9_]+")
SCHEMA = 1


def is_environment(path: Path) -> bool:
    """Whether ``path`` is an environment venvpack built (it has a manifest): the only kind
    of directory ``venvpack build --force`` replaces."""
    return (path / MANIFEST_PATH).is_file() and not (path / MANIFEST_PATH).is_symlink()


@dataclass(frozen=True)
class PythonInfo:
    """The bundled interpreter."""

    version: str
    """Full version, e.g. ``3.12.1``."""
    source: str
    """Where it came from, without a build-host path: e.g. ``pyenv``, ``debian``, ``standalone``."""
    executable: str
    """Path of the real interpreter binary relative to the environment root."""
    machine: str
    """``platform.machine()`` of the interpreter."""
    sha256: str
    """Digest of the source interpreter binary, to identify it without naming its path."""


@dataclass(frozen=True)
class GraftedLibrary:
    """A shared library copied into the environment because a target may lack it."""

    soname: str
    origin: str
    """Where it was found on the build host (a system library directory)."""
    path: str
    """Where it lives now, relative to the environment root."""


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    sha256: str | None = None
    """The digest the lock gives for the file installed (the wheel matching the installed
    one's tags, else the sdist); None without a lock, and in manifests made before."""
    file: str | None = None
    """That file's name (never its URL, which may hold an index's credentials)."""


@dataclass(frozen=True)
class InputFile:
    """A file the installation was made from, identified without naming a build-host path."""

    name: str
    """Its name relative to the project (``uv.lock``), or its base name."""
    sha256: str


@dataclass(frozen=True)
class InstallSource:
    """What decided the installed set, so an artifact can be traced to the lock it came from."""

    kind: str
    """``uv.lock`` or ``pylock`` (installed exactly as locked), or ``resolved`` (requirements
    resolved at build time, e.g. with ``--no-lock``)."""
    files: tuple[InputFile, ...] = ()
    """The lock file, or the requirements and constraints files given."""
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> InstallSource:
        files = data.get("files", ())
        if not isinstance(files, (list, tuple)):
            raise TypeError("source.files must be a list")
        return cls(
            kind=str(data["kind"]),
            files=tuple(InputFile(**f) for f in files),
            extras=tuple(data.get("extras", ())),  # type: ignore[arg-type]
            groups=tuple(data.get("groups", ())),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class AppMetadata:
    """The application's core metadata, as far as packages use it."""

    name: str
    """``Name:`` as the project spells it."""
    version: str
    summary: str = ""
    """``Summary:``, one line."""
    description: str = ""
    """The long description (the METADATA body, or the legacy ``Description:`` field)."""
    description_content_type: str = ""
    """``Description-Content-Type:``, e.g. ``text/markdown``; empty when not stated."""
    license: str | None = None
    """An SPDX license expression, normalised; None when the project states none usable."""
    license_files: tuple[str, ...] = ()
    """The ``License-File:`` entries that exist, as paths relative to the environment root."""
    urls: tuple[tuple[str, str], ...] = ()
    """``(label, url)`` of every ``Project-URL`` (and ``Home-page``, labelled Homepage)."""
    homepage: str | None = None
    """The http(s) URL packages name as the homepage, chosen by label
    (:func:`venvpack.metadata.homepage_of`)."""
    authors: tuple[str, ...] = ()
    """``Name <mail>`` (or just a name, or just an address), in the order given."""
    maintainers: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    """Top-level files and directories of the distribution in site-packages (its import
    packages, modules and ``.dist-info``), relative to the environment root, from RECORD."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AppMetadata:
        """The inverse of :func:`dataclasses.asdict` (after a JSON round trip)."""
        return cls(
            name=data["name"],
            version=data["version"],
            summary=data.get("summary", ""),
            description=data.get("description", ""),
            description_content_type=data.get("description_content_type", ""),
            license=data.get("license"),
            license_files=tuple(data.get("license_files", ())),
            urls=tuple((str(label), str(url)) for label, url in data.get("urls", ())),
            homepage=data.get("homepage"),
            authors=tuple(data.get("authors", ())),
            maintainers=tuple(data.get("maintainers", ())),
            paths=tuple(data.get("paths", ())),
        )


@dataclass(frozen=True)
class Manifest:
    name: str
    """Application name: the package name of deb/rpm and the default directory name."""
    version: str
    """PEP 440 version of the main distribution (``0`` when nothing names one)."""
    prefix: str
    """Absolute path the environment is meant to live at (``/opt/<name>`` by default)."""
    link_mode: str
    """``symlink`` (runs anywhere), ``copy`` or ``hardlink`` (runs at ``prefix``)."""
    python: PythonInfo
    glibc_floor: str
    """Highest GLIBC_x.y symbol version any ELF file in the tree needs, e.g. ``2.34``."""
    commands: tuple[str, ...]
    """Console scripts of the top-level requirements, in ``bin/``; what deb/rpm link to /usr/bin."""
    grafted: tuple[GraftedLibrary, ...] = ()
    distributions: tuple[Distribution, ...] = ()
    venvpack_version: str = ""
    source: InstallSource | None = None
    """Where the installed set came from; None in environments made before it was recorded."""
    metadata: AppMetadata | None = None
    """The application's own core metadata (summary, license, URLs, people); None for
    environments made before venvpack read it, or when no distribution is the application."""
    platform: Platform | None = None
    """Where the environment runs: machine, C library family and floor; None in
    environments made before it was recorded (see :attr:`target`)."""
    schema: int = SCHEMA

    @property
    def target(self) -> Platform:
        """The platform the environment runs on. Environments made before it was recorded
        were all built for glibc, on the interpreter's machine, with ``glibc_floor``."""
        if self.platform is not None:
            return self.platform
        return Platform(self.python.machine, "glibc", self.glibc_floor or None)

    def to_json(self) -> str:
        data = asdict(self)
        for dist in data["distributions"]:
            # Without a lock there is no locked file: written as before it was recorded.
            for key in ("sha256", "file"):
                if dist[key] is None:
                    del dist[key]
        if self.platform is None:
            del data["platform"]  # written as it was before the platform was recorded
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; ValueError (with what is wrong) for anything else."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r} is not {SCHEMA}")
        try:
            manifest = cls(
                name=data["name"],
                version=data["version"],
                prefix=data["prefix"],
                link_mode=data["link_mode"],
                python=PythonInfo(**data["python"]),
                glibc_floor=data["glibc_floor"],
                commands=tuple(data["commands"]),
                grafted=tuple(GraftedLibrary(**g) for g in data.get("grafted", ())),
                distributions=tuple(Distribution(**d) for d in data.get("distributions", ())),
                venvpack_version=data.get("venvpack_version", ""),
                source=InstallSource.from_dict(data["source"]) if data.get("source") else None,
                metadata=(
                    AppMetadata.from_dict(data["metadata"]) if data.get("metadata") else None
                ),
                platform=Platform(**data["platform"]) if data.get("platform") else None,
            )
        except KeyError as exc:
            raise ValueError(f"no {exc} field") from None
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        _check_types(manifest)
        manifest.check()
        return manifest

    def check(self) -> None:
        """Refuse values that become file names, package fields or paths and could not have
        come from a build: a tampered manifest must not steer an artifact (``../../x``)."""
        try:
            validate_name(self.name)
            validate_version(self.version)
        except ConfigError as exc:
            raise ConfigError(f"manifest: {exc}") from None
        if not _MACHINE_RE.fullmatch(self.python.machine):
            raise ConfigError(f"manifest: invalid machine {self.python.machine!r}")
        if self.platform is not None:
            try:
                self.platform.check()
            except ConfigError as exc:
                raise ConfigError(f"manifest: platform: {exc}") from None
            if self.platform.machine != self.python.machine:
                raise ConfigError(
                    f"manifest: platform machine {self.platform.machine!r} is not the "
                    f"interpreter's {self.python.machine!r}"
                )
            if self.platform.floor != (self.glibc_floor or None):
                raise ConfigError(
                    f"manifest: platform floor {self.platform.floor!r} is not "
                    f"glibc_floor {self.glibc_floor!r}"
                )
        if not self.prefix.startswith("/") or "\n" in self.prefix:
            raise ConfigError(f"manifest: prefix {self.prefix!r} is not an absolute path")


def _check_types(record: object, where: str = "") -> None:
    """Every field holds what its annotation says: a tampered manifest is refused here
    rather than deep inside an emitter. (Annotations are strings in this module.)"""
    for field in fields(record):  # type: ignore[arg-type]
        _check_value(getattr(record, field.name), str(field.type), where + field.name)


def _check_value(value: object, kind: str, name: str) -> None:
    """Records are checked field by field, tuples item by item; what is left must be text,
    an integer where the annotation says so, or None where it allows it."""
    if is_dataclass(value):
        _check_types(value, name + ".")
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            _check_value(item, "item", f"{name}[{index}]")
    elif value is None and "None" in kind:
        return
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer")
    else:
        _check_text(value, name)


def _check_text(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid text: {value!a}") from None


@dataclass(frozen=True)
class BuiltEnv:
    """A finished environment on disk: its root directory and its manifest."""

    root: Path
    manifest: Manifest

    @classmethod
    def load(cls, root: Path) -> BuiltEnv:
        path = root / MANIFEST_PATH
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"{root} is not a venvpack environment (no {MANIFEST_PATH})"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not a venvpack manifest: {exc}") from None
        try:
            manifest = Manifest.from_json(text)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{path} is not a venvpack manifest: {exc}") from None
        return cls(root=root, manifest=manifest)

    def save(self) -> None:
        path = self.root / MANIFEST_PATH
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.manifest.to_json(), encoding="utf-8")
