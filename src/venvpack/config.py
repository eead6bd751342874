"""Stage ``config``: command-line flags and ``[tool.venvpack]`` become one frozen BuildSpec.

Flags win over pyproject settings; unknown pyproject keys are an error, so a typo never
silently changes nothing.
"""

from __future__ import annotations

import enum
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from venvpack.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = ["BuildSpec", "Installer", "LinkMode", "load_pyproject_settings", "validate_name"]


class LinkMode(str, enum.Enum):
    """How ``bin/python`` reaches the bundled interpreter (DESIGN §2, link modes)."""

    SYMLINK = "symlink"
    """Relative symlink into ``python/bin``: runs wherever the tree is moved."""
    COPY = "copy"
    """A real copy in ``bin/``; ``pyvenv.cfg`` names the absolute ``home``: runs at the prefix."""
    HARDLINK = "hardlink"
    """Like copy, but a hardlink to ``python/bin/python3.X`` (no extra space)."""


class Installer(str, enum.Enum):
    AUTO = "auto"
    UV = "uv"
    PIP = "pip"


_NAME_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def validate_name(name: str) -> str:
    """An application name usable as a directory, a Debian and an RPM package name."""
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"invalid application name {name!r}: use lower-case letters, digits and + . - "
            "(at least two characters, starting with a letter or digit); set one with --name"
        )
    return name


@dataclass(frozen=True)
class BuildSpec:
    """Everything the build pipeline needs, decided before any work starts."""

    requirements: tuple[str, ...] = ()
    """Anything pip accepts: specifiers, local project directories, wheel files."""
    requirement_files: tuple[Path, ...] = ()
    project: Path | None = None
    """A project directory installed (non-editable) with its dependencies."""
    python: str | None = None
    """A ``--python`` request (``python_request.parse_request``); None: the interpreter
    running venvpack."""
    name: str | None = None
    """Application name; None: derived from the project or the first requirement."""
    prefix: str | None = None
    """Absolute install location; None: ``/opt/<name>``."""
    link_mode: LinkMode = LinkMode.SYMLINK
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    with_tk: bool = False
    keep_dev: bool = False
    installer: Installer = Installer.AUTO
    """uv when it can run, else pip under the bundled interpreter; tests force either."""

    def install_prefix(self, name: str) -> str:
        return self.prefix or f"/opt/{name}"


_PYPROJECT_KEYS = {
    "name": str,
    "prefix": str,
    "python": str,
    "python-link": str,
    "with-tk": bool,
    "keep-dev": bool,
    "requirements": list,
    "find-links": list,
}


def load_pyproject_settings(project: Path) -> dict[str, Any]:
    """``[tool.venvpack]`` of ``project/pyproject.toml``, checked against the known keys."""
    path = project / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("venvpack", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.venvpack] must be a table")
    for key, value in table.items():
        expected = _PYPROJECT_KEYS.get(key)
        if expected is None:
            known = ", ".join(sorted(_PYPROJECT_KEYS))
            raise ConfigError(f"{path}: unknown key tool.venvpack.{key} (known: {known})")
        if not isinstance(value, expected):
            raise ConfigError(f"{path}: tool.venvpack.{key} must be a {expected.__name__}")
    return table


def merge_pyproject(
    spec: BuildSpec, settings: Mapping[str, Any], given: Sequence[str]
) -> BuildSpec:
    """Apply pyproject ``settings`` to ``spec`` for each field not ``given`` as a flag."""
    changes: dict[str, Any] = {}
    simple = {
        "name": "name",
        "prefix": "prefix",
        "python": "python",
        "with-tk": "with_tk",
        "keep-dev": "keep_dev",
    }
    for key, attr in simple.items():
        if key in settings and attr not in given:
            changes[attr] = settings[key]
    if "python-link" in settings and "link_mode" not in given:
        try:
            changes["link_mode"] = LinkMode(settings["python-link"])
        except ValueError:
            raise ConfigError(
                "tool.venvpack.python-link must be one of symlink, copy, hardlink"
            ) from None
    if "requirements" in settings:
        changes["requirements"] = (
            tuple(str(r) for r in settings["requirements"]) + spec.requirements
        )
    if "find-links" in settings:
        changes["find_links"] = spec.find_links + tuple(str(f) for f in settings["find-links"])
    return replace(spec, **changes)
