"""`venvpack deb` on real environments of examples/hello, read back by dpkg and lintian and
installed, upgraded, removed and purged in minimal Debian roots that have no Python.

Two environments are built once per module (hello 1.0.0 and a copy at 1.0.1, about 25 s each
on two cores); every package below is emitted from them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sandbox
from builds import Envs
from venvpack.emit.deb import DebEmitter, DebOptions
from venvpack.errors import ConfigError
from venvpack.manifest import BuiltEnv

pytestmark = [pytest.mark.integration, pytest.mark.packaging]

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
MAINTAINER = "Jane Doe <jane@example.org>"
# What examples/hello/pyproject.toml says about the project.
SYNOPSIS = "Greets the world from a Python that travels with it"
AUTHOR = "Ada Example <ada@example.org>"
SERVICE: dict[str, Any] = {
    "service_command": "hello --flag '50%'",
    "homepage": "https://example.org/hello",
}
EPOCH = 1700000000


Emit = Callable[..., Path]


@pytest.fixture(scope="module")
def emit(tmp_path_factory: pytest.TempPathFactory) -> Emit:
    """``emit(env, **options)`` → the package, written once per distinct set of options."""
    out = tmp_path_factory.mktemp("debs")
    made: dict[tuple[object, ...], Path] = {}

    def make(env: BuiltEnv, **changes: Any) -> Path:
        key = (env.root, *sorted(changes.items()))
        if key not in made:
            emitter = DebEmitter(DebOptions(**{"maintainer": MAINTAINER, **changes}))
            dest = out / str(len(made)) / emitter.filename(env)
            dest.parent.mkdir()
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
                made[key] = emitter.emit(env, dest)
        return made[key]

    return make


def _run(*argv: str | Path) -> str:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


def _listing(deb: Path) -> list[tuple[str, str, str]]:
    """(mode and owner, path, link target) of each data member, as dpkg-deb --contents shows."""
    rows = []
    for line in _run("dpkg-deb", "--contents", deb).splitlines():
        parts = line.split(maxsplit=5)
        mode_owner = f"{parts[0]} {parts[1]}"
        name, _, target = parts[5].partition(" -> ")
        if " link to " in name:
            name, _, target = name.partition(" link to ")
        rows.append((mode_owner, name, target))
    return sorted(rows, key=lambda row: row[1])


# --- reading the package back --------------------------------------------------------------


def test_dpkg_deb_reads_the_package(hello_envs: Envs, emit: Emit) -> None:
    deb = emit(hello_envs.v1)
    assert deb.name == "hello_1.0.0-1_amd64.deb"
    assert _run("ar", "t", deb).split() == ["debian-binary", "control.tar.gz", "data.tar.gz"]
    info = _run("dpkg-deb", "--info", deb)
    assert " Package: hello\n" in info
    assert " Version: 1.0.0-1\n" in info
    fields = _run("dpkg-deb", "--field", deb, "Architecture", "Depends", "Installed-Size")
    glibc = hello_envs.v1.manifest.glibc_floor
    assert f"Architecture: amd64\nDepends: libc6 (>= {glibc})\n" in fields
    # Installed-Size is what dpkg-gencontrol would compute, within rounding of the tree.
    size = int(re.search(r"Installed-Size: (\d+)", fields)[1])  # type: ignore[index]
    du = int(_run("du", "-sk", "--apparent-size", hello_envs.v1.root).split()[0])
    assert du <= size <= du * 1.2 + 200
    rows = _listing(deb)
    names = [name for _, name, _ in rows]
    assert "./opt/hello/bin/python" in names
    assert "./opt/hello/pyvenv.cfg" in names
    assert ("lrwxrwxrwx root/root", "./usr/bin/hello", "/opt/hello/bin/hello") in rows
    assert all(owner.endswith("root/root") for owner, _, _ in rows)
    assert "./usr/share/doc/hello/changelog.Debian.gz" in names
    assert "./usr/share/lintian/overrides/hello" in names


def test_lintian_reports_nothing_beyond_the_overrides(hello_envs: Envs, emit: Emit) -> None:
    if shutil.which("lintian") is None:
        sandbox.unavailable("lintian not installed (apt-get install lintian)")
    debs = [
        emit(hello_envs.v1),
        emit(hello_envs.v1, **SERVICE),
    ]
    result = subprocess.run(
        ["lintian", "--fail-on", "none", "--display-info", *map(str, debs)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    complaints = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert complaints == []
    # Every override is needed by one of the two packages (else: an unused override).
    assert "unused-override" not in result.stdout


def test_tree_only_is_accepted_by_dpkg_deb_build(
    hello_envs: Envs, emit: Emit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    options = DebOptions(maintainer=MAINTAINER, tree_only=True, **SERVICE)
    emitter = DebEmitter(options)
    tree = emitter.emit(hello_envs.v1, tmp_path / emitter.filename(hello_envs.v1))
    assert tree.name == "hello_1.0.0-1_amd64"
    assert (tree / "DEBIAN" / "control").is_file()
    _run("dpkg-deb", "--root-owner-group", "--build", tree)
    built = tmp_path / "hello_1.0.0-1_amd64.deb"
    ours = emit(hello_envs.v1, **SERVICE)
    assert _listing(built) == _listing(ours)
    for field in ("Package", "Version", "Installed-Size", "Depends", "Description"):
        assert _run("dpkg-deb", "--field", built, field) == _run("dpkg-deb", "--field", ours, field)


def test_cli_rebuilds_byte_identical_packages(hello_envs: Envs, emit: Emit, tmp_path: Path) -> None:
    """`venvpack deb --from` under SOURCE_DATE_EPOCH writes the bytes the emitter wrote;
    bad options fail with one line and leave nothing behind."""
    out = tmp_path / "out"
    out.mkdir()
    venvpack = [
        sys.executable,
        "-m",
        "venvpack",
        "deb",
        "--from",
        str(hello_envs.v1.root),
        "-o",
        str(out),
    ]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    ok = subprocess.run(
        [*venvpack, "--maintainer", MAINTAINER, "-q"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert sorted(os.listdir(out)) == [
        "hello_1.0.0-1_amd64.deb",
        "hello_1.0.0-1_amd64.deb.cdx.json",
    ]
    assert (out / "hello_1.0.0-1_amd64.deb").read_bytes() == emit(hello_envs.v1).read_bytes()
    dates = {
        line.split()[3] for line in _run("dpkg-deb", "--contents", emit(hello_envs.v1)).splitlines()
    }
    assert dates == {"2023-11-14"}  # every mtime clamped to SOURCE_DATE_EPOCH

    again = subprocess.run(
        [*venvpack, "--maintainer", MAINTAINER],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert again.returncode == 2
    assert "already exists" in again.stderr
    for hostile in (
        ["--maintainer", "Jane <j@example.org>\nPackage: evil"],
        ["--maintainer", MAINTAINER, "--depends", "libc6\nEssential: yes"],
        ["--maintainer", MAINTAINER, "--homepage", "https://x.org\nX: y"],
        ["--maintainer", MAINTAINER, "--section", "misc\n"],
        ["--maintainer", MAINTAINER, "--entry-point", "nope", "--force"],
        ["--maintainer", MAINTAINER, "--service-command", "nope", "--force"],
    ):
        # -q: errors only, so the error is all stderr holds (without it, the plan and the
        # --from audit come first: an entry point can only be checked in the environment).
        result = subprocess.run(
            [*venvpack, *hostile, "-q"], capture_output=True, text=True, env=env, check=False
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("venvpack: error: ")
    assert sorted(os.listdir(out)) == [
        "hello_1.0.0-1_amd64.deb",
        "hello_1.0.0-1_amd64.deb.cdx.json",
    ]


def _copyright(deb: Path) -> str:
    """The copyright file, taken out of the data tarball by dpkg-deb and tar."""
    data = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    member = subprocess.run(
        ["tar", "-xO", "./usr/share/doc/hello/copyright"],
        input=data,
        capture_output=True,
        check=True,
    )
    return member.stdout.decode("utf-8")


def test_project_metadata_reaches_the_package(hello_envs: Envs, emit: Emit) -> None:
    """No flags: dpkg reads the project's summary, homepage and author, and the copyright
    file carries its license with the full text of its LICENSE file."""
    deb = emit(hello_envs.v1, maintainer="")
    fields = _run("dpkg-deb", "-f", deb, "Version", "Description", "Homepage", "Maintainer")
    assert fields.startswith("Version: 1.0.0-1\n")
    assert f"\nDescription: {SYNOPSIS}\n `hello` prints where it runs from" not in fields
    assert f"\nDescription: {SYNOPSIS}\n hello prints where it runs from" in fields
    assert "\nHomepage: https://example.org/hello\n" in fields
    assert fields.endswith(f"\nMaintainer: {AUTHOR}\n")
    copyright_ = _copyright(deb)
    assert copyright_.startswith("Format: https://www.debian.org/doc/packaging-manuals/")
    assert f"\nFiles: *\nCopyright: {AUTHOR}\nLicense: MIT\n" in copyright_
    license_text = (HELLO / "LICENSE").read_text().strip().splitlines()
    indented = "\n".join(f" {line}" if line else " ." for line in license_text)
    assert "\n\nLicense: MIT\n /opt/hello/lib/python" in copyright_  # stand-alone
    assert indented in copyright_


def test_flags_override_project_metadata(hello_envs: Envs, emit: Emit) -> None:
    deb = emit(
        hello_envs.v1,
        description="Given synopsis\nGiven text.",
        homepage="https://given.example.org/",
        compression="zstd",
    )
    assert _run("dpkg-deb", "-f", deb, "Description", "Homepage", "Maintainer") == (
        "Description: Given synopsis\n Given text.\n"
        "Homepage: https://given.example.org/\n"
        f"Maintainer: {MAINTAINER}\n"
    )


@pytest.mark.parametrize("compression", ["xz", "zstd"])
def test_reproducible_with_other_compressions(
    hello_envs: Envs, emit: Emit, compression: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gzip, the default, is covered by the CLI test above.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    emitter = DebEmitter(DebOptions(maintainer=MAINTAINER, compression=compression))
    first = emitter.emit(hello_envs.v1, tmp_path / "a.deb")
    second = emitter.emit(hello_envs.v1, tmp_path / "b.deb")
    assert first.read_bytes() == second.read_bytes()
    suffix = {"xz": "xz", "zstd": "zst"}[compression]
    assert _run("ar", "t", first).split() == [
        "debian-binary",
        f"control.tar.{suffix}",
        f"data.tar.{suffix}",
    ]
    assert _listing(first) == _listing(emit(hello_envs.v1))  # the same tree in other bytes


def test_dpkg_1_20_reads_the_default_and_xz_packages(
    hello_envs: Envs, emit: Emit, bullseye_root: Path, tmp_path: Path
) -> None:
    """Every dpkg from 1.19 must read a package of the default compression: bullseye's
    dpkg 1.20 unpacks the default (gzip deflated in parallel blocks) and the xz one
    (multi-block), and refuses zstd, which only dpkg 1.21.18 reads."""
    debs = tmp_path / "debs"
    debs.mkdir()
    for compression in ("gzip", "xz", "zstd"):
        options = {} if compression == "gzip" else {"compression": compression}
        shutil.copy(emit(hello_envs.v1, **options), debs / f"{compression}.deb")
    version = sandbox.run_in_root(bullseye_root, ["dpkg-deb", "--version"], check=True).stdout
    assert re.search(r"version 1\.20\.", version), version
    expected = sorted(path for _mode, path, _target in _listing(emit(hello_envs.v1)))
    for compression, readable in (("gzip", True), ("xz", True), ("zstd", False)):
        script = (
            f"dpkg-deb --info /debs/{compression}.deb >/dev/null"
            f" && dpkg-deb --contents /debs/{compression}.deb"
            f" && dpkg-deb --extract /debs/{compression}.deb /tmp/x"
            " && test -x /tmp/x/opt/hello/bin/hello"
        )
        result = sandbox.run_in_root(
            bullseye_root, ["/bin/sh", "-c", script], binds={debs: "/debs"}
        )
        assert (result.returncode == 0) == readable, (compression, result.stderr)
        if readable:
            names = [line.split(maxsplit=5)[5] for line in result.stdout.splitlines()]
            names = [n.partition(" -> ")[0].partition(" link to ")[0] for n in names]
            assert sorted(names) == expected, compression


def test_hostile_description_cannot_add_fields(hello_envs: Envs, emit: Emit) -> None:
    # A carriage return or another control character is refused before the build (see
    # tests/unit/test_pack.py); line breaks alone must still add no field.
    description = "Synopsis\nEssential: yes\n\nPre-Depends: evil\n.\nConflicts: dpkg"
    with pytest.raises(ConfigError, match="control character"):
        DebOptions(description=description.replace("\n.", "\r\n.\r"))
    deb = emit(hello_envs.v1, description=description, compression="zstd")
    assert _field_names(deb) == [
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Installed-Size",
        "Depends",
        "Section",
        "Priority",
        "Homepage",  # the project's
        "Description",
    ]
    assert _run("dpkg-deb", "--field", deb, "Essential") == "no\n"  # dpkg's default
    for field in ("Pre-Depends", "Conflicts"):
        assert _run("dpkg-deb", "--field", deb, field).strip() == ""


def test_hostile_project_metadata_cannot_add_fields(
    hello_envs: Envs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's metadata is user text too: dpkg sees no field it did not write, and the
    copyright file no paragraph."""
    env = hello_envs.v1
    assert env.manifest.metadata is not None
    hostile = dataclasses.replace(
        env.manifest.metadata,
        summary="Synopsis\nEssential: yes",
        description="Plain words in a paragraph\nPre-Depends: evil\r\nConflicts: dpkg\n",
        license="MIT\nFiles: *",
        homepage="https://example.org/\nX: y",
        authors=("Evil\nEssential: yes <e@example.org>",),
    )
    env = dataclasses.replace(env, manifest=dataclasses.replace(env.manifest, metadata=hostile))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    deb = DebEmitter(DebOptions(compression="zstd")).emit(env, tmp_path / "hostile.deb")
    assert _field_names(deb) == [
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Installed-Size",
        "Depends",
        "Section",
        "Priority",
        "Description",
    ]
    assert _run("dpkg-deb", "--field", deb, "Maintainer") == (
        "Evil Essential: yes <e@example.org>\n"
    )
    assert _run("dpkg-deb", "--field", deb, "Essential") == "no\n"
    for field in ("Pre-Depends", "Conflicts"):
        assert _run("dpkg-deb", "--field", deb, field).strip() == ""
    paragraphs = [
        [line.split(":")[0] for line in block.splitlines() if not line[:1].isspace()]
        for block in _copyright(deb).split("\n\n")
    ]
    assert all(p[0] == "Files" for p in paragraphs[1:-1]), paragraphs
    assert paragraphs[0][0] == "Format"
    assert paragraphs[-1][0] == "Files"  # "other": the texts stay in the Files paragraphs
    assert all(p in (["Files", "Copyright", "License"],) for p in paragraphs[1:])


