"""``inspect`` on fake trees: every text-level fault named, artifacts read back without
installing them, the JSON output valid against the schema shipped in the package."""

from __future__ import annotations

import io
import json
import os
import platform
import re
import shutil
import sys
import tarfile
from pathlib import Path

import jsonschema
import pytest
import zstandard

from fakes import fake_manifest
from venvpack.archive import write_ar
from venvpack.errors import ArtifactError, ConfigError
from venvpack.glibc import FloorSetter, optional_culprits, parse_glibc
from venvpack.inspect import inspect_artifact, render_text, schema_text
from venvpack.manifest import BuiltEnv
from venvpack.unpack import artifact_kind, open_artifact

LAUNCHER = (
    '#!/bin/sh\n\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")/python" "$0" "$@"\n'
    "' '''\nimport sys\n"
)


def make_env(root: Path, *, manifest: bool = True) -> Path:
    """A venvpack-shaped tree without ELF files: enough for every text-level check."""
    (root / "bin").mkdir(parents=True)
    py = root / "python"
    stdlib = py / "lib" / "python3.12"
    (py / "bin").mkdir(parents=True)
    stdlib.mkdir(parents=True)
    (stdlib / "os.py").write_text("# os\n")
    (py / "bin" / "python3.12").write_bytes(b"not really elf\n")
    os.symlink("../python/bin/python3.12", root / "bin" / "python")
    os.symlink("python", root / "bin" / "python3")
    (root / "bin" / "hello").write_text(LAUNCHER)
    (root / "bin" / "hello").chmod(0o755)
    site = root / "lib" / "python3.12" / "site-packages"
    (site / "hello").mkdir(parents=True)
    (site / "hello" / "__init__.py").write_text("def main(): print('hi')\n")
    dist = site / "hello-1.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello\nVersion: 1.0.0\n\n")
    (dist / "RECORD").write_text("hello/__init__.py,,\nhello-1.0.0.dist-info/METADATA,,\n")
    (root / "pyvenv.cfg").write_text(
        "include-system-site-packages = false\nversion = 3.12.1\nvenvpack = 0.1.0\n"
    )
    if manifest:
        BuiltEnv(root, fake_manifest(grafted=())).save()
    return root


@pytest.fixture
def env(tmp_path: Path) -> Path:
    return make_env(tmp_path / "hello")


def codes(path: Path) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in inspect_artifact(path).problems]


def test_clean_tree_is_self_contained(env: Path) -> None:
    report = inspect_artifact(env)
    assert report.problems == ()
    assert report.self_contained
    assert report.interpreter.bundled
    assert report.interpreter.path == "python/bin/python3.12"
    assert report.interpreter.version == "3.12.1"
    assert report.interpreter.link_mode == "symlink"
    assert report.venvpack is not None
    assert report.venvpack["name"] == "hello"
    assert [d.name for d in report.distributions] == ["hello"]
    assert report.sizes.total == sum(
        getattr(report.sizes, k)
        for k in ("interpreter", "grafted", "site_packages", "bytecode", "other")
    )
    assert "self-contained" in render_text(report)


def test_the_machine_is_named(env: Path, tmp_path: Path) -> None:
    """The manifest's machine; without a manifest, the bundled interpreter's ELF header;
    nothing when neither says (the fake interpreter is no ELF file)."""
    report = inspect_artifact(env)
    assert report.machine == fake_manifest().target.machine
    assert f"  machine: {report.machine}\n" in render_text(report)
    assert json.loads(report.to_json())["machine"] == report.machine
    bare = make_env(tmp_path / "bare", manifest=False)
    assert inspect_artifact(bare).machine is None
    shutil.copyfile(os.path.realpath(sys.executable), bare / "python/bin/python3.12")
    assert inspect_artifact(bare).machine == platform.machine()


def test_absolute_shebang(env: Path) -> None:
    (env / "bin" / "hello").write_text("#!/usr/bin/python3\nimport sys\n")
    assert codes(env) == [("shebang-outside", "bin/hello")]


def test_shebang_into_the_tree_where_it_was_made(env: Path) -> None:
    (env / "bin" / "hello").write_text(f"#!{os.path.realpath(env)}/bin/python\nimport sys\n")
    report = inspect_artifact(env)
    assert ("shebang-outside", "bin/hello") in [(p.code, p.path) for p in report.problems]
    assert "breaks when it moves" in report.problems[0].message


