"""The SBOM model and its CycloneDX form, on a small environment made on the fly.

The tree holds what a real one does in miniature: distributions with METADATA, RECORD and
WHEEL, a wheel that vendors OpenBLAS in ``<name>.libs/`` and carries a PEP 770 SBOM, an
OpenSSL pair grafted from a (fake) dpkg database, and an extension module with SQLite linked
in. The JSON is checked against the CycloneDX 1.6 schema by cyclonedx-python-lib's validator
and read back as plain JSON.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from fakes import fake_env_tree, fake_manifest, fake_metadata
from venvpack import sbom
from venvpack.cli import main
from venvpack.install import installed_file, locked_files
from venvpack.manifest import BuiltEnv, Distribution, GraftedLibrary, Manifest

SITE = "lib/python3.12/site-packages"
LOCKED = "a" * 64
OPENSSL = b"\x00OpenSSL 3.0.15 3 Sep 2024\x00"
TAGS = "cp312-cp312-manylinux_2_17_x86_64"
WHEEL = "fakeblas-1.2.0-cp312-cp312-manylinux_2_17_x86_64.whl"
OTHER = "fakeblas-1.2.0-cp312-cp312-macosx_11_0_arm64.whl"


def _dist(
    root: Path,
    name: str,
    version: str,
    *,
    requires: tuple[str, ...] = (),
    license: str | None = None,
    files: dict[str, bytes] | None = None,
) -> Path:
    site = root / SITE
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", "Summary: s"]
    lines += [f"License-Expression: {license}"] if license else []
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nTag: {TAGS}\n")
    record = []
    for rel, data in (files or {}).items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
        record.append(f"{rel},,")
    (info / "RECORD").write_text("\n".join([*record, f"{info.name}/RECORD,,"]) + "\n")
    return info


@pytest.fixture
def host(tmp_path: Path) -> sbom.HostPackages:
    """A dpkg database that owns the build host's OpenSSL, listed under /lib (merged /usr)."""
    dpkg = tmp_path / "dpkg"
    (dpkg / "info").mkdir(parents=True)
    (dpkg / "status").write_text(
        "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 3.0.15-1~deb12u1\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n"
    )
    (dpkg / "info" / "libssl3:amd64.list").write_text(
        "/.\n/lib/x86_64-linux-gnu/libssl.so.3\n/lib/x86_64-linux-gnu/libcrypto.so.3\n"
    )
    (dpkg / "info" / "gone.list").write_text("/lib/x86_64-linux-gnu/libgone.so.1\n")
    release = tmp_path / "os-release"
    release.write_text('ID=debian\nVERSION_ID="12"\n')
    return sbom.HostPackages.read(dpkg=dpkg, os_release=release)


@pytest.fixture
def env(tmp_path: Path) -> BuiltEnv:
    root = fake_env_tree(tmp_path / "build-host-path" / "env")
    (root / "python/lib").mkdir(parents=True)
    (root / "python/lib/libcrypto.so.3").write_bytes(OPENSSL)
    (root / "python/lib/libssl.so.3").write_bytes(b"\x00no version here\x00")
    dynload = root / "python/lib/python3.12/lib-dynload"
    dynload.mkdir(parents=True)
    (dynload / "_sqlite3.cpython-312-x86_64-linux-gnu.so").write_bytes(b"\x003.45.1\x00")
    _dist(root, "hello", "1.0.0", requires=("markupsafe>=2", "fakeblas; extra == 'math'"))
    _dist(root, "markupsafe", "2.1.5", license="BSD-3-Clause")
    info = _dist(
        root,
        "fakeblas",
        "1.2.0",
        requires=("markupsafe; python_version < '3'",),
        files={"fakeblas.libs/libscipy_openblas64_-ab12.so": b"\x00OpenBLAS 0.3.27 DYNAMIC\x00"},
    )
    (info / "sboms").mkdir()
    (info / "sboms" / "bundled.cdx.json").write_text(
        json.dumps(
            {
                "bomFormat": "CycloneDX",
                "specVersion": "1.6",
                "components": [
                    {"type": "library", "name": "libgfortran", "version": "14.2.0"},
                    {"name": "bad", "purl": "not a purl"},
                ],
            }
        )
    )
    manifest = fake_manifest(
        glibc_floor=BuiltEnv.load(root).manifest.glibc_floor,
        metadata=fake_metadata(),
        grafted=(
            GraftedLibrary(
                "libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.3", "python/lib/libssl.so.3"
            ),
            GraftedLibrary(
                "libcrypto.so.3",
                "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
                "python/lib/libcrypto.so.3",
            ),
        ),
        distributions=(
            Distribution("fakeblas", "1.2.0", LOCKED, WHEEL),
            Distribution("hello", "1.0.0"),
            Distribution("markupsafe", "2.1.5"),
        ),
    )
    BuiltEnv(root, manifest).save()
    return BuiltEnv.load(root)


