"""Emitter ``deb``: a Debian package that installs the environment at its prefix.

The package is planned first (:func:`plan_package`: control fields, maintainer scripts and
the list of members of the control and data trees, all validated) and then written, either as
a ``.deb`` (ar + GNU tar, written by :mod:`venvpack.archive`, so no dpkg is needed on the
build host) or, with ``tree_only``, as the directory ``dpkg-deb --build`` takes.

Every generated file comes from ``packaging-templates/deb/``. User text reaches the control
file only through the escaping filters defined here (``deb_line``, ``deb_description``), and
is validated before any work starts (:class:`DebOptions`), so a newline can never start a
field of its own.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import re
import shutil
import stat
import tempfile
import textwrap
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from venvpack import __version__, templates
from venvpack.emit import systemd
from venvpack.errors import ConfigError, EmitError
from venvpack.manifest import BuiltEnv
from venvpack.policy import load_json
from venvpack.versions import deb_version

__all__ = [
    "COMPRESSIONS",
    "DebArch",
    "DebEmitter",
    "DebOptions",
    "DebPackage",
    "Member",
    "deb_description",
    "deb_line",
    "debian_arch",
    "parse_depends",
    "plan_package",
]

COMPRESSIONS = ("xz", "gzip", "zstd")
"""Member compressions dpkg reads; xz is the default (zstd needs dpkg >= 1.21.18)."""

_SUFFIX = {"xz": "xz", "gzip": "gz", "zstd": "zst"}

REVISION = "1"
"""The Debian revision of every package: the upstream part is the application's version.

A revision makes the package non-native, which is what it is (the software comes from
elsewhere): Debian tools then expect ``changelog.Debian.gz``, and a user who repackages the
same application version can still be given a higher revision later.
"""

_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_ARCH_RE = re.compile(r"^[a-z0-9]+$")
_SECTION_RE = re.compile(r"^(?:(?:contrib|non-free|non-free-firmware)/)?[a-z0-9][a-z0-9+.-]*$")
_GLIBC_RE = re.compile(r"^[0-9]+\.[0-9]+$")
_COMMAND_RE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$")
# "Full Name <address>"; no comma (it separates maintainers in Uploaders-style fields).
_MAINTAINER_RE = re.compile(r"^[^\s<>,]([^<>,]*[^\s<>,])? <[^\s<>,@]+@[^\s<>,@]+>$")
# One relation of a binary package's Depends: name[:arch] [(op version)].
_RELATION_RE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.-]+)(?P<arch>:[a-z0-9-]+)?"
    r"\s*(?:\(\s*(?P<op><<|<=|=|>=|>>)\s*(?P<version>[^\s()]+)\s*\))?$"
)
_DEB_VERSION_RE = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")
# Everything that ends a line for dpkg or for whoever reads the control file, and any other
# C0/C1 control character.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_PSF_NOTICE_RE = re.compile(
    r'"(Copyright \(c\) 2001[0-9, -]*Python Software Foundation; All Rights Reserved)"'
)
_SYNOPSIS_MAX = 80
_WRAP = 79


# --- options and their validation ------------------------------------------------------------


@dataclass(frozen=True)
class DebOptions:
    """What ``venvpack deb`` adds to an environment; validated when created.

    Checks that need the environment (package name, version, architecture, commands) run
    when the package is planned; everything here is checked before anything is built.
    """

    maintainer: str
    """``Full Name <address>``."""
    description: str = ""
    """First line: the synopsis; further lines: the extended description. Empty: generated."""
    homepage: str = ""
    depends: tuple[str, ...] = ()
    """Debian relations added after ``libc6 (>= <glibc floor>)``; ``a, b | c`` accepted."""
    section: str = "misc"
    entry_points: tuple[str, ...] = ()
    """Commands to link into /usr/bin; empty: the manifest's commands."""
    bin_links: bool = True
    service_command: str = ""
    """A command line for a systemd unit ``<package>.service``; empty: no unit."""
    compression: str = "xz"
    tree_only: bool = False
    """Write the control + data tree for ``dpkg-deb --build`` instead of a .deb."""
    source_date_epoch: int | None = None
    """Timestamp of the changelog and clamp for mtimes; None: ``$SOURCE_DATE_EPOCH`` or now."""

    def __post_init__(self) -> None:
        check_maintainer(self.maintainer)
        if self.description:
            check_description(self.description)
        if self.homepage:
            check_homepage(self.homepage)
        parse_depends(self.depends)
        if not _SECTION_RE.match(self.section):
            raise ConfigError(f"invalid Debian section {self.section!r}")
        for name in self.entry_points:
            check_command_name(name, "--entry-point")
        if self.compression not in COMPRESSIONS:
            raise ConfigError(
                f"unknown compression {self.compression!r} (use {', '.join(COMPRESSIONS)})"
            )
        if self.service_command.strip() == "" and self.service_command:
            raise ConfigError("--service-command is empty")


