"""Policy tables shipped as data files, validated when loaded (each by the module that reads
it: ``venvpack.platform`` reads ``platforms.json``)."""

from __future__ import annotations

import json
from importlib import resources

from venvpack.errors import ConfigError

__all__ = ["load_json"]


def load_json(name: str) -> dict[str, object]:
    """A policy file from this package, parsed; it must be a JSON object."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ConfigError(f"policy file {name} must hold a JSON object")
    return data
