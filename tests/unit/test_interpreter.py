"""``--python`` requests and discovery without running any interpreter.

Every spelling is parsed from a table; discovery is checked on fake trees of empty executable
files, which is enough because names are read before anything is probed. Probing real
interpreters is in ``tests/integration/test_discovery.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from venvpack.errors import InterpreterError
from venvpack.interpreter import (
    Candidate,
    Refusal,
    SearchPlaces,
    candidates,
    probe_refusal,
    search_places,
    source_label,
)
from venvpack.python_request import Host, PythonRequest, parse_request, refusal

HOST = Host(os="linux", arch="x86_64", libc="gnu")


def req(text: str, **fields: Any) -> PythonRequest:
    return PythonRequest(text=text, **fields)


PARSED = [
    # paths: a slash or "~" says so; they are kept as written
    ("/usr/bin/python3.12", req("/usr/bin/python3.12", path=Path("/usr/bin/python3.12"))),
    ("./venv/bin/python", req("./venv/bin/python", path=Path("./venv/bin/python"))),
    ("venv/bin/python", req("venv/bin/python", path=Path("venv/bin/python"))),
    ("~/py/bin/python3", req("~/py/bin/python3", path=Path("~/py/bin/python3"))),
    ("~", req("~", path=Path("~"))),
    (".", req(".", path=Path("."))),
    # versions
    ("3", req("3", version=(3,))),
    ("3.12", req("3.12", version=(3, 12))),
    ("3.12.4", req("3.12.4", version=(3, 12, 4))),
    ("2.7", req("2.7", version=(2, 7))),
    (" 3.12.1\n", req("3.12.1", version=(3, 12, 1))),  # a .python-version line
    # names
    ("python", req("python")),
    ("python3", req("python3", version=(3,))),
    ("python3.12", req("python3.12", version=(3, 12))),
    ("cpython", req("cpython")),
    ("CPython@3.12", req("CPython@3.12", version=(3, 12))),
    ("cpython@3.12", req("cpython@3.12", version=(3, 12))),
    ("cpython@3.12.4", req("cpython@3.12.4", version=(3, 12, 4))),
    ("cpython3.12", req("cpython3.12", version=(3, 12))),
    ("cpython-3.12", req("cpython-3.12", version=(3, 12))),
    ("cp3.12", req("cp3.12", version=(3, 12))),
    ("cp312", req("cp312", version=(3, 12))),
    ("cpython313", req("cpython313", version=(3, 13))),
    (
        "cpython-3.12.4-linux-x86_64-gnu",
        req("cpython-3.12.4-linux-x86_64-gnu", version=(3, 12, 4), platform=HOST),
    ),
    (
        "cpython-3.12-linux-x86_64-gnu",
        req("cpython-3.12-linux-x86_64-gnu", version=(3, 12), platform=HOST),
    ),
    (
        "cpython-3.12.4-macos-aarch64-none",
        req(
            "cpython-3.12.4-macos-aarch64-none",
            version=(3, 12, 4),
            platform=Host("macos", "aarch64", "none"),
        ),
    ),
    (
        "cpython-3.13.0+freethreaded-linux-x86_64-gnu",
        req(
            "cpython-3.13.0+freethreaded-linux-x86_64-gnu",
            version=(3, 13, 0),
            free_threaded=True,
            platform=HOST,
        ),
    ),
    # specifiers, including requires-python as projects write it
    (">=3.11", req(">=3.11", specifier=SpecifierSet(">=3.11"))),
    ("==3.12.*", req("==3.12.*", specifier=SpecifierSet("==3.12.*"))),
    (">=3.10,<3.12", req(">=3.10,<3.12", specifier=SpecifierSet(">=3.10,<3.12"))),
    ("~=3.11", req("~=3.11", specifier=SpecifierSet("~=3.11"))),
    (">= 3.9, < 4", req(">= 3.9, < 4", specifier=SpecifierSet(">=3.9,<4"))),
    ("cpython>=3.12", req("cpython>=3.12", specifier=SpecifierSet(">=3.12"))),
    ("cpython@>=3.12", req("cpython@>=3.12", specifier=SpecifierSet(">=3.12"))),
    # other implementations and builds parse, to be refused with a reason
    ("pypy", req("pypy", implementation="pypy")),
    ("pypy@3.10", req("pypy@3.10", implementation="pypy", version=(3, 10))),
    ("pypy3.10", req("pypy3.10", implementation="pypy", version=(3, 10))),
    ("pp310", req("pp310", implementation="pypy", version=(3, 10))),
    ("graalpy", req("graalpy", implementation="graalpy")),
    ("graalpy@3.11", req("graalpy@3.11", implementation="graalpy", version=(3, 11))),
    ("3.13t", req("3.13t", version=(3, 13), free_threaded=True)),
    ("cpython3.13t", req("cpython3.13t", version=(3, 13), free_threaded=True)),
    ("3.13+freethreaded", req("3.13+freethreaded", version=(3, 13), free_threaded=True)),
    ("3.13d", req("3.13d", version=(3, 13), debug=True)),
    ("3.13.0+debug", req("3.13.0+debug", version=(3, 13, 0), debug=True)),
    ("3.14+gil", req("3.14+gil", version=(3, 14))),
]


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[t for t, _ in PARSED])
def test_parse(text: str, expected: PythonRequest) -> None:
    assert parse_request(text) == expected


GARBLED = [
    "",
    "   ",
    "foo",
    "3.12.4.1",
    "3.x",
    "three",
    "cpython@",
    "cpython@three",
    "cpython-3.12-linux",
    "cpython-3.12-linux-x86_64-gnu-extra",
    "cpython-3.12--x86_64-gnu",
    ">=",
    "=>3.11",
    "jython2.7",
    "3.12q",
    "3.13+nogil",
]


@pytest.mark.parametrize("text", GARBLED)
def test_garbled_requests_list_the_spellings(text: str) -> None:
    with pytest.raises(InterpreterError) as exc:
        parse_request(text)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"cannot read Python request {text.strip()!r}: expected ")
    for spelling in ("3.12", "cpython@3.12", "cpython-3.12.4-linux-x86_64-gnu", ">=3.11", "path"):
        assert spelling in message
    assert exc.value.exit_code == 3


REFUSED = [
    ("pypy@3.10", "'pypy@3.10' asks for PyPy; venvpack bundles CPython only"),
    ("pypy3.10", "'pypy3.10' asks for PyPy; venvpack bundles CPython only"),
    ("graalpy", "'graalpy' asks for GraalPy; venvpack bundles CPython only"),
    ("3.13t", "'3.13t' asks for a free-threaded build; venvpack does not support those yet"),
    ("cpython3.13t", "asks for a free-threaded build"),
    ("3.13d", "'3.13d' asks for a debug build; venvpack does not support those yet"),
    (
        "cpython-3.12.4-macos-aarch64-none",
        "'cpython-3.12.4-macos-aarch64-none' is an installation for macos-aarch64-none; "
        "this machine is linux-x86_64-gnu",
    ),
    ("cpython-3.12.4-linux-aarch64-gnu", "is an installation for linux-aarch64-gnu"),
    ("cpython-3.12.4-linux-x86_64-musl", "is an installation for linux-x86_64-musl"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_refused_requests(text: str, reason: str) -> None:
    assert reason in (refusal(parse_request(text), HOST) or "")


@pytest.mark.parametrize(
    "text",
    [
        "3.12",
        ">=3.11",
        "/usr/bin/python3",
        "cpython-3.12.4-linux-x86_64-gnu",
        "cpython-3.12.4-linux-x86_64_v3-gnu",
        "3.14+gil",
    ],
)
def test_accepted_requests(text: str) -> None:
    assert refusal(parse_request(text), HOST) is None


def test_arm_keys_on_arm() -> None:
    arm = Host(os="linux", arch="armv7l", libc="gnu")
    assert refusal(parse_request("cpython-3.12.4-linux-armv7-gnueabihf"), arm) is None


ADMITS = [
    ("3", (3, 13, 0), True),
    ("3", (2, 7, 18), False),
    ("3.12", (3, 12, 1), True),
    ("3.12", (3, 1, 2), False),
    ("3.12.1", (3, 12, 1), True),
    ("3.12.1", (3, 12, 10), False),
    ("cpython", (3, 9, 0), True),
    (">=3.11,<3.13", (3, 12, 1), True),
    (">=3.11,<3.13", (3, 13, 0), False),
    ("~=3.11", (3, 13, 0), True),
    ("~=3.11", (3, 10, 13), False),
    ("==3.12.*", (3, 12, 9), True),
    # PEP 440: ==3.12 means 3.12.0, as it does for requires-python
    ("==3.12", (3, 12, 1), False),
]


@pytest.mark.parametrize(("text", "version", "expected"), ADMITS)
def test_admits(text: str, version: tuple[int, int, int], expected: bool) -> None:
    assert parse_request(text).admits(version) is expected


MIGHT_ADMIT = [
    ("3.12", (3,), True),
    ("3.12", (3, 12), True),
    ("3.12", (3, 8), False),
    ("3.12", (3, 12, 1), True),
    ("3.12.4", (3, 12), True),
    ("3.12.4", (3, 12, 1), False),
    ("3", (2, 7), False),
    (">=3.12.4", (3, 12), True),
    (">=3.12.4", (3, 11), False),
    (">=3.12.4", (3,), True),
    ("<3.12", (3, 12, 0), False),
]


@pytest.mark.parametrize(("text", "hint", "expected"), MIGHT_ADMIT)
def test_might_admit(text: str, hint: tuple[int, ...], expected: bool) -> None:
    assert parse_request(text).might_admit(hint) is expected


@pytest.mark.parametrize(
    ("text", "words"),
    [("3.12", "CPython 3.12"), (">=3.11", "CPython >=3.11"), ("cpython", "CPython")],
)
def test_describe_request(text: str, words: str) -> None:
    assert parse_request(text).describe() == words


@pytest.mark.parametrize(
    ("environ", "uv_dir", "pyenv_root"),
    [
        ({"HOME": "/h"}, "/h/.local/share/uv/python", "/h/.pyenv"),
        ({"HOME": "/h", "XDG_DATA_HOME": "/x"}, "/x/uv/python", "/h/.pyenv"),
        (
            {"HOME": "/h", "XDG_DATA_HOME": "/x", "UV_PYTHON_INSTALL_DIR": "/u"},
            "/u",
            "/h/.pyenv",
        ),
        ({"HOME": "/h", "PYENV_ROOT": "/p"}, "/h/.local/share/uv/python", "/p"),
    ],
)
def test_search_places(environ: dict[str, str], uv_dir: str, pyenv_root: str) -> None:
    places = search_places({**environ, "PATH": "/a::/b"})
    assert places.uv_dir == Path(uv_dir)
    assert places.pyenv_root == Path(pyenv_root)
    assert places.path_dirs == (Path("/a"), Path("/b"))


def executable(path: Path, target: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if target is not None:
        path.symlink_to(target)
    else:
        path.write_text("")
        path.chmod(0o755)
    return path


@pytest.fixture
def machine(tmp_path: Path) -> SearchPlaces:
    """A fake machine: pyenv, uv (with an alias and a foreign build), PATH and /usr/bin."""
    pyenv = tmp_path / "pyenv"
    for version in ("2.7.18", "3.8.18", "3.12.1", "3.13.0", "3.13.0t"):
        short = ".".join(version.split(".")[:2])
        suffix = "t" if version.endswith("t") else ""
        executable(pyenv / "versions" / version / "bin" / f"python{short}{suffix}")
    (pyenv / "versions" / "pypy3.10-7.3.17" / "bin").mkdir(parents=True)
    executable(pyenv / "versions" / "pypy3.10-7.3.17" / "bin" / "python3.10")
    (pyenv / "versions" / "myenv").symlink_to(pyenv / "versions" / "3.12.1")
    uv = tmp_path / "uv"
    executable(uv / "cpython-3.12.4-linux-x86_64-gnu" / "bin" / "python3.12")
    (uv / "cpython-3.12-linux-x86_64-gnu").symlink_to("cpython-3.12.4-linux-x86_64-gnu")
    executable(uv / "cpython-3.11.9-linux-aarch64-gnu" / "bin" / "python3.11")
    executable(uv / "pypy-3.10.14-linux-x86_64-gnu" / "bin" / "python3.10")
    (uv / ".lock").write_text("")
    usr = tmp_path / "usr" / "bin"
    executable(usr / "python3.11")
    executable(usr / "python3", "python3.11")
    executable(usr / "python3-config")
    shims = tmp_path / "shims"
    executable(shims / "python3")
    executable(shims / "python3.12")
    executable(shims / "python3.8")
    executable(shims / "pip3.12")
    return SearchPlaces(
        path_dirs=(shims, usr, tmp_path / "missing"),
        pyenv_root=pyenv,
        uv_dir=uv,
        uv_default_dir=tmp_path / "default-uv",
        system_bin=usr,
    )


def listed(text: str, places: SearchPlaces) -> list[tuple[str, tuple[int, ...], str]]:
    root = places.pyenv_root.parent
    return [
        (str(c.path.relative_to(root)), c.hint, c.origin)
        for c in candidates(parse_request(text), places, HOST)
    ]


def test_candidates_for_a_minor(machine: SearchPlaces) -> None:
    assert listed("3.12", machine) == [
        # the alias and the real directory are one interpreter; the precise name is kept
        ("uv/cpython-3.12.4-linux-x86_64-gnu/bin/python3.12", (3, 12, 4), "uv"),
        ("pyenv/versions/3.12.1/bin/python3.12", (3, 12, 1), "pyenv"),
        ("shims/python3.12", (3, 12), "PATH"),
        ("shims/python3", (3,), "PATH"),  # may be anything: only the probe knows
    ]


def test_candidates_for_a_pinned_version(machine: SearchPlaces) -> None:
    assert [path for path, _, _ in listed("3.12.1", machine)] == [
        "pyenv/versions/3.12.1/bin/python3.12",
        "shims/python3.12",
        "shims/python3",
    ]


def test_candidates_for_an_old_version(machine: SearchPlaces) -> None:
    assert [path for path, _, _ in listed("cpython@3.8", machine)] == [
        "pyenv/versions/3.8.18/bin/python3.8",
        "shims/python3.8",
        "shims/python3",
    ]


def test_candidates_for_a_specifier(machine: SearchPlaces) -> None:
    assert [path for path, _, _ in listed(">=3.11,<3.13", machine)] == [
        "uv/cpython-3.12.4-linux-x86_64-gnu/bin/python3.12",
        "pyenv/versions/3.12.1/bin/python3.12",
        "shims/python3.12",
        # /usr/bin/python3 is /usr/bin/python3.11: one candidate, named by its version
        "usr/bin/python3.11",
        "shims/python3",
    ]


def test_candidates_for_any_3(machine: SearchPlaces) -> None:
    paths = [path for path, _, _ in listed("3", machine)]
    assert "pyenv/versions/2.7.18/bin/python2.7" not in paths
    assert "pyenv/versions/3.13.0t/bin/python3.13t" in paths  # probed, then refused
    assert not any("pypy" in p or "aarch64" in p or "myenv" in p for p in paths)
    assert len(paths) == len(set(paths))


def test_source_label_follows_the_uv_dir(tmp_path: Path) -> None:
    uv = tmp_path / "custom-uv"
    elsewhere = tmp_path / "store" / "bin" / "python3.12"
    places = SearchPlaces(
        path_dirs=(),
        pyenv_root=tmp_path / "pyenv",
        uv_dir=uv,
        uv_default_dir=tmp_path / "share" / "uv" / "python",
    )
    in_uv = uv / "cpython-3.12.4-linux-x86_64-gnu" / "bin" / "python3.12"
    assert source_label(in_uv, in_uv, [], places) == "uv"
    # found through uv's directory, resolving elsewhere: still uv's
    assert source_label(in_uv, elsewhere, [], places) == "uv"
    in_default = places.uv_default_dir / "cpython-3.11.9-linux-x86_64-gnu" / "bin" / "python3"
    assert source_label(in_default, in_default, [], places) == "uv"
    pyenv_exe = tmp_path / "pyenv" / "versions" / "3.12.1" / "bin" / "python3.12"
    assert source_label(pyenv_exe, pyenv_exe, [], places) == "pyenv"
    assert source_label(elsewhere, elsewhere, ["posix_prefix", "posix_local"], places) == "debian"
    assert source_label(elsewhere, elsewhere, ["posix_prefix"], places) == "other"


def probe(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "implementation": "CPython",
        "version_info": [3, 13, 0],
        "executable": "/opt/py/bin/python3.13",
        "free_threaded": False,
        "debug": False,
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            probe(version_info=[3, 8, 18], executable="/p/3.8.18/bin/python3.8"),
            "CPython 3.8.18 at /p/3.8.18/bin/python3.8 is refused: "
            "venvpack needs CPython 3.9 or newer",
        ),
        (
            {"implementation": "CPython", "version_info": [2, 7, 18], "executable": "/x/py2"},
            "CPython 2.7.18 at /x/py2 is refused: venvpack needs CPython 3.9 or newer",
        ),
        (
            probe(implementation="PyPy", version_info=[3, 10, 14]),
            "PyPy 3.10.14 at /opt/py/bin/python3.13 is refused: venvpack bundles CPython only",
        ),
        (
            probe(free_threaded=True),
            "CPython 3.13.0 (free-threaded) at /opt/py/bin/python3.13 is refused: "
            "venvpack does not support free-threaded builds yet",
        ),
        (
            probe(debug=True),
            "CPython 3.13.0 (debug) at /opt/py/bin/python3.13 is refused: "
            "venvpack does not support debug builds yet",
        ),
    ],
)
def test_probe_refusals(data: dict[str, Any], message: str) -> None:
    found = probe_refusal(data, Path("/given"))
    assert isinstance(found, Refusal)
    assert found.message() == message


def test_probe_accepts_a_default_build() -> None:
    assert probe_refusal(probe(), Path("/given")) is None


def test_ceiling_orders_unknown_parts_last() -> None:
    assert Candidate(Path("p"), (3, 12), "PATH").ceiling() > (3, 12, 99)
    assert Candidate(Path("p"), (3, 12, 1), "pyenv").ceiling() == (3, 12, 1)


def _program_of_another_machine(source: Path, dest: Path) -> None:
    """``source`` (a program of this host) with the ELF header's machine made aarch64's:
    enough for a reader of headers, never run."""
    data = bytearray(source.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(bytes(data))
    dest.chmod(0o755)


def test_foreign_root_is_told_from_headers_before_any_build(tmp_path: Path) -> None:
    from venvpack.elf import read_elf
    from venvpack.interpreter import foreign_root

    host_true = Path(os.path.realpath(shutil.which("true") or "/bin/true"))
    loader = read_elf(host_true).interpreter
    assert loader is not None
    root = tmp_path / "root"
    python = root / "usr" / "bin" / "python3.11"
    _program_of_another_machine(host_true, python)
    (root / loader.lstrip("/")).parent.mkdir(parents=True)
    (root / loader.lstrip("/")).write_bytes(b"the loader")
    found = foreign_root(str(python), None)
    assert found is not None
    assert (found[0], found[1].path) == ("aarch64", root)
    found = foreign_root("3.11", root)  # --sysroot ROOT --python 3.11
    assert found is not None
    assert (found[0], found[1].path) == ("aarch64", root)
    assert foreign_root(str(host_true), None) is None
    assert foreign_root(None, None) is None
    assert foreign_root("3.11", None) is None  # a version without a root: this machine's
