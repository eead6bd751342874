"""Emitter ``deb``: a Debian package that installs the environment at its prefix.

The package is described once for every system format (:func:`venvpack.system_package.describe`:
name, version, summary, description, license, maintainer, relations, the service unit, the
files), then planned in Debian's terms (:func:`plan_package`: control fields, maintainer
scripts, the DEP-5 copyright and the members of the control and data trees) and written, either as
a ``.deb`` (ar + GNU tar, written by :mod:`venvpack.archive`, so no dpkg is needed on the
build host) or, with ``tree_only``, as the directory ``dpkg-deb --build`` takes.

Every generated file comes from ``packaging-templates/deb/``. User text reaches the control
file only through the escaping filters defined here (``deb_line``, ``deb_description``), and
is validated before any work starts (:class:`DebOptions`, by the rules every system format
shares), so a newline can never start a field of its own.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import textwrap
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvpack import __version__, templates
from venvpack.archive import (
    Compression,
    Entry,
    EntryKind,
    FileDigest,
    Progress,
    TarPlan,
    compressed_writer,
    source_date_epoch,
    write_ar,
    write_archive,
    write_tar,
)
from venvpack.config import BuildSpec, check_text, validate_name
from venvpack.elf import is_elf, is_pie, read_elf
from venvpack.emit import LEVEL, OUTPUT, Option
from venvpack.errors import ArtifactError, ConfigError, ElfError, EmitError
from venvpack.manifest import MANIFEST_PATH, BuiltEnv
from venvpack.metadata import SpdxCompound, SpdxLicense, SpdxNode, one_line, parse_spdx
from venvpack.output import atomic_output
from venvpack.platform import PackageArch, package_arch
from venvpack.policy import load_json
from venvpack.system_package import (
    PACKAGE_NAME,
    SYSTEM_OPTIONS,
    PackageInfo,
    Relations,
    SystemOptions,
    check_build,
    check_maintainer,
    describe,
    parse_relation,
    system_fields,
    walk_tree,
)
from venvpack.validate import control_character, file_name, strip_control
from venvpack.versions import deb_version

if TYPE_CHECKING:
    from venvpack.unpack import Stream, Unpacker
    from venvpack.verify import Installed, Target

__all__ = [
    "AR_MAGIC",
    "COMPRESSIONS",
    "FORMAT",
    "DebArch",
    "DebEmitter",
    "DebFormat",
    "DebOptions",
    "DebPackage",
    "deb_description",
    "deb_line",
    "deb_lines",
    "deb_text",
    "debian_arch",
    "dep5_license",
    "install_deb",
    "maintainer_from_environment",
    "package_version",
    "parse_depends",
    "plan_package",
    "render_package",
    "unpack_deb",
]

COMPRESSIONS = ("gzip", "xz", "zstd")
"""Member compressions dpkg reads (zstd only from dpkg 1.21.18). gzip is the default: every
dpkg reads it, and deflated on all cores it costs a fraction of xz's time even at xz -0
(docs/measurements.md, Compression levels)."""
DEFAULT_COMPRESSION = "gzip"
DEFAULT_SECTION = "misc"


def package_version(version: str, options: SystemOptions) -> str:
    """The full Debian version ``[epoch:]upstream-revision`` of the application's PEP 440
    ``version``; ``--epoch`` replaces the version's own epoch. The revision (``--release``)
    makes the package non-native, which it is: the software comes from elsewhere."""
    upstream = deb_version(version)
    if options.epoch is not None:
        _, sep, rest = upstream.partition(":")
        upstream = f"{options.epoch}:{rest if sep else upstream}"
    return f"{upstream}-{options.release}"


# All patterns are used with fullmatch: "$" would let a trailing newline through.
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_ARCH_RE = re.compile(r"[a-z0-9]+")
_SECTION_RE = re.compile(r"(?:(?:contrib|non-free|non-free-firmware)/)?[a-z0-9][a-z0-9+.-]*")
# The architecture qualifier of a relation in Depends: ``name:any``, ``name:amd64``.
_ARCH_QUALIFIER_RE = re.compile(
    rf"(?P<name>{PACKAGE_NAME})(?P<arch>:[a-z0-9-]+)(?P<rest>\s*(?:\(.*)?)"
)
_PSF_NOTICE_RE = re.compile(
    r'"(Copyright \(c\) 2001[0-9, -]*Python Software Foundation; All Rights Reserved)"'
)
_WRAP = 79


# --- options and their validation ------------------------------------------------------------


@dataclass(frozen=True)
class DebOptions(SystemOptions):
    """What ``venvpack deb`` adds to an environment; validated when created. The options
    every system package has (commands, service, user, files, relations, release, epoch,
    maintainer, description, homepage) and their rules come from
    :class:`~venvpack.system_package.SystemOptions`.

    Checks that need the environment (package name, version, architecture, commands) run
    when the package is planned; everything here is checked before anything is built.
    """

    depends: tuple[str, ...] = ()
    """Debian relations added after ``libc6 (>= <glibc floor>)``; ``a, b | c`` accepted."""
    section: str = DEFAULT_SECTION
    compression: str = DEFAULT_COMPRESSION
    level: int | None = None
    """Compression level of the members; None: the compression's default."""
    tree_only: bool = False
    """Write the control + data tree for ``dpkg-deb --build`` instead of a .deb."""

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_depends(self.depends)
        if not _SECTION_RE.fullmatch(self.section):
            raise ConfigError(f"invalid Debian section {self.section!r}")
        if self.compression not in COMPRESSIONS:
            raise ConfigError(
                f"unknown compression {self.compression!r} (use {', '.join(COMPRESSIONS)})"
            )
        Compression(self.compression).resolve_level(self.level)