def check_package_name(name: str) -> str:
    """A Debian package name; dpkg-deb accepts ``MyApp`` and then half-installs it."""
    if not _PACKAGE_RE.match(name):
        raise ConfigError(
            f"invalid Debian package name {name!r}: use lower-case letters, digits and + . - "
            "(at least two characters, starting with a letter or digit); set one with --name"
        )
    return name


def check_maintainer(value: str) -> str:
    if not _MAINTAINER_RE.match(value) or _CONTROL_RE.search(value):
        raise ConfigError(
            f"invalid maintainer {value!r}: expected 'Full Name <address@example.org>' on one "
            "line, without commas"
        )
    return value


def check_homepage(value: str) -> str:
    bad = ConfigError(f"invalid homepage {value!r}: expected an http(s) URL without spaces")
    if _CONTROL_RE.search(value) or any(c.isspace() or c in '<>"' for c in value):
        raise bad
    try:
        url = urllib.parse.urlsplit(value)
    except ValueError:
        raise bad from None
    if url.scheme not in ("http", "https") or not url.netloc:
        raise bad
    return value


def check_description(value: str) -> str:
    """The synopsis (first line) must be there and fit Debian's 80 columns."""
    synopsis = _clean_line(value.splitlines()[0] if value.splitlines() else "")
    if not synopsis:
        raise ConfigError("--description: the first line (the synopsis) is empty")
    if len(synopsis) > _SYNOPSIS_MAX:
        raise ConfigError(
            f"--description: the first line is the synopsis, at most {_SYNOPSIS_MAX} "
            f"characters (got {len(synopsis)}); put details on the following lines"
        )
    return value


def check_command_name(name: str, what: str) -> str:
    if not _COMMAND_RE.match(name):
        raise ConfigError(f"{what} {name!r} is not a command name")
    return name


def parse_depends(specs: Iterable[str]) -> tuple[str, ...]:
    """``--depends`` values as canonical Debian relations, one per list element.

    Each value may hold several relations separated by commas and alternatives separated by
    ``|``; anything else (a newline, a second field, arch lists of source packages) is refused.
    """
    out: list[str] = []
    for spec in specs:
        if _CONTROL_RE.search(spec) or "\t" in spec:
            raise ConfigError(f"--depends {spec!r}: line break or control character")
        for relation in spec.split(","):
            alternatives = []
            for alternative in relation.split("|"):
                match = _RELATION_RE.match(alternative.strip())
                if match is None:
                    raise ConfigError(
                        f"--depends {spec!r}: {alternative.strip()!r} is not a Debian relation "
                        "such as 'pkg', 'pkg (>= 1.2)' or 'a | b'"
                    )
                text = match["name"] + (match["arch"] or "")
                if match["op"]:
                    version = match["version"]
                    if not _DEB_VERSION_RE.match(version) or version.endswith("-"):
                        raise ConfigError(f"--depends {spec!r}: invalid version {version!r}")
                    text += f" ({match['op']} {version})"
                alternatives.append(text)
            out.append(" | ".join(alternatives))
    return tuple(out)


# --- the architecture map -----------------------------------------------------------------


@dataclass(frozen=True)
class DebArch:
    """Debian's view of an interpreter's machine."""

    arch: str
    """Debian architecture name: ``amd64``, ``arm64`` ..."""
    libc: str
    """The C library package the ``Depends`` names (``libc6``; ``libc6.1`` on alpha, ia64)."""


