"""Hostile artifacts for ``inspect`` and ``verify``: one payload, every format.

A payload is a list of :class:`Member` (names relative to the artifact's top, ``app/...`` for
the environment). :func:`write_artifact` lays the same payload out as a tarball (``tar``,
``tar.zst``, ``tar.gz``, ``tar.xz``, ``tar.bz2``), a .deb (``deb-gz``, ``deb-xz``,
``deb-zst``: an ``ar`` archive whose data.tar puts ``app/`` at ``./opt/app``) or an .rpm
(``rpm``: the lead, signature and header of a real package made once by rpmbuild, then a
crafted cpio ``newc`` payload compressed with the compressor that header declares; nothing
reading payloads with libarchive or rpm2cpio checks the payload digest).

Hostile names keep their meaning in every format: an absolute name or one starting with
``..`` is written as it is (no ``./opt/`` prefix), and a relative symlink chain to a host
directory starts with more ``..`` than any extraction directory is deep.

:class:`Corpus` builds artifacts on demand, once per session, into one directory; the host
paths they aim at (a watched directory, a secret file) are fixed when the corpus is made.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, cast

import zstandard

from fakes import fake_manifest
from venvpack.archive import write_ar

__all__ = [
    "BOMB_SIZE",
    "CASES",
    "FORMATS",
    "MANY_COUNT",
    "Case",
    "Corpus",
    "Host",
    "Member",
    "snapshot",
    "write_artifact",
]

FORMATS = ("tar", "tar.zst", "tar.gz", "tar.xz", "tar.bz2", "deb-gz", "deb-xz", "deb-zst", "rpm")
"""Every artifact format: five tarballs, a .deb per data.tar compressor, an .rpm."""

GiB = 1 << 30
MiB = 1 << 20
BOMB_SIZE = 2 * GiB
"""The one member of the ``bomb`` case: 2 GiB of repeated, non-zero bytes."""
MEDIUM_COUNT = 1536
"""The ``bomb-many`` case: this many files of 1 MiB each (1.5 GiB), none big on its own."""
MANY_COUNT = 1_000_001
"""The ``bomb-members`` case: one more (empty) member than a reader accepts."""
UP = "../" * 24
"""More ``..`` than any extraction directory is deep: a relative way to ``/``."""


@dataclass(frozen=True)
class Member:
    """One archive member. ``kind``: file, dir, symlink, hardlink, chr, blk or fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    link: str = ""
    """A symlink's target, or the member name a hardlink repeats."""
    mode: int = 0o644
    dev: tuple[int, int] = (0, 0)
    big: tuple[int, bytes] | None = None
    """(size, pattern): ``size`` bytes of ``pattern`` repeated, streamed, never in memory."""

    @property
    def size(self) -> int:
        if self.big is not None:
            return self.big[0]
        return len(self.data) if self.kind == "file" else 0

    def chunks(self, chunk: int = 4 * MiB) -> Iterator[bytes]:
        if self.big is None:
            if self.data:
                yield self.data
            return
        size, pattern = self.big
        block = pattern * (chunk // len(pattern))
        left = size
        while left > 0:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece


@dataclass(frozen=True)
class Host:
    """What the hostile artifacts aim at on the host running ``inspect`` or ``verify``."""

    watched: Path
    """A directory whose content must never change (see :meth:`reset` and :func:`snapshot`)."""
    secret_file: Path
    """A host file holding :attr:`secret`, which must never appear in a report."""
    secret_dir: Path
    """A host directory shaped like ``lib/`` (``python3.12/site-packages/...``)."""
    secret: str

    @classmethod
    def make(cls, base: Path) -> Host:
        secret = "HOST-SECRET-" + os.urandom(6).hex()
        host = cls(base / "watched", base / "secret.txt", base / "secret-lib", secret)
        base.mkdir(parents=True, exist_ok=True)
        host.secret_file.write_text(f"Name: {secret}\nVersion: 6.6.6\n{secret}\n")
        dist = host.secret_dir / "python3.12" / "site-packages" / f"{secret}-6.6.6.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {secret}\nVersion: 6.6.6\n")
        (dist / "RECORD").write_text(f"{secret}.py,,\n")
        (dist.parent / f"{secret}.py").write_text(f"# {secret}\n")
        (dist.parent / f"{secret}.pth").write_text(f"/{secret}\n")
        host.reset()
        return host

    def reset(self) -> None:
        """Lay the watched directory out afresh (a test that broke it breaks no other)."""
        if self.watched.is_symlink() or self.watched.is_file():
            self.watched.unlink()
        elif self.watched.exists():
            shutil.rmtree(self.watched)
        self.watched.mkdir(mode=0o755)
        self.watched.chmod(0o755)
        (self.watched / "victim").write_text("original victim\n")
        (self.watched / "victim").chmod(0o644)
        (self.watched / "run.sh").write_text("#!/bin/sh\necho original\n")
        (self.watched / "run.sh").chmod(0o750)
        os.symlink("victim", self.watched / "link")
        (self.watched / "sub").mkdir(mode=0o700)
        (self.watched / "sub").chmod(0o700)
        (self.watched / "sub" / "deep.txt").write_text("deep original\n")
        (self.watched / "sub" / "deep.txt").chmod(0o600)

    @property
    def watched_up(self) -> str:
        """The watched directory as a relative path from anywhere (``../../…/watched``)."""
        return UP + str(self.watched.relative_to("/"))


