"""``venvpack verify``: install or unpack an artifact in clean roots and run it there.

For each root (``roots``) the artifact's format installs it as its users would
(:meth:`venvpack.emit.Format.install`, with the sandboxed ways a :class:`Target` offers: a
package into a private copy of the root, run as the root of a user namespace; an archive
unpacked by an unprivileged user at a path with a space). Then every top-level module of
every installed distribution is imported and every command run with ``--help`` (or the
``--run`` commands); a relocatable tree is moved and checked again. A root whose glibc is
older than the artifact's floor is refused without running anything.

An artifact for another machine (its manifest's platform) is checked in that machine's roots
(:func:`~venvpack.roots.get_root`), its programs run by qemu-user, which binfmt_misc starts by
their path in any root: when it is not ready, verify stops before any work, saying how to
enable it.

The artifact is untrusted code: packages are installed and run by
:func:`~venvpack.roots.run_untrusted` (root of a user namespace, nothing of the host
writable), archives unpacked and run by ``nobody`` in :func:`~venvpack.roots.run_in`. What
the host itself does to the results (moving the installed tree) never follows their symlinks.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from venvpack.emit import format_names, load_format
from venvpack.errors import ConfigError, ToolMissingError
from venvpack.glibc import parse_glibc, version_text
from venvpack.manifest import MANIFEST_PATH, Manifest
from venvpack.platform import emulation_problem, host_machine
from venvpack.roots import (
    NOBODY,
    ROOT_NAMES,
    fresh_copy,
    get_root,
    root_glibc,
    run_in,
    run_untrusted,
)
from venvpack.unpack import (
    DIRECTORY,
    Opened,
    artifact_kind,
    glob_inside,
    open_artifact,
    read_text_inside,
)

__all__ = [
    "TIMEOUT",
    "Check",
    "Installed",
    "Runner",
    "Target",
    "VerifyReport",
    "render_text",
    "top_level_modules",
    "verify_artifact",
]

TIMEOUT = 300.0
"""Seconds any one step in a root may take."""
_MOVED = "/srv/moved app"
"""Where a package's environment is moved to, inside its root."""
_UNPACKED = "/tmp/un packed"
"""Where an archive is unpacked, as the commands see it."""
_ARTIFACT = "/tmp/artifact"
_PROBE = r"""
import importlib, json, sys, traceback
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        print(json.dumps({"module": name, "ok": True}))
    except BaseException as exc:
        print(json.dumps({"module": name, "ok": False,
                          "error": "".join(traceback.format_exception_only(type(exc), exc))}))
"""


@dataclass(frozen=True)
class Check:
    """One thing tried in one root."""

    root: str
    step: str
    """``inspect`` (root ``-``: read without running), ``install``, ``import``, ``command``,
    ``entrypoint``, ``moved import``, ``moved command`` or ``run``."""
    target: str
    """The module or command (or the artifact, for ``install`` and ``run``)."""
    status: str
    """``ok``, ``failed`` or ``refused``."""
    detail: str = ""
    """The error output, or why the root was refused."""


@dataclass(frozen=True)
class VerifyReport:
    artifact: str
    kind: str
    glibc_floor: str | None
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status == "ok" for c in self.checks)

    def to_json(self) -> str:
        data = asdict(self)
        data["ok"] = self.ok
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def verify_artifact(
    path: Path,
    roots: Sequence[str] = ("glibc",),
    *,
    run: Sequence[str] = (),
    cache: Path | None = None,
) -> VerifyReport:
    """Check ``path`` (an artifact of any registered format) in each of ``roots``
    (:data:`ROOT_NAMES`)."""
    if not os.path.lexists(path):
        raise ConfigError(f"{path} does not exist")
    if artifact_kind(path) == DIRECTORY:
        made_by = ", ".join(format_names())
        raise ConfigError(
            f"{path} is a directory: verify checks an artifact (venvpack {made_by}); "
            "use 'venvpack inspect' for a directory"
        )
    if os.geteuid() != 0:
        raise ConfigError(
            "verify runs as root: it builds the roots, installs packages into copies of them "
            "and runs tarballs as the user nobody"
        )
    for name in roots:
        if name not in ROOT_NAMES:
            raise ConfigError(f"unknown root {name!r}: choose from {', '.join(ROOT_NAMES)}")
    commands = [shlex.split(c) for c in run]
    if any(not c for c in commands):
        raise ConfigError("--run needs a command")
    with open_artifact(path) as opened:
        manifest = _manifest(opened.root)
        floor = manifest.glibc_floor if manifest is not None else None
        machine = manifest.target.machine if manifest is not None else host_machine()
        problem = emulation_problem(machine)
        if problem is not None:
            raise ToolMissingError(f"{path} is for {machine}: {problem}")
        plan = _Plan(
            opened=opened,
            artifact=path.absolute(),
            manifest=manifest,
            machine=machine,
            modules=top_level_modules(opened.root),
            commands=commands
            or [[c, "--help"] for c in (manifest.commands if manifest is not None else ())],
        )
        checks = _static(opened, path)
        for name in roots:
            checks += _in_root(plan, name, floor, cache)
    return VerifyReport(str(path), opened.kind, floor, tuple(checks))