@cache
def _arch_table() -> dict[str, DebArch]:
    data = load_json("deb-arch.json")
    machines = data.get("machines")
    if not isinstance(machines, dict) or not machines:
        raise ConfigError("deb-arch.json needs a non-empty 'machines' object")
    table: dict[str, DebArch] = {}
    for machine, entry in machines.items():
        if not isinstance(entry, dict) or set(entry) != {"arch", "libc"}:
            raise ConfigError(f"deb-arch.json: {machine!r} needs exactly 'arch' and 'libc'")
        arch, libc = entry["arch"], entry["libc"]
        if not isinstance(arch, str) or not _ARCH_RE.match(arch):
            raise ConfigError(f"deb-arch.json: invalid architecture {arch!r} for {machine!r}")
        if not isinstance(libc, str) or not _PACKAGE_RE.match(libc):
            raise ConfigError(f"deb-arch.json: invalid libc package {libc!r} for {machine!r}")
        table[machine] = DebArch(arch=arch, libc=libc)
    return table


def debian_arch(machine: str) -> DebArch:
    """The Debian architecture of an interpreter whose ``platform.machine()`` is ``machine``."""
    try:
        return _arch_table()[machine]
    except KeyError:
        known = ", ".join(sorted(_arch_table()))
        raise EmitError(
            f"no Debian architecture known for machine {machine!r} (known: {known})"
        ) from None


# --- escaping filters for the control file ---------------------------------------------------


def deb_line(value: object) -> str:
    """A single-line field value; a line break here would start a new field, so it is refused."""
    text = str(value)
    if _CONTROL_RE.search(text):
        raise EmitError(f"line break or control character in control field value {text!r}")
    return text


def _clean_line(line: str) -> str:
    """One line of user text: tabs expanded, other control characters dropped."""
    return _CONTROL_RE.sub("", line.expandtabs(8)).rstrip()


def deb_description(value: object) -> str:
    """The value of ``Description:``: synopsis, then each line indented, blanks as `` .``.

    Every line break Python knows (``\\r``, ``\\v``, ``\\x85``, ``\\u2028`` ...) ends a line
    here, and each continuation line starts with a space, so no line of user text can
    become a field. Lines that start with a space are kept verbatim (Debian displays them
    as is); other paragraphs' lines are wrapped at 79 columns.
    """
    lines = [_clean_line(line) for line in str(value).splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise EmitError("empty package description")
    synopsis = lines[0].strip()
    body: list[str] = []
    for line in lines[1:]:
        if not line.strip():
            body.append(" .")
        elif line[0] == " ":
            body.append(" " + line)
        else:
            for wrapped in textwrap.wrap(
                line, _WRAP, break_long_words=False, break_on_hyphens=False
            ):
                # " ." and " .x" are reserved: a leading dot is shown as part of verbatim text.
                body.append("  " + wrapped if wrapped.startswith(".") else " " + wrapped)
    while body and body[-1] == " .":
        body.pop()
    while body and body[0] == " .":
        body.pop(0)
    return "\n".join([synopsis, *body])


FILTERS = {"deb_line": deb_line, "deb_description": deb_description}


# --- the package plan --------------------------------------------------------------------


Kind = Literal["dir", "file", "symlink", "hardlink"]


@dataclass(frozen=True)
class Member:
    """One entry of the control or data tree, by its path relative to the tree's root."""

    path: str
    """``opt/app/bin/python``; ``""`` is the root directory itself."""
    kind: Kind
    mode: int = 0o644
    source: Path | None = None
    """For a file: where its content is on disk (or None when ``content`` holds it)."""
    content: bytes | None = None
    target: str = ""
    """For a symlink: its target; for a hardlink: the path of the member it links to."""
    size: int = 0
    md5: str = ""

    def read(self) -> bytes:
        if self.content is not None:
            return self.content
        assert self.source is not None
        return self.source.read_bytes()


@dataclass(frozen=True)
class DebPackage:
    """Everything a .deb (or a tree for ``dpkg-deb --build``) holds, decided and validated."""

    package: str
    version: str
    """Full Debian version: ``[epoch:]upstream-revision``."""
    architecture: str
    control: tuple[Member, ...]
    """``control``, ``md5sums``, ``conffiles`` and maintainer scripts."""
    data: tuple[Member, ...]
    mtime: int
    """Clamp for every member's mtime (SOURCE_DATE_EPOCH or the build time)."""
    fields: dict[str, str] = field(default_factory=dict)
    """The control fields, for messages and tests."""

    @property
    def filename(self) -> str:
        return package_filename(self.package, self.version, self.architecture)


def package_filename(package: str, version: str, arch: str) -> str:
    """``<package>_<version>_<arch>.deb`` with the epoch dropped, as dpkg-name does."""
    return f"{package}_{version.partition(':')[2] or version}_{arch}.deb"


def check_prefix(prefix: str) -> str:
    """An install location that can be a directory of its own in a Debian package."""
    parts = prefix.split("/")
    if (
        not prefix.startswith("/")
        or posixpath.normpath(prefix) != prefix
        or len(parts) < 3
        or any(p in ("", ".", "..") for p in parts[1:])
        or _CONTROL_RE.search(prefix)
        or any(c.isspace() for c in prefix)
    ):
        raise ConfigError(
            f"prefix {prefix!r} cannot be installed by a Debian package: use an absolute, "
            "normalised path at least two levels deep and without spaces, e.g. /opt/<name>"
        )
    return prefix


def _build_time(options: DebOptions) -> int:
    if options.source_date_epoch is not None:
        return options.source_date_epoch
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if value:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"SOURCE_DATE_EPOCH={value!r} is not an integer") from None
    return int(time.time())