Snapshot = dict[str, tuple[int, bytes]]


def snapshot(top: Path) -> Snapshot:
    """Every name under ``top`` (itself included) with its mode and content or link target."""
    found: Snapshot = {}

    def one(path: Path) -> None:
        st = path.lstat()
        rel = str(path.relative_to(top))
        if stat.S_ISLNK(st.st_mode):
            found[rel] = (st.st_mode, os.readlink(path).encode())
        elif stat.S_ISREG(st.st_mode):
            found[rel] = (st.st_mode, path.read_bytes())
        else:
            found[rel] = (st.st_mode, b"")
        if stat.S_ISDIR(st.st_mode):
            for child in sorted(path.iterdir()):
                one(child)

    one(top)
    return found


# -- payloads ---------------------------------------------------------------------------

LAUNCHER = (
    '#!/bin/sh\n\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")/python" "$0" "$@"\n'
    "' '''\nimport sys\n"
)
SITE = "app/lib/python3.12/site-packages"


def env_members(*, manifest: bool = True, skip: Iterable[str] = ()) -> list[Member]:
    """A small venvpack-shaped environment under ``app/`` (no ELF file), like
    ``tests/unit/test_inspect.py``'s ``make_env``; ``skip`` leaves those names out."""
    members = [
        Member("app", "dir", mode=0o755),
        Member("app/bin", "dir", mode=0o755),
        Member("app/bin/python", "symlink", link="../python/bin/python3.12"),
        Member("app/bin/python3", "symlink", link="python"),
        Member("app/bin/hello", data=LAUNCHER.encode(), mode=0o755),
        Member("app/python", "dir", mode=0o755),
        Member("app/python/bin", "dir", mode=0o755),
        Member("app/python/bin/python3.12", data=b"not really elf\n", mode=0o755),
        Member("app/python/lib", "dir", mode=0o755),
        Member("app/python/lib/python3.12", "dir", mode=0o755),
        Member("app/python/lib/python3.12/os.py", data=b"# os\n"),
        Member("app/lib", "dir", mode=0o755),
        Member("app/lib/python3.12", "dir", mode=0o755),
        Member(SITE, "dir", mode=0o755),
        Member(f"{SITE}/hello", "dir", mode=0o755),
        Member(f"{SITE}/hello/__init__.py", data=b"def main(): print('hi')\n"),
        Member(f"{SITE}/hello-1.0.0.dist-info", "dir", mode=0o755),
        Member(
            f"{SITE}/hello-1.0.0.dist-info/METADATA",
            data=b"Metadata-Version: 2.1\nName: hello\nVersion: 1.0.0\n\n",
        ),
        Member(
            f"{SITE}/hello-1.0.0.dist-info/RECORD",
            data=b"hello/__init__.py,,\nhello-1.0.0.dist-info/METADATA,,\n",
        ),
        Member(
            "app/pyvenv.cfg",
            data=b"include-system-site-packages = false\nversion = 3.12.1\nvenvpack = 0.1.0\n",
        ),
    ]
    if manifest:
        members += [
            Member("app/.venvpack", "dir", mode=0o755),
            Member(
                "app/.venvpack/manifest.json",
                data=fake_manifest(grafted=()).to_json().encode(),
            ),
        ]
    dropped = set(skip)
    return [m for m in members if m.name not in dropped]


def _env_with(extra: Sequence[Member], *, replace: Iterable[str] = ()) -> list[Member]:
    """The environment, ``replace``d names left out, then ``extra`` appended."""
    return [*env_members(skip=replace), *extra]


def _read_links(target: str) -> list[Member]:
    """Symlinks to ``target`` everywhere inspect reads text: a script, a .pth, METADATA,
    RECORD, a top-level file, the manifest."""
    names = [
        "app/x",
        "app/bin/tool",
        f"{SITE}/x.pth",
        f"{SITE}/x-1.0.dist-info/METADATA",
        f"{SITE}/x-1.0.dist-info/RECORD",
    ]
    return [
        Member(f"{SITE}/x-1.0.dist-info", "dir", mode=0o755),
        *(Member(n, "symlink", link=target) for n in names),
    ]


