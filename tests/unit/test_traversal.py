"""A crafted name or version (pip's fallback metadata, a tampered manifest) cannot put an
artifact outside ``-o``: the manifest refuses it when loaded, and every emitter's conventional
file name is one safe path component."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fakes import fake_manifest
from venvpack.emit import Emitter
from venvpack.emit.deb import DebEmitter, DebOptions
from venvpack.emit.rpm import RpmEmitter
from venvpack.emit.tar import TarEmitter
from venvpack.errors import ConfigError, VenvpackError
from venvpack.manifest import MANIFEST_PATH, BuiltEnv

HOSTILE = [
    {"version": "../../x"},
    {"version": "1.0/../../../x"},
    {"name": "../../x"},
    {"name": "a/b"},
    {"python": dataclasses.replace(fake_manifest().python, machine="../x")},
]

EMITTERS: list[Emitter] = [
    TarEmitter(),
    DebEmitter(DebOptions(maintainer="Jane Doe <jane@example.org>")),
    RpmEmitter(),
    RpmEmitter(spec_only=True),
]


@pytest.mark.parametrize("changes", HOSTILE, ids=lambda c: repr(c)[:30])
@pytest.mark.parametrize("emitter", EMITTERS, ids=lambda e: e.format)
def test_every_emitter_refuses_a_file_name_that_leaves_the_output_directory(
    tmp_path: Path, emitter: Emitter, changes: dict[str, object]
) -> None:
    env = BuiltEnv(tmp_path, fake_manifest(**changes))
    with pytest.raises(VenvpackError):  # deb: no architecture is named '../x' either
        emitter.filename(env)


@pytest.mark.parametrize("changes", HOSTILE, ids=lambda c: repr(c)[:30])
def test_a_tampered_manifest_is_refused_when_loaded(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    path = tmp_path / MANIFEST_PATH
    path.parent.mkdir()
    path.write_text(fake_manifest(**changes).to_json())
    with pytest.raises(ConfigError, match="manifest"):
        BuiltEnv.load(tmp_path)


def test_a_sound_manifest_loads(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_PATH
    path.parent.mkdir()
    path.write_text(fake_manifest().to_json())
    assert BuiltEnv.load(tmp_path).manifest.name == "hello"
    data = json.loads(path.read_text())
    data["prefix"] = "opt/hello"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="prefix"):
        BuiltEnv.load(tmp_path)
