"""Archives written by venvpack.archive, read back with tarfile, GNU tar, bsdtar, the zstd,
xz and gzip tools, binutils' ar and dpkg-deb -- never by comparing our bytes with our bytes,
except to prove that the same input gives the same bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import random
import shutil
import socket
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

import sandbox
from venvpack.archive import (
    ArMember,
    Compression,
    EntryKind,
    TarPlan,
    compressed_writer,
    source_date_epoch,
    write_ar,
    write_archive,
    write_tar,
)
from venvpack.archive import ar as ar_archive
from venvpack.errors import ConfigError, EmitError
from venvpack.output import atomic_output

SDE = 1_700_000_000
OLD = 1_000_000_000
LONG_DIR = "/".join(["d" * 60] * 4)
LONG_FILE = f"lib/{LONG_DIR}/{'f' * 60}.txt"
LONG_TARGET = "../" * 40 + "target"
BIG = random.Random(7).randbytes((1 << 20) + 123)  # more than one read chunk

# (relative path, kind, payload, on-disk mode) in creation order.
SPEC: list[tuple[str, str, object, int]] = [
    ("bin", "dir", None, 0o775),
    ("bin/run.sh", "file", b"#!/bin/sh\necho hi\n", 0o700),
    ("bin/python", "symlink", "../python/bin/python3", 0),
    ("lib", "dir", None, 0o777),
    ("lib/data.txt", "file", b"data\n", 0o664),
    ("lib/odd", "file", b"odd", 0o777),
    ("lib/setuid", "file", b"\x7fELF s", 0o4750),
    ("lib/private", "file", b"p", 0o600),
    ("lib/naïve file ☃.txt", "file", "unicode ☃\n".encode(), 0o644),
    ("lib/big.bin", "file", BIG, 0o644),
    ("lib/empty", "dir", None, 0o700),
    ("lib/hard1", "file", b"shared\n", 0o644),
    ("lib/sub", "dir", None, 0o755),
    ("lib/sub/hard2", "hardlink", "lib/hard1", 0),
    ("lib/fromcache", "outside", b"cached\n", 0o644),
    ("dirlink", "symlink", "lib", 0),
    ("longlink", "symlink", LONG_TARGET, 0),
    (LONG_FILE, "file", b"long\n", 0o644),
]

EXPECTED_MODES = {
    "bin": 0o755,
    "bin/run.sh": 0o755,
    "bin/python": 0o777,
    "lib": 0o755,
    "lib/data.txt": 0o644,
    "lib/odd": 0o644,  # an execute bit on what is neither ELF nor a #! script: dropped
    "lib/setuid": 0o755,
    "lib/private": 0o644,
    "lib/naïve file ☃.txt": 0o644,
    "lib/empty": 0o755,
    "dirlink": 0o777,
    LONG_FILE: 0o644,
}

DECODERS = {
    Compression.ZSTD: ["zstd", "-dc"],
    Compression.XZ: ["xz", "-dc"],
    Compression.GZIP: ["gzip", "-dc"],
}


def make_tree(root: Path, outside: Path, *, reverse: bool = False) -> Path:
    """Build SPEC under ``root`` (in reverse creation order if asked); return ``root``."""
    root.mkdir(parents=True)
    outside.mkdir(parents=True, exist_ok=True)
    for rel, kind, payload, mode in reversed(SPEC) if reverse else SPEC:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            path.mkdir(exist_ok=True)
        elif kind == "file":
            assert isinstance(payload, bytes)
            path.write_bytes(payload)
        elif kind == "symlink":
            assert isinstance(payload, str)
            path.symlink_to(payload)
        elif kind == "outside":
            assert isinstance(payload, bytes)
            cache = outside / f"cache-{root.name}"
            cache.write_bytes(payload)
            os.link(cache, path)
        if mode:
            path.chmod(mode)
    for rel, kind, _, _ in SPEC:
        if kind == "hardlink":
            target = SPEC[[r for r, *_ in SPEC].index(rel) - 2][0]  # lib/hard1
            assert target == "lib/hard1"
            os.link(root / target, root / rel)
    os.utime(root / "lib/data.txt", (OLD, OLD))
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src" / "t", tmp_path / "outside")


def decode(path: Path, compression: Compression) -> bytes:
    """The tar inside ``path``, decompressed by the compressor's own command-line tool."""
    if compression is Compression.NONE:
        return path.read_bytes()
    tool = DECODERS[compression]
    if shutil.which(tool[0]) is None:
        sandbox.unavailable(f"{tool[0]} not found")
    return subprocess.run([*tool, str(path)], check=True, capture_output=True).stdout