def _static(opened: Opened, path: Path) -> list[Check]:
    """What ``inspect`` finds without running anything: a fault that happens not to break
    the commands tried (an absolute RPATH, a stray build path) still fails verification."""
    from venvpack.inspect import inspect_tree

    report = inspect_tree(opened, artifact=str(path))
    if not report.problems:
        return [Check("-", "inspect", path.name, "ok")]
    return [
        Check("-", "inspect", p.path or path.name, "failed", f"[{p.code}] {p.message}")
        for p in report.problems
    ]


@dataclass(frozen=True)
class _Plan:
    opened: Opened
    artifact: Path
    manifest: Manifest | None
    machine: str
    """The machine the artifact runs on: its roots are that machine's."""
    modules: tuple[str, ...]
    commands: list[list[str]]

    @property
    def relocatable(self) -> bool:
        return self.manifest is None or self.manifest.link_mode == "symlink"


def _manifest(root: Path) -> Manifest | None:
    text = read_text_inside(root, root / MANIFEST_PATH)
    return None if text is None else Manifest.from_json(text)


def top_level_modules(root: Path) -> tuple[str, ...]:
    """Every importable top-level module of every distribution in the environment, from
    ``top_level.txt`` or else the files ``RECORD`` lists."""
    found: set[str] = set()
    for site in glob_inside(root, "lib/python3*/site-packages"):
        for dist_info in glob_inside(site, "*.dist-info"):
            top = read_text_inside(root, dist_info / "top_level.txt")
            if top is not None:
                names = top.split()
            else:
                names = []
                record = read_text_inside(root, dist_info / "RECORD") or ""
                for row in record.splitlines():
                    first = row.split(",", 1)[0].split("/", 1)
                    if len(first) == 2:  # a package directory
                        names.append(first[0])
                    elif first[0].endswith(".py"):
                        names.append(first[0][:-3])
                    elif first[0].endswith(".so"):
                        names.append(first[0].split(".", 1)[0])
            for name in names:
                name = name.replace("/", ".")
                if name.isidentifier() and name != "__pycache__":
                    found.add(name)
    return tuple(sorted(found))


@contextmanager
def _workdir() -> Iterator[Path]:
    """A directory an unprivileged user can traverse (mkdtemp makes 0700)."""
    work = Path(tempfile.mkdtemp(prefix="venvpack-verify-"))
    try:
        work.chmod(0o755)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


Runner = Callable[[list[str], dict[str, str]], subprocess.CompletedProcess[str]]
"""Runs ``argv`` with ``env`` in one root's sandbox."""


@dataclass(frozen=True)
class Installed:
    """Where a format's :meth:`~venvpack.emit.Format.install` put the environment in one
    root, and how to run there (made by :meth:`Target.unpack` or :meth:`Target.installed`)."""

    run: Runner
    base: Path
    """The host directory everything installed lies in."""
    mount: str
    """Where ``base`` appears to the commands ``run`` runs."""
    path: str
    """The environment, relative to ``base``."""
    moved: str
    """Where a relocatable environment is moved to, relative to ``base``."""
    failure: str = ""
    """Why installing failed (the installer's last lines of output); empty when it worked."""
    entrypoint: tuple[str, ...] = ()
    """A command the artifact itself says to start (an image's entrypoint, with ``--help``),
    run as it is, as the ``entrypoint`` step; empty for artifacts that name none."""

    def location(self, path: str) -> str:
        """Where ``path`` (relative to :attr:`base`) is, as the commands see it."""
        return f"{self.mount.rstrip('/')}/{path.lstrip('/')}"


