"""Emitter ``rpm``: a spec rendered from ``packaging-templates/rpm/``, built by rpmbuild.

The work is split so each step can be checked on its own:

1. :class:`RpmOptions` checks the user's text when it is given, before any build starts,
   by the rules every system format shares (:class:`venvpack.system_package.SystemOptions`);
2. :func:`plan_package` renders in rpm's terms the description every system format shares
   (:func:`venvpack.system_package.describe`: version, prefix, summary and description, license,
   which commands get ``/usr/bin`` links, the service unit), looking at nothing on disk but
   the commands in ``bin/`` and the license files;
3. :func:`write_sources` writes what rpmbuild needs into one directory: the spec, an
   rpmlintrc and the tree as an uncompressed tarball. That directory is also the output of
   ``--spec-only``, so users can run rpmbuild or mock on exactly what venvpack would build;
4. :meth:`RpmEmitter.emit` runs rpmbuild on it in a private ``_topdir`` and moves the
   ``.rpm`` into place atomically, with ``<name>.rpmlintrc`` beside it (rpmlint reads
   filters only from ``-r FILE``).

rpmbuild never reads the environment where venvpack built it: ``%install`` only extracts
the tarball, so no build-host path is in the spec, the payload or the headers.

Relocation: a symlink-mode environment runs from anywhere, so the spec declares ``Prefix:``
and ``rpm --prefix /srv/x`` moves it. The ``/usr/bin`` links cannot be packaged symlinks
(rpm relocates only what is under the Prefix, and would leave them pointing at the old
place): ``%post`` makes them from ``$RPM_INSTALL_PREFIX0`` where no other file of that name
exists, and ``%postun`` removes those that point into the package, on erase or when an
upgrade drops a command. They are not ``%ghost`` files: rpm would remove a ghost on erase
even when it was another package's link. Copy and hardlink modes need their prefix, and a service
unit names it, so those packages declare no ``Prefix:`` and ``rpm --prefix`` refuses them.

The spec is macro-expanded line by line *before* rpm decides what a line is, comments
included: ``%(cmd)`` runs a command at build time, ``%{lua:...}`` runs Lua, and a line whose
first non-blank characters expand to ``%include``, ``%if`` or a section name such as
``%files`` is obeyed even when written ``%%include`` (a leading space does not help: rpm
skips blanks before it looks). So every user value goes through a filter defined here:
``%`` is doubled, a line break in a one-line tag is refused, and a line of the description
that starts with ``%`` (or ``#``, which rpm silently drops as a comment) is refused with a
message, rather than altered into something the user did not write.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvpack import __version__, templates
from venvpack.archive import Compression, Progress, TarPlan, source_date_epoch, write_archive
from venvpack.archive.ar import read_ar
from venvpack.config import BuildSpec, validate_name
from venvpack.elf import is_elf, read_elf
from venvpack.emit import OUTPUT, Option
from venvpack.emit.systemd import ServiceUnit
from venvpack.errors import ArtifactError, ConfigError, EmitError, ToolMissingError
from venvpack.manifest import BuiltEnv
from venvpack.output import atomic_output, remove_tree, staging_dir
from venvpack.platform import package_arch
from venvpack.proc import clean_python_env, run, which
from venvpack.system_package import (
    SYSTEM_OPTIONS,
    InstallFile,
    PackageInfo,
    Relations,
    ServiceUser,
    SystemOptions,
    check_build,
    check_line_starts,
    describe,
    parse_relation,
    system_fields,
    walk_tree,
)
from venvpack.validate import control_character, file_name
from venvpack.versions import rpm_version

if TYPE_CHECKING:
    from venvpack.unpack import Stream, Unpacker
    from venvpack.verify import Installed, Target

__all__ = [
    "FILTERS",
    "FORMAT",
    "MAX_BUILD_TIME",
    "PAYLOAD",
    "RPM_MAGIC",
    "LintFacts",
    "RpmEmitter",
    "RpmFormat",
    "RpmOptions",
    "RpmPlan",
    "install_rpm",
    "plan_package",
    "render_plan",
    "render_rpmlintrc",
    "render_spec",
    "rpm_arch",
    "rpm_dep",
    "rpm_line",
    "rpm_text",
    "rpm_token",
    "rpmlintrc_name",
    "scan_tree",
    "unpack_rpm",
    "write_sources",
]

log = logging.getLogger("venvpack")

PAYLOAD = "w2.xzdio"
"""``_binary_payload``: xz level 2, a third of xz -6's time for a package 10 % larger
(docs/measurements.md, RPM payload). zstd would be fastest, but rpm
reads it only from 4.14 on (not RHEL 7, Amazon Linux 2 or older SUSE), which are exactly the
targets of an environment built on an old glibc. rpm's xz runs single-threaded unless told
otherwise, so the bytes do not depend on the build host's CPU count."""

