"""Outside input with real builds through the CLI: relative inputs,
hostile output directory names, reproducible --from archives, --from re-auditing the tree."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
VENVPACK = Path(sys.executable).parent / "venvpack"
EPOCH = "1700000000"


def venvpack(
    args: Sequence[str | Path], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    result = subprocess.run(
        [str(VENVPACK), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example app and its dependency as wheels, for offline builds."""
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-cache-dir", "-w", str(out), str(HELLO)],
        check=True,
    )
    # The project's build backend, so that ./proj builds offline too.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary",
            ":all:",
            "-d",
            str(out),
            "hatchling",
        ],
        check=True,
    )
    return out


def _hello_wheel(wheels: Path) -> str:
    return next(p.name for p in wheels.glob("hello-*.whl"))


def _runs(env: Path) -> None:
    result = subprocess.run([str(env / "bin" / "hello")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_same_tree_in_two_directories_packs_to_the_same_bytes(wheels: Path, tmp_path: Path) -> None:
    """Items 12, 14 and 15: a relative ./x.whl, and output directories whose names differ,
    one of them hostile; the two --from tarballs are byte-identical and activating the
    hostile one runs nothing."""
    work = tmp_path / "work"
    shutil.copytree(wheels, work)
    hostile = "$(touch PWNED)`touch PWNED2`"
    wheel = f"./{_hello_wheel(wheels)}"
    for out in (hostile, "plain"):
        venvpack(["build", wheel, "--no-index", "--find-links", ".", "-o", out], cwd=work)
    archives = []
    for out in (hostile, "plain"):
        _runs(work / out)
        name = f"{'a' if out == 'plain' else 'b'}.tar.gz"
        venvpack(["tar", "--from", out, "--compression", "gzip", "-o", name], cwd=work)
        archives.append((work / name).read_bytes())
    assert archives[0] == archives[1]

    script = 'source "$1/bin/activate"; printf "%s\\n" "${PS1@P}"'
    shown = subprocess.run(
        ["bash", "-c", script, "bash", str(work / hostile)],
        cwd=work,
        env=dict(os.environ, PS1="$ "),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.startswith("(hello) ")
    assert not list(work.glob("PWNED*"))


def test_relative_project_find_links_and_requirements_files(wheels: Path, tmp_path: Path) -> None:
    """Item 14: ./projdir, --find-links DIR, pyproject find-links, and -r FILE in another
    directory whose ./x.whl line is relative to the file, with uv and with pip."""
    work = tmp_path / "work"
    shutil.copytree(HELLO, work / "proj", ignore=shutil.ignore_patterns(".venv", "dist"))
    shutil.copytree(wheels, work / "wheels")
    venvpack(["build", "./proj", "--no-index", "--find-links", "wheels", "-o", "a"], cwd=work)
    _runs(work / "a")

    pyproject = work / "proj" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.venvpack]\nfind-links = ["../wheels"]\n')
    venvpack(["build", "--project", "proj", "--no-lock", "--no-index", "-o", "b"], cwd=work)
    _runs(work / "b")

    deploy = work / "deploy"
    (deploy / "w").mkdir(parents=True)
    for wheel in wheels.glob("*.whl"):
        shutil.copy(wheel, deploy / "w")
    (deploy / "reqs.txt").write_text(f"./w/{_hello_wheel(wheels)}\n--find-links ./w\n")
    for installer in ("uv", "pip"):
        out = f"r-{installer}"
        args = ["build", "-r", "deploy/reqs.txt", "--no-index", "--installer", installer]
        venvpack([*args, "-o", out], cwd=work)
        _runs(work / out)


def test_option_like_requirement_and_url_token(tmp_path: Path) -> None:
    """Item 12: --target=/elsewhere after -- is a requirement, and refused before any work."""
    result = venvpack(
        ["build", "-o", "x", "--", "six", "--target=/elsewhere"], cwd=tmp_path, check=False
    )
    assert result.returncode == 2
    assert "starts with '-'" in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.fixture
def wheel_server(wheels: Path) -> Iterator[str]:
    """An HTTP server on localhost that serves ``wheels`` (and ignores query strings)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(wheels))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_url_token_and_changed_trees(wheels: Path, wheel_server: str, tmp_path: Path) -> None:
    """Item 10: a token in a direct URL's query string ships nowhere (direct_url.json, the
    manifest, the log); then --from skips the audit of the tree as built, and audits it
    again once changed: a symlink out of the tree, a deleted grafted library."""
    url = f"{wheel_server}/{_hello_wheel(wheels)}?token=s3cr3t"
    args: list[str | Path] = ["build", f"hello @ {url}", "--no-index", "--find-links", wheels]
    args += ["-o", "env", "-v"]
    result = venvpack(args, cwd=tmp_path)
    assert "s3cr3t" not in result.stderr
    direct_urls = list(
        (tmp_path / "env").glob("lib/python3.*/site-packages/hello-*/direct_url.json")
    )
    assert len(direct_urls) == 1
    assert json.loads(direct_urls[0].read_text())["url"] == url.partition("?")[0]
    assert not any(
        b"s3cr3t" in p.read_bytes() for p in (tmp_path / "env").rglob("*") if p.is_file()
    )
    env = tmp_path / "env"
    # As built, the tree is sealed: packing it skips the audit the build already did.
    result = venvpack(["tar", "--from", env, "-o", "sealed.tar.gz", "-v"], cwd=tmp_path)
    assert "is as venvpack built and audited it" in result.stderr
    grafted = sorted((env / "python" / "lib").glob("lib*.so.*"))
    grafted = [g for g in grafted if not g.name.startswith("libpython")]
    leak = env / "bin" / "leak"
    leak.symlink_to("/etc/passwd")
    result = venvpack(["tar", "--from", env, "-o", "x.tar.gz"], cwd=tmp_path, check=False)
    assert result.returncode == 6, result.stderr
    assert "bin/leak: symlink to /etc/passwd, outside the tree" in result.stderr
    leak.unlink()
    (env / "lib" / "up").symlink_to("../../outside")
    result = venvpack(["tar", "--from", env, "-o", "x.tar.gz"], cwd=tmp_path, check=False)
    assert result.returncode == 6, result.stderr
    assert "lib/up: symlink to ../../outside, outside the tree" in result.stderr
    (env / "lib" / "up").unlink()
    assert grafted, "the example's runtime grafts libffi and more"
    grafted[0].unlink()
    result = venvpack(["tar", "--from", env, "-o", "x.tar.gz"], cwd=tmp_path, check=False)
    assert result.returncode == 6, result.stderr
    assert "audit" in result.stderr
    assert not (tmp_path / "x.tar.gz").exists()
