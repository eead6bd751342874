"""Pushing to and pulling from a real registry: Debian's ``docker-registry`` (distribution
2.8) started on 127.0.0.1 with htpasswd auth (which distribution allows over plain HTTP),
its access log read to see what was uploaded, and ``skopeo inspect`` reading back what was
pushed. The images are made by venvpack.oci.image: two of them that share their lower layers.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import builds
from registry import free_port as _free_port
from registry import serve
from registry import tool as _tool
from venvpack.archive import TarPlan
from venvpack.errors import RegistryError
from venvpack.oci.image import (
    BlobStore,
    Descriptor,
    Layer,
    image_manifest,
    load_image,
    parse_image_ref,
    write_archive,
    write_layout,
)
from venvpack.oci.registry import push

PASSWORD = "pw-Zq81-never-shown"
USER = "alice"
CONFIG = {"created": "2023-11-14T22:13:20Z", "os": "linux", "architecture": "amd64"}


@dataclass(frozen=True)
class Registry:
    address: str
    """``127.0.0.1:<port>``."""
    log: Path
    auth_file: Path
    """Holds USER's right password."""

    def uploads(self) -> list[str]:
        """Digests of the blobs whose upload completed so far, in order (a finished upload
        is the ``PUT .../blobs/uploads/...?digest=sha256:...`` that returns 201)."""
        text = self.log.read_text(errors="replace")
        return [
            "sha256:" + m[1]
            for m in re.finditer(
                r'"PUT /v2/[^ ]*/blobs/uploads/[^ ]*digest=sha256%3A([0-9a-f]{64})[^ ]*'
                r' HTTP/1.1" 201',
                text,
            )
        ]


