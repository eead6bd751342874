"""`venvpack rpm` on real environments of examples/hello, read back with rpm and rpmlint, and
installed, upgraded, relocated and erased with ``rpm --root`` in a root that holds only glibc,
dash and coreutils.

Two environments are built once per module (hello 1.0.0 and a copy at 1.0.1, about 25 s each
on two cores); every package below is emitted from them, each distinct one once, all under
the same SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sandbox
from builds import Envs
from venvpack.emit.rpm import RpmEmitter, RpmOptions
from venvpack.manifest import BuiltEnv

pytestmark = [pytest.mark.integration, pytest.mark.packaging]

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
PACKAGER = "Jane Doe <jane@example.org>"
# What examples/hello/pyproject.toml says about the project.
SUMMARY = "Greets the world from a Python that travels with it"
AUTHOR = "Ada Example <ada@example.org>"
EPOCH = 1700000000
DB = ["--dbpath", "/var/lib/rpm"]


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    missing = sandbox.missing_tools("rpm", "rpmbuild", "rpmlint", "rpm2cpio", "cpio")
    if missing:
        sandbox.unavailable(f"needs {', '.join(missing)} (apt-get install rpm rpmlint cpio)")


Emit = Callable[..., Path]


@pytest.fixture(scope="module")
def emit(tmp_path_factory: pytest.TempPathFactory) -> Emit:
    """``emit(env, spec_only=False, **options)`` → the package (or spec directory), made once
    per distinct set of arguments, under SOURCE_DATE_EPOCH."""
    out = tmp_path_factory.mktemp("rpms")
    made: dict[tuple[object, ...], Path] = {}

    def make(env: BuiltEnv, spec_only: bool = False, **changes: object) -> Path:
        key = (env.root, spec_only, *sorted(changes.items()))
        if key not in made:
            options = RpmOptions(**{"maintainer": PACKAGER, **changes})  # type: ignore[arg-type]
            emitter = RpmEmitter(options, spec_only=spec_only)
            dest = out / str(len(made)) / emitter.filename(env)
            dest.parent.mkdir()
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
                made[key] = emitter.emit(env, dest)
        return made[key]

    return make


def _run(*argv: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, env=env, cwd=cwd
    )
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout


def _qf(rpm: Path, fmt: str) -> str:
    return _run("rpm", "-qp", "--qf", fmt, rpm)


def _env_files(env: BuiltEnv, prefix: str) -> set[str]:
    paths = {prefix}
    for directory, dirnames, filenames in os.walk(env.root):
        for name in dirnames + filenames:
            rel = Path(directory, name).relative_to(env.root).as_posix()
            paths.add(f"{prefix}/{rel}")
    return paths


# --- reading the package back --------------------------------------------------------------


def test_rpm_queries_show_metadata_files_and_only_explicit_requirements(
    hello_envs: Envs, emit: Emit
) -> None:
    package = emit(
        hello_envs.v1, homepage="https://example.org/hello", license="MIT", requires=("tzdata",)
    )
    assert package.name == "hello-1.0.0-1.x86_64.rpm"
    info = _run("rpm", "-qpi", package)
    for field, value in [
        ("Name", "hello"),
        ("Version", "1.0.0"),
        ("Release", "1"),
        ("Architecture", "x86_64"),
        ("License", "MIT"),
        ("URL", "https://example.org/hello"),
        ("Packager", PACKAGER),
        ("Build Host", "venvpack"),
        ("Relocations", "/opt/hello"),
        ("Summary", SUMMARY),  # the project's
    ]:
        assert re.search(rf"^{re.escape(field)}\s*: {re.escape(value)}\s*$", info, re.M), field

    listed = set(_run("rpm", "-qpl", package).splitlines())
    assert listed == _env_files(hello_envs.v1, "/opt/hello")  # %post makes /usr/bin/hello
    assert not any(p.startswith("/usr/lib/.build-id") for p in listed)

    requires = set(_run("rpm", "-qpR", package).splitlines())
    explicit = {f"glibc >= {hello_envs.v1.manifest.glibc_floor}", "tzdata", "/bin/sh"}  # sh: %post
    assert {r for r in requires if not r.startswith("rpmlib(")} == explicit
    provides = set(_run("rpm", "-qp", "--provides", package).splitlines())
    assert provides == {"hello = 1.0.0-1", "hello(x86-64) = 1.0.0-1"}

    # Nothing rewrote the tree: the payload's files are the environment's, byte for byte.
    digests = dict(
        line.split(" ", 1)[::-1]
        for line in _qf(package, "[%{FILEDIGESTS} %{FILENAMES}\n]").splitlines()
        if not line.startswith(" ")
    )
    python = hello_envs.v1.root / hello_envs.v1.manifest.python.executable
    assert (
        digests[f"/opt/hello/{hello_envs.v1.manifest.python.executable}"]
        == hashlib.sha256(python.read_bytes()).hexdigest()
    )

    # The link is not in the payload: %post makes it.
    payload = subprocess.run(
        f"rpm2cpio {package} | cpio -t --quiet",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "./usr/bin/hello" not in payload
    assert "./opt/hello/bin/hello" in payload
    assert _qf(package, "%{PAYLOADCOMPRESSOR} %{BUILDTIME}") == f"xz {EPOCH}"
    assert max(int(t) for t in _qf(package, "[%{FILEMTIMES}\n]").split()) <= EPOCH


def test_no_build_host_path_in_headers_or_payload(hello_envs: Envs, emit: Emit) -> None:
    package = emit(hello_envs.v1)
    raw = package.read_bytes()
    payload = subprocess.run(["rpm2cpio", str(package)], capture_output=True, check=True).stdout
    for needle in (
        str(hello_envs.v1.root),
        str(package.parent.parent),
        ".venvpack-",
        "/BUILDROOT",
    ):
        assert needle.encode() not in raw, needle
        assert needle.encode() not in payload, needle
    tags = _qf(package, "%{SOURCERPM}|%{BUILDHOST}|%{COOKIE}|%{PREFIXES}|[%{FILENAMES} ]")
    assert "/tmp" not in tags
    assert str(REPO) not in tags


def test_rpmlint_reports_no_error_with_the_shipped_filters(hello_envs: Envs, emit: Emit) -> None:
    for options in (
        {},
        {"service_command": "hello", "entry_points": ("hello",)},
        {"bin_links": False},
    ):
        package = emit(hello_envs.v1, **options)
        rpmlintrc = package.parent / "hello.rpmlintrc"  # written beside every .rpm
        sources = emit(hello_envs.v1, spec_only=True, **options)
        assert rpmlintrc.read_bytes() == (sources / "hello.rpmlintrc").read_bytes()
        result = subprocess.run(
            ["rpmlint", "-r", str(rpmlintrc), str(package)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert " 0 errors," in result.stdout, f"{options}:\n{result.stdout}"


def test_reproducible_under_source_date_epoch(
    hello_envs: Envs, emit: Emit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = emit(hello_envs.v1)
    emitter = RpmEmitter(RpmOptions(maintainer=PACKAGER))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    again = emitter.emit(hello_envs.v1, tmp_path / first.name)
    assert again.read_bytes() == first.read_bytes()


def test_spec_only_builds_with_plain_rpmbuild(hello_envs: Envs, emit: Emit, tmp_path: Path) -> None:
    sources = emit(hello_envs.v1, spec_only=True)
    assert sorted(p.name for p in sources.iterdir()) == [
        "hello-1.0.0-1.x86_64.tar",
        "hello.rpmlintrc",
        "hello.spec",
    ]
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "SOURCE_DATE_EPOCH": str(EPOCH)}
    _run("rpmbuild", "-bb", "--define", f"_sourcedir {sources}", "hello.spec", env=env, cwd=sources)
    built = home / "rpmbuild" / "RPMS" / "x86_64" / "hello-1.0.0-1.x86_64.rpm"
    # The same spec and sources as venvpack's own build: the same package, byte for byte.
    assert built.read_bytes() == emit(hello_envs.v1).read_bytes()


def test_project_metadata_reaches_the_package(hello_envs: Envs, emit: Emit) -> None:
    """No flags: rpm reads the project's summary, license, homepage, author and license file."""
    package = emit(hello_envs.v1, maintainer="")
    info = _run("rpm", "-qpi", package)
    for field, value in [
        ("Version", "1.0.0"),
        ("Summary", SUMMARY),
        ("License", "MIT"),
        ("URL", "https://example.org/hello"),
        ("Packager", AUTHOR),
    ]:
        assert re.search(rf"^{re.escape(field)}\s*: {re.escape(value)}\s*$", info, re.M), field
    assert "prints where it runs from" in _qf(package, "%{DESCRIPTION}")
    xy = hello_envs.v1.manifest.python.version.rsplit(".", 1)[0]
    license_file = f"/opt/hello/lib/python{xy}/site-packages/hello-1.0.0.dist-info/licenses/LICENSE"
    assert _run("rpm", "-qpL", package).splitlines() == [license_file]
    assert _run("rpm", "-qpl", package) == _run("rpm", "-qpl", emit(hello_envs.v1))
    assert f"{AUTHOR} - 1.0.0-1" in _qf(package, "[%{CHANGELOGNAME}]")


