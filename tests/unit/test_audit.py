"""The audit's symlink rule, and --from auditing the tree again (issue 9, item 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import fake_manifest
from venvpack.audit import check_symlinks
from venvpack.build import checked_environment
from venvpack.errors import BuildError
from venvpack.manifest import BuiltEnv


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "python/bin").mkdir(parents=True)
    (root / "python/bin/python3.12").write_bytes(b"x")
    (root / "bin/python").symlink_to("../python/bin/python3.12")
    (root / "bin/python3").symlink_to("python")
    (root / "lib").mkdir()
    (root / "lib64").symlink_to("lib")
    return root


def test_the_links_venvpack_makes_pass(tmp_path: Path) -> None:
    check_symlinks(_tree(tmp_path / "env"))


@pytest.mark.parametrize(
    ("link", "target", "message"),
    [
        ("bin/evil", "/etc/passwd", "absolute symlink"),
        ("bin/up", "../../../outside", "out of the tree"),
        ("lib/up", "..", None),  # lib/.. is the root: inside
        ("escape", "..", "out of the tree"),
        ("lib/dir", "/", "absolute symlink"),
    ],
)
def test_absolute_and_escaping_symlinks_are_refused(
    tmp_path: Path, link: str, target: str, message: str | None
) -> None:
    root = _tree(tmp_path / "env")
    (root / link).symlink_to(target)
    if message is None:
        check_symlinks(root)
    else:
        with pytest.raises(BuildError, match=message):
            check_symlinks(root)


def test_from_audits_the_tree_again(tmp_path: Path) -> None:
    root = _tree(tmp_path / "env")
    BuiltEnv(root, fake_manifest(glibc_floor="2.17")).save()
    assert checked_environment(root).manifest.name == "hello"
    (root / "bin/leak").symlink_to("/home/me/.local/share/uv/python/bin/python3")
    with pytest.raises(BuildError, match="absolute symlink"):
        checked_environment(root)


def test_from_refuses_a_manifest_whose_floor_the_tree_does_not_match(tmp_path: Path) -> None:
    root = _tree(tmp_path / "env")
    BuiltEnv(root, fake_manifest(glibc_floor="2.10")).save()
    with pytest.raises(BuildError, match=r"manifest says 2\.10"):
        checked_environment(root)


def test_the_runtime_copy_drops_links_to_the_build_host(tmp_path: Path) -> None:
    # A link to a build-host file that is missing goes; so does one leading out of the tree
    # to a place no source directory maps.
    from venvpack.runtime import _materialise_outside_links

    runtime = tmp_path / "env" / "python"
    stdlib = runtime / "lib" / "python3.11"
    stdlib.mkdir(parents=True)
    (stdlib / "_sysconfigdata__x86_64-linux-gnu.py").write_text("")
    (stdlib / "_sysconfigdata__linux_x86_64-linux-gnu.py").symlink_to(
        "_sysconfigdata__x86_64-linux-gnu.py"
    )
    (stdlib / "sitecustomize.py").symlink_to("/nonexistent/python3.11/sitecustomize.py")
    (stdlib / "up").symlink_to("../../../../elsewhere")
    _materialise_outside_links(runtime, [])
    assert sorted(p.name for p in stdlib.iterdir()) == [
        "_sysconfigdata__linux_x86_64-linux-gnu.py",
        "_sysconfigdata__x86_64-linux-gnu.py",
    ]
    check_symlinks(tmp_path / "env")
