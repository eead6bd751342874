"""OCI images as files: content-addressed blobs, layers, the config and the manifest, written
reproducibly as an OCI image layout directory or as one tar of it (an ``oci-archive``, what
``skopeo copy oci-archive:``, ``podman load`` and ``docker load`` read), and read back from
either without trusting them.

Writing. A :class:`BlobStore` is the staging area of one image: every blob lands in it
under its sha256, so the same bytes are stored once. :meth:`BlobStore.add_layer` streams a
:class:`~venvpack.archive.TarPlan` through the project's gzip writer (whose bytes depend
only on the input and the level, never on the thread count) into the store, hashing the tar
(the layer's ``diff_id``) and the gzip stream (its digest) on the way, without holding the
layer in memory. :func:`image_manifest` writes the config and the manifest;
:func:`write_layout` and :func:`write_archive` lay out exactly the blobs the manifest reaches.
JSON is written canonically (sorted keys, no spaces, UTF-8), tars by the project's archive
writer (sorted, root-owned, ``SOURCE_DATE_EPOCH`` times), so the same inputs give the same
bytes: blobs, manifest, index and archive.

No subprocess here: registries are :mod:`venvpack.oci.registry`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from venvpack.archive import Compression, TarPlan, compressed_writer, source_date_epoch, write_tar
from venvpack.errors import ArtifactError, ConfigError, EmitError
from venvpack.oci.registry import parse_reference, pull
from venvpack.ui import printable

__all__ = [
    "ANNOTATION_CONTAINERD_NAME",
    "ANNOTATION_REF_NAME",
    "LAYER_MEDIA_TYPES",
    "MEDIA_CONFIG",
    "MEDIA_INDEX",
    "MEDIA_LAYER",
    "MEDIA_LAYER_GZIP",
    "MEDIA_MANIFEST",
    "BlobStore",
    "Descriptor",
    "ImageRef",
    "Layer",
    "LoadedImage",
    "canonical_json",
    "check_blob",
    "image_manifest",
    "is_oci_archive",
    "load_image",
    "parse_image_ref",
    "write_archive",
    "write_layout",
]

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
"""The tag of a manifest in an image layout's index (``oci:DIR:TAG``)."""
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
"""The full image name (``hello:1.0``) that ``docker load`` and containerd tag it with."""

_LAYOUT_FILE = "oci-layout"
_INDEX_FILE = "index.json"
_BLOBS_DIR = "blobs"
_LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
_DIGEST_RE = re.compile(r"sha256:([0-9a-f]{64})", re.ASCII)
_CHUNK = 1 << 20
_JSON_LIMIT = 4 << 20
"""The largest manifest, config or index read: real ones are a few KiB."""


@dataclass(frozen=True)
class Descriptor:
    """What points to a blob: its media type, digest and size (the OCI descriptor)."""

    media_type: str
    digest: str
    """``sha256:<64 hex>``."""
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] | None = None
    """``architecture``, ``os`` and maybe ``variant``: a manifest's, in an index."""

    def to_json(self) -> dict[str, Any]:
        """The descriptor as OCI spells it (``mediaType``, ``digest``, ``size`` ...)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True)
class Layer:
    """One layer of an image: its compressed blob and what it is in the config."""

    descriptor: Descriptor
    """The compressed blob, as the manifest lists it."""
    diff_id: str
    """``sha256:<hex>`` of the uncompressed tar: the config's ``rootfs.diff_ids`` entry."""
    created_by: str
    """History text saying what the layer holds (``venvpack: interpreter``)."""


def canonical_json(obj: Any) -> bytes:
    """``obj`` as the bytes of every JSON document venvpack puts in an image: sorted keys,
    no whitespace, UTF-8, so the same content always has the same digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hex(digest: str) -> str:
    match = _DIGEST_RE.fullmatch(digest)
    if match is None:
        raise ArtifactError(f"not a sha256 digest: {_shown(digest)}")
    return match[1]


def _shown(text: str) -> str:
    """``text`` shortened and with control characters escaped, for a one-line message."""
    shown = repr(text[:80])[1:-1]
    return shown + ("..." if len(text) > 80 else "")


class _Hashing:
    """A byte sink that hashes and counts what passes through to ``out``."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.sha.update(data)
        self.size += len(data)
        self._out.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha.hexdigest()}"