def test_flags_override_project_metadata(hello_envs: Envs, emit: Emit) -> None:
    package = emit(
        hello_envs.v1,
        summary="Given summary",
        description="Given description",
        license="Apache-2.0",
        homepage="https://given.example.org/",
    )
    assert _qf(package, "%{SUMMARY}|%{DESCRIPTION}|%{LICENSE}|%{URL}|%{PACKAGER}") == (
        f"Given summary|Given description|Apache-2.0|https://given.example.org/|{PACKAGER}"
    )


# --- hostile text ----------------------------------------------------------------------------


@pytest.fixture
def short_canary() -> Iterator[Path]:
    """A file nothing may create, under a path short enough for an 80-character summary
    (pytest's own temporary paths grow with every run)."""
    directory = Path(tempfile.mkdtemp(prefix="vp", dir="/tmp"))
    try:
        yield directory / "PWNED"
    finally:
        shutil.rmtree(directory)


def test_hostile_text_runs_nothing_and_leaks_nothing(
    hello_envs: Envs, emit: Emit, short_canary: Path
) -> None:
    canary = short_canary
    hostile = {
        # At most 80 characters: the summary is the synopsis of every system package.
        "summary": f"%(touch {canary}) %%include /etc/passwd",
        "description": (
            f"Runs nothing: %(touch {canary})\n"
            f"and %{{lua: os.execute('touch {canary}')}}\n"
            "  nor includes: %%include /etc/passwd\n"
            "text before %files\n"
            "ends with a backslash \\\n"
            "100%"
        ),
        "license": f"MIT and %(touch {canary})",
        "homepage": f"https://example.org/%{{lua:os.execute('touch\\32{canary}')}}",
        "maintainer": f"%{{lua: os.execute('touch {canary}')}} <%(id)@example.org>",
    }
    assert len(hostile["summary"]) <= 80
    package = emit(hello_envs.v1, **hostile)
    assert not canary.exists()

    assert _qf(package, "%{SUMMARY}") == hostile["summary"]
    assert _qf(package, "%{DESCRIPTION}") == hostile["description"]
    assert _qf(package, "%{LICENSE}") == hostile["license"]
    assert _qf(package, "%{URL}") == hostile["homepage"]
    assert _qf(package, "%{PACKAGER}") == hostile["maintainer"]
    assert _qf(package, "[%{CHANGELOGNAME}]").startswith(hostile["maintainer"])

    benign = emit(hello_envs.v1)
    for query in ("-qpl", "-qpR", "--provides", "--scripts"):
        assert _run("rpm", "-qp", query, package) == _run("rpm", "-qp", query, benign), query
    passwd = Path("/etc/passwd").read_text().splitlines()[0].encode()
    payload = subprocess.run(["rpm2cpio", str(package)], capture_output=True, check=True).stdout
    assert passwd not in package.read_bytes()
    assert passwd not in payload