def _bad_elf() -> list[Member]:
    """ELF magic then garbage; a header cut short; a header whose tables point far away."""
    ident = b"\x7fELF\x02\x01\x01" + b"\x00" * 9
    header = bytearray(ident + b"\x00" * 48)
    header[16:18] = (3).to_bytes(2, "little")  # ET_DYN
    header[18:20] = (62).to_bytes(2, "little")  # x86-64
    header[32:40] = (0xFFFF_FFFF_FFF0).to_bytes(8, "little")  # e_phoff far beyond the file
    header[40:48] = (0x7FFF_FFFF_FFFF_0000).to_bytes(8, "little")  # e_shoff too
    header[54:56] = (56).to_bytes(2, "little")
    header[56:58] = (0xFFFF).to_bytes(2, "little")  # e_phnum
    header[58:60] = (64).to_bytes(2, "little")
    header[60:62] = (0xFFFF).to_bytes(2, "little")  # e_shnum
    header[62:64] = (0xFFFE).to_bytes(2, "little")  # e_shstrndx
    dynload = "app/python/lib/python3.12/lib-dynload"
    return [
        Member(dynload, "dir", mode=0o755),
        Member("app/python/bin/python3.12", data=b"\x7fELF" + os.urandom(300), mode=0o755),
        Member(f"{dynload}/_cut.cpython-312-x86_64-linux-gnu.so", data=ident + b"\x03\x00"),
        Member(f"{dynload}/_far.cpython-312-x86_64-linux-gnu.so", data=bytes(header)),
        Member(f"{SITE}/hello/_native.cpython-312-x86_64-linux-gnu.so", data=b"\x7fELF\x01"),
    ]


ESC_NAME = "evil\x1b]0;pwned\x07"


def _escapes() -> list[Member]:
    """Terminal escapes in METADATA and in file names that the report names."""
    dist = f"{SITE}/evil-1.0.dist-info"
    return [
        Member(dist, "dir", mode=0o755),
        Member(
            f"{dist}/METADATA",
            data=f"Metadata-Version: 2.1\nName: {ESC_NAME}\nVersion: 1.0\x1b[2J\n\n".encode(),
        ),
        Member(f"{dist}/RECORD", data=b"evil.py,,\n"),
        Member(f"{SITE}/evil.py", data=b"x = 1\n" * 2000),
        # named in the report: an absolute shebang, a symlink leaving the tree, a .pth
        Member("app/bin/\x1b[31mred\x1b[0m", data=b"#!/usr/bin/python3\n", mode=0o755),
        Member("app/bin/bell\x07", "symlink", link="/tmp/\x1b]0;title\x07"),
        Member(f"{SITE}/\x1b[1mbold.pth", data=b"/srv/\x1b]0;pwned\x07/src\n"),
        Member(f"{SITE}/hello/built\x1b[2K.txt", data=b"built in /tmp/python-build.1.2\x1b\n"),
    ]


@dataclass(frozen=True)
class Case:
    """A hostile payload and what ``inspect`` must do with it."""

    name: str
    group: str
    """symlink-write, symlink-read, bomb, sparse, corrupt, bad-elf, escapes, special, good."""
    expect: tuple[int, ...]
    """The exit codes allowed: (9,) for refused artifacts, (1,) or (0, 1) for reports."""
    formats: tuple[str, ...] = FORMATS
    payload: Callable[[Host], list[Member]] = field(default=lambda host: env_members())


