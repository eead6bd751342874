"""Relative paths in requirements files are relative to the file, for uv and pip alike:
the installer reads a rewritten copy with absolute paths."""

from __future__ import annotations

from pathlib import Path

from venvpack.config import BuildSpec
from venvpack.install import requested_names
from venvpack.requirements_file import absolute_copy, requirement_lines


def test_relative_paths_become_absolute_against_the_file(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    (deploy / "lib" / "pkg").mkdir(parents=True)
    (deploy / "inc.txt").write_text("./w/dep-1.0-py3-none-any.whl\n")
    (deploy / "reqs.txt").write_text(
        "# a comment\n"
        "./w/hello-1.0.0-py3-none-any.whl  # the app\n"
        "../proj[extra]\n"
        "lib/pkg\n"
        "six==1.16.0 \\\n    --hash=sha256:00\n"
        "other @ ./w/other-1.0.tar.gz ; python_version >= '3'\n"
        "remote @ https://host/remote-1.0.whl\n"
        "-e ./editable\n"
        "--find-links wheels\n"
        "-f https://host/links/\n"
        "--index-url https://host/simple\n"
        "-r inc.txt\n"
        f"-c {tmp_path}/constraints.txt\n"
    )
    (tmp_path / "constraints.txt").write_text("six<2\n")
    out = absolute_copy(deploy / "reqs.txt", tmp_path / "out")
    assert out.parent == tmp_path / "out"
    lines = out.read_text().splitlines()
    included = tmp_path / "out" / "1-inc.txt"
    assert lines == [
        f"{deploy}/w/hello-1.0.0-py3-none-any.whl",
        f"{tmp_path}/proj[extra]",
        f"{deploy}/lib/pkg",
        "six==1.16.0      --hash=sha256:00",
        f"other @ {deploy}/w/other-1.0.tar.gz ; python_version >= '3'",
        "remote @ https://host/remote-1.0.whl",
        f"-e {deploy}/editable",
        f"--find-links {deploy}/wheels",
        "-f https://host/links/",
        "--index-url https://host/simple",
        f"-r {included}",
        f"-c {tmp_path}/out/2-constraints.txt",
    ]
    assert included.read_text() == f"{deploy}/w/dep-1.0-py3-none-any.whl\n"


def test_include_cycles_end(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\n./x.whl\n")
    (tmp_path / "b.txt").write_text("--requirement=a.txt\n")
    out = absolute_copy(tmp_path / "a.txt", tmp_path / "out")
    assert out.read_text() == f"-r {tmp_path}/out/1-b.txt\n{tmp_path}/x.whl\n"
    assert (tmp_path / "out/1-b.txt").read_text() == f"--requirement {out}\n"


def test_requested_names_read_paths_beside_the_file(tmp_path: Path) -> None:
    proj = tmp_path / "deploy" / "proj"
    proj.mkdir(parents=True)
    (proj / "pyproject.toml").write_text('[project]\nname = "Proj"\nversion = "1"\n')
    reqs = tmp_path / "deploy" / "reqs.txt"
    reqs.write_text("./proj\n./w/hello-1.0.0-py3-none-any.whl\n-e ./x\n")
    assert requirement_lines(reqs) == [
        str(proj),
        f"{tmp_path}/deploy/w/hello-1.0.0-py3-none-any.whl",
    ]
    assert requested_names(BuildSpec(requirement_files=(reqs,))) == ["proj", "hello"]
