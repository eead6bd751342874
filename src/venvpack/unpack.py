"""Read an artifact nobody trusts yet: an environment directory, or an artifact of any
registered format (:mod:`venvpack.emit`), becomes a directory tree to look at.

The format says what its artifact is (:meth:`~venvpack.emit.Format.detect`, from its first
bytes) and how its files come out (:meth:`~venvpack.emit.Format.unpack`); the reading itself
is this module's, the same for every format, through an :class:`Unpacker`. An archive is one
compressed stream (:class:`_Decoded`: zstd, gzip, xz, bzip2 or none, decoded with bounded
output and checked to its end, so a stream cut short is an error even where the archive
inside looks complete), read by libarchive (through ``libarchive-c``) as tar, cpio or zip; a
container around it (an ``ar``) is listed by libarchive too. Entries are written by
:class:`_Writer`, which never follows a path it did not make itself:

* a member named absolutely, with ``..``, beyond one of the artifact's own symlinks or files,
  or as a device node, fifo or socket is refused (:class:`ArtifactError`): a tree venvpack
  made has none of these, and a reader that honoured them would write outside its directory;
* symlinks are written as data and never followed (targets are kept as they are: a link
  leaving the tree is a problem for ``inspect`` to report, not to refuse);
* holes stay holes: sparse members and runs of zeros are not written, a file's apparent size
  is set with ``ftruncate``;
* with ``whole=False`` (what ``inspect`` needs) only what the report reads is kept: ELF files
  and files up to :data:`KEEP_WHOLE` in full, the first :data:`HEAD` bytes of larger ones;
* :class:`Limits`: the data expanded from an artifact (against the compressed bytes read so
  far) and its number of members are bounded, so a decompression bomb stops early with one
  line instead of filling the disk.

Reads inside a tree go through :func:`read_inside` and :func:`is_file_inside`, which refuse
any path whose real location is outside it, and anything but a regular file (a link to
``/dev/zero`` or ``/proc/self/fd/0`` is never opened).
"""

from __future__ import annotations

import errno
import fnmatch
import io
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Union

from venvpack.emit import Format, formats, load_format
from venvpack.errors import ArtifactError, ConfigError, ToolMissingError
from venvpack.manifest import MANIFEST_PATH

__all__ = [
    "COMPRESSED",
    "DIRECTORY",
    "HEAD",
    "KEEP_WHOLE",
    "Limits",
    "Opened",
    "Stream",
    "Unpacker",
    "artifact_kind",
    "extract",
    "find_env_root",
    "glob_inside",
    "is_file_inside",
    "open_artifact",
    "read_inside",
    "read_text_inside",
]


Stream = Union[BinaryIO, io.RawIOBase]
"""A readable file: an artifact, or a member's data inside it (:meth:`Unpacker.members`)."""

DIRECTORY = "directory"
"""The kind of an environment directory (every other kind is a format's name)."""


@dataclass(frozen=True)
class Opened:
    """An artifact laid out as files."""

    kind: str
    """:data:`DIRECTORY`, or the name of the format whose artifact it is."""
    tree: Path
    """The directory holding everything the artifact contains."""
    root: Path
    """The environment's root (the directory with ``pyvenv.cfg``), inside ``tree``."""
    installed_at: str | None
    """Where the environment lives once installed: its own path for a directory, the
    package's install path (``/opt/hello``) for a format that installs its files where they
    are in the artifact (:attr:`~venvpack.emit.Format.fixed_location`), None for one
    unpacked anywhere."""
    fixed: bool = False
    """The environment never moves from :attr:`installed_at` (a system package's)."""


@dataclass(frozen=True)
class Limits:
    """How much an artifact may expand to while it is read."""

    floor: int = 128 << 20
    """Bytes of data (headers and contents; holes not counted) any artifact may expand to;
    past them ..."""
    ratio: int = 64
    """... at most this many times the compressed bytes read so far: real trees compress by
    3 to 5 times, a decompression bomb by thousands, and it is stopped early."""
    members: int = 300_000
    """Entries (files, directories, links); a large PyTorch environment has about 30,000 ..."""
    member_bytes: int = 32
    """... and past :data:`MEMBERS_FREE` of them, each comes with this many compressed bytes
    read (a real member takes hundreds; a bomb of empty members, a few)."""


