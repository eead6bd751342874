"""``venvpack oci`` end to end on the example app (1.0.0 and 1.0.1 of the session's
``hello_envs``, packed ``--from``): the image is read back by independent tools (skopeo,
umoci), its unpacked rootfs alone runs the application as a runtime would (bwrap, the
image's uid, env and working directory), two builds are byte-identical, a version bump
changes only the top layer, a base image made here is used and recorded by digest,
``verify`` runs the image, and ``--push`` sends it to a registry on
127.0.0.1 (Debian's docker-registry), where skopeo reads the same layers back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import builds
from registry import serve
from registry import tool as _tool
from venvpack.emit.oci import describe_image
from venvpack.oci.base import default_base
from venvpack.oci.container import run_in_rootfs
from venvpack.oci.image import BlobStore, image_manifest, write_archive

EPOCH = "1700000000"


def _venvpack(*args: str) -> str:
    """Run the real command; its stdout (the artifact's path)."""
    result = subprocess.run(
        [sys.executable, "-m", "venvpack", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _skopeo_inspect(ref: str, *extra: str) -> dict[str, Any]:
    skopeo = _tool("skopeo", "skopeo")
    out = subprocess.run([skopeo, "inspect", *extra, ref], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


@dataclass(frozen=True)
class Images:
    v1: Path
    v1_again: Path
    v2: Path


@pytest.fixture(scope="module")
def images(hello_envs: builds.Envs, tmp_path_factory: pytest.TempPathFactory) -> Images:
    out = tmp_path_factory.mktemp("oci")
    made = []
    for env, name in ((hello_envs.v1, "v1"), (hello_envs.v1, "again"), (hello_envs.v2, "v2")):
        made.append(
            Path(_venvpack("oci", "--from", str(env.root), "-q", "-o", f"{out}/{name}.tar"))
        )
    return Images(*made)


def test_independent_tools_read_the_image_and_builds_are_byte_identical(images: Images) -> None:
    assert images.v1.read_bytes() == images.v1_again.read_bytes()
    info = _skopeo_inspect(f"oci-archive:{images.v1}")
    assert len(info["Layers"]) >= 3
    assert info["Labels"]["org.opencontainers.image.version"] == "1.0.0"
    config = _skopeo_inspect(f"oci-archive:{images.v1}", "--config")
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/opt/hello/bin/python", "/opt/hello/bin/hello"]
    assert config["created"] == "2023-11-14T22:13:20Z"


def test_a_version_bump_changes_only_the_top_layer(images: Images) -> None:
    old = _skopeo_inspect(f"oci-archive:{images.v1}")["Layers"]
    new = _skopeo_inspect(f"oci-archive:{images.v2}")["Layers"]
    assert len(old) == len(new) == 4
    assert old[:3] == new[:3]
    assert old[3] != new[3]


def test_the_unpacked_rootfs_alone_runs_the_application(images: Images, tmp_path: Path) -> None:
    umoci = _tool("umoci", "umoci")
    _tool("bwrap", "bubblewrap")
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    layout.mkdir()
    subprocess.run(["tar", "-C", str(layout), "-xf", str(images.v1)], check=True)
    subprocess.run(
        [umoci, "unpack", "--image", f"{layout}:1.0.0", str(bundle)],
        check=True,
        capture_output=True,
    )
    bundle.chmod(0o755)  # umoci makes it 0700: the image's user must reach its rootfs
    rootfs = bundle / "rootfs"
    assert (rootfs / "home/nonroot").stat().st_uid == 65532
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    facts = describe_image(images.v1)
    run = run_in_rootfs(rootfs, facts["entrypoint"], facts)
    assert run.returncode == 0, run.stderr
    assert "hello from /opt/hello" in run.stdout
    probe = (
        "import ctypes, json, os, sqlite3, ssl, zoneinfo\n"
        "ctypes.CDLL(None)\n"
        "sqlite3.connect(':memory:').execute('select 1')\n"
        "zoneinfo.ZoneInfo('Europe/Paris')\n"
        "stats = ssl.create_default_context().cert_store_stats()\n"
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'cwd': os.getcwd(),\n"
        "    'ca': stats['x509_ca'], 'root': sorted(os.listdir('/')),\n"
        "    'env': sorted(os.environ)}))\n"
    )
    run = run_in_rootfs(rootfs, ["/opt/hello/bin/python", "-c", probe], facts)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert (seen["uid"], seen["gid"], seen["cwd"]) == (65532, 65532, "/")
    assert seen["ca"] > 0
    assert set(seen["root"]) <= {
        "dev",
        "etc",
        "home",
        "lib",
        "lib64",
        "opt",
        "proc",
        "root",
        "tmp",
        "usr",
    }
    # the image's Env, and what the interpreter itself sets (its terminfo, the locale)
    image_env = {"PATH", "SSL_CERT_FILE", "LANG", "PWD"}
    assert set(seen["env"]) <= image_env | {"LC_CTYPE", "TERMINFO_DIRS"}


def test_a_base_image_is_used_and_recorded_by_digest(
    images: Images, hello_envs: builds.Envs, tmp_path: Path
) -> None:
    # A base made here: venvpack's own default base, as an image of its own.
    store = BlobStore(tmp_path / "store")
    layer = store.add_layer(default_base(mtime=0).plan, "a base made by the test")
    config = {"architecture": "amd64", "os": "linux", "config": {"Env": ["TZ=UTC"]}}
    manifest = image_manifest(store, config, [layer], {})
    base = tmp_path / "base.tar"
    write_archive(store, manifest, base, "latest")
    image = _venvpack(
        "oci",
        "--from",
        str(hello_envs.v1.root),
        "--base",
        f"oci-archive:{base}",
        "-q",
        "-o",
        str(tmp_path / "on-base.tar"),
    )
    info = _skopeo_inspect(f"oci-archive:{image}", "--raw")
    assert info["annotations"]["org.opencontainers.image.base.digest"] == manifest.digest
    assert info["layers"][0]["digest"] == layer.descriptor.digest
    assert len(info["layers"]) == 4
    own = _skopeo_inspect(f"oci-archive:{images.v1}")["Layers"]
    assert [entry["digest"] for entry in info["layers"][1:]] == own[1:]
    env = _skopeo_inspect(f"oci-archive:{image}", "--config")["config"]["Env"]
    assert "TZ=UTC" in env


def test_verify_runs_the_image(images: Images) -> None:
    if os.geteuid() != 0:
        pytest.skip("verify runs as root")
    verified = json.loads(_venvpack("verify", "--json", str(images.v1)))
    assert verified["ok"], verified
    assert verified["kind"] == "oci"
    steps = {(c["step"], c["target"]) for c in verified["checks"]}
    assert ("entrypoint", "/opt/hello/bin/python /opt/hello/bin/hello --help") in steps
    assert ("import", "markupsafe") in steps
    assert ("command", "hello --help") in steps


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:<port>`` of a docker-registry without auth, storing in a temporary
    directory (credentials are test_oci_registry's)."""
    with serve(tmp_path_factory.mktemp("registry")) as address:
        yield address


def test_push_sends_the_image_to_a_registry(
    hello_envs: builds.Envs, registry: str, tmp_path: Path
) -> None:
    ref = f"{registry}/hello:1.0.0"
    image = _venvpack(
        "oci",
        "--from",
        str(hello_envs.v1.root),
        "-q",
        "-o",
        str(tmp_path / "x.tar"),
        "--push",
        ref,
    )
    local = _skopeo_inspect(f"oci-archive:{image}")
    remote = _skopeo_inspect(f"docker://{ref}", "--tls-verify=false")
    assert remote["Layers"] == local["Layers"]
    assert remote["Digest"] == local["Digest"]
    # and a registry image serves as a base, pulled (plain HTTP on loopback) and recorded
    rebased = _venvpack(
        "oci",
        "--from",
        str(hello_envs.v2.root),
        "--base",
        ref,
        "-q",
        "-o",
        str(tmp_path / "rebased.tar"),
    )
    raw = _skopeo_inspect(f"oci-archive:{rebased}", "--raw")
    assert raw["annotations"]["org.opencontainers.image.base.digest"] == remote["Digest"]
    assert [layer["digest"] for layer in raw["layers"][:4]] == local["Layers"]
