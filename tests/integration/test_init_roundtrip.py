"""A project configured only by ``venvpack init --makefile`` and a user's edits of what it
wrote builds a tarball, a .deb and an .rpm with ``make tar deb rpm``: the targets pass
nothing but the format, ``-q``, ``--force`` and ``-o``, and capture the artifact path
``venvpack <format> -q`` prints. The artifacts are read back with tar, dpkg-deb and rpm.

One build per format (the targets build; about 10 s each for the example app, plus the
packing), so this module is the whole cost.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox
from venvpack.emit import format_names

pytestmark = [pytest.mark.integration, pytest.mark.packaging]

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
VENVPACK = Path(sys.executable).parent / "venvpack"
MAINTAINER = "Round Trip <round.trip@example.org>"
SUFFIX = {"tar": ".tar.zst", "deb": ".deb", "rpm": ".rpm", "oci": ".oci.tar"}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The project after init and edits, and what each ``make`` target printed on stdout."""
    missing = sandbox.missing_tools("make", "dpkg-deb", "rpm", "rpmbuild")
    if missing:
        sandbox.unavailable(f"needs {', '.join(missing)}")
    root = tmp_path_factory.mktemp("init") / "hello"
    shutil.copytree(HELLO, root)
    (root / "Makefile").unlink()
    # No author with an address: the .deb's maintainer must come from the edited section.
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'authors = [{ name = "Ada Example", email = "ada@example.org" }]\n', ""
        )
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("DEBEMAIL", "DEBFULLNAME", "EMAIL", "NAME")
    }
    subprocess.run([VENVPACK, "init", "--makefile"], cwd=root, env=env, check=True)
    text = pyproject.read_text()
    # The user's edits: set the maintainer the section asks for, and zstd for the deb payload.
    edits = {
        '# maintainer = "Full Name <address>"': f'maintainer = "{MAINTAINER}"',
        '# compression = "gzip"': 'compression = "zstd"',
    }
    for old, new in edits.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    pyproject.write_text(text)
    printed = {}
    for target in format_names():
        dry = subprocess.run(
            ["make", "-n", target, f"VENVPACK={VENVPACK}"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert f'"$({VENVPACK} {target} -q --force -o dist )"' in dry, dry
        run = subprocess.run(
            ["make", "--no-print-directory", target, f"VENVPACK={VENVPACK}"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        printed[target] = run.stdout
    return root, printed


@pytest.mark.parametrize("fmt", format_names())
def test_target_prints_and_keeps_the_artifact_path(
    made: tuple[Path, dict[str, str]], fmt: str
) -> None:
    root, printed = made
    lines = printed[fmt].splitlines()
    assert len(lines) == 1, printed[fmt]
    artifact = (root / lines[0]).resolve()
    assert artifact.is_file()
    assert artifact.parent == root / "dist"
    assert artifact.name.startswith("hello")
    assert artifact.name.endswith(SUFFIX[fmt])
    assert (root / "dist" / f"{fmt}.path").read_text() == printed[fmt]


def test_tarball_runs_where_unpacked(made: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, printed = made
    subprocess.run(["tar", "-xf", root / printed["tar"].strip(), "-C", tmp_path], check=True)
    out = subprocess.run(
        [tmp_path / "hello" / "bin" / "hello"], check=True, capture_output=True, text=True
    ).stdout
    assert out.startswith(f"hello from {tmp_path / 'hello'}\n")


def test_deb_has_the_edited_maintainer(made: tuple[Path, dict[str, str]]) -> None:
    root, printed = made
    deb = root / printed["deb"].strip()
    control = subprocess.run(
        ["dpkg-deb", "-f", deb], check=True, capture_output=True, text=True
    ).stdout
    fields = dict(line.split(": ", 1) for line in control.splitlines() if ": " in line)
    assert fields["Package"] == "hello"
    assert fields["Maintainer"] == MAINTAINER
    members = subprocess.run(["ar", "t", deb], check=True, capture_output=True, text=True)
    assert "data.tar.zst" in members.stdout.split()


def test_rpm_installs_at_the_prefix(made: tuple[Path, dict[str, str]]) -> None:
    root, printed = made
    rpm = root / printed["rpm"].strip()
    query = subprocess.run(
        ["rpm", "-qp", "--qf", "%{NAME} %{PREFIXES}\n", rpm],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert query == "hello /opt/hello\n"


def test_inspect_target_reads_every_artifact(made: tuple[Path, dict[str, str]]) -> None:
    root, _ = made
    run = subprocess.run(
        ["make", "--no-print-directory", "inspect", f"VENVPACK={VENVPACK}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("glibc") >= 3