MEMBERS_FREE = 10_000


KEEP_WHOLE = 16 << 20
"""Files up to this size are kept whole for the report (inspect scans them as text); ELF
files are always kept whole."""
HEAD = 64 << 10
"""How much of a larger file is kept (its apparent size is kept too)."""

_ZSTD = b"\x28\xb5\x2f\xfd"
_GZIP = b"\x1f\x8b"
_XZ = b"\xfd7zXZ\x00"
_BZIP2 = b"BZh"
_ELF = b"\x7fELF"
_CHUNK = 1 << 16
HEAD_BYTES = 512
"""How much of a file :meth:`~venvpack.emit.Format.detect` sees."""

COMPRESSED = (_ZSTD, _GZIP, _XZ, _BZIP2)
"""The magic numbers of the compressed streams the reader decodes."""


def artifact_kind(path: Path) -> str:
    """What ``path`` is, from its content (a suffix can lie): :data:`DIRECTORY` or the name
    of the format that recognises its first bytes; ConfigError when none does.

    Formats are asked newest first, so one registered later can refine an earlier one (an
    image that is also a tarball)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        return DIRECTORY
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path} is not a regular file or a directory")
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    for fmt in reversed(formats()):
        if fmt.detect(head):
            return fmt.name
    raise ConfigError(f"{path} is neither an environment directory nor {_nouns()}")


def _nouns() -> str:
    """Every format's artifact, for a message: ``a tarball, a .deb or an .rpm``."""
    nouns = [fmt.noun for fmt in formats()]
    return ", ".join(nouns[:-1]) + f" or {nouns[-1]}" if len(nouns) > 1 else nouns[0]