def test_hostile_project_metadata_runs_nothing(
    hello_envs: Envs, emit: Emit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's metadata is user text too: through real rpmbuild, nothing in it runs."""
    canary = tmp_path / "PWNED"
    env = hello_envs.v1
    assert env.manifest.metadata is not None
    hostile = dataclasses.replace(
        env.manifest.metadata,
        summary=f"Sum\n%(touch {canary})\n%%include /etc/passwd",
        description=f"%(touch {canary}) starts it,\n%%include /etc/passwd\n%files and \\",
        license=f"MIT AND %(touch {canary})",
        homepage="https://example.org/%(id)",
        authors=(f"%{{lua: os.execute('touch {canary}')}} <x@example.org>",),
    )
    env = dataclasses.replace(env, manifest=dataclasses.replace(env.manifest, metadata=hostile))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    package = RpmEmitter(RpmOptions()).emit(env, tmp_path / "hostile.rpm")
    assert not canary.exists()
    # The summary is the synopsis (at most 80 characters, shortened at a word); the whole of
    # it opens the description.
    whole = f"Sum %(touch {canary}) %%include /etc/passwd"
    summary = _qf(package, "%{SUMMARY}")
    assert len(summary) <= 80
    assert summary == whole or (summary.endswith(" ...") and whole.startswith(summary[:-4]))
    assert _qf(package, "%{LICENSE}|%{URL}") == "NOASSERTION|https://example.org/%(id)"
    assert _qf(package, "%{PACKAGER}") == hostile.authors[0]
    description = " ".join(_qf(package, "%{DESCRIPTION}").split())  # rewrapped
    assert f"(touch {canary}) starts it, %%include /etc/passwd %files and" in description
    for query in ("-qpl", "-qpR", "--provides", "--scripts"):
        assert _run("rpm", "-qp", query, package) == _run("rpm", "-qp", query, emit(env)), query


# --- installing in a root with glibc, dash and coreutils only -------------------------------


def _snapshot(root: Path) -> set[str]:
    """Every path under ``root``, but rpm's own database."""
    paths = set()
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            rel = Path(directory, name).relative_to(root).as_posix()
            if not rel.startswith("var/lib/rpm/"):
                paths.add(rel)
    return paths


@pytest.fixture
def root(glibc_root_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the glibc root, with what a real system has and scriptlets expect:
    the directories packages install into, and /dev/null (``rpm --root`` mounts no /dev;
    without it a scriptlet's ``>/dev/null`` would create a file)."""
    copy = sandbox.fresh_copy(glibc_root_dir, tmp_path / "root")
    for name in ("opt", "srv", "var/lib/rpm", "var/tmp", "usr/lib/systemd/system"):
        (copy / name).mkdir(parents=True, exist_ok=True)
    os.mknod(copy / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


def _rpm(root: Path, *argv: str | Path) -> str:
    return _run("rpm", "--root", root, *DB, *argv)


def _hello(root: Path) -> str:
    result = sandbox.run_in_root(root, ["/usr/bin/hello"])
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.roots
def test_install_upgrade_erase_leave_nothing_behind(
    hello_envs: Envs, emit: Emit, root: Path
) -> None:
    before = _snapshot(root)
    _rpm(root, "-i", "--nodeps", emit(hello_envs.v1))
    link = root / "usr/bin/hello"
    assert os.readlink(link) == "/opt/hello/bin/hello"  # made by %post
    assert "hello from /opt/hello" in _hello(root)
    _rpm(root, "-V", "--nodeps", "hello")

    _rpm(root, "-U", "--nodeps", emit(hello_envs.v2))
    assert _rpm(root, "-q", "hello").strip() == "hello-1.0.1-1.x86_64"
    site = (
        root / "opt/hello/lib" / f"python{hello_envs.v2.manifest.python.version.rsplit('.', 1)[0]}"
    )
    assert (site / "site-packages/hello-1.0.1.dist-info").is_dir()
    assert not (site / "site-packages/hello-1.0.0.dist-info").exists()
    assert os.readlink(link) == "/opt/hello/bin/hello"
    assert "hello from /opt/hello" in _hello(root)

    _rpm(root, "-e", "hello")
    assert _snapshot(root) == before


@pytest.mark.roots
def test_another_packages_link_survives_install_and_erase(
    hello_envs: Envs, emit: Emit, root: Path
) -> None:
    # %post used to replace /usr/bin/NAME that something else owned; erase removed it
    link = root / "usr/bin/hello"
    link.symlink_to("/usr/lib/other/hello")
    _rpm(root, "-i", "--nodeps", emit(hello_envs.v1))
    assert os.readlink(link) == "/usr/lib/other/hello"
    _rpm(root, "-e", "hello")
    assert os.readlink(link) == "/usr/lib/other/hello"


@pytest.mark.roots
def test_relocated_install(hello_envs: Envs, emit: Emit, root: Path) -> None:
    before = _snapshot(root)
    _rpm(root, "-i", "--nodeps", "--prefix", "/srv/other", emit(hello_envs.v1))
    assert not (root / "opt/hello").exists()
    assert os.readlink(root / "usr/bin/hello") == "/srv/other/bin/hello"
    assert "hello from /srv/other" in _hello(root)
    assert _rpm(root, "-q", "--qf", "%{INSTPREFIXES}", "hello") == "/srv/other"
    _rpm(root, "-e", "hello")
    assert _snapshot(root) == before


@pytest.mark.roots
def test_service_package_installs_without_systemd(hello_envs: Envs, emit: Emit, root: Path) -> None:
    package = emit(hello_envs.v1, service_command="hello", entry_points=("hello",))
    before = _snapshot(root)
    result = subprocess.run(
        ["rpm", "--root", str(root), *DB, "-i", "--nodeps", "--prefix", "/srv/x", str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "not relocatable" in result.stderr
    _rpm(root, "-i", "--nodeps", package)
    unit = root / "usr/lib/systemd/system/hello.service"
    assert "ExecStart=/opt/hello/bin/hello\n" in unit.read_text()
    assert "hello from /opt/hello" in _hello(root)
    _rpm(root, "-e", "hello")
    assert _snapshot(root) == before


@pytest.mark.roots
def test_config_file_and_service_user_lifecycle(
    hello_envs: Envs, emit: Emit, root: Path, tmp_path: Path
) -> None:
    """%config(noreplace): an edited file survives the upgrade and is saved as .rpmsave on
    erase; the service user is made in a root without useradd and is never removed."""
    conf = tmp_path / "hello.toml"
    conf.write_text("greeting = 'hi'\n")
    options: dict[str, Any] = {
        "service_command": "hello",
        "user": "hellosvc",
        "config_files": (f"{conf}:/etc/hello/hello.toml",),
    }
    _rpm(root, "-i", "--nodeps", emit(hello_envs.v1, **options))
    conffile = root / "etc/hello/hello.toml"
    assert conffile.read_text() == "greeting = 'hi'\n"
    entry = next(
        line
        for line in (root / "etc/passwd").read_text().splitlines()
        if line.startswith("hellosvc:")
    )
    uid = int(entry.split(":")[2])
    assert entry.endswith(":/var/lib/hello:/usr/sbin/nologin")
    state = (root / "var/lib/hello").stat()
    assert (state.st_uid, state.st_gid, stat.S_IMODE(state.st_mode)) == (uid, uid, 0o750)
    unit = (root / "usr/lib/systemd/system/hello.service").read_text()
    assert "\nUser=hellosvc\n" in unit
    assert "/etc/hello/hello.toml" in _rpm(root, "-qc", "hello")

    conffile.write_text("greeting = 'edited'\n")
    _rpm(root, "-U", "--nodeps", emit(hello_envs.v2, **options))
    assert conffile.read_text() == "greeting = 'edited'\n"
    assert not (root / "etc/hello/hello.toml.rpmnew").exists()

    _rpm(root, "-e", "hello")
    assert not conffile.exists()
    assert (root / "etc/hello/hello.toml.rpmsave").read_text() == "greeting = 'edited'\n"
    assert "hellosvc:" in (root / "etc/passwd").read_text()  # never deleted
