"""Where venvpack keeps what it reuses between runs (compiled byte code, interpreters,
environment bases, seals); a module of its own so that packing a finished environment
finds its cache without importing the build."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["build_cache"]


def build_cache(kind: str) -> Path | None:
    """Where venvpack keeps ``kind`` between builds: ``$VENVPACK_CACHE/<kind>``, else
    ``$XDG_CACHE_HOME/venvpack/<kind>``, else ``~/.cache/venvpack/<kind>``; None when
    ``VENVPACK_CACHE`` is set but empty (no caching). Any of it may be deleted at any time."""
    configured = os.environ.get("VENVPACK_CACHE")
    if configured is not None:
        return Path(configured).absolute() / kind if configured else None
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "venvpack" / kind
    try:
        return Path.home() / ".cache" / "venvpack" / kind
    except RuntimeError:  # no home directory (a container's user without one): no cache
        return None