def _auth(path: Path, address: str, password: str) -> Path:
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {address: {"auth": token}}}))
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    htpasswd = _tool("htpasswd", "apache2-utils")
    _tool("skopeo", "skopeo")
    tmp = tmp_path_factory.mktemp("registry")
    users = subprocess.run(
        [htpasswd, "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    ).stdout
    (tmp / "htpasswd").write_text(users)
    with serve(tmp, htpasswd=tmp / "htpasswd") as address:
        yield Registry(address, tmp / "registry.log", _auth(tmp / "auth.json", address, PASSWORD))


def _image(work: Path, top: bytes) -> tuple[Path, Descriptor, list[Layer]]:
    """An image of three layers whose top one holds ``top``; the other two never change."""
    store = BlobStore(work / "store")
    interpreter = TarPlan()
    interpreter.add_file("opt/hello/python/bin/python3", b"\x7fELF" * 4096, 0o755)
    deps = TarPlan()
    deps.add_file("opt/hello/lib/dep.py", b"x = 1\n")
    app = TarPlan()
    app.add_file("opt/hello/lib/hello.py", top)
    layers = [
        store.add_layer(interpreter, "venvpack: interpreter"),
        store.add_layer(deps, "venvpack: dependencies"),
        store.add_layer(app, "venvpack: application"),
    ]
    manifest = image_manifest(store, CONFIG, layers, {})
    archive = work / "image.tar"
    write_archive(store, manifest, archive, "1.0")
    return archive, manifest, layers


def _config_digest(work: Path, manifest: Descriptor) -> str:
    body = json.loads(BlobStore(work / "store").path(manifest.digest).read_bytes())
    digest: str = body["config"]["digest"]
    return digest


def _inspect(registry: Registry, ref: str) -> Any:
    out = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--tls-verify=false",
            "--authfile",
            str(registry.auth_file),
            f"docker://{registry.address}/{ref}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials anywhere skopeo looks, whatever the machine has."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "none.json"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)


@pytest.mark.usefixtures("no_credentials")
def test_a_second_push_uploads_only_the_changed_layer(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, manifest1, layers1 = _image(tmp_path / "one", b"print('hello')\n")
    second, manifest2, layers2 = _image(tmp_path / "two", b"print('hello, again')\n")
    assert [layer.descriptor for layer in layers1[:2]] == [
        layer.descriptor for layer in layers2[:2]
    ]
    config = [
        _config_digest(tmp_path / "one", manifest1),
        _config_digest(tmp_path / "two", manifest2),
    ]
    said: list[str] = []

    before = len(registry.uploads())
    digest = push(
        first, f"{registry.address}/hello:1.0", auth_file=registry.auth_file, log=said.append
    )
    assert digest == manifest1.digest
    assert said
    assert all(PASSWORD not in line for line in said)
    uploaded = registry.uploads()[before:]
    assert sorted(uploaded) == sorted([*(layer.descriptor.digest for layer in layers1), config[0]])
    seen = _inspect(registry, "hello:1.0")
    assert seen["Digest"] == manifest1.digest
    assert seen["Layers"] == [layer.descriptor.digest for layer in layers1]

    # The usual place for credentials: REGISTRY_AUTH_FILE, as podman and skopeo read it.
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(registry.auth_file))
    before = len(registry.uploads())
    digest = push(second, f"{registry.address}/hello:1.1")
    assert digest == manifest2.digest
    assert sorted(registry.uploads()[before:]) == sorted([layers2[2].descriptor.digest, config[1]])
    seen = _inspect(registry, "hello:1.1")
    assert seen["Layers"] == [layer.descriptor.digest for layer in layers2]

    # And back: pulled into a layout, read back contained, the same image.
    work = tmp_path / "pulled"
    work.mkdir()
    image = load_image(parse_image_ref(f"docker://{registry.address}/hello:1.1"), work)
    assert image.manifest.digest == manifest2.digest
    assert [layer.descriptor for layer in image.layers] == [layer.descriptor for layer in layers2]


@pytest.mark.usefixtures("no_credentials")
def test_a_layout_directory_pushes_too(registry: Registry, tmp_path: Path) -> None:
    _, manifest, layers = _image(tmp_path, b"layout\n")
    store = BlobStore(tmp_path / "store")
    layout = tmp_path / "layout"
    write_layout(store, manifest, layout, "1.0")
    assert (
        push(layout, f"{registry.address}/layout:1", auth_file=registry.auth_file)
        == manifest.digest
    )
    assert _inspect(registry, "layout:1")["Layers"] == [layer.descriptor.digest for layer in layers]


@pytest.mark.usefixtures("no_credentials")
def test_bad_or_missing_credentials_and_an_unreachable_registry_fail_in_one_line(
    registry: Registry, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    archive, _, _ = _image(tmp_path, b"refused\n")
    wrong = _auth(tmp_path / "wrong.json", registry.address, PASSWORD + "-wrong")
    closed = f"127.0.0.1:{_free_port()}"
    cases = [
        (f"{registry.address}/hello:9", wrong, "refused the credentials"),
        (f"{registry.address}/hello:9", None, "refused the credentials (or found none)"),
        (f"{closed}/hello:9", registry.auth_file, f"cannot reach {closed}: connection refused"),
    ]
    before = len(registry.uploads())
    for ref, auth, message in cases:
        with pytest.raises(RegistryError) as caught:
            push(archive, ref, auth_file=auth)
        text = str(caught.value)
        assert message in text
        assert text.startswith(f"pushing to {ref} failed: ")
        assert "\n" not in text
        assert PASSWORD not in text
        assert caught.value.detail == ""
    assert registry.uploads()[before:] == []
    out, err = capfd.readouterr()
    assert PASSWORD not in out + err


def test_the_command_fails_in_one_line_and_shows_no_credentials(
    hello_envs: builds.Envs, registry: Registry, tmp_path: Path
) -> None:
    wrong = _auth(tmp_path / "wrong.json", registry.address, PASSWORD + "-wrong")
    secrets = (PASSWORD, json.loads(wrong.read_text())["auths"][registry.address]["auth"])
    closed = f"127.0.0.1:{_free_port()}"
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": "1700000000",
        "HOME": str(tmp_path / "home"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "REGISTRY_AUTH_FILE": str(registry.auth_file),  # right, but --registry-auth-file wins
    }
    env.pop("DOCKER_CONFIG", None)
    cases = [
        (f"{registry.address}/hello:1.0.0", wrong, "refused the credentials"),
        (f"{closed}/hello:1.0.0", registry.auth_file, f"cannot reach {closed}: connection refused"),
    ]
    for ref, auth, message in cases:
        image = tmp_path / "hello.tar"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "venvpack",
                "oci",
                "-v",
                "--from",
                str(hello_envs.v1.root),
                "-o",
                str(image),
                "--force",
                "--push",
                ref,
                "--registry-auth-file",
                str(auth),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 7, result.stderr
        assert result.stdout == ""
        last = result.stderr.splitlines()[-1]
        assert last.startswith(f"venvpack: error: pushing to {ref} failed: "), result.stderr
        assert message in last
        for secret in secrets:
            assert secret not in result.stdout + result.stderr
        assert image.is_file()  # written before the push, and kept