def plan_package(env: BuiltEnv, options: DebOptions) -> DebPackage:
    """Validate ``env`` against Debian's rules and decide every member of the package."""
    m = env.manifest
    package = check_package_name(m.name)
    version = f"{deb_version(m.version)}-{REVISION}"
    arch = debian_arch(m.python.machine)
    prefix = check_prefix(m.prefix)
    mtime = _build_time(options)
    if m.glibc_floor and not _GLIBC_RE.match(m.glibc_floor):
        raise EmitError(f"manifest: invalid glibc floor {m.glibc_floor!r}")
    depends = ([f"{arch.libc} (>= {m.glibc_floor})"] if m.glibc_floor else []) + list(
        parse_depends(options.depends)
    )

    if options.entry_points and not options.bin_links:
        raise ConfigError("--entry-point and --no-bin-links exclude each other")
    commands = _commands(env, options) if options.bin_links else []
    data: list[Member] = [*_directories(prefix), *scan_environment(env.root, prefix)]
    data += [
        Member(f"usr/bin/{cmd}", "symlink", 0o777, target=f"{prefix}/bin/{cmd}")
        for cmd in commands
    ]

    description = _description(env, options.description)
    synopsis = _clean_line(description.splitlines()[0]).strip()
    context: dict[str, Any] = {
        "package": package,
        "version": version,
        "name": m.name,
        "upstream_version": m.version,
        "prefix": prefix,
        "maintainer": options.maintainer,
        "venvpack_version": __version__,
    }
    doc = f"usr/share/doc/{package}"
    data.append(_text_member(f"{doc}/copyright", _copyright(env, context)))
    changelog = templates.render("deb/changelog", date=_changelog_date(mtime), **context)
    data.append(_bytes_member(f"{doc}/changelog.Debian.gz", _gzip(changelog.encode("utf-8"))))
    data.append(
        _text_member(
            f"usr/share/lintian/overrides/{package}",
            templates.render("deb/lintian-overrides", commands=commands, **context),
        )
    )
    unit: systemd.ServiceUnit | None = None
    if options.service_command:
        unit = systemd.render_unit(
            package=package,
            argv=systemd.service_command(options.service_command, env),
            description=synopsis,
            documentation=options.homepage,
        )
        data.append(_text_member(unit.path, unit.text))
    data = _complete(data)

    fields: dict[str, Any] = {
        "package": package,
        "version": version,
        "architecture": arch.arch,
        "maintainer": options.maintainer,
        "installed_size": str(installed_size(data)),
        "depends": ", ".join(depends),
        "section": options.section,
        "homepage": options.homepage,
    }
    control_text = templates.render(
        "deb/control",
        filters=FILTERS,
        **fields,
        description=description,
    )
    fields["description"] = control_text.partition("\nDescription: ")[2]
    control = [Member("", "dir", 0o755), _text_member("control", control_text)]
    control.append(_text_member("md5sums", md5sums(data)))
    conffiles = [m_.path for m_ in data if m_.kind == "file" and m_.path.startswith("etc/")]
    if conffiles:
        control.append(_text_member("conffiles", "".join(f"/{p}\n" for p in conffiles)))
    if unit is not None:
        for script in ("postinst", "prerm", "postrm"):
            text = templates.render(f"deb/{script}", package=package, unit=unit.name)
            control.append(_text_member(script, text, 0o755))
    return DebPackage(
        package=package,
        version=version,
        architecture=arch.arch,
        control=tuple(sorted(control, key=lambda c: c.path)),
        data=tuple(data),
        mtime=mtime,
        fields=fields,
    )