def test_stale_absolute_home(env: Path) -> None:
    cfg = env / "pyvenv.cfg"
    cfg.write_text(cfg.read_text() + "home = /tmp/old-build/python/bin\n")
    report = inspect_artifact(env)
    assert [(p.code, p.path) for p in report.problems] == [("pyvenv-cfg-outside", "pyvenv.cfg")]
    assert "home = /tmp/old-build/python/bin" in report.problems[0].message


def test_home_at_the_prefix_in_copy_mode(tmp_path: Path) -> None:
    root = make_env(tmp_path / "hello", manifest=False)
    BuiltEnv(root, fake_manifest(grafted=(), link_mode="copy")).save()
    (root / "bin" / "python").unlink()
    shutil.copy(root / "python" / "bin" / "python3.12", root / "bin" / "python")
    cfg = root / "pyvenv.cfg"
    cfg.write_text(cfg.read_text() + "home = /opt/hello/python/bin\n")
    report = inspect_artifact(root)
    assert report.problems == ()
    assert report.interpreter.link_mode == "copy"


def test_pth_pointing_at_the_build_directory(env: Path) -> None:
    site = env / "lib" / "python3.12" / "site-packages"
    (site / "extra.pth").write_text("/srv/.hello.ab12cd34.venvpack/env/src\n")
    found = codes(env)
    assert ("pth-outside", "lib/python3.12/site-packages/extra.pth") in found
    assert ("build-path", "lib/python3.12/site-packages/extra.pth") in found


def test_relative_pth_leaving_the_tree(env: Path) -> None:
    site = env / "lib" / "python3.12" / "site-packages"
    (site / "up.pth").write_text("import os\n../../../../elsewhere\n")
    assert codes(env) == [("pth-outside", "lib/python3.12/site-packages/up.pth")]


@pytest.mark.parametrize(
    "text",
    [
        "/home/me/app/dist/.venvpack-build-x1y2z3w4/env/lib/python3.12",
        "/home/me/out/.hello.k9_2abcd.venvpack/env/bin/python",
        "/tmp/python-build.20240101120000.4242/Python-3.12.1",
    ],
)
def test_file_naming_the_build_directory(env: Path, text: str) -> None:
    target = env / "lib" / "python3.12" / "site-packages" / "hello" / "paths.txt"
    target.write_text(f"built in {text}\n")
    report = inspect_artifact(env)
    assert [(p.code, p.path) for p in report.problems] == [
        ("build-path", "lib/python3.12/site-packages/hello/paths.txt")
    ]
    assert (
        text.split("/lib/")[0].split("/bin/")[0].split("/Python")[0] in report.problems[0].message
    )


def test_symlink_leaving_the_tree(env: Path) -> None:
    os.symlink("/usr/lib/x86_64-linux-gnu/libssl.so.3", env / "python" / "lib" / "libssl.so.3")
    assert codes(env) == [("symlink-outside", "python/lib/libssl.so.3")]


def test_symlink_loop_is_named_as_one(env: Path) -> None:
    os.symlink("b", env / "a")
    os.symlink("a", env / "b")
    assert codes(env) == [("symlink-loop", "a"), ("symlink-loop", "b")]
    (env / "bin" / "python").unlink()
    os.symlink("python", env / "bin" / "python")
    assert ("symlink-loop", "bin/python") in codes(env)


def test_links_to_host_files_are_never_read(env: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("Name: host-secret\nVersion: 9\n\nhome = /host-secret\n")
    dist = env / "lib" / "python3.12" / "site-packages" / "hello-1.0.0.dist-info"
    (dist / "METADATA").unlink()
    os.symlink(secret, dist / "METADATA")
    (env / "pyvenv.cfg").unlink()
    os.symlink(secret, env / "pyvenv.cfg")
    report = inspect_artifact(env)
    assert "host-secret" not in report.to_json()
    assert ("symlink-outside", "pyvenv.cfg") in codes(env)


def test_missing_grafted_library_is_named(tmp_path: Path) -> None:
    root = make_env(tmp_path / "hello", manifest=False)
    BuiltEnv(root, fake_manifest()).save()  # lists python/lib/libffi.so.8, which is absent
    report = inspect_artifact(root)
    assert [(p.code, p.path) for p in report.problems] == [
        ("grafted-missing", "python/lib/libffi.so.8")
    ]
    assert report.grafted[0].present is False


def test_uv_style_venv_is_not_self_contained(tmp_path: Path) -> None:
    root = tmp_path / "venv"
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "python3.12" / "site-packages").mkdir(parents=True)
    os.symlink("/root/.local/share/uv/python/cpython-3.12/bin/python3.12", root / "bin" / "python")
    (root / "pyvenv.cfg").write_text(
        "home = /root/.local/share/uv/python/cpython-3.12/bin\n"
        "implementation = CPython\nuv = 0.5\nversion_info = 3.12.7\n"
        "include-system-site-packages = false\n"
    )
    report = inspect_artifact(root)
    found = {p.code for p in report.problems}
    assert found == {"python-link-outside", "no-interpreter", "pyvenv-cfg-outside"}
    assert report.venvpack is None
    assert report.interpreter.version == "3.12.7"
    assert not report.interpreter.bundled
    assert "not made by venvpack" in render_text(report)


