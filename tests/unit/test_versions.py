"""PEP 440 → deb/rpm versions: golden strings, refusals, and ordering checked by dpkg and rpm."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import subprocess

import pytest
from packaging.version import Version

from venvpack.errors import ConfigError
from venvpack.versions import RpmVersion, deb_version, rpm_version

# (PEP 440 input, deb version, rpm epoch, rpm version)
GOLDEN = [
    ("1.0", "1.0", None, "1.0"),
    ("1.0.0", "1.0.0", None, "1.0.0"),
    ("1", "1", None, "1"),
    ("2024.10.3", "2024.10.3", None, "2024.10.3"),
    ("1.0a1", "1.0~a1", None, "1.0~a1"),
    ("1.0b2", "1.0~b2", None, "1.0~b2"),
    ("1.0rc1", "1.0~rc1", None, "1.0~rc1"),
    ("1.0.post1", "1.0+post1", None, "1.0+post1"),
    ("1.0.dev1", "1.0~~dev1", None, "1.0~~dev1"),
    ("1.0a1.dev1", "1.0~a1~dev1", None, "1.0~a1~dev1"),
    ("1.0.post1.dev1", "1.0+post1~dev1", None, "1.0+post1~dev1"),
    ("1.0a1.post2.dev3", "1.0~a1+post2~dev3", None, "1.0~a1+post2~dev3"),
    ("1.0+ubuntu.1", "1.0+local.ubuntu.1", None, "1.0+local.ubuntu.1"),
    ("1.0.dev3+g1234abc", "1.0~~dev3+local.g1234abc", None, "1.0~~dev3+local.g1234abc"),
    ("1!0.1", "1:0.1", 1, "0.1"),
    ("0!1.0", "1.0", None, "1.0"),
    ("2!1.0rc1.post1+x", "2:1.0~rc1+post1+local.x", 2, "1.0~rc1+post1+local.x"),
    # Spellings PEP 440 accepts are normalized first.
    ("v1.0", "1.0", None, "1.0"),
    ("1.0-rc1", "1.0~rc1", None, "1.0~rc1"),
    ("1.0.0-Alpha.1", "1.0.0~a1", None, "1.0.0~a1"),
    ("1.0c1", "1.0~rc1", None, "1.0~rc1"),
    ("1.0.post", "1.0+post0", None, "1.0+post0"),
    ("1.0.dev", "1.0~~dev0", None, "1.0~~dev0"),
    ("01.002", "1.2", None, "1.2"),
    ("1.0+Ubuntu-1_02", "1.0+local.ubuntu.1.2", None, "1.0+local.ubuntu.1.2"),
    (" 1.0\n", "1.0", None, "1.0"),
]


@pytest.mark.parametrize(("pep440", "deb", "epoch", "rpm"), GOLDEN)
def test_golden(pep440: str, deb: str, epoch: int | None, rpm: str) -> None:
    assert deb_version(pep440) == deb
    assert rpm_version(pep440) == RpmVersion(epoch=epoch, version=rpm)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "1.0\nFoo: bar",
        "1.0-1",  # a Debian revision, not an implicit post-release, is what this usually means
        "1.0a1-2",
        "1.0 1",
        "1.0%{lua:x}",
        "1.0~rc1",
        "1.0:1",
        "-1.0",
        "2147483648!1.0",
    ],
)
def test_refused(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        deb_version(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        rpm_version(bad)


def test_largest_epoch_accepted() -> None:
    assert deb_version("2147483647!1.0") == "2147483647:1.0"


def test_rpm_version_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        rpm_version("1.0").version = "2.0"  # type: ignore[misc]


# Diverse versions around one release, in scrambled order; sorted by PEP 440 in the test.
ORDERING = [
    "2.0",
    "1.0.post1",
    "1!0.1",
    "1.0a1",
    "1.0.dev1",
    "1.0+local.1",
    "1.0.1",
    "1.0rc1",
    "1.0a1.dev1",
    "1.0b2",
    "1.0.post1.dev1",
    "1.0",
    "1.0a1.post1",
    "1.0.dev2",
    "1.0.post1+abc",
    "1.0a1.post1.dev1",
    "0.9.post3",
    "1.0.post2.dev1",
    "1.0.dev1+x.1",
    "1.0+local.2",
    "1.0rc1+z",
    "1!0.1.dev1",
    "2!0.0.1a1",
    "10.0",
]


def _pairs() -> list[tuple[str, str]]:
    ordered = sorted(ORDERING, key=Version)
    # Strictly increasing, or "a < b" below would not be what PEP 440 says.
    assert all(Version(a) < Version(b) for a, b in zip(ordered, ordered[1:]))
    return list(itertools.combinations(ordered, 2))


def _rpm_evr(v: str) -> str:
    rv = rpm_version(v)
    return rv.version if rv.epoch is None else f"{rv.epoch}:{rv.version}"


@pytest.mark.packaging
def test_dpkg_agrees_with_pep440_order() -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed")
    pairs = _pairs()
    # One process for all pairs; the versions travel as arguments, never inside the script.
    script = (
        'while [ $# -gt 0 ]; do dpkg --compare-versions "$1" lt "$2" && echo lt || echo no;'
        " shift 2; done"
    )
    args = [s for a, b in pairs for s in (deb_version(a), deb_version(b))]
    out = subprocess.run(
        ["sh", "-c", script, "sh", *args], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(out) == len(pairs)
    wrong = [(a, b) for (a, b), verdict in zip(pairs, out) if verdict != "lt"]
    assert wrong == []


@pytest.mark.packaging
def test_rpm_agrees_with_pep440_order() -> None:
    if shutil.which("rpm") is None:
        pytest.skip("rpm is not installed")
    pairs = _pairs()
    ordered = sorted(ORDERING, key=Version)
    # rpm.ver() compares epoch first, then version, as rpm does for installed packages.
    # The mapped strings hold only [0-9A-Za-z.+~:], safe inside a Lua string and a macro.
    table = ", ".join(f'"{_rpm_evr(v)}"' for v in ordered)
    lua = (
        f"%{{lua: local v = {{{table}}} "
        "for i = 1, #v - 1 do for j = i + 1, #v do "
        "io.write(rpm.ver(v[i]) < rpm.ver(v[j]) and 'lt' or 'no', ' ') end end}"
    )
    out = subprocess.run(["rpm", "--eval", lua], capture_output=True, text=True, check=True)
    verdicts = out.stdout.split()
    assert len(verdicts) == len(pairs)
    wrong = [(a, b) for (a, b), verdict in zip(pairs, verdicts) if verdict != "lt"]
    assert wrong == []