def python_decode(data: bytes, compression: Compression) -> bytes:
    if compression is Compression.ZSTD:
        return zstandard.ZstdDecompressor().decompress(data)
    if compression is Compression.XZ:
        return lzma.decompress(data)
    if compression is Compression.GZIP:
        return gzip.decompress(data)
    return data


def members(tar_bytes: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
        return tf.getmembers()


def raw_headers(tar_bytes: bytes) -> list[tuple[bytes, bytes]]:
    """(typeflag, magic) of every raw 512-byte header, including GNU long-name records."""
    headers = []
    offset = 0
    while offset + 512 <= len(tar_bytes):
        block = tar_bytes[offset : offset + 512]
        if block == bytes(512):
            break
        headers.append((block[156:157], block[257:265]))
        size = int(block[124:136].rstrip(b"\0 ") or b"0", 8)
        offset += 512 + -(-size // 512) * 512
    return headers


def write(tmp_path: Path, plan: TarPlan, compression: Compression, name: str = "a") -> Path:
    dest = tmp_path / f"{name}.tar{compression.suffix}"
    write_archive(plan, dest, compression, threads=2)
    return dest


def tree_plan(root: Path, prefix: str = "t") -> TarPlan:
    plan = TarPlan()
    plan.add_tree(root, prefix)
    return plan


# --------------------------------------------------------------------------- tar content


@pytest.mark.parametrize("compression", list(Compression))
def test_every_compression_reads_back_with_tarfile_and_the_tools(
    tree: Path, tmp_path: Path, compression: Compression
) -> None:
    plan = tree_plan(tree)
    archive = write(tmp_path, plan, compression)
    data = decode(archive, compression)
    assert data == python_decode(archive.read_bytes(), compression)
    assert len(data) == plan.size

    by_name = {m.name.rstrip("/"): m for m in members(data)}
    for rel, mode in EXPECTED_MODES.items():
        assert by_name[f"t/{rel}"].mode == mode, rel
    assert by_name["t"].isdir()
    assert all((m.uid, m.gid, m.uname, m.gname) == (0, 0, "root", "root") for m in by_name.values())

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for rel, kind, payload, _ in SPEC:
            if kind == "file":
                extracted = tf.extractfile(f"t/{rel}")
                assert extracted is not None
                assert extracted.read() == payload, rel

    # GNU tar picks the decompressor from the content; extracts as it would on a target.
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
    assert_same_tree(tree, out / "t")


@pytest.mark.parametrize("compression", list(Compression))
def test_bsdtar_lists_the_same_members(
    tree: Path, tmp_path: Path, compression: Compression
) -> None:
    if shutil.which("bsdtar") is None:
        sandbox.unavailable("bsdtar not found; apt-get install libarchive-tools")
    archive = write(tmp_path, tree_plan(tree), compression)
    listed = subprocess.run(
        ["bsdtar", "-tf", str(archive)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert listed == [
        m.name + ("/" if m.isdir() else "") for m in members(decode(archive, compression))
    ]


def assert_same_tree(src: Path, out: Path) -> None:
    """``out`` (extracted) holds what ``src`` holds, with normalised modes."""
    src_paths = sorted(p.relative_to(src) for p in src.rglob("*"))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == src_paths
    for rel in src_paths:
        a, b = src / rel, out / rel
        if a.is_symlink():
            assert os.readlink(b) == os.readlink(a)
        elif a.is_file():
            assert b.read_bytes() == a.read_bytes()
    for name, mode in EXPECTED_MODES.items():
        assert stat.S_IMODE((out / name).lstat().st_mode) == mode, name


def test_gnu_format_without_pax_headers(tree: Path, tmp_path: Path) -> None:
    data = decode(write(tmp_path, tree_plan(tree), Compression.NONE), Compression.NONE)
    headers = raw_headers(data)
    flags = {flag for flag, _ in headers}
    assert flags <= {b"0", b"1", b"2", b"5", b"L", b"K"}
    assert {b"L", b"K"} <= flags  # the 300-character path and the long symlink target
    assert {magic for _, magic in headers} == {b"ustar  \0"}
    names = {m.name for m in members(data)}
    assert f"t/{LONG_FILE}" in names
    assert len(f"t/{LONG_FILE}") > 300


def test_entries_are_sorted_parents_first(tree: Path, tmp_path: Path) -> None:
    data = decode(write(tmp_path, tree_plan(tree), Compression.NONE), Compression.NONE)
    names = [m.name.rstrip("/") for m in members(data)]
    keys = [tuple(os.fsencode(p) for p in n.split("/")) for n in names]
    assert keys == sorted(keys)
    seen: set[str] = set()
    for name in names:
        parent = name.rpartition("/")[0]
        assert not parent or parent in seen, name
        seen.add(name)


def test_hard_links_inside_the_tree_only(tree: Path, tmp_path: Path) -> None:
    archive = write(tmp_path, tree_plan(tree), Compression.NONE)
    by_name = {m.name: m for m in members(archive.read_bytes())}
    assert by_name["t/lib/hard1"].isreg()
    assert by_name["t/lib/sub/hard2"].islnk()
    assert by_name["t/lib/sub/hard2"].linkname == "t/lib/hard1"
    # Its other link is outside the tree (a uv cache): stored as a plain file.
    assert by_name["t/lib/fromcache"].isreg()
    assert by_name["t/lib/fromcache"].size == len(b"cached\n")
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True)
    assert (out / "t/lib/hard1").stat().st_ino == (out / "t/lib/sub/hard2").stat().st_ino
    assert (out / "t/lib/fromcache").stat().st_nlink == 1


def test_symlinks_are_kept_and_never_followed(tree: Path, tmp_path: Path) -> None:
    by_name = {m.name: m for m in members(tree_plan_bytes(tree))}
    assert by_name["t/dirlink"].issym()
    assert by_name["t/dirlink"].linkname == "lib"
    assert by_name["t/bin/python"].linkname == "../python/bin/python3"
    assert by_name["t/longlink"].linkname == LONG_TARGET
    assert not [n for n in by_name if n.startswith("t/dirlink/")]


def tree_plan_bytes(root: Path) -> bytes:
    buf = io.BytesIO()
    write_tar(tree_plan(root), buf)
    return buf.getvalue()


def test_tree_root_may_be_a_symlink_and_prefix_may_be_empty(tree: Path, tmp_path: Path) -> None:
    link = tmp_path / "envlink"
    link.symlink_to(tree)
    plan = TarPlan()
    plan.add_tree(link, "")
    names = [e.arcname for e in plan.entries]
    assert names[0] == "bin"
    assert "lib/data.txt" in names


# --------------------------------------------------------------------------- metadata


def test_mtimes_clamped_to_source_date_epoch(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))
    by_name = {m.name: m for m in members(tree_plan_bytes(tree))}
    assert by_name["t/lib/data.txt"].mtime == OLD  # older than the epoch: kept
    assert {m.mtime for n, m in by_name.items() if n != "t/lib/data.txt"} == {SDE}


def test_real_integer_mtimes_without_source_date_epoch(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    os.utime(tree / "lib/odd", ns=(0, 1_234_567_891_999_999_999))
    by_name = {m.name: m for m in members(tree_plan_bytes(tree))}
    assert by_name["t/lib/odd"].mtime == 1_234_567_891
    assert by_name["t/lib/data.txt"].mtime == OLD


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1e9"])
def test_malformed_source_date_epoch_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        source_date_epoch()


@pytest.mark.parametrize("compression", list(Compression))
def test_reproducible_bytes_under_source_date_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: Compression
) -> None:
    """Same bytes twice, and from a copy built elsewhere in another order (other inodes,
    other directory order, other mtimes)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))
    first = make_tree(tmp_path / "one" / "t", tmp_path / "out1")
    second = make_tree(tmp_path / "two" / "t", tmp_path / "out2", reverse=True)
    a = write(tmp_path, tree_plan(first), compression, "a").read_bytes()
    b = write(tmp_path, tree_plan(first), compression, "b").read_bytes()
    c = write(tmp_path, tree_plan(second), compression, "c").read_bytes()
    assert a == b == c


def test_synthesized_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))
    plan = TarPlan()
    plan.add_file("./usr/share/doc/x/copyright", b"c\n")
    plan.add_file("./DEBIAN-like/postinst", b"#!/bin/sh\n", mode=0o4777)
    plan.add_symlink("./usr/bin/hello", "/opt/hello/bin/hello")
    plan.add_dir("./opt", mode=0o700, mtime=SDE + 100)
    plan.add_file("./opt/f", b"", mtime=OLD)
    data = tree_plan_bytes_of(plan)
    by_name = {m.name: m for m in members(data)}
    assert gnu_tar_list(data) == [
        "./",
        "./DEBIAN-like/",
        "./DEBIAN-like/postinst",
        "./opt/",
        "./opt/f",
        "./usr/",
        "./usr/bin/",
        "./usr/bin/hello",
        "./usr/share/",
        "./usr/share/doc/",
        "./usr/share/doc/x/",
        "./usr/share/doc/x/copyright",
    ]
    assert by_name["./DEBIAN-like/postinst"].mode == 0o755
    assert by_name["./usr/share/doc/x/copyright"].mode == 0o644
    assert by_name["./opt"].mode == 0o700
    assert by_name["./opt"].mtime == SDE  # clamped
    assert by_name["./opt/f"].mtime == OLD
    assert by_name["./usr/bin/hello"].issym()
    assert by_name["./usr/bin/hello"].linkname == "/opt/hello/bin/hello"
    assert {m.mtime for n, m in by_name.items() if n not in ("./opt/f",)} == {SDE}


def gnu_tar_list(data: bytes) -> list[str]:
    """Member names as stored (directories keep their trailing slash), listed by GNU tar."""
    listed = subprocess.run(["tar", "-tf", "-"], input=data, capture_output=True, check=True)
    return listed.stdout.decode().splitlines()


def tree_plan_bytes_of(plan: TarPlan) -> bytes:
    buf = io.BytesIO()
    write_tar(plan, buf)
    assert len(buf.getvalue()) == plan.size
    return buf.getvalue()


def test_tree_under_a_dot_prefix_gets_its_parents(tree: Path) -> None:
    plan = TarPlan()
    plan.add_tree(tree, "./opt/hello")
    plan.add_symlink("./usr/bin/run", "/opt/hello/bin/run.sh")
    names = gnu_tar_list(tree_plan_bytes_of(plan))
    assert names[:4] == ["./", "./opt/", "./opt/hello/", "./opt/hello/bin/"]
    assert "./opt/hello/lib/sub/hard2" in names


def test_add_dir_after_size_overrides_an_implicit_parent() -> None:
    plan = TarPlan()
    plan.add_file("a/b/c", b"x")
    assert plan.size > 0
    plan.add_dir("a/b", mode=0o750, mtime=OLD)
    by_name = {m.name: m for m in members(tree_plan_bytes_of(plan))}
    assert by_name["a/b"].mode == 0o750


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "arcname", ["../x", "a/../b", "/abs", "./../x", "a/./b", "", ".", "a\0b", "./"]
)
def test_refuses_unsafe_or_empty_arcnames(arcname: str) -> None:
    with pytest.raises(EmitError):
        TarPlan().add_file(arcname, b"x")


@pytest.mark.parametrize("prefix", ["../up", "/opt/hello", "a/../../b"])
def test_refuses_unsafe_tree_prefix(tree: Path, prefix: str) -> None:
    with pytest.raises(EmitError, match="refused"):
        TarPlan().add_tree(tree, prefix)


def test_refuses_mixed_styles_duplicates_and_files_as_parents() -> None:
    plan = TarPlan()
    plan.add_file("./a", b"")
    with pytest.raises(EmitError, match="mixes"):
        plan.add_file("b", b"")
    with pytest.raises(EmitError, match="twice"):
        plan.add_file("./a", b"")
    plan.add_file("./a/b", b"")
    with pytest.raises(EmitError, match="not a directory"):
        _ = plan.size


def test_refuses_fifos_sockets_and_devices(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    os.mkfifo(root / "fifo")
    with pytest.raises(EmitError, match="fifo"):
        TarPlan().add_tree(root, "r")
    (root / "fifo").unlink()

    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        with pytest.raises(EmitError, match="socket"):
            TarPlan().add_tree(root, "r")
    (root / "sock").unlink()

    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    with pytest.raises(EmitError, match="character device"):
        TarPlan().add_tree(root, "r")


def test_refuses_a_file_that_changed_after_planning(tree: Path) -> None:
    plan = tree_plan(tree)
    with (tree / "lib/data.txt").open("ab") as f:
        f.write(b"more")
    with pytest.raises(EmitError, match="changed"):
        write_tar(plan, io.BytesIO())


@pytest.mark.parametrize(
    ("compression", "level"),
    [
        (Compression.ZSTD, 0),
        (Compression.ZSTD, 20),
        (Compression.XZ, 10),
        (Compression.GZIP, 0),
        (Compression.NONE, 1),
    ],
)
def test_refuses_levels_out_of_range(compression: Compression, level: int) -> None:
    with pytest.raises(ConfigError, match="level"):
        compression.resolve_level(level)


# --------------------------------------------------------------------------- sizes, digests


def test_size_digests_and_progress(tree: Path) -> None:
    plan = tree_plan(tree)
    calls: list[tuple[int, int]] = []
    buf = io.BytesIO()
    digests = write_tar(plan, buf, digests=True, progress=lambda d, t: calls.append((d, t)))
    assert len(buf.getvalue()) == plan.size
    assert len(buf.getvalue()) % tarfile.RECORDSIZE == 0
    assert calls[-1] == (plan.size, plan.size)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    by_name = {d.arcname: d for d in digests}
    for rel, kind, _, _ in SPEC:
        if kind in ("file", "outside", "hardlink"):
            content = (tree / rel).read_bytes()
            assert by_name[f"t/{rel}"].md5 == hashlib.md5(content).hexdigest(), rel
            assert by_name[f"t/{rel}"].size == len(content)
    assert [d.arcname for d in digests] == [
        e.arcname for e in plan.entries if e.kind in (EntryKind.FILE, EntryKind.HARDLINK)
    ]
    regular = [e for e in plan.entries if e.kind is EntryKind.FILE]
    assert plan.content_size == sum(e.size for e in regular)
    assert plan.content_size == sum(len(p) for _, k, p, _ in SPEC if isinstance(p, bytes))


# --------------------------------------------------------------------------- compressors


def sample_data(size: int) -> bytes:
    """Compressible but not trivial: random words."""
    rng = random.Random(1)
    words = [rng.randbytes(rng.randint(2, 12)) for _ in range(4000)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(words, k=1000))
    return bytes(out[:size])


def compress(
    data: bytes,
    compression: Compression,
    level: int | None,
    threads: int,
    chunk: int,
    *,
    size: int | None = None,
) -> bytes:
    buf = io.BytesIO()
    with compressed_writer(buf, compression, level, size=size, threads=threads) as sink:
        for i in range(0, len(data), chunk):
            sink.write(data[i : i + chunk])
    return buf.getvalue()


def chunkings() -> Iterator[tuple[int, int]]:
    yield from [(1, 1 << 20), (2, 65536), (2, 10_000_019), (3, 4097)]


def test_zstd_same_bytes_for_any_threads_and_chunking() -> None:
    data = sample_data(24 << 20)  # several zstd jobs at level 3
    outputs = {compress(data, Compression.ZSTD, 3, t, c, size=len(data)) for t, c in chunkings()}
    assert len(outputs) == 1
    out = outputs.pop()
    params = zstandard.get_frame_parameters(out)
    assert params.content_size == len(data)
    assert params.has_checksum
    assert (
        subprocess.run(["zstd", "-dc"], input=out, capture_output=True, check=True).stdout == data
    )


def test_xz_same_bytes_for_any_threads_and_equal_to_xz_T2(tmp_path: Path) -> None:
    data = sample_data((7 << 20) + 5)  # preset 0: 1 MiB blocks, so 8 of them
    outputs = {compress(data, Compression.XZ, 0, t, c) for t, c in chunkings()}
    assert len(outputs) == 1
    out = outputs.pop()
    assert lzma.decompress(out) == data
    if shutil.which("xz") is None:
        sandbox.unavailable("xz not found")
    xz = subprocess.run(
        ["xz", "-T2", "-0", "--check=crc32", "-c"], input=data, capture_output=True, check=True
    ).stdout
    assert out == xz
    (tmp_path / "a.xz").write_bytes(out)
    listing = subprocess.run(
        ["xz", "--robot", "-lvv", str(tmp_path / "a.xz")],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert sum(line.startswith("block\t") for line in listing.splitlines()) == 8


@pytest.mark.parametrize("level", [1, 6, 9])
def test_xz_levels_decode(level: int) -> None:
    data = sample_data(300_000)
    out = compress(data, Compression.XZ, level, 2, 4096)
    assert subprocess.run(["xz", "-dc"], input=out, capture_output=True, check=True).stdout == data


def test_xz_empty_stream() -> None:
    out = compress(b"", Compression.XZ, 6, 2, 1)
    assert lzma.decompress(out) == b""
    assert subprocess.run(["xz", "-t"], input=out, check=False).returncode == 0


def test_gzip_header_has_no_name_and_mtime_zero(tree: Path, tmp_path: Path) -> None:
    raw = write(tmp_path, tree_plan(tree), Compression.GZIP).read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] == 0  # FLG: no FNAME, no FCOMMENT, no FEXTRA
    assert raw[4:8] == bytes(4)  # MTIME
    data = sample_data(100_000)
    assert {compress(data, Compression.GZIP, 9, 1, c) for c in (1000, 65536)} == {
        compress(data, Compression.GZIP, 9, 1, 100_000)
    }


def test_gzip_same_bytes_for_any_threads_and_chunking() -> None:
    """Deflated in 1 MiB blocks by parallel threads: one gzip member every gunzip reads, the
    same bytes whatever the threads and the chunking, and hardly larger than one-piece."""
    data = sample_data((5 << 20) + 3)
    outputs = {compress(data, Compression.GZIP, 6, t, c) for t, c in chunkings()}
    assert len(outputs) == 1
    out = outputs.pop()
    assert gzip.decompress(out) == data
    gunzip = subprocess.run(["gzip", "-dc"], input=out, capture_output=True, check=True)
    assert gunzip.stdout == data
    assert subprocess.run(["gzip", "-t"], input=out, check=False).returncode == 0
    assert len(out) <= len(gzip.compress(data, 6, mtime=0)) * 1.01
    for size in (0, 1 << 20):  # nothing, and exactly one block
        edge = compress(data[:size], Compression.GZIP, 9, 2, 4096)
        assert gzip.decompress(edge) == data[:size]


def test_zstd_wrong_size_is_an_emit_error() -> None:
    with pytest.raises(EmitError, match="zstd"):
        compress(b"abc", Compression.ZSTD, 3, 1, 1, size=4)


def test_interrupted_archive_leaves_nothing(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()

    def interrupt(done: int, total: int) -> None:
        if done > 1 << 20:
            raise KeyboardInterrupt

    for compression in Compression:
        with pytest.raises(KeyboardInterrupt), atomic_output(out / "a.tar") as tmp:
            write_archive(tree_plan(tree), tmp, compression, progress=interrupt)
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- ar


def read_ar(data: bytes) -> list[tuple[str, int, int, int, str, bytes]]:
    """(name, mtime, uid, gid, mode, content) of each member; checks the framing."""
    assert data[:8] == b"!<arch>\n"
    out = []
    offset = 8
    while offset < len(data):
        header = data[offset : offset + 60]
        assert len(header) == 60
        assert header[58:60] == b"`\n"
        name = header[:16].decode().rstrip(" ")
        size = int(header[48:58])
        content = data[offset + 60 : offset + 60 + size]
        out.append(
            (
                name,
                int(header[16:28]),
                int(header[28:34]),
                int(header[34:40]),
                header[40:48].decode().strip(),
                content,
            )
        )
        offset += 60 + size
        if size % 2:
            assert data[offset : offset + 1] == b"\n"
            offset += 1
    return out


def test_write_ar_reads_back_with_binutils_and_by_hand(tmp_path: Path) -> None:
    big = tmp_path / "data.tar.xz"
    big.write_bytes(BIG)  # odd size
    members: list[ArMember] = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", b"abc"),
        ("data.tar.xz", big),
    ]
    deb = tmp_path / "x.deb"
    with deb.open("wb") as f:
        write_ar(f, members, SDE)
    parsed = read_ar(deb.read_bytes())
    assert [(n, m, u, g, mode) for n, m, u, g, mode, _ in parsed] == [
        (name, SDE, 0, 0, "100644") for name, _ in members
    ]
    assert [c for *_, c in parsed] == [b"2.0\n", b"abc", BIG]

    if shutil.which("ar") is None:
        sandbox.unavailable("ar not found; apt-get install binutils")
    names = subprocess.run(["ar", "t", str(deb)], capture_output=True, check=True, text=True)
    assert names.stdout.split() == ["debian-binary", "control.tar.xz", "data.tar.xz"]
    for name, content in [("debian-binary", b"2.0\n"), ("control.tar.xz", b"abc")]:
        got = subprocess.run(["ar", "p", str(deb), name], capture_output=True, check=True)
        assert got.stdout == content
    got = subprocess.run(["ar", "p", str(deb), "data.tar.xz"], capture_output=True, check=True)
    assert got.stdout == BIG


def test_read_ar_reads_what_binutils_writes(tmp_path: Path) -> None:
    """venvpack's one ar reader, on an archive GNU ar made (its names end in ``/``)."""
    if shutil.which("ar") is None:
        sandbox.unavailable("ar not found; apt-get install binutils")
    contents = {"one.o": b"odd", "two.o": b"\x7fELF even", "three.o": BIG}
    for name, content in contents.items():
        (tmp_path / name).write_bytes(content)
    lib = tmp_path / "libx.a"
    subprocess.run(["ar", "rcS", str(lib), *contents], cwd=tmp_path, check=True)
    assert list(ar_archive.read_ar(lib.read_bytes())) == list(contents.items())


@pytest.mark.parametrize(
    "data",
    [b"not an archive", b"!<arch>\nshort header", b"!<arch>\n" + b"x" * 48 + b"99        `\n"],
)
def test_read_ar_refuses_what_is_not_an_archive(data: bytes) -> None:
    with pytest.raises(ValueError, match="ar"):
        list(ar_archive.read_ar(data))


@pytest.mark.parametrize("name", ["a" * 16, "has/slash", "has space", "", "ünï"])
def test_write_ar_refuses_bad_names(name: str) -> None:
    with pytest.raises(EmitError, match="ar member name"):
        write_ar(io.BytesIO(), [(name, b"x")], 0)


@pytest.mark.packaging
def test_deb_built_from_these_pieces_is_read_by_dpkg_deb(tree: Path, tmp_path: Path) -> None:
    """GNU-format tars with ./ names inside write_ar: what dpkg (which refuses PAX) installs."""
    if shutil.which("dpkg-deb") is None:
        sandbox.unavailable("dpkg-deb not found")
    data = TarPlan()
    data.add_tree(tree, "./opt/t")
    data_path = tmp_path / "data.tar.xz"
    digests = write_archive(data, data_path, Compression.XZ, digests=True)
    control = TarPlan()
    control.add_file(
        "./control",
        b"Package: t\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@example.org>\n"
        b"Installed-Size: %d\nDescription: t\n" % ((data.content_size + 1023) // 1024),
    )
    md5sums = "".join(f"{d.md5}  {d.arcname.removeprefix('./')}\n" for d in digests)
    control.add_file("./md5sums", md5sums.encode())
    control_path = tmp_path / "control.tar.gz"
    write_archive(control, control_path, Compression.GZIP)
    deb = tmp_path / "t.deb"
    with deb.open("wb") as f:
        write_ar(f, [("debian-binary", b"2.0\n"), ("control.tar.gz", control_path),
                     ("data.tar.xz", data_path)], SDE)  # fmt: skip
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Package"], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert info.stdout.strip() == "t"
    # dpkg's own tar reader (dpkg-deb -x would use GNU tar): unpack into an empty root,
    # then check every file against md5sums.
    root = tmp_path / "root"
    for sub in ("info", "updates"):
        (root / "var/lib/dpkg" / sub).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    for action in (["-i", str(deb)], ["-V", "t"]):
        run = subprocess.run(["dpkg", f"--root={root}", *action], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
    assert_same_tree(tree, root / "opt/t")
    assert (root / "opt/t/lib/hard1").stat().st_ino == (root / "opt/t/lib/sub/hard2").stat().st_ino


def test_headers_are_the_standard_librarys_gnu_headers(tmp_path: Path) -> None:
    """The writer builds common headers itself (the stdlib's encoder was a tenth of a large
    archive's packing time); every header must still be the bytes tarfile writes for the
    same member, at and beyond each field's limit."""
    plan = TarPlan(mtime=0)
    names = [
        "n" * 99,
        "n" * 100,  # the longest name without a long-name record
        "n" * 101,
        "d" * 99,  # a directory: 100 bytes with its slash
        "d" * 100,  # 101 with its slash: a long-name record
        "naïve ☃",
        os.fsdecode(b"latin1-\xe9"),  # not UTF-8: kept as the same bytes
        "x" * 98 + "é",  # 100 bytes of UTF-8 from 99 characters
        "x" * 99 + "é",
    ]
    for i, name in enumerate(names):
        if name.startswith("d"):
            plan.add_dir(name, mode=0o700)
        else:
            plan.add_file(name, bytes(i), mode=0o755 if i % 2 else 0o600)
    plan.add_symlink("short-link", "t" * 100)
    plan.add_symlink("long-link", "t" * 101)
    plan.add_dir("home", owner=(1000, 1000))
    plan.add_dir("tmp", mode=0o1777, keep_mode=True)
    plan.add_file("home/big-id", b"x", owner=(8**7, 0))  # beyond the octal field: base-256
    buf = io.BytesIO()
    write_tar(plan, buf)

    reference = io.BytesIO()
    with tarfile.open(fileobj=reference, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for entry in plan.entries:
            info = tarfile.TarInfo(entry.arcname)
            info.type = {
                EntryKind.FILE: tarfile.REGTYPE,
                EntryKind.DIR: tarfile.DIRTYPE,
                EntryKind.SYMLINK: tarfile.SYMTYPE,
                EntryKind.HARDLINK: tarfile.LNKTYPE,
            }[entry.kind]
            info.mode, info.mtime, info.size = entry.mode, entry.mtime, entry.size
            info.linkname = entry.linkname
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = "root" if entry.uid == 0 else ""
            info.gname = "root" if entry.gid == 0 else ""
            data = entry.source if isinstance(entry.source, bytes) else None
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    assert buf.getvalue() == reference.getvalue()
    assert len(buf.getvalue()) == plan.size
    kinds = {flag for flag, _ in raw_headers(buf.getvalue())}
    assert {b"L", b"K"} <= kinds  # both record kinds came from the fallback


def test_a_link_target_no_header_can_hold_is_one_error() -> None:
    plan = TarPlan()
    plan.add_symlink("link", "not\ud800utf-8")  # a lone surrogate: no bytes stand for it
    with pytest.raises(EmitError, match="cannot write a tar header for 'link'"):
        write_tar(plan, io.BytesIO())
