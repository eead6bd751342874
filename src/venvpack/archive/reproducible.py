"""Reproducible archives: the build time from ``SOURCE_DATE_EPOCH``.

Every writer clamps mtimes to it and dates generated files with it, so the same inputs
give the same bytes.
"""

from __future__ import annotations

import os
import re
import time

from venvpack.config import printable
from venvpack.errors import ConfigError

__all__ = ["source_date_epoch"]


_LATEST_EPOCH = 253402300799
"""9999-12-31 23:59:59 UTC: the latest time a changelog date (and Python's calendar) can
show; ar headers and tar's GNU numbers hold more."""


def source_date_epoch(maximum: int = _LATEST_EPOCH) -> int | None:
    """``SOURCE_DATE_EPOCH`` as an int, ``None`` when unset or empty; anything but a whole,
    non-negative number of seconds up to ``maximum`` is a ConfigError."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not re.fullmatch(r"[0-9]+", value, re.ASCII):
        raise ConfigError(
            "SOURCE_DATE_EPOCH must be a whole, non-negative number of seconds, "
            f"not '{printable(value)}'"
        )
    epoch = int(value) if len(value) <= 20 else maximum + 1
    if epoch > maximum:
        limit = time.strftime("%Y-%m-%d", time.gmtime(maximum))
        raise ConfigError(
            f"SOURCE_DATE_EPOCH {value[:24]}{'...' if len(value) > 24 else ''} is too large: "
            f"at most {maximum} ({limit}) here"
            + ("; this format stores times as 32-bit numbers" if maximum < _LATEST_EPOCH else "")
        )
    return epoch
