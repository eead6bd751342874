"""Relocation of installer output: direct_url.json, RECORD and .pth files; byte-code."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from venvpack.proc import clean_python_env
from venvpack.relocate import (
    _clean_direct_url,
    _drop_rpath,
    _record_hash,
    _relocate_pth,
    _rewrite_record,
    compile_bytecode,
)
from venvpack.runtime import Runtime


def _dist_info(tmp_path: Path, url: str) -> Path:
    dist_info = tmp_path / "site-packages" / "app-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "direct_url.json").write_text(json.dumps({"url": url, "dir_info": {}}))
    return dist_info


def test_local_direct_url_is_dropped(tmp_path: Path) -> None:
    dist_info = _dist_info(tmp_path, "file:///home/me/secret-project")
    changed: set[Path] = set()
    removed: set[Path] = set()
    _clean_direct_url(dist_info, changed, removed)
    assert not (dist_info / "direct_url.json").exists()
    assert removed == {dist_info / "direct_url.json"}


def test_credentials_are_removed_from_urls(tmp_path: Path) -> None:
    dist_info = _dist_info(tmp_path, "https://user:s3cret@git.example.org/app.tar.gz")
    changed: set[Path] = set()
    _clean_direct_url(dist_info, changed, set())
    text = (dist_info / "direct_url.json").read_text()
    assert "s3cret" not in text
    assert "user" not in text
    assert json.loads(text)["url"] == "https://git.example.org/app.tar.gz"
    assert changed == {dist_info / "direct_url.json"}


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        # A token in the query string must not ship
        (
            "https://host/six-1.16.0-py2.py3-none-any.whl?token=abc",
            "https://host/six-1.16.0-py2.py3-none-any.whl",
        ),
        ("https://host/app.tar.gz#sha256=0a1b", "https://host/app.tar.gz#sha256=0a1b"),
        ("https://host/app.tar.gz?x=1#egg=app&secret=s3", "https://host/app.tar.gz"),
        ("git+ssh://git@github.com/o/app.git", "git+ssh://git@github.com/o/app.git"),
        ("git+https://tok:x-oauth@github.com/o/app.git?s=1", "git+https://github.com/o/app.git"),
    ],
)
def test_direct_url_keeps_no_secret(tmp_path: Path, url: str, kept: str) -> None:
    dist_info = _dist_info(tmp_path, url)
    changed: set[Path] = set()
    _clean_direct_url(dist_info, changed, set())
    data = json.loads((dist_info / "direct_url.json").read_text())
    assert data["url"] == kept
    assert changed == ({dist_info / "direct_url.json"} if kept != url else set())


def test_record_gets_new_hashes_and_loses_removed_rows(tmp_path: Path) -> None:
    root = tmp_path / "env"
    site = root / "lib/python3.12/site-packages"
    dist_info = site / "app-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (root / "bin").mkdir()
    script = root / "bin" / "app"
    script.write_bytes(b"new launcher\n")
    rows = [
        ["../../../bin/app", "sha256=old", "3"],
        ["app-1.0.dist-info/direct_url.json", "sha256=x", "10"],
        ["app-1.0.dist-info/RECORD", "", ""],
    ]
    with (dist_info / "RECORD").open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    _rewrite_record(dist_info, root, changed={script}, removed={dist_info / "direct_url.json"})
    out = list(csv.reader((dist_info / "RECORD").read_text().splitlines()))
    assert out == [
        ["../../../bin/app", _record_hash(b"new launcher\n"), "13"],
        ["app-1.0.dist-info/RECORD", "", ""],
    ]


def test_pth_lines_into_the_tree_become_relative(tmp_path: Path) -> None:
    root = tmp_path / "env"
    site = root / "lib/python3.12/site-packages"
    site.mkdir(parents=True)
    pth = site / "extra.pth"
    pth.write_text(f"{root}/src\nimport os\n/usr/share/elsewhere\n")
    assert _relocate_pth(site, root) == {pth}
    assert pth.read_text() == "../../../src\nimport os\n/usr/share/elsewhere\n"


def test_latin1_pth_is_relocated_byte_for_byte(tmp_path: Path) -> None:
    root = tmp_path / "env"
    site = root / "lib/python3.12/site-packages"
    site.mkdir(parents=True)
    pth = site / "legacy.pth"
    pth.write_bytes(b"# caf\xe9 (latin-1)\r\n" + str(root).encode() + b"/src\n/opt/\xe9t\xe9\n")
    assert _relocate_pth(site, root) == {pth}
    assert pth.read_bytes() == b"# caf\xe9 (latin-1)\r\n../../../src\n/opt/\xe9t\xe9\n"


def test_record_with_undecodable_bytes_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "env"
    dist_info = root / "lib/python3.12/site-packages/app-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "RECORD").write_bytes(
        b"app/caf\xe9.py,sha256=x,1\napp-1.0.dist-info/direct_url.json,sha256=y,2\n"
    )
    _rewrite_record(dist_info, root, changed=set(), removed={dist_info / "direct_url.json"})
    assert (dist_info / "RECORD").read_bytes() == b"app/caf\xe9.py,sha256=x,1\n"


def test_linker_run_paths_into_the_prefix_are_dropped() -> None:
    token = "@VENVPACK_PREFIX@"
    flags = f"-L{token}/lib -Wl,-rpath,{token}/lib -Wl,-rpath={token} -Wl,-rpath,/usr/lib -lm"
    assert _drop_rpath(flags, token) == f"-L{token}/lib -Wl,-rpath,/usr/lib -lm"


PYTHON_312 = Path.home() / ".pyenv/versions/3.12.1/bin/python3.12"
# Run by the interpreter that wrote the pycs (marshal and the hash key are its own): for each
# module, the pyc's flags, whether its hash is that of the module's text, every co_filename
# in it, and what executing it defines.
_READ_PYCS = r"""
import importlib.util, json, marshal, sys, types
def names(code):
    nested = [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return {code.co_filename}.union(*(names(c) for c in nested))
out = {}
for path in sys.argv[1:]:
    data = open(importlib.util.cache_from_source(path), "rb").read()
    text = open(path, "rb").read()
    code = marshal.loads(data[16:])
    namespace = {}
    exec(code, namespace)
    out[path] = {
        "flags": int.from_bytes(data[4:8], "little"),
        "hash_ok": data[8:16] == importlib.util.source_hash(text),
        "names": sorted(names(code)),
        "values": sorted(v for v in namespace.values() if isinstance(v, int)),
    }
print(json.dumps(out))
"""


@pytest.fixture(autouse=True)
def pyc_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VENVPACK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "pyc"


def _runtime(env: Path, lib: Path, source: Path) -> Runtime:
    return Runtime(
        root=env / "python",
        executable=PYTHON_312,
        stdlib=lib,
        libpython=None,
        sysconfigdata=None,
        short_version="3.12",
        version="3.12.1",
        source_prefix=source,
        build_prefix=None,
        compile_dirs=(),
        origins=((lib, source),),
    )


def _read_pycs(paths: list[Path]) -> dict[str, dict[str, Any]]:
    result = subprocess.run(
        [PYTHON_312, "-c", _READ_PYCS, *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
        env=clean_python_env(),
    )
    pycs: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return pycs


@pytest.mark.skipif(not PYTHON_312.exists(), reason="needs pyenv's CPython 3.12.1")
def test_source_pycs_are_reused_only_for_unchanged_modules(tmp_path: Path) -> None:
    """Byte-compiling takes the source interpreter's pyc of a module copied unchanged, and
    compiles anything else afresh: each result is the checked hash-based pyc of the module
    as it is in the tree, naming its path under the prefix."""
    source, env = tmp_path / "source", tmp_path / "env"
    lib = env / "python/lib/python3.12"
    source.mkdir()
    modules = {
        "same.py": "Z = 7\ndef f():\n    return lambda: 1\n",
        "edited.py": "X = 1\n",  # changed in the tree, same size and mtime
        "stale.py": "Y = 2\n",  # its source pyc no longer matches its source
    }
    for name, text in modules.items():
        (source / name).write_text(text)
    env_vars = clean_python_env()
    subprocess.run([PYTHON_312, "-m", "compileall", "-q", str(source)], check=True, env=env_vars)
    shutil.copytree(source, lib, ignore=shutil.ignore_patterns("__pycache__"))
    edited = lib / "edited.py"
    st = edited.stat()
    edited.write_text("X = 2\n")
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns))
    (source / "stale.py").write_text("Y = 3\n")  # the tree keeps Y = 2
    compile_bytecode(_runtime(env, lib, source), [lib], env, "/opt/app")

    pycs = _read_pycs([lib / name for name in modules])
    for name, value in {"same.py": 7, "edited.py": 2, "stale.py": 2}.items():
        pyc = pycs[str(lib / name)]
        assert pyc["flags"] == 0b11, "checked hash-based pyc expected"
        assert pyc["hash_ok"], name
        assert pyc["names"] == [f"/opt/app/python/lib/python3.12/{name}"]
        assert pyc["values"] == [value]


@pytest.mark.skipif(not PYTHON_312.exists(), reason="needs pyenv's CPython 3.12.1")
def test_pyc_cache_serves_the_same_inputs_only(
    tmp_path: Path, pyc_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What one build compiled, the next build with the same module text, interpreter and
    prefix takes from the cache, byte for byte; an entry whose pyc does not match the digest
    stored with it (its code object replaced under the real header, cut short) is removed,
    counted in the verbose log and compiled again."""
    env = tmp_path / "env"
    site = env / "lib/python3.12/site-packages"
    site.mkdir(parents=True)
    (site / "mod.py").write_text("V = 1\n")
    runtime = _runtime(env, env / "python/lib/python3.12", tmp_path / "nowhere")
    compile_bytecode(runtime, [site], env, "/opt/app")
    pyc = site / "__pycache__/mod.cpython-312.pyc"
    first = pyc.read_bytes()
    entries = list(pyc_cache.rglob("*.entry"))
    assert [e.read_bytes() for e in entries] == [hashlib.sha256(first).digest() + first]
    assert not list(pyc_cache.rglob("*.tmp"))

    # A hit is the stored pyc, byte for byte (a fresh compile need not give the same bytes).
    entries[0].touch()
    compile_bytecode(runtime, [site], env, "/opt/app")
    assert pyc.read_bytes() == first

    # An entry made to define V = 2 with the real header (so the import system would take
    # it as valid) does not match its digest: the tree gets the real module again.
    other = tmp_path / "other"
    other.mkdir()
    (other / "mod.py").write_text("V = 2\n")
    subprocess.run(
        [PYTHON_312, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", other],
        check=True,
        env=clean_python_env(),
    )
    forged = (other / "__pycache__/mod.cpython-312.pyc").read_bytes()
    stored = hashlib.sha256(first).digest()
    for damaged in (
        stored + first[:16] + forged[16:],
        stored + forged,
        stored + first[: len(first) // 2],
        stored[:10],
    ):
        entries[0].write_bytes(damaged)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="venvpack"):
            compile_bytecode(runtime, [site], env, "/opt/app")
        assert _read_pycs([site / "mod.py"])[str(site / "mod.py")]["values"] == [1]
        assert entries[0].read_bytes() == hashlib.sha256(first).digest() + pyc.read_bytes()
        assert "pyc cache: 1 entry did not match the digest stored with it" in caplog.text

    # Another prefix is another co_filename: another entry.
    compile_bytecode(runtime, [site], env, "/opt/elsewhere")
    assert len(list(pyc_cache.rglob("*.entry"))) == 2
    assert _read_pycs([site / "mod.py"])[str(site / "mod.py")]["names"] == [
        "/opt/elsewhere/lib/python3.12/site-packages/mod.py"
    ]