@dataclass(frozen=True)
class Target:
    """One clean root an artifact is checked in, as its format's install step sees it."""

    name: str
    """The root's name (:data:`ROOT_NAMES`)."""
    root: Path
    """The clean root: shared and cached, never written (install into :meth:`fresh_root`)."""
    work: Path
    """A private directory for this root's run, removed afterwards."""
    artifact: Path
    """A copy of the artifact, readable by every user, to bind into a sandbox read-only."""
    original: Path
    """The artifact as given (its name is the copy's name inside a sandbox)."""
    opened: Opened
    """The artifact as ``inspect`` read it (where its environment lies inside it)."""
    machine: str
    """The machine the artifact and the root are for (``platform.machine()``): another
    than this host's when its programs run under emulation."""

    bound = _ARTIFACT
    """Where :meth:`unpack`'s tool finds the artifact."""
    unpacked = _UNPACKED
    """The directory :meth:`unpack`'s tool unpacks into."""

    @property
    def installed_at(self) -> str:
        """The environment's absolute path once installed (a package's install path)."""
        return self.opened.installed_at or ""

    def fresh_root(self) -> Path:
        """A private copy of the root that the artifact's installer may change."""
        return fresh_copy(self.root, self.work / "root", untrusted=True)

    def unpack(self, argv: list[str]) -> Installed:
        """Unpack the artifact with ``argv`` (a host tool, run as ``nobody``) in a read-only
        view of the host where only the target directory is writable: the artifact is at
        :attr:`bound`, the target :attr:`unpacked` (a path with a space); the commands then
        run in the root as ``nobody``."""
        place = self.work / "un packed"
        place.mkdir()
        os.chown(place, NOBODY, NOBODY)
        binds = {place: _UNPACKED}
        proc = run_in(
            Path("/"),
            argv,
            binds={**binds, self.artifact: _ARTIFACT},
            user=NOBODY,
            timeout=TIMEOUT,
        )
        top = str(self.opened.root.relative_to(self.opened.tree))

        def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return run_in(self.root, argv, binds=binds, env=env, user=NOBODY, timeout=TIMEOUT)

        failure = _tail(proc) if proc.returncode != 0 else ""
        return Installed(run, place, _UNPACKED, top, "moved here", failure)

    def installed(
        self, copy: Path, proc: subprocess.CompletedProcess[str] | None = None
    ) -> Installed:
        """The environment installed in ``copy`` (a :meth:`fresh_root`) at its install path
        by ``proc`` (None: laid there without a process); commands run in ``copy`` as the
        root of a user namespace."""

        def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return run_untrusted(copy, argv, env=env, timeout=TIMEOUT)

        failure = _tail(proc) if proc is not None and proc.returncode != 0 else ""
        return Installed(run, copy, "/", self.installed_at, _MOVED, failure)


def _in_root(plan: _Plan, name: str, floor: str | None, cache: Path | None) -> list[Check]:
    root = get_root(name, cache, plan.machine)
    have = root_glibc(root)
    if floor is not None and have is not None and parse_glibc(floor) > have:
        why = f"refused: needs glibc {floor}, this root has {version_text(have)}"
        return [Check(name, "run", plan.artifact.name, "refused", why)]
    with _workdir() as work:
        # A copy, readable by the sandbox's users whatever the original's directory allows,
        # and bound into the sandbox alone and read-only.
        artifact = work / "artifact"
        shutil.copyfile(plan.artifact, artifact)
        artifact.chmod(0o644)
        target = Target(name, root, work, artifact, plan.artifact, plan.opened, plan.machine)
        installed = load_format(plan.opened.kind).install(target)
        if installed.failure:
            return [Check(name, "install", plan.artifact.name, "failed", installed.failure)]
        checks = [Check(name, "install", plan.artifact.name, "ok")]
        location = installed.location(installed.path)
        checks += _checks(plan, name, location, installed.run, moved=False)
        if installed.entrypoint:
            proc = installed.run(list(installed.entrypoint), {})
            status = "ok" if proc.returncode == 0 else "failed"
            detail = "" if status == "ok" else _tail(proc)
            what = shlex.join(installed.entrypoint)
            checks.append(Check(name, "entrypoint", what, status, detail))
        if plan.relocatable:
            failed = _move(plan, name, installed.base, installed.path, installed.moved)
            if failed:
                return [*checks, failed]
            moved = installed.location(installed.moved)
            checks += _checks(plan, name, moved, installed.run, moved=True)
        return checks


