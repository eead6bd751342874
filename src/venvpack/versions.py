"""PEP 440 versions as Debian and RPM package versions that sort the same way.

A package manager decides upgrades by comparing versions with its own algorithm, not PEP 440's.
Copying a Python version verbatim into a package breaks upgrades: dpkg and rpm both sort
``1.0rc1`` *after* ``1.0`` and ``1.0.dev1`` after ``1.0a1``. So each PEP 440 suffix is spelled
with the characters the two tools give the right weight to:

====================  ====================  ========================================================
PEP 440 (normalized)  package version       why dpkg and rpm sort it right
====================  ====================  ========================================================
1.0a1 1.0b2 1.0rc1    1.0~a1 ~b2 ~rc1       '~' sorts before the end of the string; a < b < rc
1.0.dev1              1.0~~dev1             '~~' sorts before every '~aN'
1.0a1.dev1            1.0~a1~dev1           a dev release of a pre-release only precedes that one
1.0.post1.dev1        1.0+post1~dev1        ... and likewise for a post-release
1.0.post1             1.0+post1             '+' sorts after the end of the string, before '.1'
1.0+ubuntu.1          1.0+local.ubuntu.1    after 1.0; 'local' < 'post': before 1.0.post1.dev1
2!1.0                 2:1.0                 the deb epoch; rpm gets 'Epoch: 2' and version '1.0'
====================  ====================  ========================================================

The release is kept as written: ``1.0`` is never padded to ``1.0.0`` (nor ``1.0.0`` cut to
``1``), because a package's version must not change under the user's feet. The price: PEP 440
calls ``1.0`` and ``1.0.0`` equal, dpkg and rpm order them by length, so a project should keep
the same number of release components across its pre-, final and post-releases.

Local labels are compared segment by segment by both tools, which matches PEP 440 when the
segments being compared are of the same kind (both numbers or both words); PEP 440's "a number
beats a word" and its plain string comparison of mixed segments such as ``abc10`` are not
reproduced. Local versions are not meant for publication, so this is accepted.

A ``-N`` suffix is valid PEP 440 (an implicit post-release) but reads as a Debian revision or
RPM release, which the user sets separately; it is refused rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from venvpack.errors import ConfigError

__all__ = ["RpmVersion", "deb_version", "rpm_version"]

# dpkg keeps epochs in an int and rejects larger ones; rpm stores them as uint32.
_MAX_EPOCH = 2**31 - 1

# What both formats accept for the upstream part: dpkg allows [A-Za-z0-9.+~] (and '-' only
# before a revision) and wants a leading digit; rpm forbids '-', whitespace and '%'.
_UPSTREAM_RE = re.compile(r"[0-9][A-Za-z0-9.+~]*")

# The implicit post-release spelling "1.0-1": a digit, '-', a digit, before any local label.
_IMPLICIT_POST_RE = re.compile(r"[0-9]-[0-9]")


@dataclass(frozen=True)
class RpmVersion:
    """The ``Epoch:`` and ``Version:`` tags of a spec file; ``Release:`` is the user's."""

    epoch: int | None
    """The PEP 440 epoch, or None when it is 0 so the spec carries no ``Epoch:`` tag."""
    version: str
    """The version without epoch; never contains ``-``."""


def deb_version(v: str) -> str:
    """The Debian version for PEP 440 version ``v``: ``[epoch:]upstream``, without revision."""
    parsed = _parse(v)
    upstream = _upstream(parsed, v)
    return f"{parsed.epoch}:{upstream}" if parsed.epoch else upstream


def rpm_version(v: str) -> RpmVersion:
    """The RPM epoch and version for PEP 440 version ``v``."""
    parsed = _parse(v)
    return RpmVersion(epoch=parsed.epoch or None, version=_upstream(parsed, v))


def _parse(v: str) -> Version:
    try:
        parsed = Version(v)
    except InvalidVersion:
        raise ConfigError(f"version {v!r} is not a valid PEP 440 version") from None
    if _IMPLICIT_POST_RE.search(v.partition("+")[0]):
        raise ConfigError(
            f"version {v!r}: '-N' reads as a Debian revision or RPM release, which is set"
            f" separately; write {str(parsed)!r} if a post-release is meant"
        )
    if parsed.epoch > _MAX_EPOCH:
        raise ConfigError(f"version {v!r}: epoch {parsed.epoch} is larger than dpkg accepts")
    return parsed


def _upstream(parsed: Version, original: str) -> str:
    """The package version without epoch; the same string serves dpkg and rpm."""
    parts = [".".join(str(n) for n in parsed.release)]
    if parsed.pre is not None:
        letter, number = parsed.pre
        parts.append(f"~{letter}{number}")
    if parsed.post is not None:
        parts.append(f"+post{parsed.post}")
    if parsed.dev is not None:
        # Alone, a dev release precedes every pre-release of its version; after a pre- or
        # post-release it only has to precede that one.
        marker = "~" if parsed.pre is not None or parsed.post is not None else "~~"
        parts.append(f"{marker}dev{parsed.dev}")
    if parsed.local is not None:
        parts.append(f"+local.{parsed.local}")
    upstream = "".join(parts)
    # Version's grammar already excludes everything else; this guards the promise to both
    # tools should that grammar ever widen.
    if not _UPSTREAM_RE.fullmatch(upstream):
        raise ConfigError(f"version {original!r} maps to {upstream!r}, not a valid package version")
    return upstream
