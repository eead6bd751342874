"""The output contract (docs/output.md): stdout carries only the result -- the artifact's
path, or one JSON object with --json -- in every mode; everything else goes to stderr."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from fakes import fake_env_tree
from venvpack import __version__
from venvpack.result import schema_text

VENVPACK = [sys.executable, "-m", "venvpack"]


def venvpack(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """venvpack in a child process: its real stdout and stderr, kept apart (no terminal)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        [*VENVPACK, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def env(tmp_path: Path) -> Path:
    return fake_env_tree(tmp_path / "env")


def test_command_substitution_captures_exactly_the_path(env: Path, tmp_path: Path) -> None:
    script = 'out=$("$@" tar --from env -o dist -q) && printf "[%s]" "$out"'
    result = subprocess.run(
        ["bash", "-c", script, "bash", *VENVPACK],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    artifact = tmp_path / "dist" / "hello-1.0.0-linux-x86_64.tar.zst"
    assert result.stdout == f"[{artifact}]"
    assert result.stderr == ""
    assert artifact.is_file()


@pytest.mark.parametrize(
    ("fmt", "flags", "name"),
    [
        ("tar", [], "hello-1.0.0-linux-x86_64.tar.zst"),
        ("tar", ["-v"], "hello-1.0.0-linux-x86_64.tar.zst"),
        ("tar", ["--debug"], "hello-1.0.0-linux-x86_64.tar.zst"),
        ("tar", ["-o", "dist/app.tar.gz"], "app.tar.gz"),
        ("deb", ["--maintainer", "T <t@example.org>"], "hello_1.0.0-1_amd64.deb"),
        ("deb", ["--tree-only", "--maintainer", "T <t@example.org>"], "hello_1.0.0-1_amd64"),
    ],
)
def test_stdout_is_the_path_and_stderr_the_story(
    env: Path, tmp_path: Path, fmt: str, flags: list[str], name: str
) -> None:
    result = venvpack(fmt, "--from", env, "-o", "dist", *flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    artifact = tmp_path / "dist" / name
    assert result.stdout == f"{artifact}\n"
    assert artifact.exists()
    lines = result.stderr.splitlines()
    assert lines[0].startswith("venvpack: plan: environment ")
    # No terminal: one plain line per step, with its time, then the summary.
    assert [line.split()[1] for line in lines if line.split()[1] in ("audit", "pack")] == [
        "audit",
        "pack",
    ]
    assert lines[-1].startswith(f"venvpack: wrote {artifact} (")
    assert lines[-1].endswith("s")
    assert "\r" not in result.stderr
    assert "\x1b[" not in result.stderr
    assert "Traceback" not in result.stderr


def test_verbose_step_times_are_said_once(env: Path, tmp_path: Path) -> None:
    verbose = venvpack("tar", "--from", env, "-o", "b", "-v", cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    # The debug record benchmarks read (venvpack_stage) is not shown again.
    assert "stage " not in verbose.stderr
    assert len([line for line in verbose.stderr.splitlines() if " pack " in line]) == 1


@pytest.mark.parametrize("fmt", ["tar", "deb"])
def test_json_is_one_object_following_the_schema(env: Path, tmp_path: Path, fmt: str) -> None:
    result = (
        venvpack(
            fmt,
            "--from",
            env,
            "-o",
            "dist",
            "--json",
            "--maintainer",
            "T <t@example.org>",
            cwd=tmp_path,
        )
        if fmt == "deb"
        else venvpack(fmt, "--from", env, "-o", "dist", "--json", cwd=tmp_path)
    )
    assert result.returncode == 0, result.stderr
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(result.stdout)  # the whole of stdout is one JSON document
    jsonschema.validate(data, schema)
    artifact = Path(data["artifact"])
    assert artifact.parent == tmp_path / "dist"
    assert data["format"] == fmt
    assert data["kind"] == "file"
    assert data["size"] == artifact.stat().st_size
    assert data["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert (data["name"], data["version"]) == ("hello", "1.0.0")
    assert data["python"] == {"version": "3.12.1", "source": "pyenv", "machine": "x86_64"}
    assert list(data["timings"]["steps"]) == ["audit", "pack"]
    assert data["timings"]["total"] >= data["timings"]["steps"]["pack"]
    assert data["venvpack_version"] == "0.1.0"
    assert f"venvpack: wrote {artifact}" in result.stderr


def test_json_directory_artifact_has_no_digest(env: Path, tmp_path: Path) -> None:
    result = venvpack(
        "deb",
        "--from",
        env,
        "--tree-only",
        "--maintainer",
        "T <t@example.org>",
        "--json",
        "-q",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    jsonschema.validate(data, json.loads(schema_text()))
    assert (data["kind"], data["sha256"]) == ("directory", None)
    assert data["size"] > 0
    assert result.stderr == ""


@pytest.mark.parametrize("flags", [[], ["-q"], ["-v"], ["--json"]])
def test_errors_print_nothing_on_stdout(env: Path, tmp_path: Path, flags: list[str]) -> None:
    # An output inside the --from environment is refused after the audit step ran.
    result = venvpack("tar", "--from", env, "-o", env / "x.tar", *flags, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("venvpack: error:")]
    assert len(errors) == 1
    assert result.stderr.splitlines()[-1] == errors[0]
    assert "Traceback" not in result.stderr
    if "-q" in flags:
        assert result.stderr.splitlines() == errors
    assert not (env / "x.tar").exists()


def test_debug_adds_the_traceback(env: Path, tmp_path: Path) -> None:
    result = venvpack("tar", "--from", env, "-o", env / "x.tar", "--debug", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback (most recent call last):" in result.stderr
    assert "venvpack.errors.ConfigError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("venvpack: error: output ")


def test_quiet_and_verbose_conflict(env: Path, tmp_path: Path) -> None:
    result = venvpack("tar", "--from", env, "-q", "-v", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "-q cannot be combined with -v" in result.stderr


def test_version(tmp_path: Path) -> None:
    result = venvpack("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"venvpack, version {__version__}\n"
    assert result.stderr == ""
