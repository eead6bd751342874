"""A format is one module: a zip format from the tests (``tests/toyformat.py``), registered at
run time, gets its ``venvpack toyzip`` command with the shared build options, its
``[tool.venvpack.toyzip]`` table, its result (and its extra output) in ``--json``, and
``inspect`` and ``verify`` read it back -- with no file under ``src/`` naming it."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
from click.testing import CliRunner

import sandbox
import toyformat
from builds import HELLO
from venvpack import result
from venvpack.cli import cli, main
from venvpack.emit import format_names, register, unregister
from venvpack.errors import ConfigError
from venvpack.inspect import inspect_artifact
from venvpack.inspect import schema_text as inspect_schema
from venvpack.scaffold import venvpack_section
from venvpack.verify import verify_artifact

NAME = toyformat.FORMAT.name


@pytest.fixture(scope="module")
def toy() -> Iterator[toyformat.ZipFormat]:
    register(toyformat.FORMAT)
    try:
        yield toyformat.FORMAT
    finally:
        unregister(NAME)


def test_registering_adds_the_command_with_the_shared_options() -> None:
    ctx = click.Context(cli)
    assert cli.get_command(ctx, NAME) is None
    register(toyformat.FORMAT)
    try:
        with pytest.raises(ConfigError, match="already registered"):
            register(toyformat.FORMAT)
        assert NAME in format_names()
        assert NAME in cli.list_commands(ctx)
        command = cli.get_command(ctx, NAME)
        assert command is not None
        flags = {flag for param in command.params for flag in getattr(param, "opts", ())}
        shared = {"--python", "--project", "--name", "--prefix", "-o", "--from", "--force"}
        assert shared | {"--json", "-q", "--comment", "--stored"} <= flags
        help_text = CliRunner().invoke(cli, [NAME, "--help"]).output
        assert "(.zip), else a directory for it" in " ".join(help_text.split())
        top = CliRunner().invoke(cli, ["--help"]).output
        assert f"venvpack {NAME} --project . -o dist/" in top
        assert "as tar, deb, rpm, oci or toyzip" in " ".join(top.split())
        verify_help = " ".join(CliRunner().invoke(cli, ["verify", "--help"]).output.split())
        assert "an OCI image or a zip" in verify_help
        # init writes its table, made from its option declarations
        section = venvpack_section(HELLO)
        assert f'[tool.venvpack.{NAME}]\n# The zip\'s archive comment.\n# comment = ""\n' in section
        assert "# stored = false\n" in section
        # the schemas' enums come from the registry when they are loaded
        assert NAME in json.loads(result.schema_text())["properties"]["format"]["enum"]
        assert NAME in json.loads(inspect_schema())["properties"]["kind"]["enum"]
    finally:
        unregister(NAME)
    assert cli.get_command(ctx, NAME) is None
    assert NAME not in json.loads(result.schema_text())["properties"]["format"]["enum"]


@pytest.fixture(scope="module")
def built(
    toy: toyformat.ZipFormat, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    """``venvpack toyzip --json`` on a copy of the example project whose pyproject.toml has
    a ``[tool.venvpack.toyzip]`` table: a real build, through the shared build options."""
    base = tmp_path_factory.mktemp("toy")
    project = base / "hello"
    shutil.copytree(HELLO, project, ignore=shutil.ignore_patterns(".venv", "dist", "build"))
    with (project / "pyproject.toml").open("a") as fh:
        fh.write(f'\n[tool.venvpack.{NAME}]\ncomment = "from the table"\n')
    out = base / "dist"
    stdout = _run(["--project", str(project), "-o", str(out), "--json", "-q"])
    return json.loads(stdout), project


def _run(args: list[str]) -> str:
    """``venvpack toyzip ARGS`` in this process (the format is registered here), its stdout."""
    runner = CliRunner()
    outcome = runner.invoke(cli, [NAME, *args], catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output
    return outcome.stdout


@pytest.mark.integration
def test_its_table_and_result(
    built: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, project = built
    jsonschema.validate(data, json.loads(result.schema_text()))
    assert data["format"] == NAME
    artifact = Path(str(data["artifact"]))
    assert artifact.name == "hello-1.0.0.zip"
    with zipfile.ZipFile(artifact) as archive:
        assert archive.comment == b"from the table"
        assert "hello/bin/python" in archive.namelist()
    extra, sbom = data["extras"]
    assert sbom["path"] == f"{artifact}.cdx.json"  # every artifact's SBOM, beside it
    assert extra["path"] == f"{artifact}.sha256"
    assert Path(extra["path"]).read_text() == f"{data['sha256']}  {artifact.name}\n"
    # A flag wins over the table; an existing artifact and its extra need --force.
    env_dir = tmp_path / "env"
    main(["build", "--project", str(project), "-o", str(env_dir), "-q"])
    with pytest.raises(SystemExit) as exited:
        main([NAME, "--from", str(env_dir), "-o", str(artifact), "--comment", "flag", "-q"])
    assert exited.value.code == 2
    kept = artifact.read_bytes()
    artifact.unlink()  # the extra output alone is still refused, and nothing is written
    Path(sbom["path"]).unlink()  # (the SBOM beside it alone would be refused before a build)
    with pytest.raises(SystemExit) as exited:
        main([NAME, "--from", str(env_dir), "-o", str(artifact), "-q"])
    assert exited.value.code == 2
    assert f"{artifact}.sha256 already exists" in capsys.readouterr().err
    assert not artifact.exists()
    artifact.write_bytes(kept)
    _run(["--from", str(env_dir), "-o", str(artifact), "--comment", "flag", "--force", "-q"])
    with zipfile.ZipFile(artifact) as archive:
        assert archive.comment == b"flag"


@pytest.mark.integration
def test_inspect_reads_it_back(built: tuple[dict[str, Any], Path]) -> None:
    artifact = Path(str(built[0]["artifact"]))
    report = inspect_artifact(artifact)
    assert (report.kind, report.root, report.installed_at) == (NAME, "hello", None)
    assert report.problems == ()
    assert report.venvpack is not None
    assert report.venvpack["name"] == "hello"
    outcome = CliRunner().invoke(cli, ["inspect", str(artifact), "--json"])
    assert outcome.exit_code == 0, outcome.output
    jsonschema.validate(json.loads(outcome.stdout), json.loads(inspect_schema()))


@pytest.mark.integration
@pytest.mark.roots
def test_verify_unpacks_and_runs_it_in_a_clean_root(
    built: tuple[dict[str, Any], Path],
) -> None:
    missing = sandbox.missing_tools("bwrap", "setpriv", "bsdtar")
    if missing:
        sandbox.unavailable(f"verify needs {', '.join(missing)}")
    artifact = Path(str(built[0]["artifact"]))
    report = verify_artifact(artifact, ["glibc"], cache=sandbox.default_cache())
    assert report.ok, [c for c in report.checks if c.status != "ok"]
    assert report.kind == NAME
    steps = {(c.step, c.target) for c in report.checks}
    assert {("install", artifact.name), ("import", "hello"), ("command", "hello --help")} <= steps
    assert ("moved command", "hello --help") in steps
