"""Packing: one verb for every format -- check everything, build (or take ``--from``), emit.

:func:`pack` is what ``venvpack build`` and every format's command (``venvpack tar`` ...)
do, in the order the product promises: every option and the output are checked **before**
any build work starts (a typo must not cost a build), then the environment is built beside
the output (or the ``--from`` environment is audited again, unless sealed), then the
format's emitter writes the artifact, and the extra outputs it names beside it, atomically;
the SBOM the environment carries is written beside every artifact too
(``<artifact>.cdx.json``, see :mod:`venvpack.sbom`), under the same rules.

The output rule is the same for every format (:func:`artifact_location`): ``-o`` names the
artifact when its file name ends with one of the format's extensions (``.deb``, ``.rpm``,
``.tar.gz`` ...), and is a directory to write into otherwise -- so ``-o out/3.2.3`` is a
directory, whatever dots it holds. For ``venvpack build`` ``-o`` always names the
environment (:mod:`venvpack.emit.environment`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvpack import ui
from venvpack.archive import Progress
from venvpack.config import BuildSpec
from venvpack.emit import Packing
from venvpack.emit.environment import EnvironmentFormat
from venvpack.errors import ConfigError, EmitError
from venvpack.manifest import BuiltEnv, Manifest
from venvpack.output import (
    atomic_output,
    check_replaceable,
    refuse_overlap,
    remove_tree,
    staging_dir,
)
from venvpack.sbom import beside, sbom_of
from venvpack.ui import stage

__all__ = ["PackRequest", "Packed", "artifact_location", "pack"]


@dataclass(frozen=True)
class PackRequest:
    """What to pack and where: everything the CLI (or a caller) decided from its flags."""

    format: Packing
    values: Mapping[str, Any]
    """The format's own option values, by :attr:`venvpack.emit.Option.name`."""
    spec: BuildSpec | None = None
    """The environment to build; None with ``from_dir``."""
    from_dir: Path | None = None
    """An environment made by ``venvpack build`` to pack instead of building one."""
    output: Path | None = None
    """``-o``: the artifact's path or a directory for it; None: the current directory."""
    force: bool = False
    """Replace an existing artifact (only one this format made, for directories)."""
    max_glibc: str | None = None
    """With ``from_dir``: refuse a tree that needs a newer glibc (a build checks its own)."""

    def __post_init__(self) -> None:
        if (self.spec is None) == (self.from_dir is None):
            raise ConfigError("give either an environment to build or --from, not both")


@dataclass(frozen=True)
class Packed:
    """What :func:`pack` wrote, and the manifest of the environment inside it."""

    path: Path
    manifest: Manifest
    extras: tuple[Path, ...] = ()
    """The extra outputs written beside it (:meth:`venvpack.emit.Emitter.extras`), then
    its SBOM (``<artifact>.cdx.json``)."""


def artifact_location(
    output: Path | None, extensions: tuple[str, ...] | None
) -> tuple[Path, str | None]:
    """Where an artifact goes: ``(directory, file name)``, the file name None when the
    emitter names it (``output`` is a directory, or None for the current directory).

    ``output`` names the artifact itself when its name ends with one of ``extensions``
    (and is more than that) and it is not an existing directory; always, when
    ``extensions`` is None.
    """
    if output is None:
        return Path.cwd(), None
    if extensions is None:
        return output.absolute().parent, output.name
    name = output.name
    named = any(name.endswith(ext) and len(name) > len(ext) for ext in extensions)
    if named and not output.is_dir():
        return output.absolute().parent, name
    return output.absolute(), None


def pack(request: PackRequest, *, progress: Progress | None = None) -> Packed:
    """Check ``request``, build or take its environment, write the artifact; return its path,
    its extra outputs and the environment's manifest. ``progress`` receives the emitter's
    byte progress."""
    fmt = request.format
    extensions = fmt.extensions(request.values)
    directory, name = artifact_location(request.output, extensions)
    # Everything that can be checked before a build is checked here, in this order.
    emitter = fmt.emitter(request.values, name, progress)
    if request.spec is not None:
        emitter.check_build(request.spec)
    if name is not None:
        check_replaceable(directory / name, request.force, emitter.replaceable)
        if not _is_environment(fmt):
            check_replaceable(beside(directory / name), request.force)
    with _environment(request, directory, kept=_is_environment(fmt)) as env:
        if name is None:
            directory.mkdir(parents=True, exist_ok=True)
            name = emitter.filename(env)
        dest = directory / name
        extras = emitter.extras(env, dest)
        # Every artifact has its SBOM beside it, an output like the artifact itself (an
        # environment directory carries its own inside).
        sbom = None if _is_environment(fmt) else beside(dest)
        protected = {"the current directory": Path.cwd(), "the packed environment": env.root}
        refuse_overlap(dest, protected, inside={"the packed environment": env.root})
        check_replaceable(dest, request.force, emitter.replaceable)
        for extra in extras:
            # An unversioned companion (name.rpmlintrc) that venvpack wrote for the previous
            # version is regenerated; anything else there is the user's, kept without --force.
            refuse_overlap(extra, protected, inside={"the packed environment": env.root})
            check_replaceable(extra, request.force or emitter.replaceable(extra))
        if sbom is not None:
            refuse_overlap(sbom, protected, inside={"the packed environment": env.root})
            check_replaceable(sbom, request.force)
        # An environment is its own artifact: moved into place, there is nothing to pack.
        step = nullcontext() if extensions is None else stage("pack", dest.name)
        with step:
            path = emitter.emit(env, dest, replace=request.force)
            if sbom is not None:
                with atomic_output(sbom, replace=request.force) as made:
                    made.write_text(sbom_of(env), encoding="utf-8")
                extras = (*extras, sbom)
        missing = [str(extra) for extra in extras if not extra.is_file()]
        if missing:
            raise EmitError(f"the {fmt.name} emitter did not write {', '.join(missing)}")
        return Packed(path, env.manifest, extras)


def _is_environment(fmt: Packing) -> bool:
    """Whether ``fmt`` is ``venvpack build``'s: the environment is the artifact, and the
    SBOM it carries is inside it, not beside it."""
    return isinstance(fmt, EnvironmentFormat)


@contextmanager
def _environment(request: PackRequest, near: Path, *, kept: bool) -> Iterator[BuiltEnv]:
    """The environment to pack: ``--from`` audited again (unless sealed), or a fresh build
    in a staging directory beside ``near`` (same filesystem, nothing copied twice), removed
    afterwards, also on failure or Ctrl-C. (The build pipeline is imported only to build:
    packing a finished environment needs the audit alone.)"""
    if request.from_dir is not None:
        from venvpack.audit import checked_environment

        ui.current().plan([("environment", str(request.from_dir))])
        with stage("audit"):
            env = checked_environment(request.from_dir)
        # An artifact written inside the tree would be packed into the next one.
        refuse_overlap(near, {}, inside={"the --from environment": request.from_dir})
        if request.max_glibc:
            from venvpack.glibc import refuse_glibc_above

            refuse_glibc_above(env.root, request.max_glibc)
        yield env
        return
    from venvpack.build import build_environment

    assert request.spec is not None
    tmp = staging_dir(near)
    try:
        yield build_environment(request.spec, tmp / "env", kept=kept)
    finally:
        remove_tree(tmp)