def parse_depends(specs: Iterable[str]) -> tuple[str, ...]:
    """``--depends`` values as canonical Debian relations, one per list element.

    Each value may hold several relations separated by commas and alternatives separated by
    ``|``, each one a relation of the grammar every system format shares
    (:func:`~venvpack.system_package.parse_relation`), with Debian's ``:arch`` qualifier; anything
    else (a newline, a second field, arch lists of source packages) is refused.
    """
    out: list[str] = []
    for spec in specs:
        if control_character(spec):
            raise ConfigError(f"--depends {spec!r}: line break or control character")
        for relation in spec.split(","):
            alternatives = []
            for alternative in relation.split("|"):
                text, arch = alternative.strip(), ""
                qualified = _ARCH_QUALIFIER_RE.fullmatch(text)
                if qualified:
                    text, arch = qualified["name"] + qualified["rest"], qualified["arch"]
                parsed = parse_relation(text, "--depends")
                alternatives.append(
                    f"{parsed.name}{arch} ({parsed.op} {parsed.version})"
                    if parsed.op
                    else parsed.name + arch
                )
            out.append(" | ".join(alternatives))
    return tuple(out)


# --- the architecture map -----------------------------------------------------------------

DebArch = PackageArch
"""Debian's view of a machine: its architecture (``dpkg --print-architecture``) and the C
library package the ``Depends`` names."""


def debian_arch(machine: str) -> DebArch:
    """The Debian architecture of an interpreter whose ``platform.machine()`` is ``machine``."""
    return package_arch(machine, "deb", "Debian")


# --- escaping filters for the control file ---------------------------------------------------


def deb_line(value: object) -> str:
    """A single-line field value; a line break here would start a new field, so it is refused."""
    text = str(value)
    if control_character(text, "\t"):
        raise EmitError(f"line break or control character in control field value {text!r}")
    return text


def _clean_line(line: str) -> str:
    """One line of user text: tabs expanded, other control characters dropped."""
    return strip_control(line.expandtabs(8)).rstrip()


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


def deb_lines(values: str | Iterable[object]) -> str:
    """A line-based list (DEP-5 ``Copyright:``, ``Upstream-Contact:``): the first value on
    the field's line, each further one on a continuation line; each must be one line."""
    items = [deb_line(v) for v in ([values] if isinstance(values, str) else values)]
    return "\n ".join(items)