def _payload_cases() -> list[Case]:
    refused = (9,)
    cases = [
        Case("good", "good", (0,), payload=lambda h: env_members()),
        # 1. writes through symlinks
        Case(
            "write-abs-symlink",
            "symlink-write",
            refused,
            payload=lambda h: _env_with(
                [
                    Member("app/esc", "symlink", link=str(h.watched)),
                    Member("app/esc/PWNED", data=b"pwned\n", mode=0o777),
                    Member("app/esc/victim", data=b"pwned\n", mode=0o777),
                ]
            ),
        ),
        Case(
            "write-rel-symlink",
            "symlink-write",
            refused,
            payload=lambda h: _env_with(
                [
                    Member("app/esc", "symlink", link=h.watched_up),
                    Member("app/esc/PWNED", data=b"pwned\n", mode=0o777),
                    Member("app/esc/sub/deep.txt", data=b"pwned\n", mode=0o777),
                ]
            ),
        ),
        Case(
            "write-chain-symlink",
            "symlink-write",
            refused,
            payload=lambda h: _env_with(
                [
                    Member("app/a", "dir", mode=0o755),
                    Member("app/a/up", "symlink", link=".."),
                    Member("app/a/esc", "symlink", link="up/up/up/" + h.watched_up),
                    Member("app/a/esc/PWNED", data=b"pwned\n", mode=0o777),
                ]
            ),
        ),
        Case(
            "write-symlink-then-dir",
            "symlink-write",
            refused,
            payload=lambda h: _env_with(
                [
                    Member("app/esc", "symlink", link=str(h.watched)),
                    Member("app/esc/new", "dir", mode=0o777),
                    Member("app/esc/link", "symlink", link="/etc/shadow"),
                ]
            ),
        ),
        Case(
            "write-hardlink",
            "symlink-write",
            refused,
            payload=lambda h: _env_with(
                [
                    Member("app/hl", "hardlink", link=str(h.watched / "victim")),
                    Member("app/hl", data=b"pwned\n", mode=0o777),
                    Member("app/hl2", "hardlink", link=h.watched_up + "/run.sh"),
                ]
            ),
        ),
        # 2. reads through symlinks: data, never followed
        Case(
            "read-hostname",
            "symlink-read",
            (1,),
            payload=lambda h: _env_with(_read_links("/etc/hostname")),
        ),
        Case(
            "read-dev-zero",
            "symlink-read",
            (1,),
            payload=lambda h: _env_with(_read_links("/dev/zero")),
        ),
        Case(
            "read-proc-fd0",
            "symlink-read",
            (1,),
            payload=lambda h: _env_with(_read_links("/proc/self/fd/0")),
        ),
        Case(
            "read-secret",
            "symlink-read",
            (1,),
            payload=lambda h: _env_with(_read_links(str(h.secret_file))),
        ),
        Case(
            "read-pyvenv-cfg",
            "symlink-read",
            (1,),
            payload=lambda h: _env_with(
                [Member("app/pyvenv.cfg", "symlink", link=str(h.secret_file))],
                replace=["app/pyvenv.cfg"],
            ),
        ),
        Case(
            "read-lib-dir",
            "symlink-read",
            (1,),
            payload=lambda h: _env_with(
                [Member("app/lib", "symlink", link=str(h.secret_dir))],
                replace=[m.name for m in env_members() if m.name.startswith("app/lib")],
            ),
        ),
        Case(
            "read-usr-lib",
            "symlink-read",
            (1,),
            payload=lambda h: _env_with(
                [Member("app/lib", "symlink", link="/usr/lib")],
                replace=[m.name for m in env_members() if m.name.startswith("app/lib")],
            ),
        ),
        Case(
            "read-beyond-symlink",  # a member beyond a symlink: structurally hostile
            "symlink-read",
            refused,
            payload=lambda h: _env_with(
                [
                    Member("app/lib", "symlink", link="/usr/lib"),
                    Member(
                        f"{SITE}/x.dist-info/METADATA",
                        "symlink",
                        link=str(h.secret_file),
                    ),
                ],
                replace=[m.name for m in env_members() if m.name.startswith("app/lib")],
            ),
        ),
        # 5b. bad ELF files
        Case(
            "bad-elf",
            "bad-elf",
            (1, 9),
            payload=lambda h: _env_with(_bad_elf(), replace=["app/python/bin/python3.12"]),
        ),
        # 6. terminal escapes
        Case("escapes", "escapes", (0, 1), payload=lambda h: _env_with(_escapes())),
        # 7. special members
        Case(
            "special-chr",
            "special",
            refused,
            payload=lambda h: _env_with(
                [
                    Member("app/disk", "blk", mode=0o666, dev=(8, 0)),
                    Member("app/mem", "chr", mode=0o666, dev=(1, 1)),
                ]
            ),
        ),
        Case(
            "special-fifo",
            "special",
            refused,
            payload=lambda h: _env_with([Member(f"{SITE}/hello/fifo.py", "fifo", mode=0o666)]),
        ),
        Case(
            "special-absolute",
            "special",
            refused,
            payload=lambda h: _env_with(
                [Member(str(h.watched / "ABSOLUTE"), data=b"pwned\n", mode=0o777)]
            ),
        ),
        Case(
            "special-absolute-tmp",
            "special",
            refused,
            payload=lambda h: _env_with(
                [Member("/tmp/x-venvpack-hostile", data=b"pwned\n", mode=0o777)]
            ),
        ),
        Case(
            "special-dotdot",
            "special",
            refused,
            payload=lambda h: _env_with(
                [
                    Member("../x-venvpack-hostile", data=b"pwned\n"),
                    Member(h.watched_up + "/DOTDOT", data=b"pwned\n", mode=0o777),
                ]
            ),
        ),
        Case(
            "special-inner-dotdot",
            "special",
            refused,
            payload=lambda h: _env_with(
                [Member("app/bin/../../" + h.watched_up + "/INNER", data=b"pwned\n")]
            ),
        ),
    ]
    return cases


