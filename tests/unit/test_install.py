"""Choosing what to install from (a lock or fresh resolution), before any build work."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from venvpack.build import app_name, app_version
from venvpack.config import BuildSpec, Installer
from venvpack.errors import ConfigError
from venvpack.install import (
    Installed,
    _resolve_args,
    plan_install,
    requested_names,
    uv_environment,
)
from venvpack.manifest import Distribution, InputFile


def _project(tmp_path: Path, *locks: str) -> Path:
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
