"""Policy tables shipped as data files, validated when loaded."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

from venvpack.errors import ConfigError

__all__ = ["load_json", "loaded_by_family", "system_libraries"]

_SONAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+\.so(\.[0-9]+)*$")


def load_json(name: str) -> dict[str, object]:
    """A policy file from this package, parsed; it must be a JSON object."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ConfigError(f"policy file {name} must hold a JSON object")
    return data


@cache
def system_libraries(families: tuple[str, ...] | None = None) -> frozenset[str]:
    """Sonames the target system provides (never grafted), for ``families`` or the default."""
    data = load_json("system-libraries.json")
    table = data.get("families")
    default = data.get("default")
    if not isinstance(table, dict) or not isinstance(default, list):
        raise ConfigError("system-libraries.json needs 'families' (object) and 'default' (list)")
    chosen = families if families is not None else tuple(default)
    out: set[str] = set()
    for family in chosen:
        names = table.get(family)
        if not isinstance(names, list):
            raise ConfigError(f"unknown system library family {family!r}")
        for soname in names:
            if not isinstance(soname, str) or not _SONAME_RE.match(soname):
                raise ConfigError(f"system-libraries.json: invalid soname {soname!r}")
            out.add(soname)
    return frozenset(out)


@cache
def loaded_by_family(families: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Sonames the system families load by themselves at run time without being part of them
    (glibc dlopens ``libgcc_s.so.1``): every environment carries these."""
    data = load_json("system-libraries.json")
    table = data.get("loaded-by-family", {})
    default = data.get("default")
    if not isinstance(table, dict) or not isinstance(default, list):
        raise ConfigError("system-libraries.json: 'loaded-by-family' must be an object")
    out: list[str] = []
    for family in families if families is not None else tuple(default):
        names = table.get(family, [])
        if not isinstance(names, list):
            raise ConfigError(f"system-libraries.json: loaded-by-family {family!r} is not a list")
        for soname in names:
            if not isinstance(soname, str) or not _SONAME_RE.match(soname):
                raise ConfigError(f"system-libraries.json: invalid soname {soname!r}")
            if soname in system_libraries(families):
                raise ConfigError(
                    f"system-libraries.json: {soname} is both part of a family and loaded by one"
                )
            if soname not in out:
                out.append(soname)
    return tuple(out)