# Cases whose artifact is not a payload written by write_artifact: built by Corpus itself.
_SPECIAL = [
    Case("bomb", "bomb", (9,), ("tar.zst", "deb-zst", "rpm")),
    Case("bomb-many", "bomb", (9,), ("tar.zst", "deb-zst", "rpm")),
    Case("bomb-members", "bomb", (9,), ("tar.zst",)),
    Case("sparse-gnu", "sparse", (0, 1), ("tar", "tar.zst", "tar.xz", "deb-zst")),
    Case("sparse-pax", "sparse", (0, 1), ("tar", "tar.gz", "deb-gz")),
    Case("cut-half", "corrupt", (9,)),
    Case("cut-tail", "corrupt", (9,), ("tar.zst", "tar.gz", "tar.xz", "tar.bz2", "rpm")),
    Case("garbage", "corrupt", (9,), ("tar.zst", "tar.gz", "tar.xz", "tar.bz2", "rpm")),
    Case("deb-data-cut", "corrupt", (9,), ("deb-gz", "deb-xz", "deb-zst")),
    Case("deb-no-data", "corrupt", (9,), ("deb-gz",)),
    Case("rpm-payload-cut", "corrupt", (9,), ("rpm",)),
]

CASES: dict[str, Case] = {c.name: c for c in [*_payload_cases(), *_SPECIAL]}
"""Every case by name."""


# -- writers ----------------------------------------------------------------------------


def _placed(name: str, prefix: str) -> str:
    """``name`` inside a package (``./opt/``), unless it is meant to escape."""
    if name.startswith(("/", "..")):
        return name
    return prefix + name


_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def write_tar(out: BinaryIO, members: Sequence[Member], prefix: str = "") -> int:
    """An uncompressed GNU tar stream of ``members`` (hostile names kept as they are,
    big members streamed); returns the length of the members, before the end-of-archive
    blocks."""
    offset = 0
    for m in members:
        info = tarfile.TarInfo(_placed(m.name, prefix))
        info.type = _TAR_TYPES[m.kind]
        info.mode = m.mode
        info.mtime = 1_700_000_000
        info.uname = info.gname = "root"
        info.size = m.size
        if m.kind == "hardlink":
            info.linkname = _placed(m.link, prefix)
        elif m.kind == "symlink":
            info.linkname = m.link
        info.devmajor, info.devminor = m.dev
        header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
        out.write(header)
        for chunk in m.chunks():
            out.write(chunk)
        padding = -m.size % tarfile.BLOCKSIZE
        out.write(b"\x00" * padding)
        offset += len(header) + m.size + padding
    end = 2 * tarfile.BLOCKSIZE
    out.write(b"\x00" * (end + -(offset + end) % tarfile.RECORDSIZE))
    return offset


@contextmanager
def compressor(kind: str, out: BinaryIO) -> Iterator[BinaryIO]:
    """A writer compressing into ``out`` (``none``, ``zst``, ``gz``, ``xz``, ``bz2``);
    leaving the block finishes the stream but leaves ``out`` open."""
    if kind == "none":
        yield out
        return
    opened: object
    if kind == "zst":
        opened = zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False)
    elif kind == "gz":
        opened = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0)
    elif kind == "xz":
        opened = lzma.LZMAFile(out, "wb", preset=1)  # noqa: SIM115 (closed below)
    elif kind == "bz2":
        opened = bz2.BZ2File(out, "wb", compresslevel=1)
    else:
        raise ValueError(kind)
    writer = cast(BinaryIO, opened)
    try:
        yield writer
    finally:
        writer.close()


def compress(data: bytes, kind: str) -> bytes:
    buf = io.BytesIO()
    with compressor(kind, buf) as out:
        out.write(data)
    return buf.getvalue()


_TAR_COMPRESSION = {"tar": "none", "tar.zst": "zst", "tar.gz": "gz", "tar.xz": "xz"}
_TAR_COMPRESSION["tar.bz2"] = "bz2"

CONTROL = textwrap.dedent(
    """\
    Package: hostile
    Version: 1.0-1
    Architecture: all
    Maintainer: T <t@example.org>
    Description: a hostile package
    """
).encode()


def control_tar_gz() -> bytes:
    return compress(
        _tar_of([Member(".", "dir", mode=0o755), Member("./control", data=CONTROL)]), "gz"
    )


def _tar_of(members: Sequence[Member], prefix: str = "", *, end: bool = True) -> bytes:
    """An uncompressed tar of ``members``; without its end-of-archive blocks unless ``end``."""
    buf = io.BytesIO()
    length = write_tar(buf, members, prefix)
    return buf.getvalue() if end else buf.getvalue()[:length]


def write_deb(dest: Path, data_tar: Path | bytes, compression: str) -> Path:
    """An ``ar`` archive as dpkg-deb writes it around an already compressed data.tar."""
    with dest.open("wb") as fh:
        write_ar(
            fh,
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", control_tar_gz()),
                (f"data.tar.{compression}", data_tar),
            ],
            1_700_000_000,
        )
    return dest


# -- rpm --------------------------------------------------------------------------------