MAX_BUILD_TIME = 2**32 - 1
"""The latest build time (SOURCE_DATE_EPOCH) an rpm header can hold: its time tags are
unsigned 32-bit integers (2106-02-07)."""

RPMBUILD_HINT = (
    "install it (apt-get install rpm on Debian/Ubuntu, dnf install rpm-build on "
    "Fedora/RHEL), or use --spec-only to write the spec and build it elsewhere"
)

# ----------------------------------------------------------------------------- escaping

# Control characters are refused but tabs (and newlines in multi-line text): rpm splits the
# spec on "\n" only, but a reader of the spec or of `rpm -qi` should see what rpm sees.


def rpm_line(value: object, what: str = "value") -> str:
    """A one-line tag value (``Summary:``, ``License:`` ...) that rpm stores literally.

    ``%`` is doubled, since rpm expands the line. A line break would start a new tag (or a
    section), and a trailing backslash would continue the line: both are refused.
    """
    text = str(value).strip()
    if control_character(text, "\t"):
        raise ConfigError(f"{what}: line break or control character in {text!r}")
    if not text:
        raise ConfigError(f"{what} is empty")
    if text.endswith("\\"):
        raise ConfigError(
            f"{what}: {text!r} ends with a backslash, which rpm reads as a line continuation"
        )
    return text.replace("%", "%%")


def rpm_token(value: object, what: str = "value") -> str:
    """A one-word tag value (``URL:``): as :func:`rpm_line`, without blanks."""
    text = rpm_line(value, what)
    if any(c.isspace() for c in text):
        raise ConfigError(f"{what}: {str(value).strip()!r} must not contain blanks")
    return text


def rpm_text(value: object, what: str = "description") -> str:
    """A multi-line body (``%description``) that rpm stores literally.

    ``%`` is doubled. A line starting (after blanks) with ``%`` is refused: whatever it is
    escaped to, rpm expands it first and then obeys a ``%include``, ``%if`` or ``%files`` at
    the start, and the only neutraliser that survives is a visible character we would have
    to invent. A line starting with ``#`` is refused too: rpm drops it as a comment.
    """
    text = str(value).strip("\n")
    if control_character(text, "\t\n"):
        raise ConfigError(f"{what}: control character in {text!r}")
    lines = [line.rstrip() for line in text.split("\n")]
    if not any(lines):
        raise ConfigError(f"{what} is empty")
    check_line_starts(lines, what)
    return "\n".join(lines).replace("%", "%%")


# The names of rpm's capabilities besides package names: perl(Foo::Bar), libc.so.6()(64bit),
# /usr/bin/sh ... The comparison and version follow the grammar both formats share.
_CAPABILITY = r"[A-Za-z0-9_/][A-Za-z0-9_.+/:-]*(?:\([A-Za-z0-9_.+/:-]*\))*"
_RICH_DEP_RE = re.compile(r"\([A-Za-z0-9_.+/:()<>=~^ -]*\)")


def rpm_dep(value: object, what: str = "--requires") -> str:
    """One ``Requires:`` entry, normalised to ``name [op version]`` (or a rich dependency).

    One entry per value, checked against rpm's grammar here so that a comma or a blank
    cannot smuggle in a second dependency and a ``%`` never reaches the spec at all.
    """
    text = str(value).strip()
    if _RICH_DEP_RE.fullmatch(text):
        return text
    return parse_relation(text, what, _CAPABILITY).rpm


_RPMLINT_SPECIAL_RE = re.compile(r"([.^$*+?{}\[\]\\|()])")


def _rpmlint_re(value: object) -> str:
    """A literal inside an rpmlintrc ``addFilter(r"...")`` regular expression."""
    text = str(value)
    if '"' in text or control_character(text, "\t"):
        raise EmitError(f"cannot use {text!r} in an rpmlint filter")
    return _RPMLINT_SPECIAL_RE.sub(r"\\\1", text)


FILTERS = {
    "rpm_line": rpm_line,
    "rpm_token": rpm_token,
    "rpm_text": rpm_text,
    "rpm_dep": rpm_dep,
    "rpmlint_re": _rpmlint_re,
}
"""The escaping filters of ``rpm/app.spec`` and ``rpm/rpmlintrc``."""

# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class RpmOptions(SystemOptions):
    """What ``venvpack rpm`` adds to the environment's manifest; checked when made. The
    options every system package has (commands, service, user, files, relations, release,
    epoch, summary, description, license, homepage as ``--url``, maintainer as
    ``--packager``) and their rules come from :class:`~venvpack.system_package.SystemOptions`."""

    requires: tuple[str, ...] = ()
    """Extra ``Requires:`` entries, one dependency each, added to ``glibc >= <floor>``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # What only rpm's syntax adds to the shared rules: a tag that ends with a backslash.
        if self.summary:
            rpm_line(self.summary, "--summary")
        if self.license:
            rpm_line(self.license, "--license")
        for dep in self.requires:
            rpm_dep(dep)


# ----------------------------------------------------------------------------- plan


def rpm_arch(machine: str) -> str:
    """The RPM architecture of an interpreter's ``platform.machine()``."""
    return package_arch(machine, "rpm", "RPM").arch


@dataclass(frozen=True)
class RpmPlan:
    """Everything the spec says, decided before anything is written."""

    name: str
    epoch: int | None
    version: str
    """RPM version (PEP 440 mapped: :mod:`venvpack.versions`)."""
    release: str
    arch: str
    summary: str
    description: str
    license: str
    url: str
    packager: str
    license_files: tuple[str, ...]
    """Absolute paths, under the prefix, of the application's license files (``%license``)."""
    requires: tuple[str, ...]
    """The user's extra dependencies, normalised; ``glibc >= glibc_floor`` comes first."""
    glibc_floor: str
    prefix: str
    relocatable: bool
    """Whether the spec declares ``Prefix:`` so ``rpm --prefix`` can move it."""
    links: tuple[str, ...]
    """Commands that get ``/usr/bin/<command>``, made by ``%post`` (not rpm files, so an
    erase never removes a link that another package or the administrator put there)."""
    unit: ServiceUnit | None
    upstream_version: str
    python_version: str
    build_time: int
    """SOURCE_DATE_EPOCH, or now: the changelog date and the generated files' mtime."""
    files: tuple[InstallFile, ...] = ()
    """Extra files; those under /etc are ``%config(noreplace)``."""
    user_script: str = ""
    """The ``%pre`` snippet that creates the service user; empty without one."""
    user: ServiceUser | None = None
    """The service user, owner of its packaged state directory."""
    relations: Relations = field(default_factory=Relations)

    @property
    def evr(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch is not None else ""
        return f"{epoch}{self.version}-{self.release}"

    @property
    def filename(self) -> str:
        """``<name>-<version>-<release>.<arch>.rpm``, as rpmbuild names it (no epoch)."""
        return f"{_stem(self.name, self.version, self.release, self.arch)}.rpm"

    @property
    def spec_name(self) -> str:
        return f"{self.name}.spec"

    @property
    def rpmlintrc_name(self) -> str:
        return rpmlintrc_name(self.name)

    @property
    def source_tar(self) -> str:
        return f"{_stem(self.name, self.version, self.release, self.arch)}.tar"


def _stem(name: str, version: str, release: str, arch: str) -> str:
    return f"{name}-{version}-{release}.{arch}"


def _build_time() -> int:
    epoch = source_date_epoch(maximum=MAX_BUILD_TIME)
    return epoch if epoch is not None else int(time.time())


def plan_package(env: BuiltEnv, options: RpmOptions, *, build_time: int | None = None) -> RpmPlan:
    """Describe ``env``'s package (:func:`~venvpack.system_package.describe`) and decide the spec
    that renders it; raises ConfigError for anything rpm would refuse."""
    return render_plan(env, describe(env, options), options, build_time=build_time)


def render_plan(
    env: BuiltEnv, info: PackageInfo, options: RpmOptions, *, build_time: int | None = None
) -> RpmPlan:
    """The :class:`RpmPlan` of the description ``info``."""
    manifest = env.manifest
    mapped = rpm_version(info.version)
    contents = info.contents
    prefix, unit = contents.prefix, contents.unit
    relocatable = manifest.link_mode == "symlink" and unit is None
    if not relocatable:
        why = (
            "its service unit names that path"
            if unit is not None
            else f"--python-link {manifest.link_mode} needs that path"
        )
        log.info(
            "the package installs only at %s (%s); rpm --prefix refuses to move it", prefix, why
        )
    return RpmPlan(
        name=info.name,
        epoch=info.epoch if info.epoch is not None else mapped.epoch,
        version=mapped.version,
        release=info.release,
        arch=rpm_arch(manifest.python.machine),
        summary=info.summary,
        description=(
            _spec_description(info.description) if info.description_generated else info.description
        ),
        license=info.license or "NOASSERTION",
        url=info.homepage,
        packager=info.maintainer,
        license_files=tuple(f"{prefix}/{rel}" for rel in info.license_files if _plain_path(rel)),
        requires=tuple(rpm_dep(dep) for dep in options.requires),
        glibc_floor=info.glibc_floor,
        prefix=prefix,
        relocatable=relocatable,
        links=contents.commands,
        unit=unit,
        files=contents.files,
        user_script=contents.user_script,
        user=contents.user,
        relations=info.relations,
        upstream_version=info.version,
        python_version=info.python_version,
        build_time=build_time if build_time is not None else _build_time(),
    )


_SPEC_WIDTH = 76


def _spec_description(text: str) -> str:
    """A generated extended description (paragraphs of one line each, from the project's
    metadata) as ``%description`` lines: wrapped at 76 columns so that no line starts with
    ``%`` or ``#``, which rpm would obey or drop."""
    lines: list[str] = []
    for line in text.split("\n"):
        lines += _spec_safe_wrap(line, _SPEC_WIDTH) if line.strip() else [""]
    return "\n".join(lines)


def _spec_safe_wrap(text: str, width: int = 76) -> list[str]:
    """``text`` wrapped at ``width`` so that no line starts with ``%`` or ``#``, which
    :func:`rpm_text` refuses (rpm would obey or drop the line): such a word stays on the
    line before it, even past the width. On the first line there is none: its marker goes."""
    lines: list[str] = []
    for word in text.split():
        if not lines:
            word = word.lstrip("%#")
            if word:
                lines.append(word)
        elif word[0] in "%#" or len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


_PLAIN_PATH_RE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*(/[A-Za-z0-9_+-][A-Za-z0-9._+-]*)*")


def _plain_path(rel: str) -> bool:
    """A path an rpm ``%files`` line can name as is: no macro, glob, quote or blank (others
    stay in the package, only without the license mark)."""
    return bool(_PLAIN_PATH_RE.fullmatch(rel)) and ".." not in rel.split("/")


# ----------------------------------------------------------------------------- rendering


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _changelog_date(timestamp: int) -> str:
    """``Sat Nov 21 2026``: rpm's changelog date, in English whatever the locale."""
    day = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return f"{_WEEKDAYS[day.weekday()]} {_MONTHS[day.month - 1]} {day.day:02d} {day.year}"


def render_spec(plan: RpmPlan) -> str:
    return templates.render(
        "rpm/app.spec",
        filters=FILTERS,
        name=plan.name,
        epoch=plan.epoch,
        version=plan.version,
        release=plan.release,
        evr=plan.evr,
        arch=plan.arch,
        summary=plan.summary,
        description=plan.description,
        license=plan.license,
        url=plan.url,
        packager=plan.packager,
        license_files=plan.license_files,
        requires=plan.requires,
        glibc_floor=plan.glibc_floor,
        prefix=plan.prefix,
        relocatable=plan.relocatable,
        links=plan.links,
        unit=plan.unit,
        files=[(f.dest, f"{f.mode:04o}", f.config) for f in plan.files],
        user_script=plan.user_script,
        user=plan.user,
        provides=[r.rpm for r in plan.relations.provides],
        conflicts=[r.rpm for r in plan.relations.conflicts],
        obsoletes=[r.rpm for r in plan.relations.replaces],
        recommends=[r.rpm for r in plan.relations.recommends],
        source_tar=plan.source_tar,
        rpmlintrc=plan.rpmlintrc_name,
        payload=PAYLOAD,
        python_version=plan.python_version,
        upstream_version=plan.upstream_version,
        changelog_date=_changelog_date(plan.build_time),
        changelog_author=plan.packager or "venvpack",
        venvpack_version=__version__,
    )


def render_rpmlintrc(plan: RpmPlan, facts: LintFacts) -> str:
    return templates.render(
        "rpm/rpmlintrc",
        filters=FILTERS,
        name=plan.name,
        arch=plan.arch,
        prefix=plan.prefix,
        packager=plan.packager,
        python_xy=".".join(plan.python_version.split(".")[:2]),
        facts=facts,
        rpmlintrc=plan.rpmlintrc_name,
        filename=plan.filename,
        venvpack_version=__version__,
    )


# ----------------------------------------------------------------------------- rpmlint

# rpmlint 2.4's own patterns (checks/BinariesCheck.py, checks/FilesCheck.py): what it takes
# for a shared library, and for a library that wants ldconfig in %post and %postun.
_RPMLINT_SHLIB_RE = re.compile(r"/lib(64)?/[^/]+\.so(\.[0-9]+)*$")
_RPMLINT_LDCONFIG_RE = re.compile(
    r"/lib(?:64)?/lib[A-Za-z0-9](?:(?:|[\w\-\.]*[A-Za-z0-9])\.so\.[\w+\.]+"
    r"|\w*-\d(?:|[\w\-\.]*[A-Za-z0-9])\.so)$"
)
_RPMLINT_VERSIONED_RE = re.compile(r"[^.][0-9]")
_RPMLINT_ZERO_LENGTH_RE = re.compile(
    r"/\.nosearch$|/__init__\.py$|/py\.typed$|\.dist-info/REQUESTED$|/gem\.build_complete$"
)
_RPMLINT_WASTE_LIMIT = 100_000


@dataclass(frozen=True)
class LintFacts:
    """Which by-design rpmlint findings the tree triggers.

    rpmlint reports a filter that matched nothing as an error (``unused-rpmlintrc-filter``),
    so the rpmlintrc holds a filter only when the tree gives it something to match.
    """

    origin_rpath: bool = False
    """An ELF file has an RPATH or RUNPATH relative to ``$ORIGIN``."""
    shared_libs: bool = False
    """rpmlint sees a shared library (``.../lib/<x>.so[.N]``): a "library package"."""
    unversioned_paths: bool = False
    """... and files whose path has no version number in it."""
    unexecutable_libs: bool = False
    libs_without_hash: bool = False
    """Shared libraries with only ``.gnu.hash`` (Debian links with --hash-style=gnu)."""
    ldconfig_libs: bool = False
    shebang_modules: bool = False
    """Files with a ``#!/`` line in the standard library or site-packages."""
    zero_length: bool = False
    """Empty files other than those rpmlint expects empty (``__init__.py``, ``py.typed`` ...)."""
    duplicated_waste: bool = False
    """Files with the same content, more than rpmlint's 100 000 bytes of them."""
    static_libs_without_debuginfo: bool = False
    """Static libraries (``.a``) without debugging sections, as numpy ships."""


def scan_tree(root: Path, prefix: str, python_xy: str, others: Iterable[str] = ()) -> LintFacts:
    """The :class:`LintFacts` of the environment at ``root``, to be installed at ``prefix``
    in a package that also holds the files ``others`` (absolute paths)."""
    found: dict[str, bool] = {}
    module_dirs = (f"{prefix}/lib/python{python_xy}/", f"{prefix}/python/lib/python{python_xy}/")
    for installed in (prefix, *others):
        if not _RPMLINT_VERSIONED_RE.search(installed):
            found["unversioned_paths"] = True
    by_size: dict[int, list[Path]] = {}
    inodes: set[tuple[int, int]] = set()
    for entry in walk_tree(root, prefix, "which rpm requires"):
        path, installed = entry.path, entry.installed
        if not _RPMLINT_VERSIONED_RE.search(installed) and not _RPMLINT_SHLIB_RE.search(installed):
            found["unversioned_paths"] = True
        if entry.kind != "file":
            continue
        st = path.stat()
        if st.st_size == 0 and not _RPMLINT_ZERO_LENGTH_RE.search(installed):
            found["zero_length"] = True
        # Links to one file inside the tree stay hard links in the package, which rpmlint
        # does not count; links to files outside it (uv's cache) become separate files.
        if st.st_size and (st.st_dev, st.st_ino) not in inodes:
            inodes.add((st.st_dev, st.st_ino))
            by_size.setdefault(st.st_size, []).append(path)
        if path.name.endswith(".a") and _static_without_debuginfo(path):
            found["static_libs_without_debuginfo"] = True
        if installed.startswith(module_dirs) and _starts_with(path, b"#!/"):
            found["shebang_modules"] = True
        if not is_elf(path):
            continue
        info = read_elf(path)
        entries = info.runpath + info.rpath
        if entries and all(e.startswith("$ORIGIN") for e in entries):
            found["origin_rpath"] = True
        if _RPMLINT_SHLIB_RE.search(installed):
            found["shared_libs"] = True
            if not path.stat().st_mode & stat.S_IXUSR:
                found["unexecutable_libs"] = True
            if not info.has_sysv_hash:
                found["libs_without_hash"] = True
        if _RPMLINT_LDCONFIG_RE.search(installed):
            found["ldconfig_libs"] = True
    if not found.get("shared_libs"):
        found["unversioned_paths"] = False
    found["duplicated_waste"] = _duplicated_bytes(by_size) > _RPMLINT_WASTE_LIMIT
    return LintFacts(**found)


def _static_without_debuginfo(path: Path) -> bool:
    """Whether ``path`` is an ``ar`` archive of ELF objects none of which has a
    ``.debug_*`` section: what rpmlint reports as static-library-without-debuginfo."""
    found = False
    try:
        for _name, member in read_ar(path.read_bytes()):
            if member.startswith(b"\x7fELF"):
                found = True
                if b".debug_" in member:
                    return False
    except ValueError:  # not an ar archive, or a damaged one: no objects to judge
        return False
    return found


def _duplicated_bytes(by_size: dict[int, list[Path]]) -> int:
    """What rpmlint's DuplicatesCheck adds up: for each content held by several files, its
    size times the number of extra copies. Only files of equal size are read."""
    waste = 0
    for size, paths in by_size.items():
        if len(paths) < 2:
            continue
        digests: dict[bytes, int] = {}
        for path in paths:
            digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).digest()
            digests[digest] = digests.get(digest, 0) + 1
        waste += sum(size * (count - 1) for count in digests.values())
    return waste


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(magic)) == magic


