"""The project as its author locked it: uv.lock and pylock.toml install exactly their pins.

The project is made the way a uv user makes one: ``uv add 'six==1.16.0' --no-sync`` locks
an old release, then the pin in pyproject.toml is relaxed and ``uv lock`` keeps the locked
version. A fresh resolution would take the index's newest six instead, so every artifact
that carries six 1.16.0 was installed from the lock. Artifacts are read back with tarfile,
dpkg-deb and rpm, not with venvpack.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from venvpack.manifest import BuiltEnv

pytestmark = [pytest.mark.integration]

VENVPACK = [sys.executable, "-m", "venvpack"]
LOCKED_SIX = "1.16.0"
PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "lockapp"
version = "0.3.0"
requires-python = ">=3.9"
dependencies = []

[project.optional-dependencies]
net = ["idna"]

[dependency-groups]
dev = ["iniconfig"]
ops = ["packaging"]

[project.scripts]
lockapp = "lockapp:main"
"""


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, check=False)


def _uv_run(*args: str, cwd: Path) -> None:
    result = _run([_uv(), *args, "--python", sys.executable], cwd=cwd)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lock") / "lockapp"
    package = root / "src" / "lockapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import six\n\ndef main():\n    print('six', six.__version__)\n"
    )
    (root / "pyproject.toml").write_text(PYPROJECT)
    _uv_run("add", f"six=={LOCKED_SIX}", "--no-sync", cwd=root)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f"six=={LOCKED_SIX}", "six>=1.15"))
    _uv_run("lock", cwd=root)
    assert f'name = "six"\nversion = "{LOCKED_SIX}"' in (root / "uv.lock").read_text()
    assert f"six=={LOCKED_SIX}" not in pyproject.read_text()
    return root


def _copy(project: Path, dest: Path, *, keep_lock: bool = True) -> Path:
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns(".venv"))
    if not keep_lock:
        (dest / "uv.lock").unlink()
    return dest