def _description(env: BuiltEnv, given: str) -> str:
    """``--description``, or a generated one; a synopsis alone gets the generated body."""
    m = env.manifest
    lines = given.splitlines()
    synopsis = lines[0] if lines else f"Python application {m.name} with its own interpreter"
    if any(line.strip() for line in lines[1:]):
        return given
    return (
        f"{synopsis}\n"
        f"This package installs {m.name} {m.version} in {m.prefix} together with the Python "
        f"distributions it needs and its own CPython {m.python.version} interpreter. It "
        "neither uses nor changes the system's Python."
    )


def _commands(env: BuiltEnv, options: DebOptions) -> list[str]:
    """The commands to link into /usr/bin; each must be in the environment's bin/."""
    chosen = options.entry_points or env.manifest.commands
    for name in chosen:
        check_command_name(name, "command")
        path = env.root / "bin" / name
        if not (path.is_file() or path.is_symlink()):
            what = "--entry-point" if options.entry_points else "manifest command"
            raise ConfigError(f"{what} {name!r}: no such command in {env.root / 'bin'}")
    return sorted(set(chosen))


def _directories(prefix: str) -> list[Member]:
    """The root and the parents of the prefix; other parents are added by :func:`_complete`."""
    parts = prefix.strip("/").split("/")
    return [Member("", "dir", 0o755)] + [
        Member("/".join(parts[: i + 1]), "dir", 0o755) for i in range(len(parts) - 1)
    ]


def _complete(members: list[Member]) -> list[Member]:
    """Sorted members with every parent directory present, each path exactly once."""
    by_path: dict[str, Member] = {}
    for member in members:
        if member.path in by_path:
            raise EmitError(f"the package would contain /{member.path} twice")
        by_path[member.path] = member
    for path in list(by_path):
        parent = posixpath.dirname(path)
        while path and parent not in by_path:
            by_path[parent] = Member(parent, "dir", 0o755)
            parent = posixpath.dirname(parent)
    for path in by_path:
        parent = posixpath.dirname(path)
        if path and by_path[parent].kind != "dir":
            raise EmitError(f"/{path} is inside /{parent}, which is not a directory")
    return [by_path[p] for p in sorted(by_path)]


