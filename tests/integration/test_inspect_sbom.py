"""``inspect`` answers "which of my artifacts ship OpenSSL 3.0.x?" for a tarball, a .deb and
an .rpm: the version each lists is the one the bundled interpreter reports, and the origin
is the Debian package the SBOM inside names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import builds
from venvpack.inspect import inspect_artifact, render_text

pytestmark = [pytest.mark.packaging]

VENVPACK = [sys.executable, "-m", "venvpack"]


@pytest.fixture(scope="module")
def artifacts(hello_envs: builds.Envs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("inspect-sbom")
    made = {}
    for fmt in ("tar", "deb", "rpm"):
        result = subprocess.run(
            [*VENVPACK, fmt, "--from", str(hello_envs.v1.root), "-o", str(out), "-q", "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        made[fmt] = Path(json.loads(result.stdout)["artifact"])
    return made


@pytest.mark.parametrize("fmt", ["tar", "deb", "rpm"])
def test_inspect_shows_openssls_version_and_origin(
    fmt: str, artifacts: dict[str, Path], hello_envs: builds.Envs
) -> None:
    reported = subprocess.run(
        [
            str(hello_envs.v1.root / "bin" / "python"),
            "-c",
            "import ssl; print(ssl.OPENSSL_VERSION)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.match(r"OpenSSL (\S+)", reported)
    assert found is not None
    version = found.group(1)
    report = inspect_artifact(artifacts[fmt])
    openssl = [lib for lib in report.native_libraries if lib.family == "openssl"]
    assert openssl
    assert {lib.version for lib in openssl} == {version}
    assert all(lib.shipped_by == "grafted" for lib in openssl)
    assert all((lib.package or "").startswith("pkg:deb/debian/libssl") for lib in openssl)
    assert report.sbom == ".venvpack/sbom.cdx.json"
    text = render_text(report)
    assert re.search(rf"openssl +{re.escape(version)} +python/lib/libcrypto\.so\.\d", text)
    printed = subprocess.run(
        [*VENVPACK, "inspect", "--sbom", str(artifacts[fmt])],
        capture_output=True,
        check=True,
    ).stdout
    assert printed == Path(f"{artifacts[fmt]}.cdx.json").read_bytes()