_RPM_COMPRESSORS = {"zstd": "zst", "gzip": "gz", "xz": "xz", "lzma": "xz", "bzip2": "bz2"}


@dataclass(frozen=True)
class RpmHead:
    """Everything of a real .rpm before its payload, and how its payload is compressed."""

    head: bytes
    compression: str
    """zst, gz, xz or bz2 (from the header's PAYLOADCOMPRESSOR tag)."""


def _header_entries(data: bytes | bytearray, at: int) -> tuple[int, dict[int, tuple[int, int]]]:
    """Where an rpm header structure starting at ``at`` ends, and each tag's (type, offset
    of its value in ``data``)."""
    if data[at : at + 3] != b"\x8e\xad\xe8":
        raise ValueError(f"no rpm header at {at}")
    count = int.from_bytes(data[at + 8 : at + 12], "big")
    size = int.from_bytes(data[at + 12 : at + 16], "big")
    store = at + 16 + 16 * count
    entries: dict[int, tuple[int, int]] = {}
    for i in range(count):
        entry = data[at + 16 + 16 * i : at + 28 + 16 * i]
        tag, kind, offset = (int.from_bytes(entry[j : j + 4], "big") for j in (0, 4, 8))
        entries[tag] = (kind, store + offset)
    return store + size, entries


def rpm_head(real_rpm: Path) -> RpmHead:
    """Split a real package: lead (96 bytes), signature (padded to 8), header; payload after."""
    data = real_rpm.read_bytes()
    if data[:4] != b"\xed\xab\xee\xdb":
        raise ValueError(f"{real_rpm} is not an rpm")
    sig_end, _ = _header_entries(data, 96)
    sig_end += -sig_end % 8
    end, entries = _header_entries(data, sig_end)
    start = entries[1125][1]  # RPMTAG_PAYLOADCOMPRESSOR
    compressor_name = data[start : data.index(b"\x00", start)].decode()
    return RpmHead(data[:end], _RPM_COMPRESSORS[compressor_name])


def _signed(head: bytes, payload: bytes, raw_sha256: str, raw_size: int) -> bytes:
    """``head`` with its digests and sizes made true for a new payload (``payload``: the
    compressed bytes; the cpio archive's digest and size), so ``rpm -K`` and rpm2cpio
    accept the package: a hostile rpm is refused for what it holds, not for a checksum."""
    data = bytearray(head)
    sig_end, sig = _header_entries(data, 96)
    header_at = sig_end + -sig_end % 8
    _, tags = _header_entries(data, header_at)

    def put(entries: dict[int, tuple[int, int]], tag: int, value: bytes) -> None:
        if tag in entries:
            at = entries[tag][1]
            data[at : at + len(value)] = value

    put(tags, 5092, hashlib.sha256(payload).hexdigest().encode())  # PAYLOADDIGEST
    put(tags, 5097, raw_sha256.encode())  # PAYLOADDIGESTALT
    header = bytes(data[header_at:])
    put(sig, 269, hashlib.sha1(header).hexdigest().encode())  # SHA1 of the header
    put(sig, 273, hashlib.sha256(header).hexdigest().encode())  # SHA256 of the header
    put(sig, 1000, (len(header) + len(payload)).to_bytes(4, "big"))  # SIZE
    put(sig, 1004, hashlib.md5(header + payload).digest())  # MD5 of header and payload
    put(sig, 1007, (raw_size & 0xFFFF_FFFF).to_bytes(4, "big"))  # PAYLOADSIZE
    return bytes(data)