class BlobStore:
    """Content-addressed blobs in a directory (``blobs/sha256/<hex>``), the staging area of
    one image.

    A blob is written to a temporary file in the store and renamed to its digest when
    complete, so a name always holds what its digest says; adding a blob the store already
    has keeps the one there.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / _BLOBS_DIR / "sha256"
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmitError(f"cannot create a directory in {root}: {exc.strerror}") from None

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` is (or would be) in the store."""
        return self._blobs / _hex(digest)

    def has(self, digest: str) -> bool:
        """Whether the store holds the blob ``digest``."""
        return self.path(digest).is_file()

    def read_bytes(self, digest: str, limit: int) -> bytes:
        """The content of the blob ``digest``, if at most ``limit`` bytes (a manifest or
        a config: JSON is read whole, so its size is bounded)."""
        path = self.path(digest)
        try:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            raise ArtifactError(f"cannot read blob {digest}: {exc.strerror}") from None
        if len(data) > limit:
            raise ArtifactError(f"blob {digest} is larger than {limit} bytes")
        return data

    # ------------------------------------------------------------------ adding

    @contextmanager
    def _temporary(self) -> Iterator[tuple[BinaryIO, Path]]:
        """A new file in the store to write a blob into; removed unless renamed."""
        try:
            fd, name = tempfile.mkstemp(prefix=".part-", dir=self.root)
        except OSError as exc:
            raise EmitError(f"cannot write in {self.root}: {exc.strerror}") from None
        path = Path(name)
        try:
            with open(fd, "wb") as fh:
                yield fh, path
        finally:
            path.unlink(missing_ok=True)

    def _keep(self, temporary: Path, digest: str, *, ours: bool = True) -> None:
        """Rename a complete temporary file to its digest; one the store wrote (``ours``,
        not a link to someone's file) is made readable by all, as blobs are."""
        try:
            if ours:
                os.chmod(temporary, 0o644)
            os.replace(temporary, self.path(digest))
        except OSError as exc:
            raise EmitError(f"cannot write blob {digest}: {exc.strerror}") from None

    def add_bytes(
        self, data: bytes, media_type: str, annotations: Mapping[str, str] | None = None
    ) -> Descriptor:
        """Store ``data``; its descriptor."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if not self.has(digest):
            with self._temporary() as (fh, temporary):
                try:
                    fh.write(data)
                except OSError as exc:
                    raise EmitError(f"cannot write blob {digest}: {exc.strerror}") from None
                fh.close()
                self._keep(temporary, digest)
        return Descriptor(media_type, digest, len(data), dict(annotations or {}))

    def add_json(
        self, obj: Any, media_type: str, annotations: Mapping[str, str] | None = None
    ) -> Descriptor:
        """Store ``obj`` as canonical JSON (:func:`canonical_json`); its descriptor."""
        return self.add_bytes(canonical_json(obj), media_type, annotations)

    def add_layer(self, plan: TarPlan, created_by: str, *, level: int | None = None) -> Layer:
        """Write ``plan`` as a gzip-compressed layer (``level``: gzip's, the project's
        default when None), streamed: the tar is hashed for the ``diff_id`` and the gzip
        stream for the digest as they are written."""
        with self._temporary() as (fh, temporary):
            compressed = _Hashing(fh)
            try:
                with compressed_writer(
                    cast(BinaryIO, compressed), Compression.GZIP, level, size=plan.size
                ) as sink:
                    uncompressed = _Hashing(sink)
                    write_tar(plan, uncompressed)
                fh.close()
            except OSError as exc:
                raise EmitError(f"cannot write a layer in {self.root}: {exc.strerror}") from None
            self._keep(temporary, compressed.digest)
        return Layer(
            Descriptor(MEDIA_LAYER_GZIP, compressed.digest, compressed.size),
            uncompressed.digest,
            created_by,
        )

    def add_blob_file(self, src: Path, descriptor: Descriptor) -> None:
        """Take the file ``src`` (a base image's blob) into the store as ``descriptor``'s
        blob: hard-linked where it can be, else copied; its size and digest are checked
        first, and a mismatch is an ArtifactError."""
        if self.has(descriptor.digest):
            return
        with self._temporary() as (fh, temporary):
            fh.close()
            try:
                temporary.unlink()
                os.link(src, temporary, follow_symlinks=False)
                linked = True
            except OSError:
                linked = False
                try:
                    shutil.copyfile(src, temporary, follow_symlinks=False)
                except OSError as exc:
                    raise ArtifactError(f"cannot read {src}: {exc.strerror}") from None
            check_blob(temporary, descriptor)
            self._keep(temporary, descriptor.digest, ours=not linked)


def check_blob(path: Path, descriptor: Descriptor) -> None:
    """Refuse (ArtifactError) a file that is not a regular file of ``descriptor``'s size
    and sha256; read in chunks, and never past that size."""
    expected = _hex(descriptor.digest)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ArtifactError(f"cannot read blob {descriptor.digest}: {exc.strerror}") from None
    sha = hashlib.sha256()
    size = 0
    with open(fd, "rb", buffering=0) as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"blob {descriptor.digest} is not a regular file")
        while size <= descriptor.size:
            chunk = fh.read(min(_CHUNK, descriptor.size + 1 - size))
            if not chunk:
                break
            sha.update(chunk)
            size += len(chunk)
    if size > descriptor.size:
        raise ArtifactError(
            f"blob {descriptor.digest} is larger than the {descriptor.size} bytes"
            " its descriptor says"
        )
    if size < descriptor.size:
        raise ArtifactError(
            f"blob {descriptor.digest} holds {size} bytes, not the {descriptor.size}"
            " its descriptor says"
        )
    if sha.hexdigest() != expected:
        raise ArtifactError(f"blob {descriptor.digest} does not match its digest")


def image_manifest(
    store: BlobStore,
    config: Mapping[str, Any],
    layers: Sequence[Layer],
    annotations: Mapping[str, str],
) -> Descriptor:
    """Write the image's config and manifest into ``store``; the manifest's descriptor,
    with the platform (``os``, ``architecture``, ``variant``) the config names.

    ``config`` is the OCI image config without ``rootfs``, which is made here from the
    layers' diff_ids; its ``history`` too, one entry per layer (dated by the config's
    ``created``), unless the config brings its own.
    """
    full = dict(config)
    if "rootfs" in full:
        raise EmitError("the image config's rootfs is made from its layers, not given")
    for key in ("os", "architecture"):
        if not isinstance(full.get(key), str) or not full[key]:
            raise EmitError(f"the image config names no {key}")
    full["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    if "history" not in full:
        history = []
        for layer in layers:
            entry: dict[str, Any] = {"created_by": layer.created_by}
            if "created" in full:
                entry["created"] = full["created"]
            history.append(entry)
        full["history"] = history
    config_descriptor = store.add_json(full, MEDIA_CONFIG)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_descriptor.to_json(),
        "layers": [layer.descriptor.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    descriptor = store.add_json(manifest, MEDIA_MANIFEST)
    platform = {"architecture": full["architecture"], "os": full["os"]}
    if full.get("variant"):
        platform["variant"] = full["variant"]
    return Descriptor(MEDIA_MANIFEST, descriptor.digest, descriptor.size, platform=platform)


def _reachable(store: BlobStore, manifest: Descriptor) -> list[str]:
    """The digests of the manifest, its config and its layers."""
    data = json.loads(store.read_bytes(manifest.digest, _JSON_LIMIT))
    digests = [manifest.digest, data["config"]["digest"]]
    digests += [layer["digest"] for layer in data["layers"]]
    return digests


def _index(manifest: Descriptor, ref_name: str | None, image_name: str | None) -> bytes:
    annotations = dict(manifest.annotations)
    if ref_name is not None:
        annotations[ANNOTATION_REF_NAME] = ref_name
    if image_name is not None:
        annotations[ANNOTATION_CONTAINERD_NAME] = image_name
    entry = Descriptor(
        manifest.media_type, manifest.digest, manifest.size, annotations, manifest.platform
    )
    return canonical_json(
        {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [entry.to_json()]}
    )


def write_layout(
    store: BlobStore,
    manifest: Descriptor,
    dest: Path,
    ref_name: str | None,
    *,
    image_name: str | None = None,
) -> None:
    """Write an OCI image layout directory at ``dest`` (which must not exist: the caller
    writes through :func:`venvpack.output.atomic_output`): ``oci-layout``, ``index.json``
    naming ``manifest`` (tagged ``ref_name``; ``image_name``, ``hello:1.0``, for docker
    and containerd) and exactly the blobs the manifest reaches, hard-linked from the store
    where they can be."""
    index = _index(manifest, ref_name, image_name)
    try:
        dest.mkdir(mode=0o755)
        blobs = dest / _BLOBS_DIR / "sha256"
        blobs.mkdir(mode=0o755, parents=True)
        (dest / _LAYOUT_FILE).write_bytes(canonical_json(_LAYOUT_VERSION))
        (dest / _INDEX_FILE).write_bytes(index)
        for digest in _reachable(store, manifest):
            target = blobs / _hex(digest)
            if target.exists():
                continue
            try:
                os.link(store.path(digest), target)
            except OSError:
                shutil.copyfile(store.path(digest), target)
    except OSError as exc:
        raise EmitError(f"cannot write the image layout {dest}: {exc.strerror or exc}") from None


def write_archive(
    store: BlobStore,
    manifest: Descriptor,
    dest: Path,
    ref_name: str | None,
    *,
    image_name: str | None = None,
) -> None:
    """Write the image layout of :func:`write_layout` as one uncompressed tar file at
    ``dest`` (an ``oci-archive``): sorted, root-owned, dated ``SOURCE_DATE_EPOCH`` (or
    now, when unset), so the same image gives the same archive."""
    layout = store.root / f".layout-{secrets.token_hex(6)}"
    try:
        write_layout(store, manifest, layout, ref_name, image_name=image_name)
        # Blobs carry the mtime of whichever build stored them first (or of the base image
        # they are linked from, which is never touched): the archive dates every member alike.
        epoch = source_date_epoch()
        plan = TarPlan(mtime=int(time.time()) if epoch is None else epoch)
        plan.add_tree(layout, "")
        try:
            with open(dest, "wb") as fh:
                write_tar(plan, fh)
        except OSError as exc:
            raise EmitError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(layout, ignore_errors=True)


# --------------------------------------------------------------------------- reading

LAYER_MEDIA_TYPES = frozenset(
    {
        MEDIA_LAYER_GZIP,
        MEDIA_LAYER,
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    }
)
"""Layers an image read back may have (what skopeo, podman and docker write)."""
_MANIFEST_TYPES = frozenset(
    {MEDIA_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"}
)
_INDEX_TYPES = frozenset({MEDIA_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"})
# skopeo's other transports: named so that they are not taken for a registry's name.
_OTHER_TRANSPORTS = frozenset(
    {"containers-storage", "dir", "docker-archive", "docker-daemon", "ostree", "sif", "tarball"}
)
_SCRATCH = "scratch"


@dataclass(frozen=True)
class ImageRef:
    """An image named on the command line (``--base``, or what ``inspect`` reads)."""

    transport: str
    """``oci-archive`` (a file), ``oci`` (a layout directory), ``docker`` (a registry
    reference) or ``scratch`` (no image)."""
    path: str
    """The file, the directory or the registry reference (empty for ``scratch``)."""
    tag: str | None
    """The tag in a layout (``oci:DIR:TAG``) or of a registry reference."""

    def __str__(self) -> str:
        if self.transport == _SCRATCH:
            return _SCRATCH
        if self.transport == "docker":
            return f"docker://{self.path}"
        return f"{self.transport}:{self.path}" + (f":{self.tag}" if self.tag else "")


def parse_image_ref(text: str) -> ImageRef:
    """``oci-archive:PATH``, ``oci:DIR[:TAG]``, ``docker://REF``, a bare registry reference
    (``ghcr.io/me/base:1``) or ``scratch``; ConfigError, one line, for anything else.

    As skopeo reads them, a local path ends at its first colon (what follows is the tag).
    A bare word that names an existing file or directory is refused rather than read as a
    registry name: the user surely meant the file.
    """
    if text == _SCRATCH:
        return ImageRef(_SCRATCH, "", None)
    transport, sep, rest = text.partition(":")
    if sep and transport in ("oci-archive", "oci"):
        path, _, tag = rest.partition(":")
        if not path:
            raise ConfigError(f"'{printable(text)}' names no path after '{transport}:'")
        if tag and re.fullmatch(r"[\w][\w.-]{0,127}", tag, re.ASCII) is None:
            raise ConfigError(f"'{printable(text)}': '{printable(tag)}' is not a tag")
        return ImageRef(transport, path, tag or None)
    reference = text[len("docker://") :] if text.startswith("docker://") else None
    if reference is None:
        if os.path.lexists(text):
            raise ConfigError(
                f"'{printable(text)}' is a file or directory: name it oci-archive:{printable(text)}"
                f" (an image archive) or oci:{printable(text)} (an image layout)"
            )
        if sep and transport in _OTHER_TRANSPORTS:
            raise ConfigError(
                f"'{printable(text)}': images are read from oci-archive:, oci:, docker://"
                f" or scratch, not {printable(transport)}:"
            )
        reference = text
    parsed = parse_reference(reference)
    return ImageRef("docker", parsed.text, parsed.tag)


@dataclass(frozen=True)
class LoadedImage:
    """An image read back, every blob it names checked against its digest."""

    store: BlobStore
    """Holds the manifest, the config and every layer, checked."""
    manifest: Descriptor
    manifest_json: Mapping[str, Any]
    config: Mapping[str, Any]
    layers: tuple[Layer, ...]
    """Bottom first, with the config's diff_ids and history."""

    @property
    def platform(self) -> tuple[str, str, str | None]:
        """(os, architecture, variant) as the config says."""
        variant = self.config.get("variant")
        return (
            str(self.config["os"]),
            str(self.config["architecture"]),
            variant if isinstance(variant, str) and variant else None,
        )