def _tail(proc: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    text = (proc.stderr or "").strip() or (proc.stdout or "").strip()
    return "\n".join(text.splitlines()[-lines:]) or f"exit status {proc.returncode}"


def _checks(plan: _Plan, name: str, location: str, run: Runner, *, moved: bool) -> list[Check]:
    """Import every module and run every command of the environment at ``location``."""
    prefix = "moved " if moved else ""
    env = {"PATH": f"{location}/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
    checks: list[Check] = []
    if plan.modules:
        proc = run([f"{location}/bin/python", "-c", _PROBE, *plan.modules], env)
        results = {}
        for line in proc.stdout.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            results[item["module"]] = item
        for module in plan.modules:
            item = results.get(module)
            if item is None:
                checks.append(Check(name, prefix + "import", module, "failed", _tail(proc)))
            elif item["ok"]:
                checks.append(Check(name, prefix + "import", module, "ok"))
            else:
                checks.append(
                    Check(name, prefix + "import", module, "failed", item["error"].strip())
                )
    for command in plan.commands:
        argv = list(command)
        if "/" not in argv[0] and os.path.lexists(plan.opened.root / "bin" / argv[0]):
            argv[0] = f"{location}/bin/{argv[0]}"
        proc = run(argv, env)
        status = "ok" if proc.returncode == 0 else "failed"
        detail = "" if status == "ok" else _tail(proc)
        checks.append(Check(name, prefix + "command", shlex.join(command), status, detail))
    return checks


def _move(plan: _Plan, name: str, base: Path, source: str, dest: str) -> Check | None:
    """Rename ``source`` to ``dest`` (both inside ``base``, where the artifact was installed
    and ran), or say in a failed Check why not. Done by the host, so no symlink the artifact
    planted may be followed: see :func:`_directory_under`."""
    src, dst = PurePosixPath(source.lstrip("/")), PurePosixPath(dest.lstrip("/"))
    try:
        with (
            _directory_under(base, src.parent, make=False) as src_dir,
            _directory_under(base, dst.parent, make=True) as dst_dir,
        ):
            os.rename(src.name, dst.name, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
    except OSError as exc:
        why = f"cannot move {source} to {dest}: {exc.strerror or exc}"
        return Check(name, "run", plan.artifact.name, "failed", why)
    return None


@contextmanager
def _directory_under(base: Path, relative: PurePosixPath, *, make: bool) -> Iterator[int]:
    """A descriptor of directory ``base/relative`` (made if ``make``), each component opened
    from the one before with ``O_NOFOLLOW``: never reached through a symlink."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(base, flags)
    try:
        for part in relative.parts:
            if part == "..":
                raise OSError(f"'..' in {relative}")
            if make:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            inner = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def render_text(report: VerifyReport) -> str:
    """A result table: one row per check, failures with their error output below."""
    lines = [f"{report.artifact} ({report.kind}, glibc >= {report.glibc_floor or '?'})"]
    rows = [(c.root, c.step, c.target, c.status) for c in report.checks]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(_HEADER)]
    lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(_HEADER, widths)).rstrip())
    for check, row in zip(report.checks, rows):
        text = "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
        if check.status == "refused":
            text += f"  ({check.detail})"
        lines.append("  " + text)
        if check.status == "failed" and check.detail:
            lines += ["      " + line for line in check.detail.splitlines()]
    failed = sum(c.status != "ok" for c in report.checks)
    lines.append(f"  {len(report.checks) - failed} ok, {failed} failed or refused")
    return "\n".join(lines) + "\n"


_HEADER = ("root", "step", "target", "status")