def _components(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            found[item["bom-ref"]] = item
            walk(item.get("components", []))

    walk(data["components"])
    return found


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def test_the_sbom_names_what_ships_and_validates(env: BuiltEnv, host: sbom.HostPackages) -> None:
    text = sbom.cyclonedx(sbom.compose(env, host), epoch=1700000000)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    data = json.loads(text)
    assert data["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    app = data["metadata"]["component"]
    assert (app["name"], app["version"], app["purl"]) == ("hello", "1.0.0", "pkg:pypi/hello@1.0.0")
    assert app["externalReferences"] == [{"type": "website", "url": "https://example.org/hello"}]
    found = _components(data)
    assert "pkg:pypi/hello@1.0.0" not in found  # the subject, not one of its parts

    blas = found["pkg:pypi/fakeblas@1.2.0"]
    assert blas["hashes"] == [{"alg": "SHA-256", "content": LOCKED}]
    assert _props(blas) == {"venvpack:hash-of": "wheel", "venvpack:file": WHEEL}
    openblas = next(c for c in blas["components"] if c["name"].startswith("libscipy_openblas"))
    assert openblas["version"] == "0.3.27"
    assert openblas["cpe"].startswith("cpe:2.3:a:openblas_project:openblas:0.3.27:")
    assert _props(openblas)["venvpack:origin"] == "wheel"
    merged = [c for c in blas["components"] if _props(c).get("venvpack:sbom")]
    assert sorted((c["name"], c.get("version", ""), c.get("purl")) for c in merged) == [
        ("bad", "", None),  # a purl that is not one is left out, the name kept
        ("libgfortran", "14.2.0", None),
    ]

    markupsafe = found["pkg:pypi/markupsafe@2.1.5"]
    assert markupsafe["licenses"] == [{"expression": "BSD-3-Clause"}]
    assert _props(markupsafe)["venvpack:hash-of"] == "RECORD"  # not locked: what was installed

    crypto = found["file:python/lib/libcrypto.so.3"]
    assert crypto["version"] == "3.0.15"
    assert crypto["purl"] == "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"
    assert crypto["cpe"] == "cpe:2.3:a:openssl:openssl:3.0.15:*:*:*:*:*:*:*"
    ssl = found["file:python/lib/libssl.so.3"]
    assert ssl["version"] == "3.0.15"  # libssl has no version string; its package's libcrypto does
    assert _props(ssl)["venvpack:origin"] == "grafted"

    python = found["cpython@3.12.1"]
    assert python["cpe"] == "cpe:2.3:a:python:python:3.12.1:*:*:*:*:*:*:*"
    assert python["purl"] == "pkg:generic/cpython@3.12.1"
    assert _props(python)["venvpack:python-origin"] == "pyenv"
    (sqlite,) = python["components"]
    assert (sqlite["name"], sqlite["version"]) == ("sqlite", "3.45.1")
    assert _props(sqlite)["venvpack:origin"] == "static"

    glibc = found["target:glibc"]
    assert "version" not in glibc  # required of the target, not shipped
    assert "purl" not in glibc
    assert _props(glibc) == {
        "venvpack:shipped": "false",
        "venvpack:minimum-version": env.manifest.glibc_floor,
    }

    depends = {d["ref"]: set(d.get("dependsOn", [])) for d in data["dependencies"]}
    # the extra's requirement counts because fakeblas is installed; the marker that does not
    # hold for Python 3.12 drops markupsafe from fakeblas
    assert depends["pkg:pypi/hello@1.0.0"] == {
        "cpython@3.12.1",
        "pkg:pypi/markupsafe@2.1.5",
        "pkg:pypi/fakeblas@1.2.0",
    }
    assert depends["pkg:pypi/fakeblas@1.2.0"] == set()
    assert "file:python/lib/libssl.so.3" in depends["cpython@3.12.1"]


def test_no_build_host_path_or_user_in_the_sbom(env: BuiltEnv, host: sbom.HostPackages) -> None:
    text = sbom.cyclonedx(sbom.compose(env, host), epoch=None)
    assert "build-host-path" not in text
    assert str(env.root) not in text
    assert "/usr/lib" not in text  # where a grafted library was found stays on the host
    assert "timestamp" not in text  # no SOURCE_DATE_EPOCH: no time at all


def test_same_inputs_same_bytes_and_the_serial_follows_the_content(
    env: BuiltEnv, host: sbom.HostPackages
) -> None:
    first = sbom.cyclonedx(sbom.compose(env, host), epoch=1)
    assert sbom.cyclonedx(sbom.compose(env, host), epoch=1) == first
    other = sbom.cyclonedx(sbom.compose(env, host), epoch=2)
    serials = {json.loads(t)["serialNumber"] for t in (first, other)}
    assert len(serials) == 2
    for serial in serials:
        assert uuid.UUID(serial.removeprefix("urn:uuid:")).version == 5


def test_without_host_packages_versions_come_from_the_files(env: BuiltEnv) -> None:
    composition = sbom.compose(env)
    listed = {
        (lib.family, lib.version, origin) for lib, origin in sbom.security_libraries(composition)
    }
    assert listed == {
        ("openssl", "3.0.15", "grafted"),
        ("openblas", "0.3.27", "fakeblas"),
        ("sqlite", "3.45.1", "python"),
    }
    assert all(lib.package is None for lib in composition.libraries)


def test_a_librarys_version_falls_back_to_its_package(tmp_path: Path) -> None:
    package = sbom.SystemPackage("deb", "debian", "libffi8", "1:3.4.4-1", "amd64", "debian-12")
    assert package.upstream_version == "3.4.4"
    owners = sbom.HostPackages({"/lib/x86_64-linux-gnu/libffi.so.8.1.2": package})
    assert owners.owner("/usr/lib/x86_64-linux-gnu/libffi.so.8.1.2") == package
    assert owners.owner("/opt/elsewhere/libffi.so.8") is None


def test_a_host_without_dpkg_names_no_package(tmp_path: Path) -> None:
    found = sbom.HostPackages.read(dpkg=tmp_path / "none")
    assert found.owner("/usr/lib/x86_64-linux-gnu/libssl.so.3") is None


def test_the_sbom_is_written_inside_and_found_by_its_suffix(env: BuiltEnv) -> None:
    path = sbom.write_sbom(env)
    assert path == env.root / ".venvpack" / "sbom.cdx.json"
    assert path.name.endswith(sbom.SBOM_SUFFIX)
    assert sbom.sbom_of(env) == path.read_text()
    assert sbom.beside(Path("/o/a.tar.zst")) == Path("/o/a.tar.zst.cdx.json")


def test_pack_writes_it_beside_and_refuses_to_replace_it(
    tmp_path: Path, env: BuiltEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    inside = sbom.write_sbom(env)
    out = tmp_path / "out" / "hello.tar"
    main(["tar", "-q", "--from", str(env.root), "-o", str(out), "--json"])
    result = json.loads(capsys.readouterr().out)
    beside = tmp_path / "out" / "hello.tar.cdx.json"
    assert [e["path"] for e in result["extras"]] == [str(beside)]
    assert beside.read_bytes() == inside.read_bytes()
    out.unlink()  # the SBOM alone is an output like the artifact: refused before any work
    with pytest.raises(SystemExit) as exited:
        main(["tar", "-q", "--from", str(env.root), "-o", str(out)])
    assert exited.value.code == 2
    assert f"{beside} already exists" in capsys.readouterr().err
    assert not out.exists()
    main(["tar", "-q", "--from", str(env.root), "-o", str(out), "--force"])
    assert out.is_file()
    assert beside.read_bytes() == inside.read_bytes()


def test_the_lock_names_the_wheel_that_was_installed(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "test"\n\n'
        '[[packages]]\nname = "FakeBlas"\nversion = "1.2.0"\n'
        f'sdist = {{ url = "https://user:token@example.org/p/fakeblas-1.2.0.tar.gz", '
        f'hashes = {{ sha256 = "{"c" * 64}" }} }}\n'
        "wheels = [\n"
        f'  {{ url = "https://example.org/p/{OTHER}", hashes = {{ sha256 = "{"b" * 64}" }} }},\n'
        f'  {{ name = "{WHEEL}", url = "https://example.org/x?y", '
        f'hashes = {{ sha256 = "{LOCKED}" }} }},\n'
        "]\n"
    )
    locked = locked_files(lock)
    assert locked == {
        "fakeblas": [(OTHER, "b" * 64), (WHEEL, LOCKED), ("fakeblas-1.2.0.tar.gz", "c" * 64)]
    }
    site = tmp_path / "env"
    _dist(site, "fakeblas", "1.2.0")
    import importlib.metadata

    (dist,) = importlib.metadata.distributions(path=[str(site / SITE)])
    assert installed_file(dist, locked["fakeblas"]) == (WHEEL, LOCKED)
    # Built from the sdist: no locked wheel has its tags.
    assert installed_file(dist, [(OTHER, "b" * 64), ("fakeblas-1.2.0.tar.gz", "c" * 64)]) == (
        "fakeblas-1.2.0.tar.gz",
        "c" * 64,
    )


def test_manifests_with_and_without_lock_hashes_load() -> None:
    new = fake_manifest(distributions=(Distribution("six", "1.16.0", LOCKED, "six.whl"),))
    assert Manifest.from_json(new.to_json()) == new
    old = json.loads(new.to_json())
    old["distributions"] = [{"name": "six", "version": "1.16.0"}]
    loaded = Manifest.from_json(json.dumps(old))
    assert loaded.distributions == (Distribution("six", "1.16.0"),)
    assert dataclasses.replace(loaded.distributions[0]).sha256 is None


def test_the_policy_table_is_valid() -> None:
    names = {f.name for f in sbom.families()}
    assert {"openssl", "sqlite", "zlib", "expat", "libffi", "xz", "bzip2"} <= names
    assert sbom.families()[0].cpe_of(None).endswith(":*:*:*:*:*:*:*:*")


def test_the_interpreters_own_version_is_not_taken_for_sqlites(env: BuiltEnv) -> None:
    """CPython's binary holds its version as a string that looks like SQLite's: only the
    module that links SQLite is searched for it, the interpreter only for distinctive ones."""
    (env.root / "python/bin/python3.12").write_bytes(b"\x003.12.1\x00" + OPENSSL)
    for module in (env.root / "python/lib/python3.12/lib-dynload").glob("_sqlite3*"):
        module.unlink()
    (env.root / "python/lib/libcrypto.so.3").unlink()
    (env.root / "python/lib/libssl.so.3").unlink()
    static = {(lib.family, lib.version) for lib in sbom.compose(env).python.static}
    assert static == {("openssl", "3.0.15")}


def test_owners_are_remembered_until_the_dpkg_database_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENVPACK_CACHE", str(tmp_path / "cache"))
    dpkg = tmp_path / "dpkg"
    (dpkg / "info").mkdir(parents=True)
    status = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nVersion: {}\n"
    (dpkg / "status").write_text(status.format("3.0.15-1"))
    listing = dpkg / "info" / "libssl3:amd64.list"
    listing.write_text("/.\n/lib/x86_64-linux-gnu/libssl.so.3\n")
    release = tmp_path / "os-release"
    release.write_text('ID=debian\nVERSION_ID="12"\n')
    wanted = ["/lib/x86_64-linux-gnu/libssl.so.3"]

    def owner() -> str | None:
        found = sbom.HostPackages.read(wanted, dpkg=dpkg, os_release=release).owner(wanted[0])
        return f"{found.name} {found.version}" if found else None

    assert owner() == "libssl3 3.0.15-1"
    assert len(list((tmp_path / "cache" / "dpkg-owners").glob("*.json"))) == 1
    # A list edited behind dpkg's back (its status untouched) is not read again: the
    # answer comes from the cache.
    listing.write_text("/.\n")
    assert owner() == "libssl3 3.0.15-1"
    # dpkg replaces its status file on every install, upgrade and removal.
    listing.write_text("/.\n/lib/x86_64-linux-gnu/libssl.so.3\n")
    (dpkg / "status-new").write_text(status.format("3.0.16-1"))
    (dpkg / "status-new").rename(dpkg / "status")
    assert owner() == "libssl3 3.0.16-1"
    # Other files asked about are another question.
    wanted.append("/lib/x86_64-linux-gnu/libz.so.1")
    assert owner() == "libssl3 3.0.16-1"
    assert len(list((tmp_path / "cache" / "dpkg-owners").glob("*.json"))) == 3
