"""``inspect`` of an image: besides the environment (at its prefix inside the image), what
the image's config and manifest say -- platform, user, entrypoint, base and layers -- in the
text report and in the JSON, which follows the shipped schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from fakes import fake_env_tree
from venvpack.cli import main
from venvpack.inspect import inspect_artifact, render_text, schema_text


def test_inspect_reports_an_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    env = fake_env_tree(tmp_path / "env")
    image = tmp_path / "hello.tar"
    main(
        ["oci", "--from", str(env), "--base", "scratch", "--cmd", "--serve", "-q", "-o", str(image)]
    )
    capsys.readouterr()
    report = inspect_artifact(image)
    assert (report.kind, report.root, report.installed_at) == ("oci", "opt/hello", "/opt/hello")
    assert report.image is not None
    assert report.image["platform"] == "linux/amd64"
    assert report.image["user"] == "65532:65532"
    assert report.image["cmd"] == ["--serve"]
    assert report.image["base"] is None
    assert [layer["holds"] for layer in report.image["layers"]] == [
        "venvpack: interpreter (CPython 3.12.1)",
        "venvpack: application (hello 1.0.0)",
    ]
    text = render_text(report)
    assert "  image: linux/amd64, user 65532:65532, workdir /\n" in text
    assert "  base: none (scratch)\n" in text
    assert "  layers (2, bottom first):\n" in text
    data = json.loads(report.to_json())
    jsonschema.validate(data, json.loads(schema_text()))
    assert data["image"]["layers"][0]["digest"].startswith("sha256:")
    # other kinds have none
    assert inspect_artifact(env).image is None