def scan_environment(root: Path, prefix: str) -> Iterator[Member]:
    """The environment's files as members under ``prefix``, with sizes, md5 sums and hardlinks.

    Modes are normalised (0755 for directories and executables, 0644 otherwise); a file seen
    again through another hard link becomes a hardlink member to the first path in sorted
    order, which is the order the archive is written in.
    """
    base = prefix.strip("/")
    found: list[tuple[str, Path, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            _check_member_name(rel, root)
            found.append((f"{base}/{rel}", path, os.lstat(path)))
    yield Member(base, "dir", 0o755)
    first_of_inode: dict[tuple[int, int], str] = {}
    for arcpath, path, st in sorted(found, key=lambda item: item[0]):
        if stat.S_ISDIR(st.st_mode):
            yield Member(arcpath, "dir", 0o755)
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(path)
            _check_member_name(target, root)
            yield Member(arcpath, "symlink", 0o777, target=target, size=len(target.encode()))
        elif stat.S_ISREG(st.st_mode):
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in first_of_inode:
                yield Member(arcpath, "hardlink", mode, target=first_of_inode[key])
                continue
            if st.st_nlink > 1:
                first_of_inode[key] = arcpath
            yield Member(arcpath, "file", mode, source=path, size=st.st_size, md5=_md5(path))
        else:
            raise EmitError(f"{path}: only files, directories and symlinks can be packaged")


def _check_member_name(name: str, root: Path) -> None:
    # dpkg cannot handle a newline in a file name, and md5sums/conffiles are line-based.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise EmitError(f"{root}: file name {name!r} is not valid UTF-8") from None
    if _CONTROL_RE.search(name) or "\t" in name:
        raise EmitError(f"{root}: file name {name!r} contains a control character")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _text_member(path: str, text: str, mode: int = 0o644) -> Member:
    return _bytes_member(path, text.encode("utf-8"), mode)


def _bytes_member(path: str, content: bytes, mode: int = 0o644) -> Member:
    return Member(
        path,
        "file",
        mode,
        content=content,
        size=len(content),
        md5=hashlib.md5(content, usedforsecurity=False).hexdigest(),
    )


def _gzip(content: bytes) -> bytes:
    """gzip -9n: no name, mtime 0, so the bytes depend on the content only."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(content)
    return buf.getvalue()


def _changelog_date(epoch: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))


def _copyright(env: BuiltEnv, context: dict[str, Any]) -> str:
    m = env.manifest
    licenses = sorted(env.root.glob("python/lib/python3*/LICENSE.txt"))
    python_license = (
        f"{m.prefix}/{licenses[0].relative_to(env.root).as_posix()}"
        if licenses
        else "https://docs.python.org/3/license.html"
    )
    return templates.render(
        "deb/copyright",
        python_version=m.python.version,
        python_license=python_license,
        python_notice=textwrap.wrap(_python_notice(licenses[0]), 78) if licenses else [],
        grafted=[f"{m.prefix}/{g.path} (from {g.origin})" for g in m.grafted],
        distributions=[f"{d.name} {d.version}" for d in m.distributions],
        **context,
    )


def _python_notice(license_file: Path) -> str:
    """The notice PSF's license asks to retain, as written in CPython's LICENSE.txt."""
    text = " ".join(license_file.read_text(encoding="utf-8", errors="replace").split())
    match = _PSF_NOTICE_RE.search(text)
    return match[1] if match else ""


def installed_size(members: Sequence[Member]) -> int:
    """``Installed-Size`` in KiB, computed as dpkg-gencontrol does.

    Files and symlinks count their size rounded up to whole KiB, hardlinks nothing more,
    directories 1 KiB each.
    """
    total = 0
    for member in members:
        if member.kind in ("file", "symlink"):
            total += -(-member.size // 1024)
        elif member.kind == "dir":
            total += 1
    return total


def md5sums(members: Sequence[Member]) -> str:
    """The ``md5sums`` control file: every regular file except conffiles, like dh_md5sums."""
    digests = {m.path: m.md5 for m in members if m.kind == "file"}
    lines = []
    for member in members:
        if member.path.startswith("etc/"):
            continue
        if member.kind == "file":
            lines.append(f"{member.md5}  {member.path}\n")
        elif member.kind == "hardlink":
            lines.append(f"{digests[member.target]}  {member.path}\n")
    return "".join(lines)


# --- the emitter ---------------------------------------------------------------------------


class DebEmitter:
    """Writes a .deb (or, with ``tree_only``, the tree ``dpkg-deb --build`` takes)."""

    format = "deb"

    def __init__(self, options: DebOptions) -> None:
        self.options = options

    def filename(self, env: BuiltEnv) -> str:
        m = env.manifest
        name = package_filename(
            check_package_name(m.name),
            f"{deb_version(m.version)}-{REVISION}",
            debian_arch(m.python.machine).arch,
        )
        return name.removesuffix(".deb") if self.options.tree_only else name

    def emit(self, env: BuiltEnv, dest: Path) -> Path:
        package = plan_package(env, self.options)
        if self.options.tree_only:
            write_tree(package, dest)
        else:
            write_deb(package, dest, self.options.compression)
        return dest


# --- writers ---------------------------------------------------------------------------------


def write_tree(package: DebPackage, dest: Path) -> None:
    """The directory ``dpkg-deb --build`` takes: ``DEBIAN/`` plus the data tree.

    It is assembled beside ``dest`` and renamed into place, so ``dest`` is either complete
    or untouched. Files are owned by whoever runs venvpack: build it with
    ``dpkg-deb --root-owner-group --build``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for member in package.data:
            _materialise(member, tmp)
        for member in package.control:
            _materialise(member, tmp / "DEBIAN")
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _materialise(member: Member, root: Path) -> None:
    path = root / member.path if member.path else root
    if member.kind == "dir":
        path.mkdir(exist_ok=True)
        path.chmod(member.mode)
    elif member.kind == "symlink":
        os.symlink(member.target, path)
    elif member.kind == "hardlink":
        os.link(root / member.target, path)
    elif member.source is not None:
        shutil.copyfile(member.source, path)
        path.chmod(member.mode)
    else:
        path.write_bytes(member.read())
        path.chmod(member.mode)
