"""The one exception hierarchy of venvpack.

Stages raise these; only the CLI turns them into a one-line message and an exit code.
Each class carries the exit code the CLI uses, so the mapping is documented in one place.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "BuildError",
    "CheckFailed",
    "ConfigError",
    "ElfError",
    "EmitError",
    "InstallError",
    "InterpreterError",
    "OutputExistsError",
    "RegistryError",
    "ToolMissingError",
    "VenvpackError",
]


class VenvpackError(Exception):
    """Base of every error venvpack reports to its user (exit code 1 unless overridden).

    The message is one line; ``detail`` is what a tool said about the failure (uv's cause
    lines, say), which the CLI shows indented under it.
    """

    exit_code = 1

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class ConfigError(VenvpackError):
    """Invalid flags, pyproject settings or metadata given by the user."""

    exit_code = 2


class OutputExistsError(ConfigError):
    """The output path exists and ``--force`` was not given."""


class InterpreterError(VenvpackError):
    """The requested Python cannot be found or is not a supported CPython."""

    exit_code = 3


class InstallError(VenvpackError):
    """Installing the requirements into the environment failed."""

    exit_code = 4


class ElfError(VenvpackError):
    """An ELF file could not be read, a needed library not found, or a patch not applied."""

    exit_code = 5


class BuildError(VenvpackError):
    """Any other failure while building or relocating the environment."""

    exit_code = 6


class EmitError(VenvpackError):
    """Writing the tarball, .deb or .rpm failed."""

    exit_code = 7


class RegistryError(EmitError):
    """A container registry could not be reached or refused a push or a pull."""


class ToolMissingError(VenvpackError):
    """An external tool (rpmbuild, patchelf, ...) that this job needs is not installed."""

    exit_code = 8


class ArtifactError(VenvpackError):
    """An artifact given to ``inspect`` or ``verify`` cannot be read safely: corrupt or
    truncated, expanding beyond the reading limits, or holding members that would land
    outside it (absolute or ``..`` names, names beyond its own symlinks, device nodes)."""

    exit_code = 9


class CheckFailed(VenvpackError):
    """``inspect`` or ``verify`` found a problem: the report says which (exit code 1)."""

    exit_code = 1