def load_image(
    ref: ImageRef,
    workdir: Path,
    *,
    platform: tuple[str, str, str | None] | None = None,
    auth_file: Path | None = None,
) -> LoadedImage:
    """Read the image ``ref`` into ``workdir`` (an empty directory the caller removes),
    trusting nothing in it: ArtifactError, one line, for anything malformed or hostile.

    An ``oci-archive`` is read as a stream, taking only regular files named ``oci-layout``,
    ``index.json`` or ``blobs/sha256/<hex>`` (links and devices refused, JSON bounded, other
    regular files such as docker's ``manifest.json`` ignored); a layout directory the same
    way, refusing symlinks; a registry image is pulled into a layout first. The manifest is
    the one tagged ``ref.tag``, else the only one; among several platforms, ``platform``
    (os, architecture, variant) chooses, else the choices are named in the error. Every
    blob used is checked against its size and sha256 before it is read.
    """
    if ref.transport == _SCRATCH:
        raise ConfigError("scratch is the empty image: there is nothing to read")
    incoming = workdir / "incoming"
    if ref.transport == "oci-archive":
        _read_archive(Path(ref.path), incoming)
        source, what = incoming, ref.path
    elif ref.transport == "oci":
        source, what = Path(ref.path), ref.path
        _check_layout_dir(source)
    elif ref.transport == "docker":
        pull(ref.path, incoming, auth_file=auth_file, platform=platform)
        source, what = incoming, str(ref)
    else:
        raise ConfigError(f"unknown image transport {printable(ref.transport)!r}")
    reader = _LayoutReader(source, BlobStore(workdir / "store"), printable(what))
    return reader.load(ref.tag if ref.transport != "docker" else None, platform)