def deb_text(value: object) -> str:
    """Formatted text without a synopsis (a DEP-5 ``Comment:`` or license text), as the
    continuation lines that follow its field line.

    Every line is indented by one space and blank lines become `` .``, so no line of the
    text (a license may well contain ``Files: *`` or ``License:``) can start a field or a
    paragraph; line breaks are every one Python knows, control characters are dropped.
    Lines are kept as they are (license texts are not re-wrapped).
    """
    lines = [_clean_line(line) for line in str(value).splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    out = []
    for line in lines:
        if not line.strip():
            out.append(" .")
        else:
            # " ." followed by more is reserved in deb822 text: show a leading dot verbatim.
            out.append("  " + line if line.startswith(".") else " " + line)
    return "\n".join(out)


FILTERS = {
    "deb_line": deb_line,
    "deb_lines": deb_lines,
    "deb_description": deb_description,
    "deb_text": deb_text,
}


# --- the package plan ------------------------------------------------------------------


@dataclass(frozen=True)
class DebPackage:
    """Everything a .deb (or a tree for ``dpkg-deb --build``) holds, decided and validated.

    The data tree is a :class:`~venvpack.archive.TarPlan`; the control tree is made from
    the rest once the data's md5 sums are known (:meth:`control_plan`).
    """

    package: str
    version: str
    """Full Debian version: ``[epoch:]upstream-revision``."""
    architecture: str
    fields: Mapping[str, str]
    """Control field values by lower-case name, as written (for messages and tests)."""
    control: str
    """The rendered ``control`` file."""
    scripts: Mapping[str, str]
    """Maintainer scripts by name (``postinst`` ...); empty when none is needed."""
    conffiles: tuple[str, ...]
    """Absolute paths of the files under /etc."""
    data: TarPlan
    mtime: int
    """SOURCE_DATE_EPOCH, or the time the package was planned: changelog date, ar mtimes."""

    @property
    def filename(self) -> str:
        return package_filename(self.package, self.version, self.architecture)

    def control_plan(self, digests: Sequence[FileDigest]) -> TarPlan:
        """control.tar: ``control``, ``md5sums`` (from ``digests`` of the data), ``conffiles``
        and the maintainer scripts."""
        plan = TarPlan()
        plan.add_file("./control", self.control.encode("utf-8"), 0o644, self.mtime)
        plan.add_file("./md5sums", md5sums(digests, self.conffiles).encode(), 0o644, self.mtime)
        if self.conffiles:
            text = "".join(f"{path}\n" for path in self.conffiles)
            plan.add_file("./conffiles", text.encode(), 0o644, self.mtime)
        for name, script in self.scripts.items():
            plan.add_file(f"./{name}", script.encode("utf-8"), 0o755, self.mtime)
        return plan


def package_filename(package: str, version: str, arch: str) -> str:
    """``<package>_<version>_<arch>.deb`` with the epoch dropped, as dpkg-name does."""
    return f"{package}_{version.partition(':')[2] or version}_{arch}.deb"


def plan_package(env: BuiltEnv, options: DebOptions) -> DebPackage:
    """Describe ``env``'s package (:func:`~venvpack.system_package.describe`) and decide every
    member of the .deb that renders it."""
    info = describe(env, options)
    return render_package(env, info, options)


def render_package(env: BuiltEnv, info: PackageInfo, options: DebOptions) -> DebPackage:
    """The .deb of the description ``info``: control fields, maintainer scripts, DEP-5
    copyright, changelog, lintian overrides and the members of the data tree."""
    m = env.manifest
    package = info.name
    version = package_version(info.version, options)
    arch = debian_arch(m.python.machine)
    mtime = info.build_time
    depends = ([f"{arch.libc} (>= {info.glibc_floor})"] if info.glibc_floor else []) + list(
        parse_depends(options.depends)
    )
    if not info.maintainer:
        raise ConfigError(
            "no maintainer: give --maintainer 'Full Name <address>', set DEBFULLNAME and "
            "DEBEMAIL, or name an author or maintainer with an e-mail address in the project"
        )
    contents = info.contents
    prefix, commands = contents.prefix, list(contents.commands)
    context: dict[str, Any] = {
        "package": package,
        "version": version,
        "name": package,
        "upstream_version": info.version,
        "prefix": prefix,
        "maintainer": info.maintainer,
        "homepage": info.homepage,
        "venvpack_version": __version__,
    }

    data = TarPlan()
    data.add_tree(env.root, f".{prefix}")
    for cmd in commands:
        data.add_symlink(f"./usr/bin/{cmd}", f"{prefix}/bin/{cmd}", mtime)
    doc = f"./usr/share/doc/{package}"
    data.add_file(f"{doc}/copyright", _copyright(env, info, context).encode("utf-8"), 0o644, mtime)
    changelog = templates.render("deb/changelog", date=_changelog_date(mtime), **context)
    data.add_file(f"{doc}/changelog.Debian.gz", _gzip(changelog.encode("utf-8")), 0o644, mtime)
    facts = _lint_facts(env, prefix)
    overrides = templates.render(
        "deb/lintian-overrides",
        commands=commands,
        timestamped_gzip=facts["timestamped_gzip"],
        executable_shared_library=facts["executable_shared_library"],
        position_dependent=facts["position_dependent"],
        **context,
    )
    data.add_file(f"./usr/share/lintian/overrides/{package}", overrides.encode(), 0o644, mtime)
    for item in contents.files:
        try:
            content = item.source.read_bytes()
        except OSError as exc:
            raise EmitError(f"cannot read {item.source}: {exc.strerror}") from None
        # Files under /etc are conffiles (below): dpkg keeps the administrator's edits.
        data.add_file(f".{item.dest}", content, item.mode, mtime)
    if contents.user is not None:
        # Packaged, so dpkg removes it when the package goes and it is empty.
        data.add_dir(f".{contents.user.home}", 0o755, mtime)
    scripts: dict[str, str] = {}
    unit_name = contents.unit.name if contents.unit is not None else ""
    if contents.unit is not None:
        data.add_file(f"./{contents.unit.path}", contents.unit.text.encode("utf-8"), 0o644, mtime)
    if contents.unit is not None or contents.user is not None:
        scripts["postinst"] = templates.render(
            "deb/postinst",
            package=package,
            unit=unit_name,
            user_script=contents.user_script,
            user=contents.user.name if contents.user else "",
            # An existing account's group is its own business: chown NAME: takes its login group.
            group=contents.user.name if contents.user and not contents.user.existing else "",
            home=contents.user.home if contents.user else "",
        )
    if contents.unit is not None:
        for script in ("prerm", "postrm"):
            scripts[script] = templates.render(f"deb/{script}", package=package, unit=unit_name)
    entries = data.entries
    for entry in entries:
        _check_member_name(entry.arcname)
        _check_member_name(entry.linkname)

    fields = {
        "package": package,
        "version": version,
        "architecture": arch.arch,
        "maintainer": info.maintainer,
        "installed_size": str(installed_size(entries)),
        "depends": ", ".join(depends),
        "section": options.section,
        "homepage": info.homepage,
        **_relation_fields(info.relations),
    }
    description = f"{info.summary}\n{info.description}"
    control = templates.render("deb/control", filters=FILTERS, description=description, **fields)
    fields["description"] = control.partition("\nDescription: ")[2]
    conffiles = tuple(
        e.arcname[1:]
        for e in entries
        if e.kind in (EntryKind.FILE, EntryKind.HARDLINK) and e.arcname.startswith("./etc/")
    )
    return DebPackage(
        package=package,
        version=version,
        architecture=arch.arch,
        fields=fields,
        control=control,
        scripts=scripts,
        conffiles=conffiles,
        data=data,
        mtime=mtime,
    )


def _lint_facts(env: BuiltEnv, prefix: str) -> dict[str, bool]:
    """Which by-design lintian findings the tree triggers, so that the overrides name only
    those (lintian reports an unused override):

    - ``timestamped_gzip``: a gzip file whose header records a time (numpy's test data),
      lintian's package-contains-timestamped-gzip;
    - ``executable_shared_library``: a shared library (an ELF file with a SONAME) with
      execute bits, as wheels' vendored libraries often are (numpy.libs), lintian's
      shared-library-is-executable;
    - ``position_dependent``: a program linked without PIE, as Debian links its python3.X
      (kept as it is when it is another machine's), lintian's hardening-no-pie.
    """
    facts = {
        "timestamped_gzip": False,
        "executable_shared_library": False,
        "position_dependent": False,
    }
    for entry in walk_tree(env.root, prefix, "which dpkg's line-based file lists cannot hold"):
        if entry.kind != "file":
            continue
        name = entry.path.name
        if name.endswith(".gz") and not facts["timestamped_gzip"]:
            with open(entry.path, "rb") as handle:
                header = handle.read(8)
            facts["timestamped_gzip"] = header[:2] == b"\x1f\x8b" and header[4:8] != b"\0\0\0\0"
        if (
            ".so" in name
            and not facts["executable_shared_library"]
            and entry.path.stat().st_mode & 0o111
            and is_elf(entry.path)
        ):
            try:
                facts["executable_shared_library"] = bool(read_elf(entry.path).soname)
            except ElfError:
                continue  # not a library lintian would read either
        if (
            not facts["position_dependent"]
            and entry.path.stat().st_mode & 0o111
            and is_elf(entry.path)
        ):
            try:
                program = read_elf(entry.path).is_program
            except ElfError:
                continue  # not a program lintian would read either
            facts["position_dependent"] = program and not is_pie(entry.path)
    return facts


def _relation_fields(relations: Relations) -> dict[str, str]:
    """The control fields of the package's relations besides Depends, by lower-case name."""
    return {
        "recommends": ", ".join(r.deb for r in relations.recommends),
        "conflicts": ", ".join(r.deb for r in relations.conflicts),
        "replaces": ", ".join(r.deb for r in relations.replaces),
        "provides": ", ".join(r.deb for r in relations.provides),
    }


def _check_member_name(name: str) -> None:
    # dpkg cannot handle a newline in a file name, and md5sums/conffiles are line-based.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise EmitError(f"file name {name!r} is not valid UTF-8") from None
    if control_character(name):
        raise EmitError(f"file name {name!r} contains a control character")


def _gzip(content: bytes) -> bytes:
    """gzip -9n: no name, mtime 0, so the bytes depend on the content only."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(content)
    return buf.getvalue()


def _changelog_date(epoch: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))


def _copyright(env: BuiltEnv, info: PackageInfo, context: dict[str, Any]) -> str:
    """``/usr/share/doc/<package>/copyright`` in Debian's machine-readable format (DEP-5).

    One ``Files`` paragraph per part with a license of its own, the last match winning: the
    package as a whole (the application's license), the Python distributions it needs (each
    under the license in its ``.dist-info``), the application's own files again, CPython,
    and each grafted library. The application's license files are copied in full: a
    stand-alone ``License`` paragraph for a single license, else the text of the Files
    paragraph (DEP-5 has no way to say which file belongs to which part of an expression).
    A license every Debian system holds in /usr/share/common-licenses is pointed to instead
    (whether the project names it in SPDX or its license file is that license's text).
    """
    m = env.manifest
    meta = m.metadata
    root_pattern = m.prefix.lstrip("/")
    licenses = sorted(env.root.glob("python/lib/python3*/LICENSE.txt"))
    python_license = (
        f"{m.prefix}/{licenses[0].relative_to(env.root).as_posix()}"
        if licenses
        else "https://docs.python.org/3/license.html"
    )
    people = [one_line(p) for p in (*meta.maintainers, *meta.authors)] if meta else []
    people = [p for p in dict.fromkeys(people) if p]
    authors = [one_line(p) for p in meta.authors if one_line(p)] if meta else []
    app_license = dep5_license(info.license or None)
    files = [
        (rel, (env.root / rel).read_bytes().decode("utf-8", errors="replace").strip("\n"))
        for rel in info.license_files
    ]
    texts = "\n\n".join(f"{m.prefix}/{rel}:\n\n{text}" for rel, text in files)
    common = _common_license(info.license or None)
    if common:
        # Debian has this text already: point to it (and to the project's own copies).
        texts = (
            f"On Debian systems, the full text of the {app_license} license is in\n"
            f"/usr/share/common-licenses/{common}."
        )
        if files:
            texts += f"\n\n{m.name}'s own copy:\n" + "\n".join(f"{m.prefix}/{r}" for r, _ in files)
    # A stand-alone License paragraph holds a license's text: only for one license (DEP-5
    # cannot say which file is which part of an expression) whose files are at hand.
    standalone = bool(texts) and app_license != "other" and " " not in app_license
    if not texts:
        texts = "\n".join(
            textwrap.wrap(
                f"{m.name} names no license file in its metadata."
                + (
                    f" The text of {app_license} is at https://spdx.org/licenses/."
                    if app_license != "other"
                    else f" Its license is not stated in a form this file can name: see its "
                    f"METADATA in the .dist-info directory under {m.prefix}/lib/."
                ),
                72,
            )
        )
    app_paths = [
        f"{root_pattern}/{path}/*" if (env.root / path).is_dir() else f"{root_pattern}/{path}"
        for path in (meta.paths if meta else ())
        if _DEP5_PATTERN_RE.fullmatch(path)
        and not path.startswith("/")
        and ".." not in path.split("/")
    ]
    return templates.render(
        "deb/copyright",
        filters=FILTERS,
        upstream_name=one_line(meta.name) if meta and one_line(meta.name) else m.name,
        upstream_contact=people,
        root_pattern=root_pattern,
        app_copyright=authors or [f"the authors of {m.name}"],
        app_license=app_license,
        app_license_text="" if standalone else texts,
        standalone_license_text=texts if standalone else "",
        app_paths=app_paths,
        python_version=m.python.version,
        python_license=python_license,
        python_notice=_python_notice(licenses[0]) if licenses else "",
        grafted=[(f"{root_pattern}/{g.path}", g.origin) for g in m.grafted],
        distributions=[f"{d.name} {d.version}" for d in m.distributions],
        **context,
    )


# A path DEP-5 can name as a Files pattern: no blanks (they separate patterns) and no
# wildcard or escape characters of its own.
_DEP5_PATTERN_RE = re.compile(r"[^\s*?\\\[\]]+")


@cache
def _common_licenses() -> dict[str, str]:
    licenses = load_json("deb-common-licenses.json").get("licenses")
    if not isinstance(licenses, dict) or not licenses:
        raise ConfigError("deb-common-licenses.json needs a non-empty 'licenses' object")
    for spdx, name in licenses.items():
        if not isinstance(parse_spdx(spdx), SpdxLicense):
            raise ConfigError(f"deb-common-licenses.json: {spdx!r} is not an SPDX identifier")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+-]*", name):
            raise ConfigError(f"deb-common-licenses.json: invalid file name {name!r}")
    return dict(licenses)


def _common_license(expression: str | None) -> str:
    """The file in /usr/share/common-licenses of a single-license expression, or ""."""
    try:
        node = parse_spdx(expression or "")
    except ValueError:
        return ""
    if not isinstance(node, SpdxLicense) or node.exception:
        return ""
    return _common_licenses().get(node.id, "")


def dep5_license(expression: str | None) -> str:
    """An SPDX expression as the first line of a DEP-5 ``License:`` field.

    SPDX identifiers serve as the short names; the operators become DEP-5's: ``or`` and
    ``and`` (``and`` binds tighter), ``, and`` for an AND of ORs, ``X with Y exception``.
    ``other`` when the application states no license, or one DEP-5 cannot write without
    parentheses, or the value is not an SPDX expression at all (e.g. an edited manifest).
    """
    if not expression:
        return "other"
    try:
        node = parse_spdx(expression)
    except ValueError:
        return "other"
    return _dep5(node, 0) or "other"


def _dep5(node: SpdxNode, depth: int) -> str:
    """DEP-5 text of ``node``, or "" when it nests deeper than DEP-5's three levels
    (``, and`` / ``or`` / ``and``)."""
    if isinstance(node, SpdxLicense):
        return f"{node.id} with {node.exception} exception" if node.exception else node.id
    if node.operator == "OR":
        if depth > 1:
            return ""
        parts = [_dep5(part, 2) for part in node.operands]
        return " or ".join(parts) if all(parts) else ""
    # AND: plain "and" binds tighter than "or"; an AND that holds an OR needs ", and".
    if any(isinstance(part, SpdxCompound) for part in node.operands):
        if depth > 0:
            return ""
        parts = [_dep5(part, 1) for part in node.operands]
        return ", and ".join(parts) if all(parts) else ""
    return " and ".join(_dep5(part, 2) for part in node.operands)


def _python_notice(license_file: Path) -> str:
    """The notice PSF's license asks to retain, as written in CPython's LICENSE.txt."""
    text = " ".join(license_file.read_text(encoding="utf-8", errors="replace").split())
    match = _PSF_NOTICE_RE.search(text)
    return match[1] if match else ""


def installed_size(entries: Iterable[Entry]) -> int:
    """``Installed-Size`` in KiB, computed as dpkg-gencontrol does.

    Files and symlinks count their size rounded up to whole KiB, further hard links to a
    file nothing, directories 1 KiB each.
    """
    total = 0
    for entry in entries:
        if entry.kind is EntryKind.FILE:
            total += -(-entry.size // 1024)
        elif entry.kind is EntryKind.SYMLINK:
            total += -(-len(entry.linkname.encode()) // 1024)
        elif entry.kind is EntryKind.DIR:
            total += 1
    return total


def md5sums(digests: Iterable[FileDigest], conffiles: Sequence[str] = ()) -> str:
    """The ``md5sums`` control file: every regular file except conffiles, like dh_md5sums."""
    skip = {f".{path}" for path in conffiles}
    return "".join(f"{d.md5}  {d.arcname[2:]}\n" for d in digests if d.arcname not in skip)


class _Discard:
    def write(self, data: bytes, /) -> int:
        return len(data)


def data_digests(package: DebPackage) -> tuple[FileDigest, ...]:
    """md5 sums of the data tree without writing it anywhere (for ``tree_only``)."""
    return write_tar(package.data, _Discard(), digests=True)


# --- the emitter ---------------------------------------------------------------------------


class DebEmitter:
    """Writes a .deb (or, with ``tree_only``, the tree ``dpkg-deb --build`` takes)."""

    format = "deb"

    def __init__(self, options: DebOptions, progress: Progress | None = None) -> None:
        """``progress`` receives (done, total) uncompressed bytes of data.tar while it is
        compressed, the long step of a .deb (xz), e.g. to drive the CLI's progress."""
        self.options = options
        self.progress = progress

    def check_build(self, spec: BuildSpec) -> None:
        check_build(spec)

    def filename(self, env: BuiltEnv) -> str:
        m = env.manifest
        name = package_filename(
            validate_name(m.name),
            package_version(m.version, self.options),
            debian_arch(m.python.machine).arch,
        )
        return file_name(name.removesuffix(".deb") if self.options.tree_only else name)

    def replaceable(self, path: Path) -> bool:
        return self.options.tree_only and is_deb_tree(path)

    def extras(self, env: BuiltEnv, dest: Path) -> tuple[Path, ...]:
        return ()

    def emit(self, env: BuiltEnv, dest: Path, *, replace: bool = True) -> Path:
        package = plan_package(env, self.options)
        if self.options.tree_only:
            write_tree(package, dest, replace=replace)
        else:
            write_deb(
                package,
                dest,
                Compression(self.options.compression),
                level=self.options.level,
                replace=replace,
                progress=self.progress,
            )
        return dest


# --- writers ---------------------------------------------------------------------------------


def write_deb(
    package: DebPackage,
    dest: Path,
    compression: Compression,
    *,
    level: int | None = None,
    replace: bool = True,
    progress: Progress | None = None,
) -> None:
    """The .deb: ``debian-binary``, ``control.tar.*``, ``data.tar.*``, in that order.

    data.tar is compressed first, into the staging directory beside ``dest`` (its md5 sums,
    taken as it is written, go into control.tar), then both are copied into the ar archive,
    which :func:`~venvpack.output.atomic_output` renames into place when complete.
    """
    suffix = compression.suffix
    with atomic_output(dest, replace=replace) as tmp:
        data_tmp = tmp.parent / f"data.tar{suffix}"
        digests = write_archive(
            package.data, data_tmp, compression, level, digests=True, progress=progress
        )
        control_plan = package.control_plan(digests)
        control = io.BytesIO()
        with compressed_writer(control, compression, level, size=control_plan.size) as sink:
            write_tar(control_plan, sink)
        with tmp.open("wb") as out:
            write_ar(
                out,
                [
                    ("debian-binary", b"2.0\n"),
                    (f"control.tar{suffix}", control.getvalue()),
                    (f"data.tar{suffix}", data_tmp),
                ],
                package.mtime,
            )


def write_tree(package: DebPackage, dest: Path, *, replace: bool = True) -> None:
    """The directory ``dpkg-deb --build`` takes: ``DEBIAN/`` plus the data tree.

    It is assembled beside ``dest`` and exchanged with whatever tree was there, so ``dest``
    is always complete: the old tree or the new one. Files are owned by whoever runs
    venvpack: build it with ``dpkg-deb --root-owner-group --build``.
    """
    control = package.control_plan(data_digests(package))
    with atomic_output(dest, replace=replace, replaceable=is_deb_tree) as tmp:
        tmp.mkdir()
        for entry in package.data.entries:
            _materialise(entry, tmp)
        for entry in control.entries:
            _materialise(entry, tmp / "DEBIAN")


def is_deb_tree(path: Path) -> bool:
    """Whether ``path`` is a tree :func:`write_tree` made: its ``DEBIAN/md5sums`` lists an
    environment's manifest. Only such a tree is replaced with ``--force``."""
    try:
        md5sums = (path / "DEBIAN" / "md5sums").read_bytes()
    except OSError:
        return False
    return (path / "DEBIAN" / "control").is_file() and f"/{MANIFEST_PATH}\n".encode() in md5sums


def _materialise(entry: Entry, root: Path) -> None:
    path = root / entry.arcname[2:] if entry.arcname != "." else root
    if entry.kind is EntryKind.DIR:
        path.mkdir(exist_ok=True)
        path.chmod(entry.mode)
    elif entry.kind is EntryKind.SYMLINK:
        os.symlink(entry.linkname, path)
    elif entry.kind is EntryKind.HARDLINK:
        os.link(root / entry.linkname[2:], path)
    elif isinstance(entry.source, bytes):
        path.write_bytes(entry.source)
        path.chmod(entry.mode)
    else:
        assert entry.source is not None
        shutil.copyfile(entry.source, path)
        path.chmod(entry.mode)


def maintainer_from_environment(environ: Mapping[str, str]) -> str:
    """The maintainer Debian's tools (dch) take from ``DEBFULLNAME`` and ``DEBEMAIL``.

    ``DEBEMAIL`` may itself be ``Name <address>``; ``EMAIL`` and ``NAME`` are fallbacks.
    Empty when they do not name both a name and an address (the application's metadata
    may then), a ConfigError when they do but not in a form a control file takes.
    """
    email_var = "DEBEMAIL" if environ.get("DEBEMAIL") else "EMAIL"
    name_var = "DEBFULLNAME" if environ.get("DEBFULLNAME") else "NAME"
    email = check_text(environ.get(email_var, ""), f"${email_var}").strip()
    name = check_text(environ.get(name_var, ""), f"${name_var}").strip()
    if email and "<" in email:
        return check_maintainer(email, f"${email_var}")
    if email and name:
        return check_maintainer(f"{name} <{email}>", f"${name_var} <${email_var}>")
    return ""


class DebFormat:
    """``venvpack deb``; see :class:`venvpack.emit.Format`."""

    name = "deb"
    help = "Build (or take --from) an environment and pack it as a Debian package."
    noun = "a .deb"
    summary = "installs in /opt/<name>"
    sample = "hello_1.0.0-1_amd64.deb"
    init_template: str | None = "init/deb.toml"
    fixed_location = True
    examples = (
        "venvpack deb --project . --maintainer 'Jane Doe <jane@example.org>' -o dist/",
        "venvpack deb --from build/env --service-command 'app serve' --user app",
        "venvpack deb --json | jq -r .sha256",
    )
    options = (
        Option(
            "maintainer",
            ("--maintainer",),
            "Maintainer field (default: $DEBFULLNAME <$DEBEMAIL>, else the project's first "
            "maintainer or author with a name and an address).",
            default="",
            metavar="'NAME <MAIL>'",
        ),
        Option(
            "description",
            ("--description",),
            "Synopsis line, then optional lines of extended description (default: from the "
            "project's summary and description).",
            default="",
        ),
        Option(
            "homepage",
            ("--homepage",),
            "Homepage field (default: the project's).",
            default="",
            metavar="URL",
        ),
        Option(
            "depends",
            ("--depends",),
            "Add a Debian relation, e.g. 'libpq5 (>= 15)' (repeatable).",
            multiple=True,
            metavar="SPEC",
        ),
        Option(
            "section",
            ("--section",),
            "Section field.",
            default=DEFAULT_SECTION,
            show_default=True,
        ),
        *SYSTEM_OPTIONS,
        Option(
            "compression",
            ("--compression",),
            "Compression of the package members.",
            default=DEFAULT_COMPRESSION,
            choices=COMPRESSIONS,
            show_default=True,
            group=OUTPUT,
        ),
        LEVEL,
        Option(
            "tree_only",
            ("--tree-only",),
            "Write the DEBIAN/ + data tree for 'dpkg-deb --build' instead of a .deb.",
            is_flag=True,
            group=OUTPUT,
        ),
    )

    def extensions(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        return () if values.get("tree_only") else (".deb",)

    def emitter(
        self, values: Mapping[str, Any], artifact: str | None, progress: Progress | None
    ) -> DebEmitter:
        source_date_epoch()
        # Only when neither the flag nor the environment names a maintainer is the
        # project's metadata asked, after the build, when it is known.
        options = DebOptions(
            **system_fields(values),
            maintainer=values.get("maintainer") or maintainer_from_environment(os.environ),
            description=values.get("description") or "",
            homepage=values.get("homepage") or "",
            depends=tuple(values.get("depends") or ()),
            section=values.get("section") or DEFAULT_SECTION,
            compression=values.get("compression") or DEFAULT_COMPRESSION,
            level=values.get("level"),
            tree_only=bool(values.get("tree_only")),
        )
        return DebEmitter(options, progress)

    def detect(self, head: bytes) -> bool:
        return head.startswith(AR_MAGIC)

    def unpack(self, artifact: Stream, into: Unpacker) -> None:
        unpack_deb(artifact, into)

    def install(self, target: Target) -> Installed:
        return install_deb(target)


FORMAT = DebFormat()


# --- Reading back ------------------------------------------------------------------------

AR_MAGIC = b"!<arch>\n"
"""How an ``ar`` archive, the container of a .deb, begins."""


def unpack_deb(artifact: Stream, into: Unpacker) -> None:
    """The files of the package: its ``data.tar.*`` member (``debian-binary`` and the control
    archive hold none of the environment)."""
    with closing(into.members(artifact, "ar")) as members:
        for name, stream in members:
            if name.startswith("data.tar"):
                into.archive(stream, "tar")
                return
    raise ArtifactError(f"{into.name}: no data.tar member; not a Debian package")


def install_deb(target: Target) -> Installed:
    """``verify``: ``dpkg -i`` inside a Debian root (into a private copy of it, in a user
    namespace); a root without dpkg (glibc only) gets the package's files laid where dpkg
    would place them, by the contained reader."""
    from venvpack.roots import DEBIAN_SUITES, run_untrusted
    from venvpack.unpack import extract
    from venvpack.verify import TIMEOUT

    copy = target.fresh_root()
    if target.name not in DEBIAN_SUITES:
        extract(target.original, copy, kind=FORMAT.name, whole=True)
        return target.installed(copy)
    inside = f"{target.bound}/{target.original.name}"
    proc = run_untrusted(
        copy,
        ["dpkg", "-i", inside],
        files={target.artifact: inside},
        env={
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "DEBIAN_FRONTEND": "noninteractive",
            "LANG": "C.UTF-8",
        },
        timeout=TIMEOUT,
    )
    return target.installed(copy, proc)
