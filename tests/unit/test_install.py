"""Choosing what to install from (a lock or fresh resolution), before any build work."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from venvpack import ui
from venvpack.build import app_name, app_version
from venvpack.config import BuildSpec, Installer
from venvpack.errors import ConfigError
from venvpack.install import (
    Installed,
    _resolve_args,
    plan_install,
    requested_names,
    uv_environment,
    workspace_lock,
)
from venvpack.manifest import Distribution, InputFile


def _project(tmp_path: Path, *locks: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "My_App"\nversion = "1"\n')
    for lock in locks:
        (tmp_path / lock).write_text(f"# {lock}\n")
    return tmp_path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_uv_lock_is_the_default_truth(tmp_path: Path) -> None:
    project = _project(tmp_path, "uv.lock", "pylock.toml")
    plan = plan_install(BuildSpec(project=project, extras=("net",), groups=("ops",)))
    assert plan.uv_lock == project / "uv.lock"
    assert plan.pylock is None
    assert plan.source.kind == "uv.lock"
    assert plan.source.files == (InputFile("uv.lock", _sha(project / "uv.lock")),)
    assert (plan.source.extras, plan.source.groups) == (("net",), ("ops",))


def test_project_pylock_when_there_is_no_uv_lock(tmp_path: Path) -> None:
    project = _project(tmp_path, "pylock.toml")
    plan = plan_install(BuildSpec(project=project, all_extras=True))
    assert plan.pylock == project / "pylock.toml"
    assert plan.source.kind == "pylock"
    assert plan.source.extras == ("*",)


def test_no_lock_resolves_and_records_the_files_given(tmp_path: Path) -> None:
    project = _project(tmp_path, "uv.lock")
    reqs = tmp_path / "extra.txt"
    reqs.write_text("six\n")
    plan = plan_install(BuildSpec(project=project, use_lock=False, requirement_files=(reqs,)))
    assert not plan.locked
    assert plan.source.kind == "resolved"
    assert plan.source.files == (InputFile("extra.txt", _sha(reqs)),)


def test_pylock_given_with_r(tmp_path: Path) -> None:
    lock = tmp_path / "elsewhere" / "pylock.prod.toml"
    lock.parent.mkdir()
    lock.write_text("lock-version = '1.0'\n")
    plan = plan_install(BuildSpec(requirement_files=(lock,), name="app"))
    assert plan.pylock == lock
    assert plan.source.files == (InputFile("pylock.prod.toml", _sha(lock)),)
    # A lock holds no requirement names; the application is then named by --name.
    assert requested_names(BuildSpec(requirement_files=(lock,))) == []


@pytest.mark.parametrize(
    ("spec_changes", "message"),
    [
        ({"requirements": ("gunicorn",)}, "gunicorn: cannot be added to the locked set of uv.lock"),
        ({"installer": Installer.PIP}, "installing from uv.lock needs uv; pass --no-lock"),
    ],
)
def test_refusals_on_top_of_a_lock(
    tmp_path: Path, spec_changes: dict[str, object], message: str
) -> None:
    project = _project(tmp_path, "uv.lock")
    with pytest.raises(ConfigError, match=message):
        plan_install(BuildSpec(project=project, **spec_changes))  # type: ignore[arg-type]


def test_missing_files_are_refused_before_the_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.txt not found"):
        plan_install(BuildSpec(constraints=(tmp_path / "nope.txt",), requirements=("six",)))


def test_hash_pinned_requirement_files_name_their_first_requirement(tmp_path: Path) -> None:
    reqs = tmp_path / "r.txt"
    reqs.write_text(
        "# locked\nSix==1.16.0 \\\n    --hash=sha256:abc \\\n    --hash=sha256:def\nidna\n"
    )
    assert requested_names(BuildSpec(requirement_files=(reqs,))) == ["six", "idna"]


def test_pip_index_variables_reach_uv() -> None:
    env = uv_environment(
        {"PIP_INDEX_URL": "https://a/simple", "PIP_EXTRA_INDEX_URL": "https://b https://c"}
    )
    assert env["UV_INDEX_URL"] == "https://a/simple"
    assert env["UV_EXTRA_INDEX_URL"] == "https://b https://c"
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert env["UV_NO_PROGRESS"] == "1"
    # uv's own settings win over pip's.
    mine = uv_environment({"PIP_INDEX_URL": "https://a/simple", "UV_DEFAULT_INDEX": "https://mine"})
    assert "UV_INDEX_URL" not in mine


def _installed(*dists: tuple[str, str], top: tuple[str, ...] = ()) -> Installed:
    return Installed(
        distributions=tuple(Distribution(n, v) for n, v in dists), top_level=top, commands=()
    )


def test_app_identity_of_a_project(tmp_path: Path) -> None:
    spec = BuildSpec(project=_project(tmp_path), name="api")
    name, main = app_name(spec)
    assert (name, main) == ("api", "my-app")
    installed = _installed(("my-app", "1.4"), ("six", "1.16.0"), top=("my-app",))
    assert app_version(spec, name, main, installed) == "1.4"


def test_requirements_only_version_is_never_another_packages() -> None:
    spec = BuildSpec(requirements=("requests", "pyyaml"), name="api")
    name, main = app_name(spec)
    installed = _installed(("pyyaml", "6.0"), ("requests", "2.34.2"), top=("requests", "pyyaml"))
    with pytest.raises(ConfigError, match=r"--name api names no installed distribution.*--version"):
        app_version(spec, name, main, installed)
    assert app_version(BuildSpec(version="0.9", name="api"), name, main, installed) == "0.9"
    spec = BuildSpec(requirements=("requests", "pyyaml"), name="pyyaml")
    assert app_version(spec, *app_name(spec), installed) == "6.0"
    spec = BuildSpec(requirements=("requests", "pyyaml"))
    assert app_name(spec) == ("requests", "requests")


def test_no_name_is_refused_before_the_build(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text("")
    with pytest.raises(ConfigError, match="give --name"):
        app_name(BuildSpec(requirement_files=(lock,)))


def test_a_requirement_that_looks_like_an_option_is_refused() -> None:
    # uv once took --target=/elsewhere as an option and reported success
    with pytest.raises(ConfigError, match="starts with '-'"):
        plan_install(BuildSpec(requirements=("six", "--target=/elsewhere")))


def test_requirements_and_project_come_after_the_option_separator(tmp_path: Path) -> None:
    files = [tmp_path / "reqs.txt"]
    args = _resolve_args(BuildSpec(requirements=("six",), project=tmp_path), files)
    assert args == ["-r", str(files[0]), "--", "six", str(tmp_path)]


# --- a pylock.toml is checked against the pyproject.toml it was made from --------------------

STALE_PROJECT = """\
[project]
name = "app"
version = "1"
requires-python = ">=3.9"
dependencies = ["six>=1.15", "idna; sys_platform == 'nowhere'"]

