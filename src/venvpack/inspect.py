"""``venvpack inspect``: what an artifact contains and whether it is self-contained.

Reads an environment directory, tarball, ``.deb`` or ``.rpm`` (``artifact``) without running
anything from it, and reports the interpreter, sizes, the glibc floor and the file that sets
it, grafted libraries, and every problem that would make it fail elsewhere: libraries that do
not resolve, search paths that leave the tree, shebangs, ``.pth`` lines, ``pyvenv.cfg`` keys
and symlinks pointing outside it, files naming the build directory. It judges environments
venvpack did not make as well (``uv venv``, ``python -m venv``) and says why they are not
self-contained. The JSON form follows ``schemas/inspect-1.json``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from venvpack.audit import Problem, SearchPath, TreeView, check_tree
from venvpack.audit import inside as _inside
from venvpack.elf import ElfInfo, is_elf, read_elf
from venvpack.emit import load_format
from venvpack.errors import ElfError, VenvpackError
from venvpack.glibc import floor_setters, judge_floor, parse_glibc, symbols_needing
from venvpack.manifest import MANIFEST_PATH, InstallSource, Manifest
from venvpack.platform import machine_of, system_libraries
from venvpack.sbom import SBOM_PATH, LibraryReport, library_report
from venvpack.unpack import (
    DIRECTORY,
    Opened,
    glob_inside,
    is_file_inside,
    open_artifact,
    read_inside,
    read_text_inside,
)

__all__ = [
    "SCHEMA_VERSION",
    "InspectReport",
    "Problem",
    "inspect_artifact",
    "inspect_tree",
    "render_text",
    "schema_text",
]

SCHEMA_VERSION = 1
LARGEST = 10
"""How many distributions the report lists, largest first."""

_SYSTEM_INTERPRETERS = frozenset(
    {"/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/sh", "/usr/bin/bash", "/usr/bin/env"}
)
_PYVENV_PATH_KEYS = (
    "home",
    "executable",
    "command",
    "base-prefix",
    "base-exec-prefix",
    "base-executable",
    "prefix",
    "exec-prefix",
)
# Where venvpack builds: `build -o X` in `.X.<random>.venvpack/env`, tar/deb/rpm in
# `.venvpack-build-<random>/env`; pyenv compiles CPython in `/tmp/python-build.<date>.<pid>`.
_BUILD_DIR = re.compile(
    rb"(/[^\x00-\x20\"'<>|:;]*?)?/(?:\.venvpack-build-[A-Za-z0-9_]+|"
    rb"\.[A-Za-z0-9][A-Za-z0-9+._-]*\.[A-Za-z0-9_]{8}\.venvpack)(?:/env)?"
    rb"|/tmp/python-build\.[0-9.]+"
)
_SCAN_LIMIT = 16 << 20
"""Text files larger than this are not searched for build paths (none such are text)."""


@dataclass(frozen=True)
class InterpreterReport:
    path: str | None
    """``bin/python`` resolved, relative to the root; None when it is missing or leaves the
    tree."""
    version: str | None
    link_mode: str
    """``symlink``, ``copy``, ``hardlink`` (venvpack's modes) or ``none``."""
    bundled: bool
    """The tree holds an interpreter with its standard library."""


@dataclass(frozen=True)
class Sizes:
    """Bytes on disk (apparent sizes; hardlinks counted once)."""

    interpreter: int
    grafted: int
    site_packages: int
    bytecode: int
    other: int
    total: int


@dataclass(frozen=True)
class DistributionSize:
    name: str
    version: str
    size: int


@dataclass(frozen=True)
class GlibcReport:
    floor: str | None
    """Highest GLIBC_x.y any ELF file needs; None when none names one."""
    file: str | None
    symbol_version: str | None
    symbols: tuple[str, ...] = ()
    """Some of the symbols the file imports at that version."""
    max: str | None = None
    """``--max-glibc``, when given."""
    above_max: tuple[dict[str, str], ...] = ()
    """Every file needing more than ``max``: path, version, symbol_version."""
    optional_modules: tuple[str, ...] = ()
    """When only optional stdlib modules raise the floor above ``max``: leave these out."""


@dataclass(frozen=True)
class GraftedReport:
    soname: str
    path: str
    origin: str
    present: bool


@dataclass(frozen=True)
class InspectReport:
    artifact: str
    kind: str
    root: str
    """The environment's directory inside the artifact (``.`` for a directory)."""
    installed_at: str | None
    venvpack: dict[str, str] | None
    """Name, version and venvpack_version from the manifest; None without one."""
    interpreter: InterpreterReport
    sizes: Sizes
    distributions: tuple[DistributionSize, ...]
    glibc: GlibcReport
    grafted: tuple[GraftedReport, ...]
    search_paths: tuple[SearchPath, ...]
    elf_files: int
    source: InstallSource | None
    """The manifest's ``source``: kind, files with sha256, extras, groups."""
    problems: tuple[Problem, ...]
    schema_version: int = SCHEMA_VERSION
    self_contained: bool = field(default=False)
    native_libraries: tuple[LibraryReport, ...] = ()
    """Security-relevant native libraries (OpenSSL, SQLite, zlib ...): version, file and
    origin (:func:`venvpack.sbom.library_report`); empty without a manifest."""
    sbom: str | None = None
    """The SBOM the environment carries (:data:`venvpack.sbom.SBOM_PATH`), if it has one."""
    machine: str | None = None
    """The machine the environment runs on (``platform.machine()``'s spelling: ``x86_64``,
    ``aarch64``): the manifest's, else the bundled interpreter's ELF header; None when
    neither says."""
    image: dict[str, Any] | None = None
    """For a container image, what its config and manifest say (the format's
    ``describe``: platform, layers, base, entrypoint, user); None for other kinds."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def schema_text() -> str:
    """The JSON Schema the ``--json`` output follows, as shipped in the package, with the
    kinds ``kind`` may name filled in from the registry (``directory`` and the formats
    registered now)."""
    from importlib import resources

    from venvpack.emit import format_names
    from venvpack.unpack import DIRECTORY

    text = (
        resources.files("venvpack")
        .joinpath("schemas")
        .joinpath(f"inspect-{SCHEMA_VERSION}.json")
        .read_text(encoding="utf-8")
    )
    schema = json.loads(text)
    schema["properties"]["kind"]["enum"] = [DIRECTORY, *format_names()]
    return json.dumps(schema, indent=2) + "\n"


def inspect_artifact(path: Path, *, max_glibc: str | None = None) -> InspectReport:
    """Open ``path`` (directory, tarball, deb or rpm) and report on the environment in it."""
    if max_glibc is not None:
        parse_glibc(max_glibc)
    with open_artifact(path) as opened:
        report = inspect_tree(opened, artifact=str(path), max_glibc=max_glibc)
    describe = (
        None if opened.kind == DIRECTORY else getattr(load_format(opened.kind), "describe", None)
    )
    if describe is not None:
        report = replace(report, image=describe(path))
    return report


class _Context:
    """The tree being inspected and how to tell inside from outside."""

    def __init__(self, opened: Opened, manifest: Manifest | None) -> None:
        self.root = opened.root
        self.real_root = Path(os.path.realpath(opened.root))
        self.kind = opened.kind
        locations = [opened.installed_at] if opened.installed_at else []
        if manifest is not None and manifest.link_mode != "symlink":
            locations.append(manifest.prefix)  # copy/hardlink trees run at their prefix
        if opened.kind == DIRECTORY:
            locations = [str(self.real_root), *locations[1:]]
        self.locations = [os.path.normpath(loc) for loc in locations]
        self.prefix = manifest.prefix if manifest is not None else None
        # Where an absolute path may point because the tree never moves from there: a
        # package's install location, a copy/hardlink tree's prefix. A directory or a
        # tarball can move, so a path naming where it is now does not count.
        fixed = [opened.installed_at] if opened.fixed else []
        if manifest is not None and manifest.link_mode != "symlink":
            fixed.append(manifest.prefix)
        self.fixed = [os.path.normpath(loc) for loc in fixed if loc]
        self.problems: list[Problem] = []
        self.view = TreeView(self.root, self.locations)

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def add(self, code: str, path: Path | str, message: str) -> None:
        rel = path if isinstance(path, str) else self.rel(path)
        self.problems.append(Problem(code, rel, message))

    def absolute_inside(self, text: str) -> Path | None:
        """The in-tree file an absolute path names once installed, or None when outside."""
        return self.view.absolute_inside(text)

    def escape(self, path: Path) -> str | None:
        """The symlink target by which ``path`` leaves the tree; None when it loops."""
        return self.view.escape(path)

    def resolve(self, path: Path) -> Path | None:
        """Follow ``path``'s symlinks inside the tree; None when they leave it or loop."""
        return self.view.resolve(path)


def inspect_tree(opened: Opened, *, artifact: str, max_glibc: str | None = None) -> InspectReport:
    """Report on the environment at ``opened.root``."""
    root = opened.root
    manifest = _load_manifest(root)
    ctx = _Context(opened, manifest if isinstance(manifest, Manifest) else None)
    if isinstance(manifest, str):
        ctx.add("manifest-invalid", MANIFEST_PATH, manifest)
        manifest = None
    cfg = _read_pyvenv_cfg(root)
    if cfg is None:
        ctx.add("no-pyvenv-cfg", "pyvenv.cfg", "no pyvenv.cfg: not a virtual environment")
        cfg = {}
    interpreter = _interpreter(ctx, manifest, cfg)
    _check_pyvenv_cfg(ctx, cfg)
    # bin/python* is judged with the interpreter
    check = check_tree(
        ctx.view,
        system_libraries(),
        judged_elsewhere=lambda p: p.parent == root / "bin" and p.name.startswith("python"),
        machine=manifest.target.machine if manifest is not None else None,
    )
    ctx.problems += check.link_problems
    _check_scripts(ctx)
    _check_pth(ctx)
    _check_build_paths(ctx)

    ctx.problems += check.elf_problems
    links = check.links
    grafted = _grafted(ctx, manifest)
    glibc = _glibc(ctx, list(links.infos.values()), links.resolved, max_glibc)
    site_packages = _site_packages(root)
    grafted_paths = {root / g.path for g in grafted}
    return InspectReport(
        artifact=artifact,
        kind=opened.kind,
        root=str(root.relative_to(opened.tree)) if root != opened.tree else ".",
        installed_at=opened.installed_at,
        venvpack=(
            {
                "name": manifest.name,
                "version": manifest.version,
                "venvpack_version": manifest.venvpack_version,
                "prefix": manifest.prefix,
            }
            if manifest is not None
            else None
        ),
        interpreter=interpreter,
        sizes=_sizes(root, grafted_paths, site_packages),
        distributions=tuple(_distributions(root, site_packages)[:LARGEST]),
        glibc=glibc,
        grafted=tuple(grafted),
        search_paths=check.search_paths,
        elf_files=len(check.elf_files),
        source=manifest.source if manifest is not None else None,
        problems=tuple(ctx.problems),
        self_contained=not ctx.problems,
        native_libraries=library_report(root, manifest) if manifest is not None else (),
        sbom=SBOM_PATH if is_file_inside(root, root / SBOM_PATH) else None,
        machine=_machine(ctx, manifest, interpreter),
    )


def _machine(
    ctx: _Context, manifest: Manifest | None, interpreter: InterpreterReport
) -> str | None:
    """What the manifest records, else what the interpreter's ELF header names."""
    if manifest is not None:
        return manifest.target.machine
    if interpreter.path is None:
        return None
    path = ctx.root / interpreter.path
    try:
        return machine_of(read_elf(path)) if is_elf(path) else None
    except (OSError, ElfError):
        return None


def _load_manifest(root: Path) -> Manifest | str | None:
    """The manifest, None without one, or why it cannot be read."""
    data = read_inside(root, root / MANIFEST_PATH)
    if data is None:
        return None
    try:
        return Manifest.from_json(data.decode("utf-8"))
    except (VenvpackError, ValueError) as exc:
        return f"unreadable venvpack manifest: {exc}"


def _read_pyvenv_cfg(root: Path) -> dict[str, str] | None:
    text = read_text_inside(root, root / "pyvenv.cfg")
    if text is None:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


# -- the interpreter --------------------------------------------------------------------


def _interpreter(
    ctx: _Context, manifest: Manifest | None, cfg: dict[str, str]
) -> InterpreterReport:
    root = ctx.root
    names = [root / "bin" / n for n in ("python", "python3")]
    link = next((n for n in names if os.path.lexists(n)), None)
    version = manifest.python.version if manifest is not None else None
    version = version or cfg.get("version_info") or cfg.get("version")
    if version is None:
        found = glob_inside(root, "lib/python3.*")
        version = found[0].name[len("python") :] if found else None
    if link is None:
        ctx.add("no-interpreter", "bin/python", "no bin/python: the environment has no interpreter")
        return InterpreterReport(None, version, "none", False)
    target = ctx.resolve(link)
    escape = ctx.escape(link) if target is None else ""
    if escape is None:
        ctx.add("symlink-loop", link, f"{ctx.rel(link)} is a symlink loop: no interpreter")
    elif target is None:
        ctx.add(
            "python-link-outside",
            link,
            f"{ctx.rel(link)} leads to {escape}, outside the tree: it only runs "
            "where that interpreter exists",
        )
    if manifest is not None:
        mode = manifest.link_mode
    elif link.is_symlink():
        mode = "symlink"
    else:
        mode = "copy"
    bundled = (
        target is not None and is_file_inside(root, target) and _has_stdlib(root, target.parent)
    )
    home = cfg.get("home")
    if target is not None and not bundled and home:
        # copy/hardlink modes: a real bin/python finds its stdlib through ``home``
        in_tree = ctx.absolute_inside(home)
        bundled = in_tree is not None and _has_stdlib(root, in_tree)
    if not bundled:
        why = f" (pyvenv.cfg home = {home})" if home else ""
        ctx.add(
            "no-interpreter",
            link,
            "no bundled interpreter: no CPython with its standard library inside the tree" + why,
        )
    return InterpreterReport(
        ctx.rel(target) if target is not None else None, version, mode, bundled
    )


def _has_stdlib(root: Path, bindir: Path) -> bool:
    """An interpreter directory (``<prefix>/bin``) whose prefix holds ``lib/python3.X/os.py``
    (inside the tree)."""
    if not _really_inside(root, bindir.parent):
        return False
    return any(is_file_inside(root, p) for p in glob_inside(bindir.parent, "lib/python3.*/os.py"))


# -- pyvenv.cfg, symlinks, scripts, .pth, build paths -----------------------------------


def _check_pyvenv_cfg(ctx: _Context, cfg: dict[str, str]) -> None:
    for key in _PYVENV_PATH_KEYS:
        value = cfg.get(key)
        if not value:
            continue
        for token in value.split():
            if token.startswith("/") and ctx.absolute_inside(token) is None:
                ctx.add(
                    "pyvenv-cfg-outside",
                    "pyvenv.cfg",
                    f"pyvenv.cfg {key} = {value}: {token} is outside the tree"
                    + (" (a host interpreter)" if key in ("home", "executable") else ""),
                )
                break
    if cfg.get("include-system-site-packages", "false").lower() == "true":
        ctx.add(
            "pyvenv-cfg-outside",
            "pyvenv.cfg",
            "include-system-site-packages = true: imports from the host's site-packages",
        )


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        yield Path(dirpath), dirnames, sorted(filenames)


def _script_dirs(root: Path) -> list[Path]:
    """``bin`` and ``python/bin`` when they are directories of the tree (not links out)."""
    dirs = (root / "bin", root / "python" / "bin")
    return [d for d in dirs if not d.is_symlink() and d.is_dir() and _really_inside(root, d)]


def _really_inside(root: Path, path: Path) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def _check_scripts(ctx: _Context) -> None:
    for directory in _script_dirs(ctx.root):
        for path in sorted(directory.iterdir()):
            if path.is_symlink():
                continue
            head = read_inside(ctx.root, path, 1024)
            if head is None or not head.startswith(b"#!"):
                continue
            first = head[2:].split(b"\n", 1)[0].strip()
            interp = first.split()[0].decode(errors="replace") if first else ""
            if interp.startswith("/") and interp not in _SYSTEM_INTERPRETERS:
                norm = os.path.normpath(interp)
                if not any(norm.startswith(loc.rstrip("/") + "/") for loc in ctx.fixed):
                    where = (
                        "a path in the tree where it was made: breaks when it moves"
                        if _inside(Path(interp), ctx.real_root)
                        else "outside the tree"
                    )
                    ctx.add("shebang-outside", path, f"shebang #!{interp} names {where}")


def _site_packages(root: Path) -> list[Path]:
    """``lib/python3.X/site-packages`` directories of the tree (a link out counts as none)."""
    return [p for p in glob_inside(root, "lib/python3*/site-packages") if not p.is_symlink()]


def _check_pth(ctx: _Context) -> None:
    for site in _site_packages(ctx.root):
        for pth in glob_inside(site, "*.pth"):
            text = read_text_inside(ctx.root, pth) or ""
            for line in text.splitlines():
                text = line.strip()
                if not text or text.startswith(("#", "import ", "import\t")):
                    continue
                if text.startswith("/"):
                    outside = ctx.absolute_inside(text) is None
                else:
                    outside = not _inside(Path(os.path.normpath(site / text)), ctx.root)
                if outside:
                    ctx.add("pth-outside", pth, f"line {text!r} adds a path outside the tree")


def _check_build_paths(ctx: _Context) -> None:
    """Text files naming the build directory (or, for a directory, the tree's own absolute
    location when that is not where it is meant to be installed)."""
    own: re.Pattern[bytes] | None = None
    if ctx.kind == "directory" and ctx.prefix != str(ctx.real_root):
        own = re.compile(re.escape(os.fsencode(ctx.real_root)) + rb"(?![A-Za-z0-9._+-])")
    for directory, _dirnames, filenames in _walk(ctx.root):
        for name in filenames:
            path = directory / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size > _SCAN_LIMIT:
                continue
            data = read_inside(ctx.root, path, _SCAN_LIMIT)
            if data is None or data.startswith(b"\x7fELF"):
                continue  # C assert strings may name the compile directory; RUNPATHs are
                # checked on their own
            m = _BUILD_DIR.search(data)
            if m is not None:
                ctx.add(
                    "build-path",
                    path,
                    f"names the build directory {m.group(0).decode(errors='replace')}",
                )
            elif own is not None and b"\0" not in data[:8192] and own.search(data):
                ctx.add(
                    "build-path",
                    path,
                    f"names the tree's own location {ctx.real_root}: breaks when it moves",
                )


# -- ELF --------------------------------------------------------------------------------


def _grafted(ctx: _Context, manifest: Manifest | None) -> list[GraftedReport]:
    if manifest is None:
        return []
    out = []
    for g in manifest.grafted:
        present = is_file_inside(ctx.root, ctx.root / g.path)
        out.append(GraftedReport(g.soname, g.path, g.origin, present))
        if not present:
            ctx.add(
                "grafted-missing",
                g.path,
                f"{g.soname} (grafted from {g.origin}) is listed in the manifest but missing",
            )
    return out


def _glibc(
    ctx: _Context,
    infos: list[ElfInfo],
    resolved: Mapping[Path, tuple[Path, ...]],
    max_glibc: str | None,
) -> GlibcReport:
    setters = floor_setters(ctx.root, infos)
    if not setters:
        return GlibcReport(None, None, None, max=max_glibc)
    top = setters[0]
    symbols = tuple(symbols_needing(ctx.root / top.path, top.symbol_version))
    verdict = judge_floor(ctx.root, infos, resolved, max_glibc) if max_glibc else None
    if verdict is None:
        return GlibcReport(top.version, top.path, top.symbol_version, symbols, max_glibc)
    assert max_glibc is not None
    ctx.add("glibc-above-max", verdict.above[0].path, verdict.message(max_glibc))
    return GlibcReport(
        top.version,
        top.path,
        top.symbol_version,
        symbols,
        max_glibc,
        tuple(
            {"path": s.path, "version": s.version, "symbol_version": s.symbol_version}
            for s in verdict.above
        ),
        verdict.optional_modules,
    )


# -- sizes ------------------------------------------------------------------------------


def _sizes(root: Path, grafted: set[Path], site_packages: list[Path]) -> Sizes:
    seen: set[tuple[int, int]] = set()
    parts = dict.fromkeys(("interpreter", "grafted", "site_packages", "bytecode", "other"), 0)
    runtime = root / "python"
    for directory, _dirnames, filenames in _walk(root):
        for name in filenames:
            path = directory / name
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if name.endswith(".pyc"):
                part = "bytecode"
            elif path in grafted:
                part = "grafted"
            elif _inside(path, runtime):
                part = "interpreter"
            elif any(_inside(path, s) for s in site_packages):
                part = "site_packages"
            else:
                part = "other"
            parts[part] += st.st_size
    return Sizes(total=sum(parts.values()), **parts)


def _distributions(root: Path, site_packages: list[Path]) -> list[DistributionSize]:
    out: list[DistributionSize] = []
    for site in site_packages:
        for dist_info in glob_inside(site, "*.dist-info"):
            name, version = _name_version(root, dist_info)
            size = 0
            record = read_text_inside(root, dist_info / "RECORD") or ""
            for row in csv.reader(io.StringIO(record)):
                if row:
                    file = site / row[0]
                    if not file.is_symlink() and is_file_inside(root, file):
                        size += file.stat().st_size
            out.append(DistributionSize(name, version, size))
    out.sort(key=lambda d: (-d.size, d.name))
    return out


def _name_version(root: Path, dist_info: Path) -> tuple[str, str]:
    name, _, version = dist_info.name[: -len(".dist-info")].partition("-")
    metadata = read_text_inside(root, dist_info / "METADATA", 1 << 20)
    if metadata is not None:
        for line in metadata.splitlines():
            if not line:
                break
            if line.startswith("Name:"):
                name = line[5:].strip()
            elif line.startswith("Version:"):
                version = line[8:].strip()
    return name, version


# -- text -------------------------------------------------------------------------------


def _image_lines(image: dict[str, Any]) -> list[str]:
    """A container image's platform, base, layers and how it runs."""
    lines = [f"  image: {image['platform']}, user {image['user']}, workdir {image['workdir']}"]
    lines.append(f"  entrypoint: {' '.join(image['entrypoint'] + image['cmd']) or '(none)'}")
    base = image["base"] or "none (scratch)"
    digest = f" ({image['base_digest']})" if image["base_digest"] else ""
    lines.append(f"  base: {base}{digest}")
    lines.append(f"  layers ({len(image['layers'])}, bottom first):")
    for layer in image["layers"]:
        short = layer["digest"].split(":", 1)[-1][:12]
        lines.append(f"    {short}  {_mib(layer['size']):>10}  {layer['holds']}")
    return lines


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def render_text(report: InspectReport, limit: int = 8) -> str:
    """The report as a readable table; at most ``limit`` problems of one kind are listed."""
    lines: list[str] = []
    add = lines.append
    add(f"{report.artifact} ({report.kind}, environment at {report.root})")
    if report.venvpack:
        v = report.venvpack
        made = v["venvpack_version"] or "?"
        add(f"  made by venvpack {made}: {v['name']} {v['version']}, prefix {v['prefix']}")
    else:
        add("  not made by venvpack (no .venvpack/manifest.json)")
    i = report.interpreter
    add(
        f"  interpreter: CPython {i.version or '?'}, link mode {i.link_mode}, "
        + (f"bundled at {i.path}" if i.bundled else "not bundled")
    )
    if report.machine:
        add(f"  machine: {report.machine}")
    s = report.sizes
    add(
        f"  size {_mib(s.total)}: interpreter {_mib(s.interpreter)}, "
        f"grafted {_mib(s.grafted)}, site-packages {_mib(s.site_packages)}, "
        f"byte-code {_mib(s.bytecode)}, other {_mib(s.other)}"
    )
    if report.distributions:
        add("  largest distributions:")
        width = max(len(d.name) + len(d.version) + 1 for d in report.distributions)
        for d in report.distributions:
            add(f"    {(d.name + ' ' + d.version).ljust(width)}  {_mib(d.size):>10}")
    g = report.glibc
    if g.floor:
        eg = f", e.g. {', '.join(g.symbols)}" if g.symbols else ""
        add(f"  glibc floor: {g.floor}, set by {g.file} ({g.symbol_version}{eg})")
    else:
        add("  glibc floor: none (no ELF file names a GLIBC version)")
    if g.max:
        add(
            f"  --max-glibc {g.max}: "
            + (f"{len(g.above_max)} file(s) need more" if g.above_max else "met")
        )
        for item in g.above_max[:limit]:
            add(f"    {item['path']}  {item['symbol_version']}")
    if report.grafted:
        add(f"  grafted libraries ({len(report.grafted)}):")
        for lib in report.grafted:
            mark = "" if lib.present else "  MISSING"
            add(f"    {lib.soname:<24} from {lib.origin}{mark}")
    if report.native_libraries:
        add(f"  security-relevant native libraries ({len(report.native_libraries)}):")
        for native in report.native_libraries:
            version = native.version or "?"
            add(f"    {native.family:<9} {version:<10} {native.path}  ({native.origin})")
    if report.sbom:
        add(f"  SBOM: {report.sbom} (venvpack inspect --sbom prints it)")
    if report.source:
        files = ", ".join(f"{f.name} sha256:{f.sha256[:12]}" for f in report.source.files)
        add(f"  installed from: {report.source.kind}" + (f" ({files})" if files else ""))
    bad_paths = [p for p in report.search_paths if p.problem]
    add(
        f"  ELF files: {report.elf_files}, search paths: {len(report.search_paths)}"
        + (f", {len(bad_paths)} leaving the tree" if bad_paths else ", all inside the tree")
    )
    if report.image:
        lines += _image_lines(report.image)
    if report.problems:
        add(f"  problems ({len(report.problems)}):")
        counts: dict[str, int] = {}
        for problem in report.problems:
            counts[problem.code] = counts.get(problem.code, 0) + 1
            if counts[problem.code] <= limit:
                where = f"{problem.path}: " if problem.path else ""
                add(f"    [{problem.code}] {where}{problem.message}")
        for code, n in counts.items():
            if n > limit:
                add(f"    [{code}] ... and {n - limit} more (--json lists all)")
        add("  not self-contained")
    else:
        add("  self-contained: no problems found")
    return "\n".join(lines) + "\n"
