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
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from venvpack.archive import Compression, TarPlan, compressed_writer, source_date_epoch, write_tar
from venvpack.errors import ArtifactError, EmitError

__all__ = [
    "ANNOTATION_CONTAINERD_NAME",
    "ANNOTATION_REF_NAME",
    "MEDIA_CONFIG",
    "MEDIA_INDEX",
    "MEDIA_LAYER",
    "MEDIA_LAYER_GZIP",
    "MEDIA_MANIFEST",
    "BlobStore",
    "Descriptor",
    "Layer",
    "canonical_json",
    "check_blob",
    "image_manifest",
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

    def _keep(self, temporary: Path, digest: str) -> None:
        """Rename a complete temporary file to its digest (readable by all, as blobs are)."""
        try:
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
            except OSError:
                try:
                    shutil.copyfile(src, temporary, follow_symlinks=False)
                except OSError as exc:
                    raise ArtifactError(f"cannot read {src}: {exc.strerror}") from None
            check_blob(temporary, descriptor)
            self._keep(temporary, descriptor.digest)


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
        # Blobs carry the mtime of whichever build stored them first: the archive dates
        # every member alike instead.
        epoch = source_date_epoch()
        stamp = int(time.time()) if epoch is None else epoch
        for directory, _, files in os.walk(layout):
            for name in files:
                os.utime(Path(directory, name), (stamp, stamp), follow_symlinks=False)
            os.utime(directory, (stamp, stamp))
        plan = TarPlan()
        plan.add_tree(layout, "")
        try:
            with open(dest, "wb") as fh:
                write_tar(plan, fh)
        except OSError as exc:
            raise EmitError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(layout, ignore_errors=True)


_JSON_LIMIT = 4 << 20
"""The largest manifest, config or index read: real ones are a few KiB."""