[project.optional-dependencies]
net = ["certifi"]

[dependency-groups]
ops = ["packaging", {include-group = "dev"}]
dev = ["iniconfig"]
"""


def _pylock(tmp_path: Path, *packages: tuple[str, str], python: str = ">=3.9") -> Path:
    (tmp_path / "pyproject.toml").write_text(STALE_PROJECT)
    lines = ['lock-version = "1.0"', f'requires-python = "{python}"', 'created-by = "uv"']
    for name, version in packages:
        lines += ["[[packages]]", f'name = "{name}"', f'version = "{version}"']
    lock = tmp_path / "pylock.toml"
    lock.write_text("\n".join(lines) + "\n")
    return lock


def test_a_pylock_holding_what_the_project_declares_is_used(tmp_path: Path) -> None:
    lock = _pylock(tmp_path, ("Six", "1.16.0"), ("certifi", "2024.1.1"), ("packaging", "24"))
    # The marker-limited idna is the installer's to judge: it applies on no real target.
    spec = BuildSpec(project=tmp_path, extras=("net",), groups=("ops",))
    assert plan_install(spec).pylock == lock


@pytest.mark.parametrize(
    ("packages", "python", "changes", "message"),
    [
        ((), ">=3.9", {}, r"requires six>=1\.15, the lock does not hold six"),
        ((("six", "1.14.0"),), ">=3.9", {}, r"requires six>=1\.15, the lock holds six 1\.14\.0"),
        (
            (("six", "1.16.0"),),
            ">=3.8",
            {},
            r"requires-python is >=3\.8, pyproject.toml says >=3\.9",
        ),
        ((("six", "1.16.0"),), ">=3.9", {"extras": ("net",)}, "requires certifi"),
        ((("six", "1.16.0"),), ">=3.9", {"all_extras": True}, "requires certifi"),
        ((("six", "1.16.0"),), ">=3.9", {"groups": ("ops",)}, "requires packaging"),
    ],
)
def test_a_stale_pylock_is_refused_naming_what_is_out_of_date(
    tmp_path: Path,
    packages: tuple[tuple[str, str], ...],
    python: str,
    changes: dict[str, object],
    message: str,
) -> None:
    lock = _pylock(tmp_path, *packages, python=python)
    spec = BuildSpec(project=tmp_path, **changes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message) as caught:
        plan_install(spec)
    text = str(caught.value)
    assert text.startswith(f"{lock} is out of date: ")
    assert text.endswith("re-export it (uv export --format pylock.toml) or pass --no-lock")
    assert "\n" not in text
    # The same lock given with -r beside the project is held to the same project.
    with pytest.raises(ConfigError, match=message):
        plan_install(BuildSpec(project=tmp_path, requirement_files=(lock,), **changes))  # type: ignore[arg-type]
    assert not plan_install(BuildSpec(project=tmp_path, use_lock=False, **changes)).locked  # type: ignore[arg-type]


# --- a uv workspace member installs from the workspace's lock --------------------------------


def _workspace(tmp_path: Path, *, lock: bool = True, exclude: str = "") -> Path:
    root = tmp_path / "ws"
    for member in ("a", "b"):
        (root / "packages" / member).mkdir(parents=True)
        (root / "packages" / member / "pyproject.toml").write_text(
            f'[project]\nname = "{member}"\nversion = "1"\n'
        )
    (root / "pyproject.toml").write_text(
        '[project]\nname = "root"\nversion = "1"\n\n'
        f'[tool.uv.workspace]\nmembers = ["packages/*"]\nexclude = [{exclude}]\n'
    )
    if lock:
        (root / "uv.lock").write_text("version = 1\n")
    return root


def test_a_workspace_member_uses_the_workspaces_lock(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    plan = plan_install(BuildSpec(project=root / "packages" / "a"))
    assert plan.uv_lock == (root / "uv.lock").resolve()
    assert plan.source.kind == "uv.lock"
    assert plan.source.files == (InputFile("uv.lock", _sha(root / "uv.lock")),)


def test_workspace_discovery_follows_uv(tmp_path: Path) -> None:
    root = _workspace(tmp_path, exclude='"packages/b"')
    assert workspace_lock(root / "packages" / "b") is None  # excluded
    outside = tmp_path / "ws" / "tools"
    outside.mkdir()
    assert workspace_lock(outside) is None  # under the root, but not a member
    assert workspace_lock(root) is None  # the root's lock is its own uv.lock
    assert workspace_lock(_workspace(tmp_path / "unlocked", lock=False) / "packages" / "a") is None
    # A member's own lock (made by hand) wins over the workspace's.
    own = root / "packages" / "a" / "uv.lock"
    own.write_text("version = 1\n")
    assert plan_install(BuildSpec(project=root / "packages" / "a")).uv_lock == own


# --- a locked project given as a requirement, and resolving afresh beside a lock -------------


@pytest.mark.parametrize("lock", ["uv.lock", "pylock.toml"])
def test_a_locked_project_given_as_a_requirement_is_refused(tmp_path: Path, lock: str) -> None:
    project = _project(tmp_path / "app", lock)
    text = f"{project}/"
    with pytest.raises(ConfigError) as caught:
        plan_install(BuildSpec(requirements=(text,)))
    assert str(caught.value) == (
        f"{text}: this project has {lock}, which a requirement ignores; "
        f"give it as --project {text} to install its lock, or pass --no-lock"
    )


def test_a_workspace_member_given_as_a_requirement_is_refused(tmp_path: Path) -> None:
    member = f"{_workspace(tmp_path) / 'packages' / 'a'}"
    with pytest.raises(ConfigError, match=r"this project has uv\.lock"):
        plan_install(BuildSpec(requirements=("six", member)))


def _warnings(spec: BuildSpec) -> str:
    """What ``-q`` still shows while the plan is made."""
    out = io.StringIO()
    with ui.reporting(ui.make_reporter(ui.Verbosity.QUIET, out)):
        plan = plan_install(spec)
    assert not plan.locked
    return out.getvalue()


def test_resolving_afresh_beside_a_lock_is_said_even_with_quiet(tmp_path: Path) -> None:
    project = _project(tmp_path / "app", "uv.lock")
    assert _warnings(BuildSpec(project=project, use_lock=False)) == (
        f"venvpack: warning: {project / 'uv.lock'} is not used: "
        "the requirements are resolved afresh (--no-lock)\n"
    )
    text = f"{project}/"
    assert _warnings(BuildSpec(requirements=(text,), use_lock=False)) == (
        f"venvpack: warning: {project / 'uv.lock'} is not used: "
        f"{text} is resolved afresh (--no-lock)\n"
    )
    member = _workspace(tmp_path) / "packages" / "a"
    assert "ws/uv.lock is not used" in _warnings(BuildSpec(project=member, use_lock=False))
    # Without a lock anywhere there is nothing to say.
    assert _warnings(BuildSpec(project=_project(tmp_path / "plain"), use_lock=False)) == ""
