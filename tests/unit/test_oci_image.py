"""OCI images written by venvpack.oci.image, read back with tarfile, gzip, skopeo and umoci --
never by comparing our bytes with our bytes, except to prove that the same inputs give the
same bytes -- and hostile images refused when read."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

import sandbox
from venvpack.archive import TarPlan
from venvpack.errors import ArtifactError, ConfigError, EmitError
from venvpack.oci.image import (
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    BlobStore,
    Descriptor,
    ImageRef,
    Layer,
    canonical_json,
    image_manifest,
    is_oci_archive,
    load_image,
    parse_image_ref,
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


# --------------------------------------------------------------------------- reading


@pytest.mark.usefixtures("sde")
@pytest.mark.parametrize("transport", ["oci-archive", "oci"])
def test_an_image_reads_back_as_it_was_written(tmp_path: Path, transport: str) -> None:
    store, manifest, archive, layout = _image(tmp_path)
    written = json.loads(store.path(manifest.digest).read_bytes())
    ref = parse_image_ref(
        f"oci-archive:{archive}" if transport == "oci-archive" else f"oci:{layout}:1.0"
    )
    work = tmp_path / "work"
    work.mkdir()
    image = load_image(ref, work)
    assert image.manifest.digest == manifest.digest
    assert image.manifest_json == written
    assert image.platform == ("linux", "amd64", None)
    assert image.config["config"] == CONFIG["config"]
    assert [layer.descriptor.digest for layer in image.layers] == [
        layer["digest"] for layer in written["layers"]
    ]
    assert [layer.created_by for layer in image.layers] == [
        "venvpack: interpreter",
        "venvpack: dependencies",
        "venvpack: application",
    ]
    for layer in image.layers:  # every blob in the store is what its descriptor says
        data = image.store.path(layer.descriptor.digest).read_bytes()
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == layer.descriptor.digest
        assert f"sha256:{hashlib.sha256(gzip.decompress(data)).hexdigest()}" == layer.diff_id


def test_image_references_are_read_as_skopeo_reads_them(tmp_path: Path) -> None:
    assert parse_image_ref("scratch") == ImageRef("scratch", "", None)
    assert parse_image_ref("oci-archive:/x/base.tar") == ImageRef(
        "oci-archive", "/x/base.tar", None
    )
    assert parse_image_ref("oci:/x/layout:1.2") == ImageRef("oci", "/x/layout", "1.2")
    assert parse_image_ref("oci:layout") == ImageRef("oci", "layout", None)
    assert parse_image_ref("docker://127.0.0.1:5000/hello:1.0") == ImageRef(
        "docker", "127.0.0.1:5000/hello:1.0", "1.0"
    )
    assert parse_image_ref("ghcr.io/me/base:1") == ImageRef("docker", "ghcr.io/me/base:1", "1")
    assert parse_image_ref("python:3.12-slim") == ImageRef(
        "docker", "python:3.12-slim", "3.12-slim"
    )
    existing = tmp_path / "base.tar"
    existing.write_bytes(b"")
    bad = {
        str(existing): "name it oci-archive:",
        "docker-archive:x.tar": "not docker-archive:",
        "oci:": "names no path",
        "oci:dir:bad tag": "is not a tag",
        "Not/A/Reference!": "is not an image reference",
        "docker://": "is not an image reference",
    }
    for text, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            parse_image_ref(text)


@pytest.mark.usefixtures("sde")
def test_an_oci_archive_is_recognised_by_its_first_member(tmp_path: Path) -> None:
    _, _, archive, _ = _image(tmp_path, layout=False)
    assert is_oci_archive(archive.read_bytes()[:512])
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        info = tarfile.TarInfo("opt/hello/bin/hello")
        tar.addfile(info, io.BytesIO(b""))
    assert not is_oci_archive(plain.getvalue()[:512])
    assert not is_oci_archive(gzip.compress(archive.read_bytes())[:512])
    corrupt = bytearray(archive.read_bytes()[:512])
    corrupt[0] ^= 1
    assert not is_oci_archive(bytes(corrupt))
    skopeo = shutil.which("skopeo")
    if skopeo is not None:  # what skopeo writes starts with blobs/ too
        copy = tmp_path / "copy.tar"
        subprocess.run(
            [skopeo, "copy", "-q", f"oci-archive:{archive}", f"oci-archive:{copy}:x"], check=True
        )
        assert is_oci_archive(copy.read_bytes()[:512])


def _layout_members(layout: Path) -> list[tuple[str, bytes]]:
    return sorted(
        (str(p.relative_to(layout)), p.read_bytes()) for p in layout.rglob("*") if p.is_file()
    )


def _archive(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


def _special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _load(tmp_path: Path, text: str, **kwargs: Any) -> Any:
    work = Path(tempfile.mkdtemp(prefix="work-", dir=tmp_path))
    return load_image(parse_image_ref(text), work, **kwargs)


@pytest.mark.usefixtures("sde")
def test_hostile_archives_are_refused_in_one_line(tmp_path: Path) -> None:
    _, manifest, _, layout = _image(tmp_path)
    assert layout is not None
    members = _layout_members(layout)
    hexes = [name.rsplit("/", 1)[1] for name, _ in members if name.startswith("blobs/")]
    layer = next(h for h in hexes if h != manifest.digest.split(":")[1])
    cases: dict[str, tuple[list[tarfile.TarInfo | tuple[str, bytes]], str]] = {
        "symlink": (
            [_special("index.json", tarfile.SYMTYPE, "/etc/passwd"), *members[:-1]],
            "is not a regular file",
        ),
        "hardlink": (
            [*members, _special("blobs/sha256/" + "0" * 64, tarfile.LNKTYPE, "index.json")],
            "is not a regular file",
        ),
        "device": ([*members, _special("oci-layout2", tarfile.CHRTYPE)], "not a regular file"),
        "dotdot": ([("../evil", b"x"), *members], "would land outside"),
        "absolute": ([("/tmp/evil", b"x"), *members], "would land outside"),
        "twice": ([*members, members[-1]], "appears twice"),
        "lying blob": (
            [(n, b"not the layer" if n.endswith(layer) else d) for n, d in members],
            "does not match its digest|holds 13 bytes",
        ),
        "huge index": (
            [(n, b" " * (5 << 20) if n == "index.json" else d) for n, d in members],
            "index.json is larger than",
        ),
        "missing blob": ([(n, d) for n, d in members if not n.endswith(layer)], "is missing"),
        "not json": (
            [(n, b"{" if n == "index.json" else d) for n, d in members],
            "index.json is not JSON",
        ),
        "bad blob name": ([*members, ("blobs/sha256/nothex", b"")], "not named by a sha256"),
        "md5 blob": ([*members, ("blobs/md5/" + "0" * 32, b"")], "only sha256"),
    }
    for case, (archive_members, message) in cases.items():
        archive = _archive(tmp_path / f"{case}.tar", archive_members)
        with pytest.raises(ArtifactError, match=message) as caught:
            _load(tmp_path, f"oci-archive:{archive}")
        assert "\n" not in str(caught.value), case
    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil").exists()
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(_archive(tmp_path / "whole.tar", list(members)).read_bytes()[:1000])
    with pytest.raises(ArtifactError):
        _load(tmp_path, f"oci-archive:{truncated}")
    packed = tmp_path / "packed.tar.gz"
    packed.write_bytes(gzip.compress((tmp_path / "whole.tar").read_bytes()))
    with pytest.raises(ArtifactError, match="not an uncompressed image archive"):
        _load(tmp_path, f"oci-archive:{packed}")


def _rewrite_index(layout: Path, index: Any) -> None:
    (layout / "index.json").write_bytes(canonical_json(index))


@pytest.mark.usefixtures("sde")
def test_hostile_layouts_are_refused(tmp_path: Path) -> None:
    _, manifest, _, layout = _image(tmp_path)
    assert layout is not None
    blob = layout / "blobs" / "sha256" / manifest.digest.split(":")[1]
    data = blob.read_bytes()
    blob.unlink()
    blob.symlink_to("/etc/passwd")
    with pytest.raises(ArtifactError, match=r"not a regular file|cannot read"):
        _load(tmp_path, f"oci:{layout}")
    blob.unlink()
    blob.write_bytes(data)
    other = tmp_path / "other"
    shutil.move(str(layout / "blobs"), other)
    (layout / "blobs").symlink_to(other)
    with pytest.raises(ArtifactError, match="symlinks are refused"):
        _load(tmp_path, f"oci:{layout}")
    (layout / "blobs").unlink()
    shutil.move(str(other), layout / "blobs")
    index = _json(layout / "index.json")
    entry = index["manifests"][0]
    for broken, message in (
        ({**entry, "size": -1}, "no valid size"),
        ({**entry, "digest": "sha256:../../x"}, "is not a sha256 digest"),
        ({**entry, "size": 10 << 20}, "larger than"),
        ({**entry, "size": entry["size"] + 1}, "holds"),
        ({**entry, "mediaType": MEDIA_CONFIG}, "is not an image manifest"),
    ):
        _rewrite_index(layout, {**index, "manifests": [broken]})
        with pytest.raises(ArtifactError, match=message):
            _load(tmp_path, f"oci:{layout}")


@pytest.mark.usefixtures("sde")
def test_several_images_are_chosen_by_tag_or_platform(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    amd = image_manifest(store, CONFIG, _layers(store), {})
    arm = image_manifest(store, {**CONFIG, "architecture": "arm64", "variant": "v8"}, [], {})
    layout = tmp_path / "layout"
    write_layout(store, amd, layout, "1.0")
    for digest in (arm.digest, json.loads(store.path(arm.digest).read_bytes())["config"]["digest"]):
        shutil.copyfile(store.path(digest), layout / "blobs" / "sha256" / digest.split(":")[1])
    entries = [
        {**amd.to_json(), "annotations": {"org.opencontainers.image.ref.name": "1.0"}},
        {**arm.to_json(), "annotations": {"org.opencontainers.image.ref.name": "1.0-arm"}},
    ]
    _rewrite_index(layout, {"schemaVersion": 2, "manifests": entries})
    with pytest.raises(ArtifactError, match=r"several images.*1\.0, 1\.0-arm"):
        _load(tmp_path, f"oci:{layout}")
    assert _load(tmp_path, f"oci:{layout}:1.0-arm").platform == ("linux", "arm64", "v8")
    assert _load(tmp_path, f"oci:{layout}", platform=("linux", "amd64", None)).layers
    with pytest.raises(ArtifactError, match=r"no image tagged 2\.0 \(tags: 1\.0, 1\.0-arm\)"):
        _load(tmp_path, f"oci:{layout}:2.0")
    # Both behind one tag, as a multi-platform index: the platform chooses.
    nested = store.add_json(
        {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [amd.to_json(), arm.to_json()]},
        MEDIA_INDEX,
    )
    shutil.copyfile(
        store.path(nested.digest), layout / "blobs/sha256" / nested.digest.split(":")[1]
    )
    _rewrite_index(layout, {"schemaVersion": 2, "manifests": [nested.to_json()]})
    chosen = _load(tmp_path, f"oci:{layout}", platform=("linux", "arm64", "v8"))
    assert chosen.manifest.digest == arm.digest
    with pytest.raises(
        ArtifactError, match=r"no image for linux/s390x \(it has: linux/amd64, linux/arm64/v8\)"
    ):
        _load(tmp_path, f"oci:{layout}", platform=("linux", "s390x", None))


@pytest.mark.usefixtures("sde")
def test_an_image_built_on_a_layout_leaves_its_files_untouched(tmp_path: Path) -> None:
    _, manifest, _, layout = _image(tmp_path)
    assert layout is not None
    blobs = sorted((layout / "blobs" / "sha256").iterdir())
    for blob in blobs:
        blob.chmod(0o600)
        os.utime(blob, (1, 1))
    before = [(b, b.stat().st_mode, b.stat().st_mtime, b.read_bytes()) for b in blobs]
    base = _load(tmp_path, f"oci:{layout}")
    top = TarPlan()
    top.add_file("opt/hello/extra.txt", b"on top\n")
    layers = [*base.layers, base.store.add_layer(top, "venvpack: application")]
    config = {k: v for k, v in base.config.items() if k not in ("rootfs", "history")}
    on_top = image_manifest(base.store, config, layers, {})
    archive = tmp_path / "on-top.tar"
    write_archive(base.store, on_top, archive, "2.0")
    after = [(b, b.stat().st_mode, b.stat().st_mtime, b.read_bytes()) for b in blobs]
    assert after == before
    with tarfile.open(archive) as tar:
        assert {m.mtime for m in tar.getmembers()} == {SDE}
        assert {m.mode for m in tar.getmembers() if m.isfile()} == {0o644}
    seen = _load(tmp_path, f"oci-archive:{archive}")
    assert [layer.descriptor for layer in seen.layers[:3]] == [
        layer.descriptor for layer in base.layers
    ]
    assert seen.manifest.digest != manifest.digest
