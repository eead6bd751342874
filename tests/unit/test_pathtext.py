"""Paths found and replaced in text as paths: the short build prefix of python-build-standalone
(``/install``) next to ``/usr/bin/install`` is the case that a substring test gets wrong."""

from __future__ import annotations

import pytest

from venvpack.pathtext import contains_path, replace_path

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
