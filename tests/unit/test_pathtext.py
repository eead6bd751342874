"""Paths found and replaced in text as paths: the short build prefix of python-build-standalone
(``/install``) next to ``/usr/bin/install`` is the case that a substring test gets wrong."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from venvpack.pathtext import contains_path, mapped_contains_path, replace_path

SYSCONFIG = (
    "'INSTALL': '/usr/bin/install -c', 'prefix': '/install', "
    "'LDFLAGS': '-L/install/lib -Wl,-rpath,/install/lib', "
    "'DOCS': 'https://example.org/installation/', 'OTHER': '/installer/x /install2'"
)


def test_replace_only_the_path() -> None:
    got = replace_path(SYSCONFIG, "/install", "@P@")
    assert got == (
        "'INSTALL': '/usr/bin/install -c', 'prefix': '@P@', "
        "'LDFLAGS': '-L@P@/lib -Wl,-rpath,@P@/lib', "
        "'DOCS': 'https://example.org/installation/', 'OTHER': '/installer/x /install2'"
    )


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (b"prefix=\t\t/install\n", True),
        (b"-I/install/include", True),
        (b"/install", True),
        (b"a:/install:b", True),
        (b"\x00/install\x00", True),
        (b"/usr/bin/install -c", False),
        (b"/installation", False),
        (b"/install.d", False),
        (b"/opt/x/install/lib", False),
    ],
)
def test_contains_path(text: bytes, found: bool) -> None:
    assert contains_path(text, b"/install") is found


def test_long_paths_behave_as_before() -> None:
    prefix = "/root/.pyenv/versions/3.12.1"
    text = f"{prefix}/lib {prefix} -L{prefix}/lib {prefix}0/lib"
    assert replace_path(text, prefix, "X") == "X/lib X -LX/lib /root/.pyenv/versions/3.12.10/lib"


@pytest.mark.parametrize("window", [1, 2, 3, 7, 16, 4096])
@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        (b"/opt/build", True),  # followed by a NUL: a path
        (b"/opt/buildx", True),  # at the very end
        (b"/usr/opt", True),
        (b"/opt/bui", False),  # always continued by a path character
        (b"/buildx", False),  # only ever a piece of a longer path
        (b"/nothere", False),
    ],
)
def test_a_mapped_file_is_searched_window_by_window(
    tmp_path: Path, window: int, needle: bytes, expected: bool
) -> None:
    """Windows of any size, a match across their boundary included, find what one search
    over the whole file finds (the look back reaches into the window before)."""
    blob = b"x" * 100 + b"/opt/build\0" + b"y" * 50 + b"/usr/opt/build" + b"z" * 30
    blob += b" /opt/buildx"
    path = tmp_path / "lib.so"
    path.write_bytes(blob)
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        assert mapped_contains_path(data, needle, window) is expected
    assert contains_path(blob, needle) is expected
