"""Real environments that several test modules share, built once per session.

Building is the slow part of every packaging test on a 2-core machine; the deb and rpm
tests pack the same two versions of the example app.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from venvpack.build import build_environment
from venvpack.config import BuildSpec
from venvpack.manifest import BuiltEnv

__all__ = ["HELLO", "Envs", "build_hello_versions"]

HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello"


@dataclass(frozen=True)
class Envs:
    """The example app at 1.0.0 and at 1.0.1, for install-then-upgrade tests."""

    v1: BuiltEnv
    v2: BuiltEnv


def build_hello_versions(base: Path) -> Envs:
    newer = base / "hello-1.0.1"
    shutil.copytree(HELLO, newer)
    pyproject = newer / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "1.0.0"', 'version = "1.0.1"'))
    v1 = build_environment(BuildSpec(project=HELLO), base / "env-1.0.0")
    v2 = build_environment(BuildSpec(project=newer), base / "env-1.0.1")
    assert (v1.manifest.version, v2.manifest.version) == ("1.0.0", "1.0.1")
    return Envs(v1, v2)