def _venvpack(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return _run([*VENVPACK, *args], cwd=cwd)


def _dists(env: Path) -> dict[str, str]:
    m = BuiltEnv.load(env).manifest
    return {d.name: d.version for d in m.distributions}


def _archive_names(kind: str, artifact: Path) -> list[str]:
    """Member names, read back by tools that are not venvpack."""
    if kind == "tar":
        with (
            artifact.open("rb") as raw,
            zstandard.ZstdDecompressor().stream_reader(raw) as fh,
            tarfile.open(fileobj=fh, mode="r|") as tf,
        ):
            return [m.name for m in tf]
    if kind == "deb":
        out = _run(["dpkg-deb", "--contents", str(artifact)]).stdout
        # "drwxr-xr-x root/root 0 2026-01-01 00:00 ./opt/x/y/": directories end with a slash.
        return [line.split()[5].rstrip("/") for line in out.splitlines()]
    return _run(["rpm", "-qpl", str(artifact)]).stdout.splitlines()


@pytest.mark.parametrize(
    "kind",
    [
        "tar",
        pytest.param("deb", marks=pytest.mark.packaging),
        pytest.param("rpm", marks=pytest.mark.packaging),
    ],
)
def test_every_format_ships_the_locked_version(kind: str, project: Path, tmp_path: Path) -> None:
    extra = ["--maintainer", "Lock Tester <lock@example.org>"] if kind == "deb" else []
    result = _venvpack(kind, "--project", str(project), "-o", str(tmp_path), "-q", *extra)
    assert result.returncode == 0, result.stderr
    suffix = {"tar": ".zst", "deb": ".deb", "rpm": ".rpm"}[kind]
    (artifact,) = [p for p in tmp_path.iterdir() if p.suffix == suffix]  # an .rpmlintrc too
    names = _archive_names(kind, artifact)
    dist_infos = {Path(n).name for n in names if n.endswith(".dist-info")}
    assert f"six-{LOCKED_SIX}.dist-info" in dist_infos, dist_infos
    assert "lockapp-0.3.0.dist-info" in dist_infos
    # Development groups and unasked extras stay out; the project is a real install.
    assert not {d for d in dist_infos if d.startswith(("iniconfig-", "idna-", "packaging-"))}
    assert any(n.endswith("site-packages/lockapp/__init__.py") for n in names)
    assert not any(n.endswith(".pth") and "lockapp" in n for n in names)


def test_manifest_traces_the_lock_and_the_app_runs(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "env"
    result = _venvpack("build", "--project", str(project), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    m = BuiltEnv.load(out).manifest
    assert (m.name, m.version) == ("lockapp", "0.3.0")
    assert m.source is not None
    assert m.source.kind == "uv.lock"
    lock_digest = hashlib.sha256((project / "uv.lock").read_bytes()).hexdigest()
    assert [(f.name, f.sha256) for f in m.source.files] == [("uv.lock", lock_digest)]
    run = _run([str(out / "bin" / "lockapp")])
    assert run.stdout.strip() == f"six {LOCKED_SIX}", run.stderr
    # Nothing of the build host's project directory travels in the manifest.
    assert str(project) not in (out / ".venvpack" / "manifest.json").read_text()


def test_extras_and_groups_select_from_the_lock(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "env"
    args = ("--extra", "net", "--group", "ops")
    result = _venvpack("build", "--project", str(project), *args, "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    dists = _dists(out)
    assert dists["six"] == LOCKED_SIX
    assert "idna" in dists
    assert "packaging" in dists
    assert "iniconfig" not in dists  # dev is a default group for uv, not for a package
    m = BuiltEnv.load(out).manifest
    assert m.source is not None
    assert (m.source.extras, m.source.groups) == (("net",), ("ops",))


def test_unknown_extra_is_uvs_error_with_its_reason(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "env"
    result = _venvpack("build", "--project", str(project), "--extra", "nope", "-o", str(out))
    assert result.returncode == 4
    assert "nope" in result.stderr
    assert not out.exists()


def test_pylock_toml_installs_exactly_its_pins(project: Path, tmp_path: Path) -> None:
    copy = _copy(project, tmp_path / "lockapp", keep_lock=True)
    # What a uv user hands to other tools: the project itself is an editable entry in it.
    _uv_run("export", "--format", "pylock.toml", "--quiet", "-o", "pylock.toml", cwd=copy)
    assert "editable = true" in (copy / "pylock.toml").read_text()
    (copy / "uv.lock").unlink()
    out = tmp_path / "env"
    result = _venvpack("build", "--project", str(copy), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert _dists(out)["six"] == LOCKED_SIX
    m = BuiltEnv.load(out).manifest
    assert m.source is not None
    assert m.source.kind == "pylock"
    site = next((out / "lib").glob("python3.*/site-packages"))
    assert (site / "lockapp" / "__init__.py").is_file()  # built and installed, not editable
    assert not list(site.glob("*.pth"))

    # The same lock given with -r, without the project: the lock alone names what goes in.
    other = tmp_path / "from-r"
    result = _venvpack(
        "build", "-r", str(copy / "pylock.toml"), "--name", "lockapp", "-o", str(other), "-q"
    )
    assert result.returncode == 0, result.stderr
    assert _dists(other)["six"] == LOCKED_SIX
    assert BuiltEnv.load(other).manifest.version == "0.3.0"


def test_stale_lock_is_refused_naming_it(project: Path, tmp_path: Path) -> None:
    copy = _copy(project, tmp_path / "lockapp")
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("six>=1.15", "six>=1.17"))
    out = tmp_path / "out" / "env"
    result = _venvpack("build", "--project", str(copy), "-o", str(out))
    assert result.returncode == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("venvpack: error:")]
    assert len(errors) == 1
    assert f"{copy / 'uv.lock'}" in errors[0]
    assert "needs to be updated" in result.stderr  # uv's own words, shown under ours
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert os.listdir(out.parent) == []
    # The lock is never silently redone.
    assert (copy / "uv.lock").read_bytes() == (project / "uv.lock").read_bytes()


def test_no_lock_resolves_afresh(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "env"
    result = _venvpack("build", "--project", str(project), "--no-lock", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    # The lock left out is said even with -q: the set shipped is not the one tested.
    assert result.stderr == (
        f"venvpack: warning: {project / 'uv.lock'} is not used: "
        "the requirements are resolved afresh (--no-lock)\n"
    )
    assert _dists(out)["six"] != LOCKED_SIX
    m = BuiltEnv.load(out).manifest
    assert m.source is not None
    assert m.source.kind == "resolved"


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        pytest.param(("-r", "{hashes}"), "Hash mismatch for `six==1.16.0`", id="hash-mismatch"),
        pytest.param(
            ("click==8.3.0", "--python", "3.9"),
            "does not satisfy Python>=3.10",
            id="requires-python",
        ),
        pytest.param(
            ("six", "--no-index"),
            "six was not found in the provided package locations",
            id="offline",
        ),
    ],
)
def test_installer_failures_show_the_cause(
    args: tuple[str, ...], cause: str, tmp_path: Path
) -> None:
    hashes = tmp_path / "hashes.txt"
    hashes.write_text(f"six=={LOCKED_SIX} --hash=sha256:{'0' * 64}\n")
    out = tmp_path / "out" / "env"
    argv = [a.replace("{hashes}", str(hashes)) for a in args]
    result = _venvpack("build", *argv, "-q", "-o", str(out))
    assert result.returncode == 4
    lines = result.stderr.splitlines()
    assert lines[0] == "venvpack: error: installing requirements (uv) failed (exit 1)"
    # The installer's own explanation follows, indented under the one-line summary.
    assert all(line.startswith("    ") or not line.strip() for line in lines[1:])
    assert cause in " ".join(result.stderr.split())  # uv wraps its lines to a width
    assert not out.exists()
    assert os.listdir(out.parent) == []


def test_credentials_in_index_urls_are_never_shown(tmp_path: Path) -> None:
    out = tmp_path / "env"
    url = "https://user:s3cret-token@127.0.0.1:9/simple"
    result = _venvpack("build", "six", "--index-url", url, "-v", "-o", str(out))
    assert result.returncode == 4
    assert "127.0.0.1:9" in result.stderr
    assert "s3cret-token" not in result.stderr


UV_INDEX_TABLE = """
[[tool.uv.index]]
name = "private"
url = "http://127.0.0.1:9/simple"
default = true
"""


@pytest.mark.parametrize("where", ["tool.uv", "PIP_INDEX_URL"])
def test_uv_configuration_and_pip_index_variables_are_honoured(
    where: str, project: Path, tmp_path: Path
) -> None:
    """Both point uv at a closed local port: the failure names it, so the setting was used."""
    copy = _copy(project, tmp_path / "lockapp")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    env["UV_HTTP_RETRIES"] = "0"
    if where == "tool.uv":
        with (copy / "pyproject.toml").open("a") as fh:
            fh.write(UV_INDEX_TABLE)
    else:
        env["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple"
    argv = [*VENVPACK, "build", "--project", str(copy), "--no-lock", "-o", str(tmp_path / "env")]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 4
    assert "http://127.0.0.1:9/simple/" in result.stderr


def _errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("venvpack: error:")]


def test_stale_pylock_is_refused_naming_the_missing_dependency(
    project: Path, tmp_path: Path
) -> None:
    copy = _copy(project, tmp_path / "lockapp")
    _uv_run("export", "--format", "pylock.toml", "--quiet", "-o", "pylock.toml", cwd=copy)
    (copy / "uv.lock").unlink()
    # A dependency declared after the export: the lock would ship without it.
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six>=1.15"', '"six>=1.15", "idna"'))
    out = tmp_path / "out" / "env"
    result = _venvpack("build", "--project", str(copy), "-o", str(out), "-q")
    assert result.returncode == 2
    assert result.stderr.splitlines() == _errors(result)  # one line, nothing else
    (error,) = _errors(result)
    assert error == (
        f"venvpack: error: {copy / 'pylock.toml'} is out of date: pyproject.toml requires "
        "idna, the lock does not hold idna; re-export it (uv export --format pylock.toml) "
        "or pass --no-lock"
    )
    assert not out.exists()
    assert os.listdir(out.parent) == []


def test_lock_errors_carry_no_preview_warning(project: Path, tmp_path: Path) -> None:
    copy = _copy(project, tmp_path / "lockapp")
    _uv_run("export", "--format", "pylock.toml", "--quiet", "-o", "pylock.toml", cwd=copy)
    (copy / "uv.lock").unlink()
    lock = copy / "pylock.toml"
    text = lock.read_text()
    # The wheel's digest (the sdist's comes first in six's entry).
    wheels = text.split('name = "six"', 1)[1].split("wheels = ", 1)[1]
    digest = wheels.split('sha256 = "', 1)[1][:64]
    lock.write_text(text.replace(digest, "0" * 64))
    result = _venvpack("build", "--project", str(copy), "-o", str(tmp_path / "env"), "-q")
    assert result.returncode == 4
    assert "Hash mismatch for `six==1.16.0`" in " ".join(result.stderr.split())
    assert "experimental" not in result.stderr


WORKSPACE = """\
[project]
name = "tools"
version = "0"
requires-python = ">=3.9"
dependencies = []

[tool.uv.workspace]
members = ["packages/*"]
"""


def test_a_workspace_member_installs_the_workspaces_lock(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    member = _copy(project, root / "packages" / "lockapp", keep_lock=False)
    (root / "pyproject.toml").write_text(WORKSPACE)
    # The workspace locks the old six the member's own pin once asked for (now relaxed).
    pyproject = member / "pyproject.toml"
    relaxed = pyproject.read_text()
    pyproject.write_text(relaxed.replace("six>=1.15", f"six=={LOCKED_SIX}"))
    _uv_run("lock", cwd=root)
    pyproject.write_text(relaxed)
    _uv_run("lock", cwd=root)
    assert not (member / "uv.lock").exists()
    out = tmp_path / "env"
    result = _venvpack("build", "--project", str(member), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    dists = _dists(out)
    assert dists["six"] == LOCKED_SIX
    assert dists["lockapp"] == "0.3.0"
    assert "tools" not in dists  # the workspace's root is not the member's dependency
    m = BuiltEnv.load(out).manifest
    assert m.source is not None
    assert m.source.kind == "uv.lock"
    digest = hashlib.sha256((root / "uv.lock").read_bytes()).hexdigest()
    assert [(f.name, f.sha256) for f in m.source.files] == [("uv.lock", digest)]


def test_a_locked_project_given_as_a_requirement(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "env"
    result = _venvpack("build", f"{project}/", "-o", str(out), "-q")
    assert result.returncode == 2
    assert result.stderr == (
        f"venvpack: error: {project}/: this project has uv.lock, which a requirement ignores; "
        f"give it as --project {project}/ to install its lock, or pass --no-lock\n"
    )
    assert not out.exists()
    assert os.listdir(out.parent) == []
    # Asked for on purpose, resolving afresh still says what is left out, even with -q.
    result = _venvpack("build", f"{project}/", "--no-lock", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"venvpack: warning: {project / 'uv.lock'} is not used: {project}/ is resolved afresh "
        "(--no-lock)\n"
    )
    assert _dists(out)["six"] != LOCKED_SIX
