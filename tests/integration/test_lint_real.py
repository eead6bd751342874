"""lintian and rpmlint on packages of real applications from the index: what their wheels
ship (modes, empty files, copies, compiled modules) must not make either linter complain
beyond what the package itself says is by design (its lintian overrides, its rpmlintrc).

Each application is built once (about a minute on two cores), packed as a .deb and an .rpm,
and checked: lintian reports no error and no warning, ``rpmlint -r <name>.rpmlintrc``
(the file venvpack writes beside the .rpm) reports 0 errors.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import sandbox
from venvpack.build import build_environment
from venvpack.config import BuildSpec
from venvpack.emit.deb import DebEmitter, DebOptions
from venvpack.emit.rpm import RpmEmitter, RpmOptions

pytestmark = [pytest.mark.integration, pytest.mark.packaging]

MAINTAINER = "Jane Doe <jane@example.org>"
APPS = {
    "httpie": "httpie==3.2.4",  # pure Python; summary starts with its name; empty files
    "black": "black==24.10.0",  # mypyc-compiled extension modules
    "numpy": "numpy==2.1.3",  # an app with numpy: bundled libraries, f2py scripts
}


@pytest.fixture(scope="module", params=sorted(APPS))
def packages(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    missing = sandbox.missing_tools("lintian", "rpmbuild", "rpmlint")
    if missing:
        sandbox.unavailable(f"needs {', '.join(missing)}")
    name: str = request.param
    base = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", "1700000000")
        env = build_environment(BuildSpec(requirements=(APPS[name],), name=name), base / "env")
        deb = DebEmitter(DebOptions(maintainer=MAINTAINER))
        rpm = RpmEmitter(RpmOptions(maintainer=MAINTAINER))
        out = base / "out"
        out.mkdir()
        made = {
            "deb": deb.emit(env, out / deb.filename(env)),
            "rpm": rpm.emit(env, out / rpm.filename(env)),
        }
    shutil.rmtree(env.root)
    return made


def test_lintian_reports_no_error_or_warning(packages: dict[str, Path]) -> None:
    result = subprocess.run(
        ["lintian", "--fail-on", "none", str(packages["deb"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    complaints = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert complaints == []


def test_rpmlint_with_the_rcfile_beside_the_package_reports_no_error(
    packages: dict[str, Path],
) -> None:
    package = packages["rpm"]
    rcfile = package.parent / f"{package.name.split('-')[0]}.rpmlintrc"
    assert rcfile.is_file()
    result = subprocess.run(
        ["rpmlint", "-r", str(rcfile), str(package)], capture_output=True, text=True, check=False
    )
    errors = [line for line in result.stdout.splitlines() if ": E: " in line]
    assert errors == []
    assert " 0 errors," in result.stdout, result.stdout[-2000:]
