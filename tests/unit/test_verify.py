"""verify's pure parts: which modules to import, how a root's glibc is read, the table;
and the launcher's glibc check as rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvpack.errors import ConfigError
from venvpack.relocate import launcher_header
from venvpack.roots import get_root, root_glibc
from venvpack.verify import Check, VerifyReport, render_text, top_level_modules


def test_top_level_modules_from_top_level_txt_and_record(tmp_path: Path) -> None:
    site = tmp_path / "lib" / "python3.12" / "site-packages"
    a = site / "a-1.0.dist-info"
    a.mkdir(parents=True)
    (a / "top_level.txt").write_text("alpha\n_alpha_c\n")
    b = site / "b-2.0.dist-info"
    b.mkdir()
    (b / "RECORD").write_text(
        "beta/__init__.py,,\nbeta/x.py,,\nsolo.py,,\n_fast.cpython-312-x86_64-linux-gnu.so,,\n"
        "b-2.0.dist-info/RECORD,,\n../../../bin/beta,,\nbeta/__pycache__/x.cpython-312.pyc,,\n"
    )
    assert top_level_modules(tmp_path) == ("_alpha_c", "_fast", "alpha", "beta", "solo")


def test_root_glibc_reads_the_release_version(tmp_path: Path) -> None:
    lib = tmp_path / "usr" / "lib" / "x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "libc.so.6").write_bytes(
        b"\x7fELF...GNU C Library (Debian GLIBC 2.31-13) stable release version 2.31.\n..."
    )
    assert root_glibc(tmp_path) == (2, 31)
    assert root_glibc(tmp_path / "nothing") is None


def test_unknown_root_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="unknown root 'sid'"):
        get_root("sid")


def test_table_names_failures_and_refusals() -> None:
    report = VerifyReport(
        "hello.tar.zst",
        "tar",
        "2.36",
        (
            Check("glibc", "import", "hello", "ok"),
            Check("glibc", "command", "hello --help", "failed", "Traceback\nImportError: x"),
            Check("glibc-2.31", "run", "hello.tar.zst", "refused", "refused: needs glibc 2.36"),
        ),
    )
    text = render_text(report)
    assert "      ImportError: x" in text
    assert "(refused: needs glibc 2.36)" in text
    assert "1 ok, 2 failed or refused" in text
    assert not report.ok


@pytest.mark.parametrize(
    ("floor", "first", "last"), [("2.36", "2.33", "2.17"), ("2.31", "2.30", "2.17")]
)
def test_launcher_checks_each_older_versioned_libc(floor: str, first: str, last: str) -> None:
    header = launcher_header(floor).decode()
    line = next(x for x in header.splitlines() if x.startswith("for v in "))
    versions = line[len("for v in ") : -len("; do")].split()
    assert (versions[0], versions[-1]) == (first, last)
    assert f"needs glibc ≥ {floor}, this system has $v" in header