def test_copied_interpreter_without_stdlib_is_not_bundled(tmp_path: Path) -> None:
    """``python -m venv --copies``: a real binary in bin/, its stdlib at ``home``."""
    root = tmp_path / "venv"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_bytes(b"\x7fELF copy")
    (root / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n")
    found = {p.code for p in inspect_artifact(root).problems}
    assert found == {"no-interpreter", "pyvenv-cfg-outside"}


def test_manifest_source_is_reported(tmp_path: Path) -> None:
    from venvpack.manifest import InputFile, InstallSource

    root = make_env(tmp_path / "hello", manifest=False)
    source = InstallSource(kind="uv.lock", files=(InputFile("uv.lock", "a" * 64),))
    BuiltEnv(root, fake_manifest(grafted=(), source=source)).save()
    report = inspect_artifact(root)
    assert json.loads(report.to_json())["source"] == {
        "kind": "uv.lock",
        "files": [{"name": "uv.lock", "sha256": "a" * 64}],
        "extras": [],
        "groups": [],
    }
    assert "uv.lock sha256:aaaaaaaaaaaa" in render_text(report)


# -- artifacts --------------------------------------------------------------------------


def _tar_bytes(root: Path, top: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(root, arcname=top)
    return buf.getvalue()


@pytest.mark.parametrize("compression", ["zstd", "gz", "xz", "none"])
def test_tarball_is_read(env: Path, tmp_path: Path, compression: str) -> None:
    data = _tar_bytes(env, "hello")
    if compression == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    elif compression == "gz":
        import gzip

        data = gzip.compress(data)
    elif compression == "xz":
        import lzma

        data = lzma.compress(data)
    path = tmp_path / "hello.tar.whatever"
    path.write_bytes(data)
    assert artifact_kind(path) == "tar"
    report = inspect_artifact(path)
    assert (report.kind, report.root, report.installed_at) == ("tar", "hello", None)
    assert report.problems == ()


def test_deb_is_read_through_its_ar_archive(env: Path, tmp_path: Path) -> None:
    data = _tar_bytes(env, "./opt/hello")
    deb = tmp_path / "hello.deb"
    with deb.open("wb") as fh:
        write_ar(
            fh,
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", b""),
                ("data.tar", data),
            ],
            0,
        )
    report = inspect_artifact(deb)
    assert (report.kind, report.root, report.installed_at) == ("deb", "opt/hello", "/opt/hello")
    assert report.problems == ()


def test_tar_members_cannot_escape(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        cfg = tarfile.TarInfo("env/pyvenv.cfg")
        cfg.size = 0
        tar.addfile(cfg, io.BytesIO(b""))
        evil = tarfile.TarInfo("../../evil")
        evil.size = 1
        tar.addfile(evil, io.BytesIO(b"x"))
    path = tmp_path / "a.tar"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ArtifactError, match=r"\.\."), open_artifact(path):
        pass
    assert not (tmp_path.parent / "evil").exists()


def test_unknown_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ConfigError, match="neither an environment directory nor a tarball"):
        inspect_artifact(path)


# -- glibc ------------------------------------------------------------------------------


def test_parse_glibc() -> None:
    assert parse_glibc("2.31") == (2, 31)
    with pytest.raises(ConfigError, match=r"MAJOR\.MINOR"):
        parse_glibc("2.31.1")