# ----------------------------------------------------------------------------- sources


def write_sources(plan: RpmPlan, env: BuiltEnv, directory: Path) -> Path:
    """Write the spec, the rpmlintrc and the tree tarball into ``directory``; return the spec.

    ``rpmbuild -bb --define "_sourcedir <directory>" <directory>/<name>.spec`` builds it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / plan.spec_name
    spec.write_text(render_spec(plan), encoding="utf-8")
    others = [f"/{plan.unit.path}"] if plan.unit is not None else []
    others += [f.dest for f in plan.files]
    python_xy = ".".join(plan.python_version.split(".")[:2])
    facts = scan_tree(env.root, plan.prefix, python_xy, others)
    (directory / plan.rpmlintrc_name).write_text(render_rpmlintrc(plan, facts), encoding="utf-8")
    tree = TarPlan()
    tree.add_tree(env.root, plan.prefix.lstrip("/"))
    if plan.unit is not None:
        tree.add_file(plan.unit.path, plan.unit.text.encode("utf-8"), mtime=plan.build_time)
    if plan.user is not None:
        tree.add_dir(plan.user.home.lstrip("/"), 0o750, mtime=plan.build_time)
    for item in plan.files:
        try:
            content = item.source.read_bytes()
        except OSError as exc:
            raise EmitError(f"cannot read {item.source}: {exc.strerror}") from None
        tree.add_file(item.dest.lstrip("/"), content, item.mode, mtime=plan.build_time)
    write_archive(tree, directory / plan.source_tar, Compression.NONE)
    return spec


# ----------------------------------------------------------------------------- building


def _macro_path(path: Path) -> str:
    """A path as a macro body for ``--define``: rpm expands it, and its build scripts
    use it unquoted, so only plain characters are accepted."""
    text = str(path)
    if not re.fullmatch(r"[A-Za-z0-9._+/-]+", text):
        raise EmitError(
            f"rpmbuild cannot work in {text!r} (blanks or special characters); "
            "set TMPDIR to a plain directory"
        )
    return text


def _work_dir(scratch: Path) -> Path:
    """A private directory for rpmbuild: in the output's staging directory when its path is
    plain (same filesystem, so the .rpm is renamed, not copied), else a staging directory
    in TMPDIR (the caller removes it)."""
    for base in (scratch, Path(tempfile.gettempdir())):
        base = base.resolve()
        if re.fullmatch(r"[A-Za-z0-9._+/-]+", str(base)):
            if base == scratch.resolve():
                work = base / "rpmbuild"
                work.mkdir()
                return work
            return staging_dir(base)
    return staging_dir(Path(tempfile.gettempdir()))  # _macro_path says what to do


def _rpmbuild(plan: RpmPlan, spec: Path, sources: Path, topdir: Path) -> Path:
    rpmbuild = which("rpmbuild", hint=RPMBUILD_HINT)
    home = topdir / "home"
    home.mkdir()
    args: list[str | Path] = [
        rpmbuild,
        "-bb",
        "--target",
        plan.arch,
        "--define",
        f"_topdir {_macro_path(topdir)}",
        "--define",
        f"_sourcedir {_macro_path(sources)}",
        "--define",
        f"_tmppath {_macro_path(topdir)}",
        spec,
    ]
    # HOME: no ~/.rpmmacros or ~/.rpmrc of the user changes what gets built.
    extra = {"HOME": str(home), "TMPDIR": str(topdir), "LC_ALL": "C"}
    log.debug("running rpmbuild")
    run(args, error=EmitError, what="rpmbuild", env=clean_python_env(extra), cwd=topdir)
    built = sorted((topdir / "RPMS").rglob("*.rpm"))
    if len(built) != 1:
        raise EmitError(f"rpmbuild made {len(built)} packages, expected exactly one")
    return built[0]


class RpmEmitter:
    """``venvpack rpm``: a ``.rpm``, or with ``spec_only`` a directory to build one from."""

    format = "rpm"

    def __init__(self, options: RpmOptions | None = None, *, spec_only: bool = False) -> None:
        self.options = options if options is not None else RpmOptions()
        self.spec_only = spec_only

    def check_build(self, spec: BuildSpec) -> None:
        check_build(spec)

    def filename(self, env: BuiltEnv) -> str:
        """``<name>-<version>-<release>.<arch>.rpm`` (``.rpmbuild``, a directory, for
        ``spec_only``)."""
        manifest = env.manifest
        stem = _stem(
            validate_name(manifest.name),
            rpm_version(manifest.version).version,
            self.options.release,
            rpm_arch(manifest.python.machine),
        )
        return file_name(f"{stem}.rpmbuild" if self.spec_only else f"{stem}.rpm")

    def replaceable(self, path: Path) -> bool:
        if self.spec_only:
            return is_spec_dir(path)
        return path.name.endswith(".rpmlintrc") and is_generated_rpmlintrc(path)

    def extras(self, env: BuiltEnv, dest: Path) -> tuple[Path, ...]:
        """``<name>.rpmlintrc`` beside the .rpm (the spec directory holds its own)."""
        if self.spec_only:
            return ()
        return (dest.parent / rpmlintrc_name(validate_name(env.manifest.name)),)

    def emit(self, env: BuiltEnv, dest: Path, *, replace: bool = True) -> Path:
        plan = plan_package(env, self.options)
        if self.spec_only:
            log.info(
                'build it with: rpmbuild -bb --define "_sourcedir $PWD" %s.spec (in %s)',
                plan.name,
                dest,
            )
            # A directory, made beside dest and exchanged with the old one when complete.
            with atomic_output(dest, replace=replace, replaceable=is_spec_dir) as tmp:
                write_sources(plan, env, tmp)
                tmp.chmod(0o755)
            return dest
        with atomic_output(dest, replace=replace) as tmp:
            work = _work_dir(tmp.parent)
            try:
                sources = work / "sources"
                spec = write_sources(plan, env, sources)
                built = _rpmbuild(plan, spec, sources, work)
                _move(built, tmp)
                rpmlintrc = (sources / plan.rpmlintrc_name).read_bytes()
            finally:
                remove_tree(work)
        # rpmlint takes filters only from a file given with -r: it goes beside the package,
        # so `rpmlint -r <name>.rpmlintrc <file>.rpm` checks it as venvpack meant.
        with atomic_output(dest.parent / plan.rpmlintrc_name, replace=replace) as tmp:
            tmp.write_bytes(rpmlintrc)
        return dest


def is_spec_dir(path: Path) -> bool:
    """Whether ``path`` is a ``--spec-only`` output: it holds a spec venvpack generated.
    Only such a directory is replaced with ``--force``."""
    for spec in path.glob("*.spec"):
        try:
            with open(spec, "rb") as handle:
                if b"\n# Generated by venvpack " in handle.read(4096):
                    return True
        except OSError:
            continue
    return False


def _move(src: Path, dest: Path) -> None:
    try:
        os.replace(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


class RpmFormat:
    """``venvpack rpm``; see :class:`venvpack.emit.Format`."""

    name = "rpm"
    help = "Build (or take --from) an environment and pack it as an RPM."
    noun = "an .rpm"
    summary = "installs in /opt/<name>"
    sample = "hello-1.0.0-1.x86_64.rpm"
    init_template: str | None = "init/rpm.toml"
    fixed_location = True
    examples = (
        "venvpack rpm --project . -o dist/",
        "venvpack rpm --from build/env --requires 'openssl-libs >= 3.0'",
        "venvpack rpm --spec-only -o rpmbuild/   # build it later with rpmbuild or mock",
    )
    options = (
        Option(
            "summary",
            ("--summary",),
            "Summary tag, at most 80 characters (default: the first line of --description, "
            "else the project's summary).",
            default="",
        ),
        Option(
            "description",
            ("--description",),
            "Synopsis line, then the %description text (all of it with --summary; default: the "
            "project's first paragraph and a generated one).",
            default="",
        ),
        Option(
            "license",
            ("--license",),
            "License tag (default: the project's license expression, else NOASSERTION).",
            default="",
            metavar="SPDX",
        ),
        Option(
            "url",
            ("--url", "--homepage"),
            "URL tag, an http(s) URL (default: the project's homepage).",
            default="",
        ),
        Option(
            "requires",
            ("--requires",),
            "Add a dependency, e.g. 'openssl-libs >= 3.0' (repeatable); glibc >= the "
            "environment's floor is always required.",
            multiple=True,
            metavar="SPEC",
        ),
        Option(
            "packager",
            ("--packager", "--maintainer"),
            "Packager tag and changelog author (default: the project's first maintainer, "
            "else author).",
            default="",
            metavar="'NAME <MAIL>'",
        ),
        *SYSTEM_OPTIONS,
        Option(
            "spec_only",
            ("--spec-only",),
            "Write the spec, its sources and an rpmlintrc for rpmbuild or mock instead of a .rpm.",
            is_flag=True,
            group=OUTPUT,
        ),
    )

    def extensions(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        return () if values.get("spec_only") else (".rpm",)

    def emitter(
        self, values: Mapping[str, Any], artifact: str | None, progress: Progress | None
    ) -> RpmEmitter:
        source_date_epoch(maximum=MAX_BUILD_TIME)
        options = RpmOptions(
            **system_fields(values),
            summary=values.get("summary") or "",
            description=values.get("description") or "",
            license=values.get("license") or "",
            homepage=values.get("url") or "",
            requires=tuple(values.get("requires") or ()),
            maintainer=values.get("packager") or "",
        )
        return RpmEmitter(options, spec_only=bool(values.get("spec_only")))

    def detect(self, head: bytes) -> bool:
        return head.startswith(RPM_MAGIC)

    def unpack(self, artifact: Stream, into: Unpacker) -> None:
        unpack_rpm(artifact, into)

    def install(self, target: Target) -> Installed:
        return install_rpm(target)


FORMAT = RpmFormat()


def rpmlintrc_name(name: str) -> str:
    """The rpmlintrc written beside the package named ``name``."""
    return f"{name}.rpmlintrc"


def is_generated_rpmlintrc(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts as the rpmlintrc venvpack writes."""
    try:
        with open(path, "rb", opener=_no_follow) as file:
            head = file.read(200)
    except OSError:
        return False
    first = head.split(b"\n", 1)[0]
    return first.startswith(b"# rpmlint filters for ") and b"(generated by venvpack" in first


