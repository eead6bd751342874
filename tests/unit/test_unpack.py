"""The artifact reader on crafted archives: contained writes, contained reads, streams read to
their end, limits; every archive here is built with the standard library, read back by ours."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from venvpack.archive import write_ar
from venvpack.errors import ArtifactError
from venvpack.ui import printable
from venvpack.unpack import (
    Limits,
    extract,
    glob_inside,
    is_file_inside,
    open_artifact,
    read_inside,
)


def _tar(*members: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(member[1]))
    return buf.getvalue()


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


ENV = ("app/pyvenv.cfg", b"version = 3.12.1\n")


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_member_beyond_a_symlink_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    data = _tar(ENV, _link("app/esc", str(watched)), ("app/esc/PWNED", b"pwned"))
    art = _write(tmp_path, "evil.tar", data)
    with pytest.raises(ArtifactError, match="beyond the symlink app/esc"), open_artifact(art):
        pass
    assert list(watched.iterdir()) == []


def test_a_member_beyond_a_relative_symlink_is_refused(tmp_path: Path) -> None:
    data = _tar(ENV, _link("app/up", "../../../.."), ("app/up/tmp/PWNED", b"x"))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArtifactError, match="beyond the symlink"):
        extract(_write(tmp_path, "a.tar", data), dest)
    assert not (tmp_path / "tmp" / "PWNED").exists()


def test_a_member_beyond_a_file_is_refused(tmp_path: Path) -> None:
    data = _tar(ENV, ("app/f", b"x"), ("app/f/g", b"y"))
    with pytest.raises(ArtifactError, match="beyond the file app/f"):
        extract(_write(tmp_path, "a.tar", data), tmp_path / "d")


@pytest.mark.parametrize(
    "member",
    [
        ("../evil", b"x"),
        ("app/../../evil", b"x"),
        ("/tmp/evil", b"x"),
        _link("app/h", "/etc/passwd", tarfile.LNKTYPE),
        _link("app/h", "app/later", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "inner-dotdot", "absolute", "hardlink-out", "hardlink-unknown"],
)
def test_names_and_hard_links_outside_the_artifact_are_refused(
    tmp_path: Path, member: tarfile.TarInfo | tuple[str, bytes]
) -> None:
    art = _write(tmp_path, "a.tar", _tar(ENV, member))
    with pytest.raises(ArtifactError):
        extract(art, tmp_path / "d")
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_special_files_are_refused(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("app/dev")
    info.type = kind
    art = _write(tmp_path, "a.tar", _tar(ENV, info))
    with pytest.raises(ArtifactError, match="device node, fifo or socket"):
        extract(art, tmp_path / "d")


def test_symlinks_are_written_as_data_and_setuid_bits_dropped(tmp_path: Path) -> None:
    suid = tarfile.TarInfo("app/bin/tool")
    suid.size = 2
    suid.mode = 0o4755
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("app/pyvenv.cfg"))
        tar.addfile(_link("app/host", "/etc/hostname"))
        tar.addfile(suid, io.BytesIO(b"#!"))
        tar.addfile(_link("app/bin/same", "app/bin/tool", tarfile.LNKTYPE))
    dest = tmp_path / "d"
    dest.mkdir()
    extract(_write(tmp_path, "a.tar", buf.getvalue()), dest)
    assert os.readlink(dest / "app" / "host") == "/etc/hostname"
    assert (dest / "app" / "bin" / "tool").stat().st_mode & 0o7777 == 0o755
    assert (dest / "app" / "bin" / "same").samefile(dest / "app" / "bin" / "tool")


def test_reads_stay_inside_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("inside")
    secret = tmp_path / "secret"
    secret.write_text("outside")
    os.symlink(secret, root / "out")
    os.symlink("d/f", root / "in")
    os.symlink("/dev/zero", root / "zero")
    os.symlink("/proc/self/fd/0", root / "stdin")
    os.symlink(tmp_path, root / "up")
    os.mkfifo(root / "fifo")
    assert read_inside(root, root / "in") == b"inside"
    for name in ("out", "zero", "stdin", "fifo", "up/secret", "d"):
        assert read_inside(root, root / name) is None, name
        assert not is_file_inside(root, root / name), name
    assert is_file_inside(root, root / "in")


def test_glob_never_lists_a_linked_directory(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "lib" / "python3.12" / "site-packages").mkdir(parents=True)
    outside = tmp_path / "host" / "python3.11" / "site-packages"
    outside.mkdir(parents=True)
    os.symlink(tmp_path / "host", root / "lib" / "linked")
    os.symlink(tmp_path / "host" / "python3.11", root / "lib" / "python3.11")
    found = glob_inside(root, "lib/python3*/site-packages")
    assert found == [root / "lib" / "python3.12" / "site-packages"]


def _compressed(kind: str, data: bytes) -> bytes:
    if kind == "zst":
        return zstandard.ZstdCompressor().compress(data)
    if kind == "gz":
        return gzip.compress(data, mtime=0)
    if kind == "xz":
        return lzma.compress(data)
    return bz2.compress(data)


PAYLOAD = _tar(ENV, ("app/data", os.urandom(50_000)))


@pytest.mark.parametrize("kind", ["zst", "gz", "xz", "bz2"])
def test_a_stream_cut_anywhere_is_an_error(tmp_path: Path, kind: str) -> None:
    whole = _compressed(kind, PAYLOAD)
    dest = tmp_path / "whole"
    dest.mkdir()
    extract(_write(tmp_path, f"a.tar.{kind}", whole), dest)
    assert (dest / "app" / "data").stat().st_size == 50_000
    for cut in (len(whole) // 2, len(whole) - 4, len(whole) - 1):
        art = _write(tmp_path, f"cut{cut}.tar.{kind}", whole[:cut])
        with pytest.raises(ArtifactError, match=r"truncated|corrupt"):
            extract(art, tmp_path / f"d{cut}")


@pytest.mark.parametrize("kind", ["zst", "gz", "xz", "bz2"])
def test_concatenated_streams_are_one_and_garbage_after_them_is_an_error(
    tmp_path: Path, kind: str
) -> None:
    half = len(PAYLOAD) // 2
    joined = _compressed(kind, PAYLOAD[:half]) + _compressed(kind, PAYLOAD[half:])
    dest = tmp_path / "joined"
    dest.mkdir()
    extract(_write(tmp_path, f"j.tar.{kind}", joined), dest)
    assert (dest / "app" / "data").stat().st_size == 50_000
    art = _write(tmp_path, f"g.tar.{kind}", _compressed(kind, PAYLOAD) + b"garbage")
    with pytest.raises(ArtifactError, match="follows the end"):
        extract(art, tmp_path / "g")
    padded = _write(tmp_path, f"p.tar.{kind}", _compressed(kind, PAYLOAD) + bytes(200_000))
    extract(padded, tmp_path / "p")  # zeros after the last stream: padding, not data
    late = _write(tmp_path, f"l.tar.{kind}", padded.read_bytes() + b"x")
    with pytest.raises(ArtifactError, match="follows the end"):
        extract(late, tmp_path / "l")


def test_a_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    info = tarfile.TarInfo("app/big")
    info.size = 64 << 20
    head = info.tobuf(format=tarfile.GNU_FORMAT)
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as writer:
        writer.write(head)
        for _ in range(64):
            writer.write(b"A" * (1 << 20))
        writer.write(bytes(1024))
    art = _write(tmp_path, "bomb.tar.zst", out.getvalue())
    with pytest.raises(ArtifactError, match="decompression bomb"):
        extract(art, tmp_path / "d", limits=Limits(floor=16 << 20, ratio=64))
    extract(art, tmp_path / "ok", limits=Limits(floor=128 << 20))  # under the floor: read
    with pytest.raises(ArtifactError, match="members"):
        extract(art, tmp_path / "m", limits=Limits(members=0))


def test_holes_are_not_written_and_large_files_keep_only_their_head(tmp_path: Path) -> None:
    zeros = tarfile.TarInfo("app/zeros")
    zeros.size = 32 << 20
    big = tarfile.TarInfo("app/big.bin")
    big.size = 32 << 20
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("app/pyvenv.cfg"))
        tar.addfile(zeros, io.BytesIO(bytes(zeros.size)))
        tar.addfile(big, io.BytesIO(b"\x01" * big.size))
    art = _write(tmp_path, "a.tar", buf.getvalue())
    with open_artifact(art) as opened:
        for name in ("zeros", "big.bin"):
            st = (opened.root / name).stat()
            assert st.st_size == 32 << 20
            assert st.st_blocks * 512 < 1 << 20, name  # sparse: at most the kept head


def test_a_deb_is_read_through_its_ar_and_a_cut_data_member_is_an_error(tmp_path: Path) -> None:
    data = _compressed("xz", _tar(("./opt/app/pyvenv.cfg", b"x = 1\n")))
    deb = tmp_path / "a.deb"
    with deb.open("wb") as fh:
        write_ar(fh, [("debian-binary", b"2.0\n"), ("data.tar.xz", data)], 0)
    with open_artifact(deb) as opened:
        assert (opened.kind, opened.fixed) == ("deb", True)
        assert opened.installed_at == "/opt/app"
    cut = _write(tmp_path, "cut.deb", deb.read_bytes()[:-20])
    with pytest.raises(ArtifactError), open_artifact(cut):
        pass


def test_printable_escapes_terminal_controls() -> None:
    assert printable("a\x1b]0;pwned\x07b") == "a\\x1b]0;pwned\\x07b"
    assert printable("x\ny\r\x9b") == "x\\ny\\x0d\\x9b"
    assert printable("x\ny", newlines=True) == "x\ny"
    assert printable("bad\udcff") == "bad\\xff"