def test_optional_culprits() -> None:
    dyn = "python/lib/python3.12/lib-dynload"
    users = {
        "python/lib/libcrypt.so.1": [f"{dyn}/_crypt.cpython-312-x86_64-linux-gnu.so"],
        "python/lib/libtinfo.so.6": [
            "python/lib/libncursesw.so.6",
            f"{dyn}/readline.cpython-312-x86_64-linux-gnu.so",
        ],
        "python/lib/libncursesw.so.6": [f"{dyn}/_curses.cpython-312-x86_64-linux-gnu.so"],
        "python/lib/libssl.so.3": [f"{dyn}/_ssl.cpython-312-x86_64-linux-gnu.so"],
        "python/lib/libz.so.1": ["python/lib/libpython3.12.so.1.0"],
    }

    def setter(path: str) -> FloorSetter:
        return FloorSetter(path, "2.36", "GLIBC_2.36")

    assert optional_culprits([setter("python/lib/libcrypt.so.1")], users) == {
        "python/lib/libcrypt.so.1": ("_crypt",)
    }
    assert optional_culprits([setter("python/lib/libtinfo.so.6")], users) == {
        "python/lib/libtinfo.so.6": ("_curses", "readline")
    }
    # _ssl is not optional; libpython needs libz itself
    assert optional_culprits([setter("python/lib/libssl.so.3")], users) is None
    assert optional_culprits([setter("python/lib/libz.so.1")], users) is None
    assert (
        optional_culprits(
            [setter("python/lib/libcrypt.so.1"), setter("python/lib/libpython3.12.so.1.0")],
            users,
        )
        is None
    )


def test_glibc_floor_names_file_and_symbol_version(env: Path) -> None:
    true = Path("/usr/bin/true")
    if not true.is_file():
        pytest.skip("no /usr/bin/true to stand in for an ELF file")
    shutil.copy(true, env / "bin" / "tool")
    report = inspect_artifact(env, max_glibc="2.2")
    assert report.glibc.file == "bin/tool"
    assert report.glibc.symbol_version == f"GLIBC_{report.glibc.floor}"
    assert report.glibc.above_max[0]["path"] == "bin/tool"
    problem = next(p for p in report.problems if p.code == "glibc-above-max")
    assert problem.path == "bin/tool"
    assert report.glibc.symbol_version in problem.message
    assert "build on an older distribution" in problem.message


# -- JSON -------------------------------------------------------------------------------


def test_json_follows_the_shipped_schema(env: Path, tmp_path: Path) -> None:
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    (env / "bin" / "hello").write_text("#!/usr/bin/python3\n")
    uv_like = tmp_path / "venv"
    (uv_like / "bin").mkdir(parents=True)
    os.symlink("/nonexistent/python3", uv_like / "bin" / "python")
    (uv_like / "pyvenv.cfg").write_text("home = /nonexistent\n")
    for path, max_glibc in ((env, "2.31"), (uv_like, None)):
        report = inspect_artifact(path, max_glibc=max_glibc)
        jsonschema.validate(json.loads(report.to_json()), schema)
    codes_in_schema = set(schema["properties"]["problems"]["items"]["properties"]["code"]["enum"])
    source = (Path(__file__).parents[2] / "src/venvpack/inspect.py").read_text()

    used = set(re.findall(r'ctx\.add\(\s*"([a-z-]+)"', source)) | {
        "runpath-absolute",
        "runpath-outside",
    }
    assert used <= codes_in_schema


def test_cli_exit_codes(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from venvpack.cli import main

    main(["inspect", str(env), "--json"])  # exit 0: returns
    out = capsys.readouterr().out
    assert json.loads(out)["self_contained"] is True

    (env / "bin" / "hello").write_text("#!/usr/bin/python3\n")
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(env)])
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert "[shebang-outside] bin/hello" in captured.out
    assert captured.err.strip() == f"venvpack: error: {env}: 1 problem(s) found"

    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(env), "--max-glibc", "two"])
    assert exc.value.code == 2


def test_runtime_symlinks_never_leave_it(tmp_path: Path) -> None:
    """Links out of the runtime become copies of what they name, or go when that is missing.
    (Debian's sitecustomize.py link into /etc is pruned by name before this runs.)"""
    from venvpack.runtime import _materialise_outside_links

    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "data.txt").write_text("data\n")
    runtime = tmp_path / "python"
    stdlib = runtime / "lib" / "python3.9"
    stdlib.mkdir(parents=True)
    (stdlib / "os.py").write_text("")
    os.symlink(outside / "data.txt", stdlib / "data.txt")
    os.symlink("os.py", stdlib / "alias.py")
    os.symlink("/nonexistent", stdlib / "dangling")
    _materialise_outside_links(runtime, [])
    assert sorted(p.name for p in stdlib.iterdir()) == ["alias.py", "data.txt", "os.py"]
    assert not (stdlib / "data.txt").is_symlink()
    assert (stdlib / "data.txt").read_text() == "data\n"
    assert (stdlib / "alias.py").is_symlink()
