"""Terminal descriptions: the policy list and finding ncurses' compiled-in directories."""

from __future__ import annotations

from pathlib import Path

from venvpack.terminfo import carry_terminfo, terminals


def test_common_terminals_are_carried() -> None:
    names = terminals()
    for name in ("xterm", "xterm-256color", "screen", "tmux", "linux", "vt100", "dumb"):
        assert name in names


def test_compiled_list_is_found_and_entries_copied(tmp_path: Path) -> None:
    host = tmp_path / "host-terminfo"
    (host / "x").mkdir(parents=True)
    (host / "x" / "xterm").write_bytes(b"compiled xterm")
    lib = tmp_path / "lib"
    lib.mkdir()
    listed = f"/nonexistent/terminfo:{host}"
    assert listed.endswith("terminfo")
    (lib / "libtinfo.so.6").write_bytes(b"\x00%s/.terminfo\x00" + listed.encode() + b"\x00")
    pairs = carry_terminfo(lib, tmp_path / "runtime", "/opt/app")
    assert pairs == [(listed, "/opt/app/python/share/terminfo")]
    assert (tmp_path / "runtime/share/terminfo/x/xterm").read_bytes() == b"compiled xterm"


def test_no_compiled_list_no_terminfo(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libz.so.1").write_bytes(b"\x00/usr/share/zoneinfo\x00")
    assert carry_terminfo(lib, tmp_path / "runtime", "/opt/app") == []
