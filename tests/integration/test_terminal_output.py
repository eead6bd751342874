"""What a person at a terminal and a CI log see of a real build, and what a script captures.

One real build goes through a pseudo-terminal (stderr a terminal, stdout a pipe, as in
``out=$(venvpack deb ...)`` typed at a prompt): a plan line, one progress line across every
step -- the deb's xz compression with its percentage -- and the summary, never the
installer's own output. The pipe tests pack the session's environment with ``--from``.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from builds import HELLO, Envs
from venvpack.result import schema_text

pytestmark = [pytest.mark.integration]

VENVPACK = [sys.executable, "-m", "venvpack"]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def on_terminal(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run venvpack with stdin and stderr on a pseudo-terminal and stdout on a pipe: the
    exit code, everything the terminal received, and stdout."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR")}
    env["TERM"] = "xterm"
    with subprocess.Popen(
        [*VENVPACK, *argv], stdin=slave, stderr=slave, stdout=subprocess.PIPE, env=env, cwd=cwd
    ) as proc:
        os.close(slave)
        screen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        os.close(master)
        assert proc.stdout is not None
        stdout = proc.stdout.read().decode()
        code = proc.wait(timeout=60)
    return code, screen.decode(errors="replace"), stdout


def test_a_terminal_sees_the_plan_one_progress_line_and_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    # xz at level 0: the slowest of the deb's compressions, at its cheapest level (CI time),
    # long enough for its progress to be drawn more than once.
    argv = ["deb", "--project", str(HELLO), "-o", str(out), "--compression", "xz", "--level", "0"]
    code, screen, stdout = on_terminal(argv, tmp_path)
    artifact = out / "hello_1.0.0-1_amd64.deb"
    assert code == 0, screen
    assert stdout == f"{artifact}\n"
    assert artifact.is_file()
    assert "\x1b[1m" in screen  # colour on a terminal
    text = ANSI.sub("", screen)
    lines = text.split("\r\n")
    # The plan, before any work; the progress redraws one line; the summary ends it.
    assert lines[0].startswith("venvpack: plan: python CPython 3.")
    assert ", link symlink, " in lines[0]
    assert lines[0].endswith(f"output {out}")
    redraws = lines[1].split("\r")
    labels = [
        "copy runtime",
        "install packages",
        "graft libraries",
        "relocate + byte-compile",
        "audit",
        f"pack {artifact.name}",
    ]
    for index, label in enumerate(labels):
        assert any(f"[{index + 1}/6] [" in r and f"] {label} " in r for r in redraws), label
    percents = {int(p) for p in re.findall(rf"pack {re.escape(artifact.name)} +(\d+)% ", text)}
    assert len(percents) >= 2, percents  # the compression's progress moved
    assert re.fullmatch(
        rf"venvpack: wrote {re.escape(str(artifact))} \([\d.]+ MiB, glibc >= 2\.\d+\) "
        r"in [\d.]+s",
        redraws[-1],
    ), redraws[-1]
    assert lines[2:] == [""]
    # uv's own output is kept for errors and -v, not drawn over the progress.
    for word in ("Resolved", "Prepared", "Installed", "Audited", "Built hello"):
        assert word not in text


def test_a_pipe_sees_one_line_per_step(hello_envs: Envs, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    result = subprocess.run(
        [*VENVPACK, "tar", "--from", str(hello_envs.v1.root), "-o", "dist"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    artifact = tmp_path / "dist" / "hello-1.0.0-linux-x86_64.tar.zst"
    assert result.stdout == f"{artifact}\n"
    lines = result.stderr.splitlines()
    assert lines[0] == f"venvpack: plan: environment {hello_envs.v1.root}, output dist"
    assert re.fullmatch(r"venvpack: audit [\d.]+s", lines[1])
    assert re.fullmatch(rf"venvpack: pack {re.escape(artifact.name)} [\d.]+s", lines[2])
    assert lines[3].startswith(f"venvpack: wrote {artifact} (")
    assert len(lines) == 4
    assert "\r" not in result.stderr
    assert "\x1b" not in result.stderr


def test_json_describes_a_real_environment(hello_envs: Envs, tmp_path: Path) -> None:
    result = subprocess.run(
        [*VENVPACK, "tar", "--from", str(hello_envs.v2.root), "-o", "x.tar.gz", "--json", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)
    jsonschema.validate(data, json.loads(schema_text()))
    manifest = hello_envs.v2.manifest
    assert data["artifact"] == str(tmp_path / "x.tar.gz")
    assert (data["name"], data["version"]) == ("hello", "1.0.1")
    assert data["python"]["version"] == manifest.python.version
    assert data["glibc_floor"] == manifest.glibc_floor
    assert manifest.source is not None
    assert data["lock"]["kind"] == manifest.source.kind
