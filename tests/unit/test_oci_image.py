"""OCI images written by venvpack.oci.image, read back with tarfile, gzip, skopeo and umoci --
never by comparing our bytes with our bytes, except to prove that the same inputs give the
same bytes -- and hostile images refused when read."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

import sandbox
from venvpack.archive import TarPlan
from venvpack.errors import ArtifactError, EmitError
from venvpack.oci.image import (
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    BlobStore,
    Descriptor,
    Layer,
    image_manifest,
    write_archive,
    write_layout,
)

SDE = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"
BIG = random.Random(19).randbytes((3 << 20) + 17)  # several gzip blocks
CONFIG: dict[str, Any] = {
    "created": CREATED,
    "os": "linux",
    "architecture": "amd64",
    "config": {"Entrypoint": ["/opt/hello/bin/hello"], "User": "65532:65532"},
}


def _layers(store: BlobStore, top: bytes = b"print('hello')\n") -> list[Layer]:
    """Three layers as the format makes them: interpreter, dependencies, application."""
    interpreter = TarPlan()
    interpreter.add_file("opt/hello/python/bin/python3", b"\x7fELF fake", 0o755)
    interpreter.add_file("opt/hello/python/lib/big.bin", BIG)
    deps = TarPlan()
    deps.add_file("opt/hello/lib/site-packages/dep/__init__.py", b"x = 1\n")
    app = TarPlan()
    app.add_file("opt/hello/lib/site-packages/hello/__init__.py", top)
    app.add_symlink("opt/hello/bin/python", "../python/bin/python3")
    return [
        store.add_layer(interpreter, "venvpack: interpreter"),
        store.add_layer(deps, "venvpack: dependencies"),
        store.add_layer(app, "venvpack: application"),
    ]


def _image(
    work: Path, top: bytes = b"print('hello')\n", *, layout: bool = True
) -> tuple[BlobStore, Descriptor, Path, Path | None]:
    store = BlobStore(work / "store")
    manifest = image_manifest(
        store, CONFIG, _layers(store, top), {"org.opencontainers.image.version": "1.0"}
    )
    archive = work / "hello.tar"
    write_archive(store, manifest, archive, "1.0", image_name="hello:1.0")
    layout_dir = None
    if layout:
        layout_dir = work / "layout"
        write_layout(store, manifest, layout_dir, "1.0", image_name="hello:1.0")
    return store, manifest, archive, layout_dir


@pytest.fixture
def sde(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(SDE))


def _json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        sandbox.unavailable(f"{name} not found on PATH (apt-get install {name})")
    return found


# --------------------------------------------------------------------------- writing


@pytest.mark.usefixtures("sde")
def test_the_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    _, first, archive1, layout1 = _image(tmp_path / "one")
    os.utime(tmp_path / "one" / "store", (1, 1))  # whatever the store's own times
    _, second, archive2, layout2 = _image(tmp_path / "two")
    assert first == second
    assert archive1.read_bytes() == archive2.read_bytes()
    assert layout1 is not None
    assert layout2 is not None
    files1 = sorted(p.relative_to(layout1) for p in layout1.rglob("*"))
    assert files1 == sorted(p.relative_to(layout2) for p in layout2.rglob("*"))
    for rel in files1:
        if (layout1 / rel).is_file():
            assert (layout1 / rel).read_bytes() == (layout2 / rel).read_bytes(), rel


@pytest.mark.usefixtures("sde")
def test_every_digest_and_size_matches_the_content(tmp_path: Path) -> None:
    _, manifest, _, layout = _image(tmp_path)
    assert layout is not None
    blobs = layout / "blobs" / "sha256"
    for blob in blobs.iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert _json(layout / "oci-layout") == {"imageLayoutVersion": "1.0.0"}
    index = _json(layout / "index.json")
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == MEDIA_INDEX
    (entry,) = index["manifests"]
    assert entry["digest"] == manifest.digest
    assert entry["mediaType"] == MEDIA_MANIFEST
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    assert entry["annotations"] == {
        "org.opencontainers.image.ref.name": "1.0",
        "io.containerd.image.name": "hello:1.0",
    }
    manifest_path = blobs / manifest.digest.split(":")[1]
    assert manifest_path.stat().st_size == manifest.size == entry["size"]
    body = _json(manifest_path)
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == MEDIA_MANIFEST
    assert body["annotations"] == {"org.opencontainers.image.version": "1.0"}
    assert body["config"]["mediaType"] == MEDIA_CONFIG
    config = _json(blobs / body["config"]["digest"].split(":")[1])
    assert config["config"] == CONFIG["config"]
    assert config["rootfs"]["type"] == "layers"
    assert [h["created_by"] for h in config["history"]] == [
        "venvpack: interpreter",
        "venvpack: dependencies",
        "venvpack: application",
    ]
    assert all(h["created"] == CREATED for h in config["history"])
    # Exactly the reachable blobs: manifest, config, three layers.
    assert len(list(blobs.iterdir())) == 5
    diff_ids = []
    for layer in body["layers"]:
        assert layer["mediaType"] == MEDIA_LAYER_GZIP
        path = blobs / layer["digest"].split(":")[1]
        assert path.stat().st_size == layer["size"]
        data = gzip.decompress(path.read_bytes())
        diff_ids.append(f"sha256:{hashlib.sha256(data).hexdigest()}")
    assert config["rootfs"]["diff_ids"] == diff_ids
    with tarfile.open(blobs / body["layers"][0]["digest"].split(":")[1]) as tar:
        big = tar.extractfile("opt/hello/python/lib/big.bin")
        assert big is not None
        assert big.read() == BIG


@pytest.mark.usefixtures("sde")
def test_the_archive_is_the_layout_as_a_reproducible_tar(tmp_path: Path) -> None:
    _, _, archive, layout = _image(tmp_path)
    assert layout is not None
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert names[:2] == ["blobs", "blobs/sha256"]
        assert names[-2:] == ["index.json", "oci-layout"]
        for member in members:
            assert (member.uid, member.gid, member.mtime) == (0, 0, SDE)
            assert member.isfile() or member.isdir()
            if member.isfile():
                data = tar.extractfile(member)
                assert data is not None
                assert data.read() == (layout / member.name).read_bytes()
    files = {str(p.relative_to(layout)) for p in layout.rglob("*") if p.is_file()}
    assert files == {n for n, m in zip(names, members) if m.isfile()}


@pytest.mark.usefixtures("sde")
def test_skopeo_reads_the_archive_and_the_layout(tmp_path: Path) -> None:
    skopeo = _tool("skopeo")
    _, manifest, archive, layout = _image(tmp_path)
    layers = _json(Path(layout or "", "blobs/sha256", manifest.digest.split(":")[1]))["layers"]
    for ref in (f"oci-archive:{archive}", f"oci:{layout}:1.0"):
        out = subprocess.run(
            [skopeo, "inspect", ref], capture_output=True, text=True, check=True
        ).stdout
        seen = json.loads(out)
        assert seen["Digest"] == manifest.digest
        assert seen["Layers"] == [layer["digest"] for layer in layers]
        assert (seen["Os"], seen["Architecture"], seen["Created"]) == ("linux", "amd64", CREATED)


@pytest.mark.usefixtures("sde")
def test_umoci_lists_and_unpacks_the_layout(tmp_path: Path) -> None:
    umoci = _tool("umoci")
    _, _, _, layout = _image(tmp_path)
    listed = subprocess.run(
        [umoci, "ls", "--layout", str(layout)], capture_output=True, text=True, check=True
    )
    assert listed.stdout.split() == ["1.0"]
    bundle = tmp_path / "bundle"
    subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{layout}:1.0", str(bundle)],
        capture_output=True,
        check=True,
    )
    rootfs = bundle / "rootfs" / "opt" / "hello"
    assert (rootfs / "python/lib/big.bin").read_bytes() == BIG
    assert (rootfs / "lib/site-packages/hello/__init__.py").read_bytes() == b"print('hello')\n"
    assert os.readlink(rootfs / "bin/python") == "../python/bin/python3"
    runtime = _json(bundle / "config.json")
    assert runtime["process"]["args"] == ["/opt/hello/bin/hello"]


@pytest.mark.usefixtures("sde")
def test_a_changed_top_layer_leaves_the_lower_digests(tmp_path: Path) -> None:
    one = BlobStore(tmp_path / "one")
    two = BlobStore(tmp_path / "two")
    first = _layers(one)
    second = _layers(two, b"print('hello, again')\n")
    assert [layer.descriptor.digest for layer in first[:2]] == [
        layer.descriptor.digest for layer in second[:2]
    ]
    assert first[2].descriptor.digest != second[2].descriptor.digest


def test_a_blob_is_taken_only_when_it_is_what_its_descriptor_says(tmp_path: Path) -> None:
    source = BlobStore(tmp_path / "source")
    good = source.add_bytes(b"layer bytes", MEDIA_LAYER_GZIP)
    store = BlobStore(tmp_path / "store")
    src = source.path(good.digest)
    store.add_blob_file(src, good)
    assert store.path(good.digest).read_bytes() == b"layer bytes"
    assert store.path(good.digest).stat().st_ino == src.stat().st_ino  # hard-linked

    liar = tmp_path / "liar"
    liar.write_bytes(b"other bytes")
    with pytest.raises(ArtifactError, match="does not match its digest"):
        BlobStore(tmp_path / "a").add_blob_file(liar, good)
    with pytest.raises(ArtifactError, match="holds 11 bytes, not the 12"):
        BlobStore(tmp_path / "b").add_blob_file(liar, Descriptor(good.media_type, good.digest, 12))
    with pytest.raises(ArtifactError, match="larger than the 5 bytes"):
        BlobStore(tmp_path / "c").add_blob_file(liar, Descriptor(good.media_type, good.digest, 5))
    link = tmp_path / "link"
    link.symlink_to(src)
    with pytest.raises(ArtifactError, match=r"not a regular file|cannot read"):
        BlobStore(tmp_path / "d").add_blob_file(link, good)
    for name in ("a", "b", "c", "d"):  # nothing kept, no part file left
        assert [p.name for p in (tmp_path / name).rglob("*") if p.is_file()] == []
    with pytest.raises(ArtifactError, match="not a sha256 digest"):
        store.path("sha256:../../etc/passwd")


def test_the_config_rootfs_comes_from_the_layers(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(EmitError, match="rootfs"):
        image_manifest(store, {**CONFIG, "rootfs": {}}, [], {})
    with pytest.raises(EmitError, match="names no architecture"):
        image_manifest(store, {"os": "linux"}, [], {})
    arm = image_manifest(store, {**CONFIG, "architecture": "arm64", "variant": "v8"}, [], {})
    assert arm.platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}