@contextmanager
def open_artifact(path: Path, limits: Limits = Limits()) -> Iterator[Opened]:
    """``path`` as a directory tree; a package or tarball is unpacked (what a report needs of
    it) into a temporary directory, removed afterwards."""
    if not os.path.lexists(path):
        raise ConfigError(f"{path} does not exist")
    kind = artifact_kind(path)
    if kind == DIRECTORY:
        root = path.absolute()
        yield Opened(kind, root, root, str(root))
        return
    fmt = load_format(kind)
    tmp = Path(tempfile.mkdtemp(prefix="venvpack-inspect-"))
    try:
        tree = tmp / "tree"
        tree.mkdir()
        extract(path, tree, kind=kind, whole=False, limits=limits)
        root = find_env_root(tree)
        fixed = fmt.fixed_location
        installed = "/" + str(root.relative_to(tree)) if fixed else None
        yield Opened(kind, tree, root, installed, fixed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def find_env_root(tree: Path) -> Path:
    """The shallowest directory under ``tree`` holding a manifest, else a ``pyvenv.cfg``
    (a link of that name marks it as well: it is reported on, never followed)."""
    manifest_dir, manifest_name = posixpath.split(MANIFEST_PATH)
    best: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        here = Path(dirpath)
        depth = len(here.relative_to(tree).parts)
        for name in filenames:
            if name == manifest_name and here.name == manifest_dir:
                key, root, depth_of_root = "manifest", here.parent, depth - 1
            elif name == "pyvenv.cfg":
                key, root, depth_of_root = "pyvenv", here, depth
            else:
                continue
            if not stat.S_ISDIR((here / name).lstat().st_mode):  # a link marks it too
                candidate = (depth_of_root, str(root))
                if key not in best or candidate < best[key]:
                    best[key] = candidate
    for key in ("manifest", "pyvenv"):
        if key in best:
            return Path(best[key][1])
    raise ConfigError("the artifact holds no environment (no pyvenv.cfg)")


# -- contained reads --------------------------------------------------------------------


def _real_inside(root: Path, path: Path) -> str | None:
    """``path``'s real location when it is inside ``root``'s, else None."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real == real_root or real.startswith(real_root.rstrip("/") + "/"):
        return real
    return None


def glob_inside(base: Path, pattern: str) -> list[Path]:
    """Paths below ``base`` matching ``pattern`` (``/``-separated ``fnmatch`` components),
    found without passing through a symlink: a directory link is never listed, even when it
    points back inside (only the last component may be a link)."""
    current = [base]
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        found: list[Path] = []
        for directory in current:
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if fnmatch.fnmatchcase(entry.name, part) and (
                            last or entry.is_dir(follow_symlinks=False)
                        ):
                            found.append(Path(entry.path))
            except OSError:
                continue
        current = found
    return sorted(current)


def is_file_inside(root: Path, path: Path) -> bool:
    """``path`` leads (through links inside ``root`` only) to a regular file inside ``root``."""
    real = _real_inside(root, path)
    if real is None:
        return False
    try:
        return stat.S_ISREG(os.lstat(real).st_mode)
    except OSError:
        return False


def read_inside(root: Path, path: Path, limit: int = KEEP_WHOLE) -> bytes | None:
    """The first ``limit`` bytes of ``path`` when it is a regular file inside ``root``
    (links followed only while they stay inside); None otherwise. Never opens a device,
    fifo or anything outside the tree."""
    real = _real_inside(root, path)
    if real is None:
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(real, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_text_inside(root: Path, path: Path, limit: int = KEEP_WHOLE) -> str | None:
    """:func:`read_inside` decoded as UTF-8 (undecodable bytes replaced)."""
    data = read_inside(root, path, limit)
    return None if data is None else data.decode("utf-8", errors="replace")


# -- extraction -------------------------------------------------------------------------


def extract(
    artifact: Path,
    dest: Path,
    *,
    kind: str | None = None,
    whole: bool = True,
    limits: Limits = Limits(),
) -> None:
    """Lay ``artifact``'s files (a tarball's, or a package's data) into ``dest``, as the
    format ``kind`` (by default: the one that recognises it) unpacks it.

    ``whole=False`` keeps only what a report reads (see the module's docstring). Raises
    :class:`ArtifactError` for a corrupt, hostile or oversized artifact; ``dest`` may then
    hold part of it (callers extract into a directory of their own and remove it)."""
    kind = kind or artifact_kind(artifact)
    if kind == DIRECTORY:
        raise ConfigError(f"{artifact} is a directory, not an archive")
    fmt: Format = load_format(kind)
    libarchive = _libarchive()
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(artifact.name, limits)
    unpacker = Unpacker(_Writer(dest, budget, whole=whole))
    try:
        with artifact.open("rb") as raw:
            fmt.unpack(raw, unpacker)
    except libarchive.ArchiveError as exc:
        # a failure in our own stream (a cut-short or oversized one) reaches libarchive as
        # a read error: say what it was
        raise budget.failure or ArtifactError(f"{artifact.name}: {_describe(exc)}") from None


class Unpacker:
    """How a format lays its artifact's files into the tree: every member it reads is
    written by the contained writer and counted against the :class:`Limits`; nothing else
    writes. A format's :meth:`~venvpack.emit.Format.unpack` only says where its archive is."""

    def __init__(self, writer: _Writer) -> None:
        self._writer = writer

    @property
    def name(self) -> str:
        """The artifact's file name, for messages."""
        return self._writer.budget.name

    def archive(
        self, stream: Stream, archive_format: str, *, seekable: bool = False, layer: bool = False
    ) -> None:
        """Write the members of the archive at ``stream``'s position into the tree:
        ``archive_format`` is libarchive's name (``tar``, ``cpio``, ``zip``). By default the
        archive is one compressed stream (zstd, gzip, xz, bzip2 or none), read to its very
        end; ``seekable`` reads an archive that compresses its own members and must be read
        by seeking (``zip``, whose symlinks are said only in its central directory).
        ``layer``: a container image's layer, laid over the ones before it: a member
        ``.wh.NAME`` removes ``NAME`` an earlier layer laid, ``.wh..wh..opq`` everything
        earlier layers laid in its directory; neither is written."""
        libarchive = _libarchive()
        writer = self._writer
        writer.layer = set() if layer else None
        if seekable:
            counted = _Counted(stream, writer.budget)
            with libarchive.seekable_stream_reader(
                counted, archive_format, block_size=_CHUNK
            ) as archive:
                writer.counts_data = True
                writer.add_all(archive)
            return
        decoded = _Decoded(stream, writer.budget)
        with libarchive.stream_reader(
            decoded, archive_format, "none", block_size=_CHUNK
        ) as archive:
            writer.add_all(archive)
        decoded.finish()

    def members(self, stream: Stream, container: str) -> Generator[tuple[str, Stream], None, None]:
        """The members of the container at ``stream`` (libarchive's format name: ``ar``),
        each as its name and a stream of its data for :meth:`archive`; nothing is written.
        Close the iterator (or read it to its end) before reading the file again."""
        libarchive = _libarchive()
        with libarchive.stream_reader(stream, container, "none", block_size=_CHUNK) as outer:
            for entry in outer:
                yield str(entry.pathname), _EntryStream(entry)


class _Decoded(io.RawIOBase):
    """A compressed stream, decoded: zstd, gzip, xz or bzip2 by its magic (several
    concatenated streams as one, as parallel compressors write), else passed through.
    Output is bounded per call (a bomb never sits in memory); :meth:`finish` reads to the
    end and raises when the stream was cut short or is followed by anything but zeros."""

    def __init__(self, raw: Stream, budget: _Budget) -> None:
        self._raw = raw
        self._budget = budget
        self._input = b""
        self._output = memoryview(b"")
        self._decoder: Any = None
        self._bite = _CHUNK
        self._kind = ""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """libarchive's read callback: an exception cannot cross it, so a failure is kept
        in the budget (:func:`extract` raises it) and libarchive is told "error" (-1)."""
        if self._budget.failure is not None:
            return -1
        try:
            while not self._output and not self._done:
                self._output = memoryview(self._step(len(buffer)))
            n = min(len(buffer), len(self._output))
            self._budget.spend(n)
        except ArtifactError as exc:
            self._budget.failure = exc
            return -1
        except Exception as exc:  # the .deb's ar around this stream, cut short
            self._budget.failure = ArtifactError(f"{self._budget.name}: {_describe(exc)}")
            return -1
        _view(buffer)[:n] = self._output[:n]
        self._output = self._output[n:]
        return n

    def finish(self) -> None:
        """Read what the archive reader left (padding) to the end of the stream."""
        rest = bytes(self._output)
        while True:
            if rest.strip(b"\0"):
                raise ArtifactError(f"{self._budget.name}: data follows the end of its archive")
            if self._done:
                return
            rest = self._step(_CHUNK)
            self._budget.spend(len(rest))

    def _fill(self, at_least: int) -> bool:
        """More compressed input; False at the end of the file."""
        if len(self._input) >= at_least:
            return True
        more = self._raw.read(max(self._bite, at_least))
        self._budget.read += len(more)
        self._input += more
        return bool(more)

    def _step(self, wanted: int) -> bytes:
        if self._decoder is None:
            if not self._fill(6) and not self._input:
                self._done = True
                return b""
            self._start()
        if self._decoder is None:  # not compressed
            out, self._input = self._input, b""
            if not out and not self._fill(1):
                self._done = True
            return out
        if self._decoder.eof:
            # the end, zero padding, or another stream of the same kind
            self._input = (self._decoder.unused_data + self._input).lstrip(b"\0")
            self._decoder = None
            while not self._input:
                if not self._fill(1):
                    self._done = True
                    return b""
                self._input = self._input.lstrip(b"\0")
            self._fill(6)
            if not self._input.startswith(self._magic):
                raise ArtifactError(
                    f"{self._budget.name}: data follows the end of its compressed stream"
                )
            self._start()
        buffered = not getattr(self._decoder, "needs_input", True)  # xz, bzip2
        if not self._input and not buffered and not self._fill(1):
            raise ArtifactError(
                f"{self._budget.name}: truncated {self._kind} stream (the file is cut short)"
            )
        return self._decode(max(wanted, _CHUNK))

    _MAGIC = ((_ZSTD, "zstd"), (_GZIP, "gzip"), (_XZ, "xz"), (_BZIP2, "bzip2"))

    def _start(self) -> None:
        import bz2
        import lzma
        import zlib

        import zstandard

        for magic, kind in self._MAGIC:
            if self._input.startswith(magic) and (not self._kind or kind == self._kind):
                self._kind, self._magic = kind, magic
                # zstd's API has no output bound: feed little input at a time (a zstd block
                # expands at most ~32,000 times, so 2 KiB give at most 64 MiB)
                self._bite = 2048 if kind == "zstd" else _CHUNK
                break
        else:
            return
        self._decoder = {
            "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
            "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
            "xz": lzma.LZMADecompressor,
            "bzip2": bz2.BZ2Decompressor,
        }[kind]()

    def _decode(self, limit: int) -> bytes:
        """At most about ``limit`` bytes of output from the input at hand."""
        try:
            if self._kind == "zstd":
                chunk, self._input = self._input[: self._bite], self._input[self._bite :]
                return bytes(self._decoder.decompress(chunk))
            if self._kind == "gzip":
                out = self._decoder.decompress(self._input, limit)
                self._input = self._decoder.unconsumed_tail
                return bytes(out)
            out = self._decoder.decompress(self._input, limit)
            self._input = b""
            return bytes(out)
        except Exception as exc:  # zlib.error, lzma.LZMAError, OSError, ZstdError
            raise ArtifactError(
                f"{self._budget.name}: corrupt {self._kind} stream ({' '.join(str(exc).split())})"
            ) from None


class _Counted(io.RawIOBase):
    """A seekable file whose reads are counted as compressed bytes read (an archive that
    compresses each member itself: its expansion is counted as its members are written)."""

    def __init__(self, raw: Stream, budget: _Budget) -> None:
        self._raw = raw
        self._budget = budget

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        self._budget.read += len(data)
        _view(buffer)[: len(data)] = data
        return len(data)


class _EntryStream(io.RawIOBase):
    """One archive entry's data as a file, for an archive nested in it (a .deb's data.tar)."""

    def __init__(self, entry: Any) -> None:
        self._blocks = entry.get_blocks(_CHUNK)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            self._pending = memoryview(next(self._blocks, b""))
        n = min(len(buffer), len(self._pending))
        _view(buffer)[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _view(buffer: Any) -> memoryview:
    """A byte view of a read buffer (libarchive-c passes a ctypes array, whose own slice
    assignment copies one byte at a time)."""
    return memoryview(buffer).cast("B")


def _describe(exc: Exception) -> str:
    """libarchive's message for a corrupt stream, as one printable line."""
    text = str(exc.args[0] if exc.args else exc) or "unreadable archive"
    text = " ".join(text.split())
    if "truncat" in text.lower() or "premature" in text.lower():
        return f"truncated or corrupt archive ({text})"
    return f"corrupt or unreadable archive ({text})"


def _libarchive() -> Any:
    """The ``libarchive`` module, or ToolMissingError naming the missing piece."""
    try:
        import libarchive
        import libarchive.ffi  # loads the shared library
    except (ImportError, OSError, AttributeError, TypeError) as exc:
        raise ToolMissingError(
            f"reading artifacts needs libarchive ({exc}); apt-get install libarchive13"
        ) from None
    return libarchive


class _Budget:
    """Counts what an artifact expands to (its decoded streams: headers and data, holes
    excluded); ArtifactError past :class:`Limits`."""

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.data = 0
        self.read = 0
        """Compressed bytes read so far."""
        self.members = 0
        self.failure: ArtifactError | None = None
        """Why a stream stopped, when it stopped inside libarchive's read callback."""

    def member(self) -> None:
        self.members += 1
        limits = self.limits
        if self.members > MEMBERS_FREE and self.members * limits.member_bytes > self.read:
            raise ArtifactError(
                f"{self.name} holds more members than {limits.member_bytes} bytes each: "
                "refusing to read it (an archive bomb?)"
            )
        if self.members > limits.members:
            raise ArtifactError(
                f"{self.name} holds more than {self.limits.members:,} members: refusing to read it"
            )

    def spend(self, n: int) -> None:
        self.data += n
        if self.data > self.limits.floor and self.data > self.limits.ratio * self.read:
            raise ArtifactError(
                f"{self.name} expands to more than {self.limits.ratio} times its size: "
                "refusing to read it (a decompression bomb?)"
            )


_WHITEOUT = ".wh."
_OPAQUE = ".wh..opq"
"""Image layers' whiteouts (the OCI image spec's layer changesets): ``.wh.NAME`` deletes
``NAME``; ``.wh..wh..opq`` makes its directory opaque, hiding what lower layers put there."""


def _member_name(raw: str | bytes, artifact: str) -> tuple[str, ...]:
    """A member's path as components below the tree; ArtifactError for one that leaves it."""
    name = os.fsdecode(raw) if isinstance(raw, bytes) else raw
    if "\0" in name:
        raise ArtifactError(f"{artifact}: member name {_shown(name)} holds a NUL byte")
    trimmed = name
    while trimmed.startswith("./"):
        trimmed = trimmed[2:]
    if trimmed.startswith("/"):
        raise ArtifactError(f"{artifact}: member {_shown(name)} has an absolute name")
    parts = tuple(p for p in trimmed.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ArtifactError(
            f"{artifact}: member {_shown(name)} names a path outside the artifact (..)"
        )
    return parts


def _shown(name: str) -> str:
    """A member name for a message: control characters escaped."""
    from venvpack.ui import printable

    return printable(name)


class _Writer:
    """Writes archive entries below ``dest``, following no path it did not create itself.

    ``kinds`` records what each path written so far is ("d", "l" or "f"); a member whose
    parent is a link or a file is refused, so no write ever passes through a link."""

    def __init__(self, dest: Path, budget: _Budget, *, whole: bool) -> None:
        self.dest = dest
        self.budget = budget
        self.whole = whole
        self.kinds: dict[tuple[str, ...], str] = {(): "d"}
        self.counts_data = False
        """Count each member's data against the budget as it is written (an archive whose
        members are compressed one by one, which no :class:`_Decoded` stream counts)."""
        self.layer: set[tuple[str, ...]] | None = None
        """While an image layer is read: the paths it laid so far (a whiteout removes only
        what earlier layers laid)."""

    def add_all(self, archive: Any) -> None:
        for entry in archive:
            self.budget.member()
            self.add(entry)

    def add(self, entry: Any) -> None:
        parts = _member_name(entry.pathname, self.budget.name)
        if not parts:
            return  # the archive's own top directory, "./"
        self._parents(parts)
        if self.layer is not None:
            if parts[-1].startswith(_WHITEOUT):
                self._whiteout(parts)
                return
            self.layer.add(parts)
        path = self._path(parts)
        if entry.isdir:
            self._directory(parts, path)
        elif entry.issym:
            self._clear(parts, path)
            target = entry.linkpath
            os.symlink(os.fsdecode(target) if isinstance(target, bytes) else target, path)
            self.kinds[parts] = "l"
        elif entry.islnk:
            source = _member_name(entry.linkpath, self.budget.name)
            if self.kinds.get(source) != "f":
                raise ArtifactError(
                    f"{self.budget.name}: member {_shown('/'.join(parts))} is a hard link to "
                    f"{_shown('/'.join(source))}, which is not a file of the artifact"
                )
            self._clear(parts, path)
            os.link(self._path(source), path, follow_symlinks=False)
            self.kinds[parts] = "f"
            if entry.size:
                self._data(entry, path, truncate=True)
        elif entry.isreg:
            self._clear(parts, path)
            self._data(entry, path, truncate=False)
            self.kinds[parts] = "f"
        else:
            raise ArtifactError(
                f"{self.budget.name}: member {_shown('/'.join(parts))} "
                "is a device node, fifo or socket"
            )

    def _path(self, parts: tuple[str, ...]) -> str:
        return os.path.join(self.dest, *parts)

    def _whiteout(self, parts: tuple[str, ...]) -> None:
        """Remove what the whiteout ``parts`` names from the earlier layers (its parents
        are the tree's own directories: :meth:`_parents` made sure)."""
        assert self.layer is not None
        directory, name = parts[:-1], parts[-1][len(_WHITEOUT) :]
        if name == _OPAQUE:
            doomed = [p for p in self.kinds if len(p) == len(parts) and p[:-1] == directory]
        elif name and name not in (".", ".."):
            doomed = [(*directory, name)] if (*directory, name) in self.kinds else []
        else:
            raise ArtifactError(f"{self.budget.name}: invalid whiteout {_shown('/'.join(parts))}")
        for victim in doomed:
            if victim in self.layer:
                continue  # this layer's own: a whiteout hides only what lies below
            path = self._path(victim)
            if self.kinds[victim] == "d":
                shutil.rmtree(path)  # never follows the links inside
            else:
                os.unlink(path)
            for known in [k for k in self.kinds if k[: len(victim)] == victim]:
                del self.kinds[known]

    def _parents(self, parts: tuple[str, ...]) -> None:
        """Every parent of ``parts`` is a directory (made here if missing), never a link."""
        for i in range(1, len(parts)):
            parent = parts[:i]
            kind = self.kinds.get(parent)
            if kind == "d" or (kind is None and self._directory_here(parent)):
                continue
            if kind is None:  # something ``dest`` already had
                kind = "l" if os.path.islink(self._path(parent)) else "f"
            what = "symlink" if kind == "l" else "file"
            raise ArtifactError(
                f"{self.budget.name}: member {_shown('/'.join(parts))} lies beyond the {what} "
                f"{_shown('/'.join(parent))}: refusing to write through the artifact's links"
            )

    def _clear(self, parts: tuple[str, ...], path: str) -> None:
        """Make room for a new non-directory at ``path`` (a later member replaces an earlier
        one, as tar does; a directory is never replaced)."""
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            raise ArtifactError(
                f"{self.budget.name}: member {_shown('/'.join(parts))} would replace a directory"
            )
        os.unlink(path)  # unlink never follows a link

    def _directory_here(self, parts: tuple[str, ...]) -> bool:
        """A directory at ``parts``: made when nothing is there, or one ``dest`` already had;
        False when something else is there."""
        path = self._path(parts)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return False
        except FileNotFoundError:
            os.mkdir(path, 0o755)
        self.kinds[parts] = "d"
        return True

    def _directory(self, parts: tuple[str, ...], path: str) -> None:
        if self._directory_here(parts):
            return
        if parts not in self.kinds:  # not the artifact's own: the tree it is laid into
            raise ArtifactError(
                f"{self.budget.name}: directory {_shown('/'.join(parts))} "
                "would replace a link or file"
            )
        os.unlink(path)  # the artifact's own link or file, replaced by a directory
        os.mkdir(path, 0o755)
        self.kinds[parts] = "d"

    def _data(self, entry: Any, path: str, *, truncate: bool) -> None:
        """The entry's data into ``path``: holes and zero runs skipped, the rest kept as
        :attr:`whole` says, the apparent size set at the end."""
        from ctypes import byref, c_longlong, c_size_t, c_void_p, string_at

        from libarchive import ffi

        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        flags |= os.O_TRUNC if truncate else os.O_CREAT | os.O_EXCL
        perm = (entry.perm or 0o644) & 0o777 | 0o600  # never setuid, always readable to us
        fd = os.open(path, flags, perm)
        try:
            os.fchmod(fd, perm)
            size = entry.size or 0
            keep_all = self.whole or size <= KEEP_WHOLE
            buf, length, offset = c_void_p(), c_size_t(), c_longlong()
            archive = entry._archive_p
            first = True
            while ffi.read_data_block(archive, byref(buf), byref(length), byref(offset)) != 1:
                n, at = length.value, offset.value
                if n == 0:
                    continue
                if self.counts_data:
                    self.budget.spend(n)
                if first:
                    first = False
                    if at == 0 and not keep_all:
                        keep_all = string_at(buf, min(n, 4)) == _ELF
                if not keep_all and at >= HEAD:
                    continue
                data = string_at(buf, n)
                for start in range(0, n, _CHUNK):
                    chunk = data[start : start + _CHUNK]
                    if chunk != bytes(len(chunk)):
                        os.pwrite(fd, chunk, at + start)
            os.ftruncate(fd, size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ArtifactError(f"{self.budget.name}: no space left while reading it") from None
            raise
        finally:
            os.close(fd)
