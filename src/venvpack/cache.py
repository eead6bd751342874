"""Where venvpack keeps what it reuses between runs (compiled byte code, interpreters,
environment bases, seals); a module of its own so that packing a finished environment
finds its cache without importing the build."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["build_cache", "write_entry"]


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


def write_entry(place: Path, text: str) -> None:
    """Write the cache entry ``place`` whole: a temporary file beside it (``.tmp-``, which
    the cache's pruning also removes) renamed into place, so no reader ever sees part of
    it. Raises OSError, leaving no temporary file behind."""
    place.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=place.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, place)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
