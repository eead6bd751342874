"""The environment itself as the artifact: what ``venvpack build`` makes, through the same
verb as every format (:func:`venvpack.pack.pack`).

``-o`` always names the environment's directory (:meth:`EnvironmentFormat.extensions` says
None); the environment, built in a staging directory beside it, is renamed into place, and
``--force`` replaces only an environment venvpack built. It is no format of the registry:
it has no ``[tool.venvpack.<name>]`` table and no reader (``inspect`` reads a directory as
it is; ``verify`` checks artifacts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from venvpack.archive import Progress
from venvpack.config import BuildSpec
from venvpack.errors import BuildError
from venvpack.manifest import BuiltEnv, is_environment
from venvpack.output import atomic_output

__all__ = ["ENVIRONMENT", "EnvironmentEmitter", "EnvironmentFormat"]


class EnvironmentEmitter:
    """Moves a built environment to its place; see :class:`venvpack.emit.Emitter`."""

    format = "environment"

    def check_build(self, spec: BuildSpec) -> None:
        pass  # every environment is one

    def filename(self, env: BuiltEnv) -> str:
        raise AssertionError("-o always names an environment")  # extensions() is None

    def extras(self, env: BuiltEnv, dest: Path) -> tuple[Path, ...]:
        return ()

    def replaceable(self, path: Path) -> bool:
        return is_environment(path)

    def emit(self, env: BuiltEnv, dest: Path, *, replace: bool = True) -> Path:
        # Built beside dest, on its filesystem: a rename, exchanged with an environment
        # venvpack built before (never anything else).
        with atomic_output(
            dest, replace=replace, replaceable=is_environment, error=BuildError
        ) as made:
            os.rename(env.root, made)
        return dest


class EnvironmentFormat:
    """``venvpack build``; see :class:`venvpack.emit.Packing`."""

    name = "environment"

    def extensions(self, values: Mapping[str, Any]) -> tuple[str, ...] | None:
        return None  # -o names the directory itself, whatever its name

    def emitter(
        self, values: Mapping[str, Any], artifact: str | None, progress: Progress | None
    ) -> EnvironmentEmitter:
        return EnvironmentEmitter()


ENVIRONMENT = EnvironmentFormat()
