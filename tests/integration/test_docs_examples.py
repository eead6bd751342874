"""Every example in the README and docs/ runs as shown (the convention: ``docs_examples``).

The examples run with this checkout's ``venvpack`` first on PATH, in one copy of
``examples/hello`` (without its Makefile, like a project that has none), document after
document. Four of them build an environment (the README's tar, deb and rpm quick starts and
``docs/commands/build.md``); the other pages pack or read what those made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox
from docs_examples import Example, documents, examples, output_matches

pytestmark = [pytest.mark.integration, pytest.mark.packaging]

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = sandbox.missing_tools("dpkg-deb", "rpm", "rpmbuild", "tar", "make")
    if missing:
        sandbox.unavailable(f"the documented examples need {', '.join(missing)}")
    root = tmp_path_factory.mktemp("docs") / "hello"
    shutil.copytree(HELLO, root)
    (root / "Makefile").unlink()
    return root


# A reader's shell has none of these: a maintainer from the environment, or the variables
# a parent make (``make test``) passes down, which make a child make print "Entering
# directory" around what the page shows.
_NOT_IN_A_READERS_SHELL = (
    "DEBEMAIL",
    "DEBFULLNAME",
    "EMAIL",
    "NAME",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
    "MAKEOVERRIDES",
)


def shell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_IN_A_READERS_SHELL}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_example(example: Example, cwd: Path) -> None:
    for command in example.commands:
        where = f"{example.document.name}:{command.line}"
        result = subprocess.run(
            ["bash", "-c", f"set -o pipefail\n{command.text}"],
            cwd=cwd,
            env=shell_env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, (
            f"{where}: `{command.text}` exited {result.returncode}\n{result.stderr[-3000:]}"
        )
        if command.expected:
            assert output_matches(command.expected, result.stdout), (
                f"{where}: `{command.text}` printed\n{result.stdout}\n"
                f"which is not what the page shows:\n" + "\n".join(command.expected)
            )


@pytest.mark.parametrize(
    "document",
    [d for d in documents() if any(e.not_run is None for e in examples(d))],
    ids=lambda d: str(d.relative_to(d.parents[1] if d.parent.name == "commands" else d.parent)),
)
def test_examples_of(document: Path, workdir: Path) -> None:
    for example in examples(document):
        if example.not_run is None:
            run_example(example, workdir)
