"""The SBOM of real builds: a locked uv project packed as tar, deb and rpm, a numpy build,
and interpreters of each origin.

Artifacts are read back by tools that are not venvpack (bsdtar, dpkg-deb), the SBOM is
checked against the CycloneDX 1.6 schema by cyclonedx-python-lib's validator, and what it
names is compared with what the lock, the bundled interpreter (``ssl.OPENSSL_VERSION``) and
dpkg say.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from venvpack.manifest import BuiltEnv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VENVPACK = [sys.executable, "-m", "venvpack"]
EPOCH = "1700000000"
INSIDE = ".venvpack/sbom.cdx.json"
PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "sbomapp"
version = "0.2.0"
requires-python = ">=3.9"
license = "MIT"
authors = [{ name = "Ada Example", email = "ada@example.org" }]
dependencies = ["six==1.16.0", "markupsafe"]

[tool.hatch.build.targets.wheel]
packages = ["src/sbomapp"]
"""


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["SOURCE_DATE_EPOCH"] = EPOCH
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    return result


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sbom") / "sbomapp"
    (root / "src" / "sbomapp").mkdir(parents=True)
    (root / "src" / "sbomapp" / "__init__.py").write_text("def main():\n    print('hi')\n")
    (root / "pyproject.toml").write_text(PYPROJECT)
    _run([_uv(), "lock", "--python", sys.executable], cwd=root)
    return root