# --- installing in minimal Debian roots ------------------------------------------------------


def _in_root(root: Path, debs: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return sandbox.run_in_chroot(root, list(argv), binds={debs: "/debs"})


def _lifecycle(root: Path, v1: Path, v2: Path, service: bool) -> None:
    debs = v1.parent.parent
    rel1, rel2 = (str(p.relative_to(debs)) for p in (v1, v2))

    def ok(*argv: str) -> str:
        result = _in_root(root, debs, *argv)
        assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
        return result.stdout

    assert sandbox.python_traces(root) == []
    ok("dpkg", "-i", f"/debs/{rel1}")
    out = ok("/usr/bin/hello")
    assert "hello from /opt/hello" in out
    assert "markupsafe" in out
    assert ok("dpkg-query", "-W", "hello") == "hello\t1.0.0-1\n"
    unit = root / "usr/lib/systemd/system/hello.service"
    wants = root / "etc/systemd/system/multi-user.target.wants/hello.service"
    if service:
        assert unit.is_file()
        assert wants.is_symlink()

    ok("dpkg", "-i", f"/debs/{rel2}")
    assert ok("dpkg-query", "-W", "hello") == "hello\t1.0.1-1\n"
    assert "hello from /opt/hello" in ok("/usr/bin/hello")
    site = next((root / "opt/hello/lib").glob("python3.*/site-packages"))
    assert [p.name for p in site.glob("hello-*.dist-info")] == ["hello-1.0.1.dist-info"]

    ok("dpkg", "-r", "hello")
    assert not (root / "opt/hello").exists()
    assert not os.path.lexists(root / "usr/bin/hello")
    assert not unit.exists()
    ok("dpkg", "-P", "hello")
    assert not os.path.lexists(wants)
    state = root / "var/lib/systemd/deb-systemd-helper-enabled"
    assert [p for p in state.rglob("*") if "hello" in p.name] == []
    status = _in_root(root, debs, "dpkg-query", "-W", "-f", "${Status}", "hello")
    assert status.returncode != 0 or "not-installed" in status.stdout
    assert not (root / "opt").exists() or list((root / "opt").iterdir()) == []
    assert not any(p.name.startswith("hello") for p in (root / "usr/bin").iterdir())


@pytest.mark.roots
@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
@pytest.mark.parametrize("service", [False, True], ids=["plain", "service"])
def test_install_upgrade_remove_purge(
    suite: str,
    service: bool,
    hello_envs: Envs,
    emit: Emit,
    request: pytest.FixtureRequest,
    fresh_root: Callable[[Path], Path],
) -> None:
    cached: Path = request.getfixturevalue(f"{suite}_root")
    extra = SERVICE if service else {}
    # The upgrade comes as zstd: cheaper to make, and dpkg must read both.
    v1, v2 = emit(hello_envs.v1, **extra), emit(hello_envs.v2, compression="zstd", **extra)
    _lifecycle(fresh_root(cached), v1, v2, service)


@pytest.mark.roots
def test_conffile_and_service_user_lifecycle(
    hello_envs: Envs,
    emit: Emit,
    trixie_root: Path,
    fresh_root: Callable[[Path], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Install with a conffile and a service user, edit the conffile, upgrade (edit kept),
    remove (conffile and user kept), purge (conffile gone, user still kept)."""
    conf = tmp_path_factory.mktemp("conf") / "hello.toml"
    conf.write_text("greeting = 'hi'\n")
    options: dict[str, Any] = {
        "service_command": "hello",
        "user": "hellosvc",
        "config_files": (f"{conf}:/etc/hello/hello.toml",),
        "files": (f"{conf}:/usr/share/hello/example.toml",),
    }
    v1, v2 = emit(hello_envs.v1, **options), emit(hello_envs.v2, **options)
    root = fresh_root(trixie_root)
    debs = v1.parent.parent
    rel1, rel2 = (str(p.relative_to(debs)) for p in (v1, v2))

    def ok(*argv: str) -> str:
        result = _in_root(root, debs, *argv)
        assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
        return result.stdout

    conffile = root / "etc/hello/hello.toml"
    ok("dpkg", "-i", f"/debs/{rel1}")
    assert conffile.read_text() == "greeting = 'hi'\n"
    assert (root / "usr/share/hello/example.toml").is_file()
    passwd = ok("getent", "passwd", "hellosvc").split(":")
    assert passwd[5:] == ["/var/lib/hello", "/usr/sbin/nologin\n"]
    assert ok("stat", "-c", "%U:%G %a", "/var/lib/hello") == "hellosvc:hellosvc 750\n"
    unit = (root / "usr/lib/systemd/system/hello.service").read_text()
    assert "\nUser=hellosvc\n" in unit
    assert "\nProtectSystem=strict\n" in unit
    assert "/etc/hello/hello.toml\n" in ok("cat", "/var/lib/dpkg/info/hello.conffiles")

    conffile.write_text("greeting = 'edited'\n")
    ok("dpkg", "-i", f"/debs/{rel2}")
    assert ok("dpkg-query", "-W", "hello") == "hello\t1.0.1-1\n"
    assert conffile.read_text() == "greeting = 'edited'\n"

    ok("dpkg", "-r", "hello")
    assert not (root / "opt/hello").exists()
    assert conffile.read_text() == "greeting = 'edited'\n"
    assert ok("getent", "passwd", "hellosvc").startswith("hellosvc:")

    ok("dpkg", "-P", "hello")
    assert not conffile.exists()
    assert ok("getent", "passwd", "hellosvc").startswith("hellosvc:")  # never deleted


def _field_names(deb: Path) -> list[str]:
    """The control fields of ``deb`` in order, as dpkg-deb reads them: an injected line would
    show up here as a field of its own."""
    fields = _run("dpkg-deb", "--field", deb)
    return [line.split(":")[0] for line in fields.splitlines() if not line.startswith(" ")]