class _Hashing:
    """A writer passing bytes on, counting and hashing them."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.out.write(data)


def build_real_rpm(workdir: Path) -> Path:
    """A tiny noarch package from rpmbuild, its payload compressed with zstd."""
    spec = workdir / "tiny.spec"
    workdir.mkdir(parents=True, exist_ok=True)
    spec.write_text(
        textwrap.dedent(
            """\
            Name: hostile
            Version: 1.0
            Release: 1
            Summary: the head of hostile rpms
            License: MIT
            BuildArch: noarch
            %description
            The lead, signature and header of hostile test packages.
            %install
            mkdir -p %{buildroot}/opt/app
            echo hello > %{buildroot}/opt/app/pyvenv.cfg
            %files
            /opt/app/pyvenv.cfg
            """
        )
    )
    subprocess.run(
        [
            "rpmbuild",
            "-bb",
            "--quiet",
            "--define",
            f"_topdir {workdir}",
            "--define",
            "_binary_payload w3.zstdio",
            "--define",
            "__os_install_post %{nil}",
            str(spec),
        ],
        check=True,
        capture_output=True,
    )
    return next((workdir / "RPMS").rglob("*.rpm"))


def _cpio_header(
    name: str, mode: int, size: int, *, ino: int, nlink: int = 1, rdev: tuple[int, int] = (0, 0)
) -> bytes:
    encoded = name.encode("utf-8", "surrogateescape") + b"\x00"
    fields = [ino, mode, 0, 0, nlink, 1_700_000_000, size, 0, 0, rdev[0], rdev[1]]
    fields += [len(encoded), 0]
    header = b"070701" + b"".join(b"%08X" % f for f in fields) + encoded
    return header + b"\x00" * (-len(header) % 4)


def write_cpio(out: BinaryIO, members: Sequence[Member], prefix: str = "./opt/") -> None:
    """A cpio ``newc`` stream, as rpm writes its payload. A hardlink is two entries sharing
    an inode: the name it repeats first (empty, written as is even when absolute), then
    the member itself, carrying the data."""
    kinds = {
        "file": stat.S_IFREG,
        "dir": stat.S_IFDIR,
        "symlink": stat.S_IFLNK,
        "chr": stat.S_IFCHR,
        "blk": stat.S_IFBLK,
        "fifo": stat.S_IFIFO,
    }
    ino = 1000
    for m in members:
        ino += 1
        name = _placed(m.name, prefix)
        if m.kind == "hardlink":
            out.write(_cpio_header(_placed(m.link, prefix), 0o100644, 0, ino=ino, nlink=2))
            out.write(_cpio_header(name, 0o100644, 0, ino=ino, nlink=2))
            continue
        mode = kinds[m.kind] | (m.mode & 0o7777)
        if m.kind == "symlink":
            data = m.link.encode("utf-8", "surrogateescape")
            out.write(_cpio_header(name, stat.S_IFLNK | 0o777, len(data), ino=ino))
            out.write(data + b"\x00" * (-len(data) % 4))
            continue
        out.write(_cpio_header(name, mode, m.size, ino=ino, rdev=m.dev))
        for chunk in m.chunks():
            out.write(chunk)
        out.write(b"\x00" * (-m.size % 4))
    out.write(_cpio_header("TRAILER!!!", 0, 0, ino=0))


def write_rpm(dest: Path, head: RpmHead, members: Sequence[Member]) -> Path:
    """A package with ``head``'s header and ``members`` as its payload, digests updated."""
    with dest.open("w+b") as fh:
        fh.write(head.head)
        with compressor(head.compression, fh) as out:
            raw = _Hashing(out)
            write_cpio(cast(BinaryIO, raw), members)
        fh.seek(len(head.head))
        payload = fh.read()
        fh.seek(0)
        fh.write(_signed(head.head, payload, raw.sha256.hexdigest(), raw.size))
    return dest


def write_artifact(
    dest: Path, members: Sequence[Member], fmt: str, rpm: RpmHead | None = None
) -> Path:
    """``members`` as ``fmt`` (one of :data:`FORMATS`) at ``dest``."""
    if fmt in _TAR_COMPRESSION:
        with dest.open("wb") as fh, compressor(_TAR_COMPRESSION[fmt], fh) as out:
            write_tar(out, members)
        return dest
    if fmt.startswith("deb-"):
        compression = fmt[4:]
        data = dest.with_name(dest.name + ".data")
        with data.open("wb") as fh, compressor(compression, fh) as out:
            write_tar(out, members, "./opt/")
        try:
            return write_deb(dest, data, compression)
        finally:
            data.unlink()
    if fmt == "rpm":
        if rpm is None:
            raise ValueError("an rpm needs the head of a real package (Corpus.rpm_head)")
        return write_rpm(dest, rpm, members)
    raise ValueError(fmt)


def suffix(fmt: str) -> str:
    return {"deb-gz": "gz.deb", "deb-xz": "xz.deb", "deb-zst": "zst.deb"}.get(fmt, fmt)


# -- the corpus -------------------------------------------------------------------------


def _bomb_members() -> list[Member]:
    pattern = b"venvpack bomb: not zeros, and still compressing very well.....\n"
    return [
        *env_members(),
        Member(f"{SITE}/hello/data.txt", big=(BOMB_SIZE, pattern)),
    ]


def _many_members() -> list[Member]:
    pattern = b"0123456789abcdef" * 4
    return [
        *env_members(),
        Member(f"{SITE}/many", "dir", mode=0o755),
        *(Member(f"{SITE}/many/m{i:05d}.py", big=(MiB, pattern)) for i in range(MEDIUM_COUNT)),
    ]


def _write_member_bomb(dest: Path) -> Path:
    """A .tar.zst of :data:`MANY_COUNT` empty members besides the environment, headers
    written directly (tarfile takes a minute for a million)."""
    template = bytearray(_tar_of([Member("x", data=b"")])[:512])
    template[0:100] = b"\x00" * 100
    template[148:156] = b" " * 8
    base = sum(template)
    with dest.open("wb") as fh, compressor("zst", fh) as out:
        out.write(_tar_of(env_members(), end=False))
        batch: list[bytes] = []
        for i in range(MANY_COUNT):
            name = b"app/m/%03d/%07d" % (i // 10_000, i)
            check = base + sum(name)
            batch.append(name + template[len(name) : 148] + b"%06o\x00 " % check + template[156:])
            if len(batch) == 10_000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch) + b"\x00" * 1024)
    return dest