def _no_follow(path: str, flags: int) -> int:
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path}: not a regular file")
    return fd


# --- Reading back ------------------------------------------------------------------------

RPM_MAGIC = b"\xed\xab\xee\xdb"
"""How an rpm's lead begins."""
_HEADER_MAGIC = b"\x8e\xad\xe8\x01"
_ROOT_INSIDE = "/run/root"
"""Where rpm, run from the host's ``/usr`` inside the sandbox, finds the root to install in."""


def unpack_rpm(artifact: Stream, into: Unpacker) -> None:
    """The payload: past the lead (96 bytes), the signature header (padded to 8 bytes) and
    the header, one compressed cpio archive."""
    artifact.seek(96)
    for padded in (True, False):
        intro = artifact.read(16)
        if len(intro) != 16 or intro[:4] != _HEADER_MAGIC:
            raise ArtifactError(f"{into.name}: not a readable rpm (no header where one belongs)")
        entries, data = int.from_bytes(intro[8:12], "big"), int.from_bytes(intro[12:16], "big")
        size = 16 * entries + data
        if padded:
            size += -(16 + size) % 8
        artifact.seek(size, io.SEEK_CUR)
    into.archive(artifact, "cpio")


def install_rpm(target: Target) -> Installed:
    """``verify``: ``rpm -i --root`` into a private copy of the root, the host's rpm run in
    the same sandbox as the package's scriptlets (a user namespace). A package for another
    machine goes into that machine's root with ``--ignorearch`` (rpm compares it with the
    host's); its scriptlets run in the root under emulation."""
    from venvpack.platform import is_foreign
    from venvpack.roots import run_untrusted
    from venvpack.verify import TIMEOUT

    if shutil.which("rpm") is None:
        raise ToolMissingError("verifying an .rpm needs rpm (apt-get install rpm)")
    copy = target.fresh_root()
    inside = f"{target.bound}/{target.original.name}"
    options = ["--dbpath", "/var/lib/rpm", "--nodeps", "--nosignature"]
    options += ["--ignorearch"] if is_foreign(target.machine) else []
    proc = run_untrusted(
        copy,
        ["rpm", "-i", "--root", _ROOT_INSIDE, *options, inside],
        root_at=_ROOT_INSIDE,
        files={target.artifact: inside},
        timeout=TIMEOUT,
    )
    return target.installed(copy, proc)
