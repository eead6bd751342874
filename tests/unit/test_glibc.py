"""``--max-glibc`` and ``--exclude-module``: settings, validation, and leaving a module out."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvpack.config import decide, read_pyproject
from venvpack.emit import format_options
from venvpack.errors import ConfigError
from venvpack.glibc import FloorSetter, FloorVerdict
from venvpack.runtime import Runtime, exclude_modules, validate_module_name
from venvpack.settings import BUILD_SETTINGS


def test_pyproject_settings(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.venvpack]\nmax-glibc = "2.31"\n'
        'exclude-modules = ["_curses"]\n'
    )
    pyproject = read_pyproject(tmp_path, format_options())
    values = decide(BUILD_SETTINGS, {"exclude_modules": ("readline",)}, (), pyproject)
    assert values["max_glibc"] == "2.31"
    assert values["exclude_modules"] == ("_curses", "readline")
    flagged = decide(BUILD_SETTINGS, {"max_glibc": "2.28"}, {"max_glibc"}, pyproject)
    assert flagged["max_glibc"] == "2.28"


def _runtime(root: Path) -> Runtime:
    stdlib = root / "lib" / "python3.12"
    dynload = stdlib / "lib-dynload"
    dynload.mkdir(parents=True)
    for name in ("_curses", "_curses_panel", "readline", "_ssl"):
        (dynload / f"{name}.cpython-312-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    return Runtime(
        root=root,
        executable=root / "bin" / "python3.12",
        stdlib=stdlib,
        libpython=None,
        sysconfigdata=None,
        short_version="3.12",
        version="3.12.1",
        source_prefix=Path("/usr"),
        build_prefix=None,
        origins=(),
        compile_dirs=(),
    )


def test_exclude_module_removes_only_that_extension(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    exclude_modules(runtime, ("_curses", "readline"))
    left = sorted(p.name.split(".")[0] for p in (runtime.stdlib / "lib-dynload").iterdir())
    assert left == ["_curses_panel", "_ssl"]


def test_exclude_unknown_module_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--exclude-module _gdbm: no such extension module"):
        exclude_modules(_runtime(tmp_path), ("_gdbm",))


@pytest.mark.parametrize("name", ["../x", "a.b", "", "x y"])
def test_module_names_are_validated(name: str) -> None:
    with pytest.raises(ConfigError, match="not a module name"):
        validate_module_name(name)


def test_verdict_message_names_file_symbol_and_remedy() -> None:
    top = FloorSetter("python/lib/libcrypt.so.1", "2.36", "GLIBC_2.36")
    optional = FloorVerdict((top,), ("_crypt",), ("arc4random_buf",))
    assert optional.message("2.35") == (
        "python/lib/libcrypt.so.1 needs glibc 2.36 (GLIBC_2.36, e.g. arc4random_buf), above "
        "--max-glibc 2.35; only optional stdlib modules need it: leave them out with "
        "--exclude-module _crypt"
    )
    other = FloorSetter("python/lib/libpython3.12.so.1.0", "2.35", "GLIBC_2.35")
    hard = FloorVerdict((top, other), (), ())
    message = hard.message("2.31")
    assert "1 more file(s) need more than 2.31" in message
    assert "build on an older distribution (README: Run on older distributions)" in message


def test_cli_refuses_a_malformed_max_glibc(capsys: pytest.CaptureFixture[str]) -> None:
    from venvpack.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["build", "x", "--max-glibc", "2", "-o", "/nonexistent/out"])
    assert exc.value.code == 2
    assert "invalid glibc version '2'" in capsys.readouterr().err