class Corpus:
    """Every hostile artifact, built the first time it is asked for, kept for the session."""

    def __init__(self, directory: Path, host: Host) -> None:
        self.directory = directory
        self.host = host
        self.directory.mkdir(parents=True, exist_ok=True)
        self._rpm_head: RpmHead | None = None
        self._built: dict[tuple[str, str], Path] = {}

    @property
    def rpm_head(self) -> RpmHead:
        if self._rpm_head is None:
            self._rpm_head = rpm_head(build_real_rpm(self.directory / "rpmbuild"))
        return self._rpm_head

    def artifact(self, case: str, fmt: str) -> Path:
        key = (case, fmt)
        if key not in self._built:
            dest = self.directory / f"{case}.{suffix(fmt)}"
            self._built[key] = self._build(CASES[case], fmt, dest)
        return self._built[key]

    def _write(self, dest: Path, members: Sequence[Member], fmt: str) -> Path:
        rpm = self.rpm_head if fmt == "rpm" else None
        return write_artifact(dest, members, fmt, rpm)

    def _build(self, case: Case, fmt: str, dest: Path) -> Path:
        if case.name == "bomb":
            return self._write(dest, _bomb_members(), fmt)
        if case.name == "bomb-many":
            return self._write(dest, _many_members(), fmt)
        if case.name == "bomb-members":
            return _write_member_bomb(dest)
        if case.name.startswith("sparse-"):
            return self._sparse(case.name.split("-")[1], fmt, dest)
        if case.group == "corrupt":
            return self._corrupt(case.name, fmt, dest)
        return self._write(dest, case.payload(self.host), fmt)

    def _sparse(self, tar_format: str, fmt: str, dest: Path) -> Path:
        """GNU tar's own sparse member: 10 GiB apparent, a few KiB of data."""
        work = self.directory / f"sparse-{tar_format}-{fmt}"
        app = work / "opt" / "app"
        shutil.rmtree(work, ignore_errors=True)
        _lay_out(env_members(), work / "opt")
        with (app / "disk.img").open("wb") as fh:
            fh.write(b"start of the image\n")
            fh.seek(5 * GiB)
            fh.write(b"middle\n")
            fh.truncate(10 * GiB)
        top, name = (work / "opt", "app") if fmt.startswith("tar") else (work, "./opt")
        tar = subprocess.run(
            ["tar", "--sparse", f"--format={tar_format}", "-C", str(top), "-cf", "-", name],
            check=True,
            capture_output=True,
        ).stdout
        shutil.rmtree(work)
        if fmt.startswith("deb-"):
            return write_deb(dest, compress(tar, fmt[4:]), fmt[4:])
        dest.write_bytes(compress(tar, _TAR_COMPRESSION[fmt]))
        return dest

    def _corrupt(self, name: str, fmt: str, dest: Path) -> Path:
        """Broken streams of a good environment (with 256 KiB of incompressible data, so a
        cut lands inside the stream, not in its trailer)."""
        noise = Member(f"{SITE}/hello/noise.bin", data=os.urandom(256 * 1024))
        members = [*env_members(), noise]
        if name == "deb-data-cut":
            compression = fmt[4:]
            data = compress(_tar_of(members, "./opt/"), compression)
            return write_deb(dest, data[: len(data) // 2], compression)
        if name == "deb-no-data":
            with dest.open("wb") as fh:
                write_ar(fh, [("debian-binary", b"2.0\n"), ("control.tar.gz", b"")], 0)
            return dest
        whole = self._write(dest, members, fmt).read_bytes()
        if name == "cut-half":
            dest.write_bytes(whole[: len(whole) // 2])
        elif name == "cut-tail":  # the last bytes: a trailer, checksum or index
            dest.write_bytes(whole[:-12])
        elif name == "garbage":
            keep = len(self.rpm_head.head) if fmt == "rpm" else 6  # the magic, for tarballs
            dest.write_bytes(whole[:keep] + os.urandom(64 * 1024))
        elif name == "rpm-payload-cut":
            keep = len(self.rpm_head.head)
            dest.write_bytes(whole[: keep + (len(whole) - keep) // 2])
        else:
            raise ValueError(name)
        return dest


def _lay_out(members: Sequence[Member], top: Path) -> None:
    """Write plain members (files, dirs, symlinks) under ``top``."""
    for m in members:
        path = top / m.name
        if m.kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif m.kind == "symlink":
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(m.link, path)
        elif m.kind == "file":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(m.data)
            path.chmod(m.mode)
        else:
            raise ValueError(m.kind)