@pytest.fixture(scope="module")
def built(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's environment."""
    env = tmp_path_factory.mktemp("sbom-env") / "env"
    _run([*VENVPACK, "build", "--project", str(project), "-o", str(env), "-q"])
    return env


@pytest.fixture(scope="module")
def packed(built: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The environment packed as tar, deb and rpm (``--from`` it)."""
    out = tmp_path_factory.mktemp("sbom-out")
    env = built
    made = {"env": env}
    for fmt in ("tar", "deb", "rpm"):
        result = _run([*VENVPACK, fmt, "--from", str(env), "-o", str(out), "-q", "--json"])
        data = json.loads(result.stdout)
        assert [e["path"] for e in data["extras"]][-1] == data["artifact"] + ".cdx.json"
        made[fmt] = Path(data["artifact"])
    return made


def _inside(fmt: str, artifact: Path, name: str) -> bytes:
    """The SBOM inside ``artifact``, read by bsdtar or dpkg-deb."""
    if fmt == "deb":
        tree = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(artifact)], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(tree)) as tf:
            member = tf.extractfile(f"./opt/{name}/{INSIDE}")
            assert member is not None
            return member.read()
    where = f"{name}/{INSIDE}" if fmt == "tar" else f"./opt/{name}/{INSIDE}"
    return subprocess.run(
        ["bsdtar", "-xOf", str(artifact), where], capture_output=True, check=True
    ).stdout


def _components(data: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            found.append(item)
            walk(item.get("components", []))

    walk([data["metadata"]["component"], *data["components"]])
    return found


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


@pytest.mark.packaging
def test_inside_and_beside_every_artifact_valid_and_the_same(packed: dict[str, Path]) -> None:
    carried = (packed["env"] / INSIDE).read_bytes()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(carried.decode()) is None
    for fmt in ("tar", "deb", "rpm"):
        artifact = packed[fmt]
        assert Path(f"{artifact}.cdx.json").read_bytes() == carried, fmt
        assert _inside(fmt, artifact, "sbomapp") == carried, fmt
    assert str(packed["env"].parent) not in carried.decode()  # no build-host path
    assert str(packed["tar"].parent) not in carried.decode()


def test_a_second_build_writes_the_same_bytes(project: Path, built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.tar"
    _run([*VENVPACK, "tar", "--project", str(project), "-o", str(again), "-q"])
    assert Path(f"{again}.cdx.json").read_bytes() == (built / INSIDE).read_bytes()


def test_it_names_the_lock_cpython_and_openssl(project: Path, built: Path) -> None:
    env = built
    data = json.loads((env / INSIDE).read_text())
    components = _components(data)
    by_purl = {c.get("purl"): c for c in components if c.get("purl")}

    # Every locked distribution, at its locked version, with the lock's sha256 of the wheel
    # that was installed.
    lock = tomllib.loads((project / "uv.lock").read_text())
    manifest = BuiltEnv.load(env).manifest
    for dist in manifest.distributions:
        if dist.name == "sbomapp":
            continue
        component = by_purl[f"pkg:pypi/{dist.name}@{dist.version}"]
        (locked,) = [p for p in lock["package"] if p["name"] == dist.name]
        assert locked["version"] == dist.version
        hashes = {w["hash"].removeprefix("sha256:") for w in locked.get("wheels", [])}
        (digest,) = [h["content"] for h in component["hashes"]]
        assert digest in hashes
        assert _props(component)["venvpack:hash-of"] == "wheel"
    assert data["metadata"]["component"]["purl"] == "pkg:pypi/sbomapp@0.2.0"

    # CPython: version and CPE.
    version = manifest.python.version
    (python,) = [c for c in components if c["name"] == "cpython"]
    assert python["version"] == version
    assert python["cpe"] == f"cpe:2.3:a:python:python:{version}:*:*:*:*:*:*:*"

    # OpenSSL: the version the bundled interpreter reports, from the Debian package that
    # dpkg says owns the host's copy.
    reported = _run([str(env / "bin" / "python"), "-c", "import ssl; print(ssl.OPENSSL_VERSION)"])
    found = re.match(r"OpenSSL (\S+)", reported.stdout)
    assert found is not None
    openssl = [c for c in components if _props(c).get("venvpack:family") == "openssl"]
    assert openssl
    crypto = next(c for c in openssl if c["name"].startswith("libcrypto"))
    assert crypto["version"] == found.group(1)
    assert crypto["cpe"].startswith(f"cpe:2.3:a:openssl:openssl:{found.group(1)}:")
    owner = _run(["dpkg", "-S", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"]).stdout
    package = owner.split(":")[0]
    status = _run(["dpkg-query", "-W", "-f=${Version}", package]).stdout
    assert crypto["purl"].startswith(f"pkg:deb/debian/{package}@")
    assert _props(crypto)["venvpack:package"] == f"{package} {status}"


def test_numpy_names_the_openblas_it_vendors(tmp_path: Path) -> None:
    env = tmp_path / "np"
    _run([*VENVPACK, "build", "numpy==2.1.3", "-o", str(env), "-q"])
    data = json.loads((env / INSIDE).read_text())
    numpy = data["metadata"]["component"]
    assert numpy["purl"] == "pkg:pypi/numpy@2.1.3"
    (blas,) = [c for c in numpy["components"] if _props(c).get("venvpack:family") == "openblas"]
    path = env / _props(blas)["venvpack:path"]
    assert path.parent.name == "numpy.libs"
    said = re.search(rb"OpenBLAS (\d+\.\d+\.\d+)", path.read_bytes())
    assert said is not None
    assert blas["version"] == said.group(1).decode()
    assert _props(blas)["venvpack:origin"] == "wheel"


@pytest.mark.parametrize(
    ("python", "origin", "purl"),
    [
        ("/usr/bin/python3.11", "debian", "pkg:deb/debian/python3.11-minimal@"),
        (sys.executable, "pyenv", "pkg:generic/cpython@"),
    ],
)
def test_each_interpreter_names_its_origin(
    python: str, origin: str, purl: str, tmp_path: Path
) -> None:
    pyenv = "/.pyenv/" in os.path.realpath(python)
    if not Path(python).exists() or (origin == "pyenv" and not pyenv):
        pytest.skip(f"no {origin} interpreter here")
    env = tmp_path / "env"
    hello = Path(__file__).resolve().parents[2] / "examples" / "hello"
    _run([*VENVPACK, "build", "--project", str(hello), "--python", python, "-o", str(env), "-q"])
    data = json.loads((env / INSIDE).read_text())
    (cpython,) = [c for c in data["components"] if c["name"] == "cpython"]
    assert _props(cpython)["venvpack:python-origin"] == origin
    assert cpython["purl"].startswith(purl)


@pytest.mark.packaging
def test_an_rpm_database_names_the_package_that_owns_a_file(
    packed: dict[str, Path], tmp_path: Path
) -> None:
    """On an RPM distribution the owner comes from the RPM database: here a private one
    holding the rpm just built (installed with --justdb), asked about a file it owns."""
    from venvpack.sbom import HostPackages

    db = tmp_path / "rpmdb"
    db.mkdir()
    _run(["rpm", "--dbpath", str(db), "--initdb"])
    _run(["rpm", "--dbpath", str(db), "-i", "--justdb", "--nodeps", str(packed["rpm"])])
    release = tmp_path / "os-release"
    release.write_text('ID="fedora"\nVERSION_ID=40\n')
    owned = "/opt/sbomapp/python/bin/python3"
    host = HostPackages.read(
        [owned, "/nowhere/libz.so.1"], dpkg=tmp_path / "none", rpmdb=db, os_release=release
    )
    package = host.owner(owned)
    assert package is not None
    arch = subprocess.run(
        ["rpm", "-qp", "--qf", "%{ARCH}", str(packed["rpm"])], capture_output=True, text=True
    ).stdout
    assert package.purl == f"pkg:rpm/fedora/sbomapp@0.2.0-1?arch={arch}&distro=fedora-40"
    assert package.upstream_version == "0.2.0"
    assert host.owner("/nowhere/libz.so.1") is None


@pytest.mark.packaging
def test_an_image_carries_it_and_has_it_beside(built: Path, tmp_path: Path) -> None:
    """The image's application layer holds the environment, and so its SBOM."""
    result = _run([*VENVPACK, "oci", "--from", str(built), "-o", str(tmp_path), "-q", "--json"])
    image = Path(json.loads(result.stdout)["artifact"])
    carried = (built / INSIDE).read_bytes()
    assert Path(f"{image}.cdx.json").read_bytes() == carried
    printed = subprocess.run(
        [*VENVPACK, "inspect", "--sbom", str(image)], capture_output=True, check=True
    ).stdout
    assert printed == carried
