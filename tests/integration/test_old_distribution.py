"""README "Run on older distributions", done for real: venvpack installed from a wheel of this
checkout into Debian 11 (its own python3.9), a tar and a deb of examples/hello built there
with ``--max-glibc 2.31``, then checked here and run in glibc-2.31, bullseye and trixie.

Slow (apt-get and PyPI inside the root, two builds): marked ``roots``. Needs the network to
the Debian mirror and PyPI (the CA bundle is bound in and named by
SSL_CERT_FILE, PIP_CERT and REQUESTS_CA_BUNDLE; /tmp is mode 1777)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import sandbox
from venvpack.inspect import inspect_artifact
from venvpack.verify import verify_artifact

pytestmark = [pytest.mark.integration, pytest.mark.roots]

REPO = Path(__file__).resolve().parents[2]
CA = Path("/etc/ssl/certs/ca-certificates.crt")


def _ok(proc: subprocess.CompletedProcess[str], what: str) -> str:
    assert proc.returncode == 0, (
        f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def test_build_in_bullseye_runs_on_glibc_2_31_and_trixie(
    bullseye_root: Path,
    fresh_root: Callable[[Path], Path],
    tmp_path: Path,
) -> None:
    if not CA.is_file():
        sandbox.unavailable(f"no CA bundle at {CA}")
    wheels = tmp_path / "wheels"
    uv = Path(sys.executable).parent / "uv"
    _ok(
        subprocess.run(
            [str(uv), "build", "--wheel", "-q", "-o", str(wheels), str(REPO)],
            capture_output=True,
            text=True,
            check=False,
        ),
        "building the venvpack wheel",
    )
    wheel = next(wheels.glob("venvpack-*.whl"))

    root = fresh_root(bullseye_root)
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    shutil.copy(CA, root / "etc" / "venvpack-ca.crt")
    env = dict(sandbox.CHROOT_ENV)
    env.update(
        SSL_CERT_FILE="/etc/venvpack-ca.crt",
        PIP_CERT="/etc/venvpack-ca.crt",
        REQUESTS_CA_BUNDLE="/etc/venvpack-ca.crt",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    out = tmp_path / "out"
    out.mkdir()
    binds = {wheels: "/wheels", REPO / "examples" / "hello": "/src/hello", out: "/out"}

    def run(*argv: str, timeout: float = 1200) -> str:
        proc = sandbox.run_in_chroot(
            root, list(argv), binds=binds, env=env, network=True, timeout=timeout
        )
        return _ok(proc, " ".join(argv))

    run("apt-get", "update", "-q")
    run("apt-get", "install", "-y", "-q", "--no-install-recommends", "python3", "python3-venv")
    run("/usr/bin/python3", "-m", "venv", "/opt/vp")
    run("/opt/vp/bin/python", "-m", "pip", "install", "-q", "--upgrade", "pip")
    run("/opt/vp/bin/python", "-m", "pip", "install", "-q", f"/wheels/{wheel.name}")
    common = ["--project", "/src/hello", "--python", "/usr/bin/python3.9", "--max-glibc", "2.31"]
    run("/opt/vp/bin/venvpack", "tar", *common, "-o", "/out/hello.tar.zst", "-q")
    run(
        "/opt/vp/bin/venvpack",
        "deb",
        *common,
        "-o",
        "/out/hello.deb",
        "--maintainer",
        "T <t@example.org>",
        "-q",
    )

    for artifact in (out / "hello.tar.zst", out / "hello.deb"):
        report = inspect_artifact(artifact, max_glibc="2.31")
        assert report.problems == (), report.problems
        assert report.glibc.floor is not None
        assert tuple(map(int, report.glibc.floor.split("."))) <= (2, 31)
        checked = verify_artifact(
            artifact, ["glibc-2.31", "bullseye", "trixie"], cache=sandbox.default_cache()
        )
        assert checked.ok, [c for c in checked.checks if c.status != "ok"]
        assert {c.root for c in checked.checks} == {"-", "glibc-2.31", "bullseye", "trixie"}