def is_oci_archive(head: bytes) -> bool:
    """Whether ``head`` (an artifact's first bytes) starts an uncompressed tar whose first
    member is part of an OCI image layout (``oci-layout``, ``index.json`` or ``blobs/``,
    which venvpack's and skopeo's archives put first)."""
    if len(head) < tarfile.BLOCKSIZE or head[257:262] != b"ustar":
        return False
    try:
        stored = int(head[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    # The checksum field itself counts as eight spaces; old tars summed signed bytes.
    unsigned = sum(head[:148]) + 8 * 32 + sum(head[156:512])
    signed = sum(b - 256 if b > 127 else b for b in head[:148] + head[156:512]) + 8 * 32
    if stored not in (unsigned, signed):
        return False
    name = head[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    name = name[2:] if name.startswith("./") else name
    return name in (_LAYOUT_FILE, _INDEX_FILE) or name.split("/")[0] == _BLOBS_DIR


# The most manifests an index may list: real ones list a handful.
_MAX_MANIFESTS = 1024


def _read_archive(path: Path, dest: Path) -> None:
    """Take the image layout out of the oci-archive ``path`` into ``dest``: regular files
    with layout names only, each written once, JSON bounded."""
    blobs = dest / _BLOBS_DIR / "sha256"
    blobs.mkdir(parents=True)
    seen: set[str] = set()
    try:
        with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                name = _member_name(member.name)
                if member.isdir():
                    continue
                if not member.isreg() or member.issparse():
                    raise ArtifactError(
                        f"{printable(str(path))}: member {_shown(member.name)} is not a regular"
                        " file (an image archive holds only files and directories)"
                    )
                target = _layout_target(name, dest)
                if target is None:
                    continue  # e.g. docker's manifest.json: never read
                if name in seen:
                    raise ArtifactError(
                        f"{printable(str(path))}: member {_shown(name)} appears twice"
                    )
                seen.add(name)
                if name in (_LAYOUT_FILE, _INDEX_FILE) and member.size > _JSON_LIMIT:
                    raise ArtifactError(
                        f"{printable(str(path))}: {name} is larger than {_JSON_LIMIT} bytes"
                    )
                data = tar.extractfile(member)
                if data is None:  # pragma: no cover - a regular member always has data
                    continue
                with open(target, "xb") as out:
                    shutil.copyfileobj(data, out, _CHUNK)
    except tarfile.TarError as exc:
        raise ArtifactError(
            f"{printable(str(path))} is not an uncompressed image archive (tar): {exc}"
        ) from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {printable(str(path))}: {exc.strerror or exc}") from None


def _member_name(name: str) -> str:
    parts = [p for p in name.split("/") if p and p != "."]
    if name.startswith("/") or ".." in parts:
        raise ArtifactError(f"image archive member {_shown(name)} would land outside it")
    return "/".join(parts)


def _layout_target(name: str, dest: Path) -> Path | None:
    """Where a layout member goes in ``dest``; None for a name the layout does not use."""
    if name in (_LAYOUT_FILE, _INDEX_FILE):
        return dest / name
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == _BLOBS_DIR:
        if parts[1] != "sha256":
            raise ArtifactError(f"blob {_shown(name)}: only sha256 digests are read")
        if re.fullmatch(r"[0-9a-f]{64}", parts[2]) is None:
            raise ArtifactError(f"blob {_shown(name)} is not named by a sha256 digest")
        return dest / name
    return None


def _check_layout_dir(path: Path) -> None:
    """Refuse a layout whose parts are symlinks or not what they should be."""
    if not path.is_dir():  # the directory named may be a symlink: what is inside may not
        raise ArtifactError(f"{printable(str(path))} is not an image layout directory")
    for part, kind in (
        (path / _BLOBS_DIR, "directory"),
        (path / _BLOBS_DIR / "sha256", "directory"),
        (path / _INDEX_FILE, "file"),
    ):
        try:
            st = part.lstat()
        except OSError as exc:
            raise ArtifactError(
                f"{printable(str(path))} is not an image layout: cannot read"
                f" {printable(str(part))}: {exc.strerror}"
            ) from None
        wanted = stat.S_ISDIR if kind == "directory" else stat.S_ISREG
        if not wanted(st.st_mode):
            raise ArtifactError(
                f"{printable(str(path))}: {printable(str(part))} is not a {kind}"
                + (" (symlinks are refused)" if stat.S_ISLNK(st.st_mode) else "")
            )


class _LayoutReader:
    """Reads an image layout nobody vouches for into a :class:`BlobStore`."""

    def __init__(self, layout: Path, store: BlobStore, what: str) -> None:
        self.layout = layout
        self.store = store
        self.what = what

    def error(self, message: str) -> ArtifactError:
        return ArtifactError(f"{self.what}: {message}")

    def _json_file(self, name: str) -> Any:
        path = self.layout / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise self.error(f"cannot read {name}: {exc.strerror}") from None
        with open(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self.error(f"{name} is not a regular file")
            data = fh.read(_JSON_LIMIT + 1)
        if len(data) > _JSON_LIMIT:
            raise self.error(f"{name} is larger than {_JSON_LIMIT} bytes")
        return self._parse(data, name)

    def _parse(self, data: bytes, what: str) -> Any:
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise self.error(f"{what} is not JSON") from None

    def _blob_json(self, descriptor: Descriptor, what: str) -> Any:
        if descriptor.size > _JSON_LIMIT:
            raise self.error(f"the {what} is larger than {_JSON_LIMIT} bytes")
        self._take(descriptor)
        return self._parse(self.store.read_bytes(descriptor.digest, _JSON_LIMIT), f"the {what}")

    def _take(self, descriptor: Descriptor) -> None:
        """Check the blob and take it into the store."""
        src = self.layout / _BLOBS_DIR / "sha256" / _hex(descriptor.digest)
        if not os.path.lexists(src):
            raise self.error(f"blob {descriptor.digest} is missing")
        try:
            self.store.add_blob_file(src, descriptor)
        except ArtifactError as exc:
            raise self.error(str(exc)) from None

    def descriptor(self, obj: Any, what: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise self.error(f"{what} is not a descriptor")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise self.error(f"{what} has no mediaType or digest")
        if _DIGEST_RE.fullmatch(digest) is None:
            raise self.error(f"{what}: {_shown(digest)} is not a sha256 digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise self.error(f"{what} has no valid size")
        annotations = obj.get("annotations") or {}
        platform = obj.get("platform")
        if not _str_map(annotations) or (platform is not None and not _str_map(platform)):
            raise self.error(f"{what} has malformed annotations or platform")
        return Descriptor(media_type, digest, size, annotations, platform)

    def load(self, tag: str | None, platform: tuple[str, str, str | None] | None) -> LoadedImage:
        layout_version = self._json_file(_LAYOUT_FILE)
        if not isinstance(layout_version, dict) or "imageLayoutVersion" not in layout_version:
            raise self.error("oci-layout names no imageLayoutVersion")
        index = self._json_file(_INDEX_FILE)
        entries = self._entries(index, "index.json")
        if tag is not None:
            tagged = [e for e in entries if e.annotations.get(ANNOTATION_REF_NAME) == tag]
            if not tagged:
                tags = sorted({e.annotations.get(ANNOTATION_REF_NAME, "") for e in entries} - {""})
                raise self.error(
                    f"no image tagged {_shown(tag)}"
                    + (f" (tags: {', '.join(_shown(t) for t in tags[:10])})" if tags else "")
                )
            entries = tagged
        chosen = self._choose(entries, platform)
        if chosen.media_type in _INDEX_TYPES:  # a list of platforms behind one tag
            nested = self._blob_json(chosen, "image index")
            chosen = self._choose(self._entries(nested, "the image index"), platform)
        if chosen.media_type not in _MANIFEST_TYPES:
            raise self.error(f"{_shown(chosen.media_type)} is not an image manifest")
        manifest = self._blob_json(chosen, "manifest")
        if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
            raise self.error("the manifest is not a schemaVersion 2 manifest")
        config_descriptor = self.descriptor(manifest.get("config"), "the manifest's config")
        config = self._blob_json(config_descriptor, "image config")
        if not isinstance(config, dict):
            raise self.error("the image config is not a JSON object")
        for key in ("os", "architecture"):
            if not isinstance(config.get(key), str) or not config[key]:
                raise self.error(f"the image config names no {key}")
        raw_layers = manifest.get("layers")
        if not isinstance(raw_layers, list):
            raise self.error("the manifest lists no layers")
        rootfs = config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if (
            not isinstance(diff_ids, list)
            or len(diff_ids) != len(raw_layers)
            or not all(isinstance(d, str) and _DIGEST_RE.fullmatch(d) for d in diff_ids)
        ):
            raise self.error("the config's rootfs.diff_ids do not match the manifest's layers")
        history = [
            h.get("created_by", "") if isinstance(h.get("created_by"), str) else ""
            for h in config.get("history") or []
            if isinstance(h, dict) and not h.get("empty_layer")
        ]
        layers = []
        for i, raw in enumerate(raw_layers):
            descriptor = self.descriptor(raw, f"layer {i + 1}")
            if descriptor.media_type not in LAYER_MEDIA_TYPES:
                raise self.error(
                    f"layer {i + 1} is a {_shown(descriptor.media_type)}, not a tar layer"
                )
            self._take(descriptor)
            created_by = history[i] if len(history) == len(raw_layers) else ""
            layers.append(Layer(descriptor, diff_ids[i], created_by))
        return LoadedImage(
            self.store,
            Descriptor(
                chosen.media_type,
                chosen.digest,
                chosen.size,
                platform={k: config[k] for k in ("architecture", "os", "variant") if config.get(k)},
            ),
            manifest,
            config,
            tuple(layers),
        )

    def _entries(self, index: Any, what: str) -> list[Descriptor]:
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise self.error(f"{what} lists no manifests")
        raw = index["manifests"]
        if not raw:
            raise self.error(f"{what} lists no manifests")
        if len(raw) > _MAX_MANIFESTS:
            raise self.error(f"{what} lists more than {_MAX_MANIFESTS} manifests")
        return [self.descriptor(entry, f"{what}'s entry {i + 1}") for i, entry in enumerate(raw)]

    def _choose(
        self, entries: list[Descriptor], platform: tuple[str, str, str | None] | None
    ) -> Descriptor:
        if len(entries) == 1:
            return entries[0]
        wanted = platform
        matching = [e for e in entries if wanted is not None and _platform_of(e) == wanted]
        if wanted is not None and wanted[2] is None:
            matching = [e for e in entries if _platform_of(e)[:2] == wanted[:2]]
        if len(matching) == 1:
            return matching[0]
        choices = sorted({_describe_entry(e) for e in entries})
        shown = ", ".join(choices[:10]) + (" ..." if len(choices) > 10 else "")
        if wanted is not None and not matching:
            raise self.error(f"no image for {_platform_text(wanted)} (it has: {shown})")
        raise self.error(f"holds several images; name one with a tag or a platform: {shown}")


def _str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _platform_of(entry: Descriptor) -> tuple[str, str, str | None]:
    platform = entry.platform or {}
    return (platform.get("os", ""), platform.get("architecture", ""), platform.get("variant"))


def _platform_text(platform: tuple[str, str, str | None]) -> str:
    return "/".join(part for part in platform if part)


def _describe_entry(entry: Descriptor) -> str:
    tag = entry.annotations.get(ANNOTATION_REF_NAME)
    if tag:
        return _shown(tag)
    if entry.platform:
        return _shown(_platform_text(_platform_of(entry)))
    return entry.digest[:19]
