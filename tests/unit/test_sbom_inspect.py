"""``inspect`` lists the security-relevant native libraries: versions from the files, origins
from the SBOM the environment carries, nothing read through a link that leaves the tree."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema

from fakes import fake_env_tree, fake_manifest
from venvpack import sbom
from venvpack.inspect import inspect_artifact, render_text, schema_text
from venvpack.manifest import BuiltEnv, GraftedLibrary

OPENSSL = b"\x00OpenSSL 3.0.15 3 Sep 2024\x00"


def _env(tmp_path: Path) -> BuiltEnv:
    root = fake_env_tree(tmp_path / "env")
    lib = root / "python/lib"
    lib.mkdir(parents=True)
    (lib / "libcrypto.so.3").write_bytes(OPENSSL)
    (lib / "libssl.so.3").write_bytes(b"\x00")
    # A link out of the tree: a crafted artifact must not make inspect read the host's file.
    os.symlink(os.path.realpath("/bin/sh"), lib / "libz.so.1")
    host_lib = "/usr/lib/x86_64-linux-gnu"
    manifest = fake_manifest(
        glibc_floor=BuiltEnv.load(root).manifest.glibc_floor,
        grafted=tuple(
            GraftedLibrary(name, f"{host_lib}/{name}", f"python/lib/{name}")
            for name in ("libcrypto.so.3", "libssl.so.3")
        ),
    )
    env = BuiltEnv(root, manifest)
    env.save()
    package = sbom.SystemPackage("deb", "debian", "libssl3", "3.0.15-1", "amd64", "debian-12")
    owners = {f"/lib/x86_64-linux-gnu/{n}": package for n in ("libcrypto.so.3", "libssl.so.3")}
    sbom.write_sbom(env, sbom.HostPackages(owners))
    return env


def test_inspect_lists_openssl_with_its_version_and_package(tmp_path: Path) -> None:
    env = _env(tmp_path)
    report = inspect_artifact(env.root)
    assert [
        (lib.family, lib.version, lib.path, lib.shipped_by) for lib in report.native_libraries
    ] == [
        ("openssl", "3.0.15", "python/lib/libcrypto.so.3", "grafted"),
        ("openssl", "3.0.15", "python/lib/libssl.so.3", "grafted"),
    ]
    purl = "pkg:deb/debian/libssl3@3.0.15-1?arch=amd64&distro=debian-12"
    assert {lib.package for lib in report.native_libraries} == {purl}
    assert report.sbom == sbom.SBOM_PATH
    text = render_text(report)
    assert (
        "openssl   3.0.15     python/lib/libcrypto.so.3  (grafted from deb libssl3 3.0.15-1)"
        in text
    )
    assert f"SBOM: {sbom.SBOM_PATH}" in text
    jsonschema.validate(json.loads(report.to_json()), json.loads(schema_text()))


def test_without_an_sbom_versions_still_come_from_the_files(tmp_path: Path) -> None:
    env = _env(tmp_path)
    (env.root / sbom.SBOM_PATH).unlink()
    report = inspect_artifact(env.root)
    assert {(lib.version, lib.package) for lib in report.native_libraries} == {("3.0.15", None)}
    assert report.sbom is None
    jsonschema.validate(json.loads(report.to_json()), json.loads(schema_text()))
