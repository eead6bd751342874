"""``venvpack init``: a commented ``[tool.venvpack]`` section for a project, and a Makefile.

The section is rendered from ``packaging-templates/init/venvpack.toml`` with the project's
own values (its name, its interpreter pin or ``requires-python``, its maintainer) put in
through a TOML string filter, followed by one commented table per registered format (its
own template, :attr:`~venvpack.emit.Format.init_template`, or one made from its option
declarations), and *appended* to ``pyproject.toml``: the rest of the file
stays byte for byte as it was (no TOML round trip through a serializer, which would drop
comments and reorder tables). The result is parsed and checked with venvpack's own settings
reader before it replaces the file, so ``init`` never leaves a file that venvpack refuses.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from venvpack.config import python_version_file, read_pyproject
from venvpack.emit import Format, format_names, format_options, formats
from venvpack.errors import ConfigError, OutputExistsError
from venvpack.output import atomic_output
from venvpack.templates import render

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = ["commented_table", "init_project", "toml_string", "venvpack_section"]

_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_TOML_ESCAPES["\r"] = "\\r"


def toml_string(value: object) -> str:
    """``value`` as one TOML basic string: quotes, backslashes and every control character
    escaped, so no text can end the string, the line, or start a key of its own."""
    out = []
    for char in str(value):
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def venvpack_section(project: Path) -> str:
    """The commented ``[tool.venvpack]`` section for ``project`` (a directory holding a
    ``pyproject.toml``), with a newline at the end."""
    pyproject = read_pyproject(project)
    data = _toml(project / "pyproject.toml")
    table = data.get("project", {})
    name = str(canonicalize_name(pyproject.name or project.resolve().name))
    pin = python_version_file(project)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    context = {
        "named": pyproject.name is not None,
        "name": name,
        "prefix": f"/opt/{name}",
        "python_pin": pin,
        "requires_python": pyproject.requires_python,
        "python": pin or pyproject.requires_python or running,
        "maintainer": _first_person(table),
    }
    filters = {"toml": toml_string}
    parts = [render("init/venvpack.toml", filters=filters, **context)]
    for fmt in formats():
        template = fmt.init_template
        table = render(template, filters=filters, **context) if template else commented_table(fmt)
        parts.append(table)
    return "\n".join(parts)


def commented_table(fmt: Format) -> str:
    """``[tool.venvpack.<name>]`` with each of ``fmt``'s settings commented out: its help,
    then its key with its default (a format without a template of its own)."""
    lines = [f"[tool.venvpack.{fmt.name}]"]
    for option in fmt.options:
        key = option.pyproject_key
        if key is None:
            continue
        lines += textwrap.wrap(option.help, width=88, initial_indent="# ", subsequent_indent="# ")
        if option.multiple:
            value = "[]"
        elif option.is_flag:
            value = "true" if option.default else "false"
        elif option.default is None:
            continue
        elif isinstance(option.default, int):
            value = str(option.default)
        else:
            value = toml_string(option.default)
        lines.append(f"# {key} = {value}")
    return "\n".join(lines) + "\n"


def init_project(project: Path, *, makefile: bool = False) -> list[Path]:
    """Append the section to ``project/pyproject.toml`` and, with ``makefile``, write
    ``project/Makefile``; return the files written. Everything is checked before anything is
    written: a missing pyproject.toml, an existing ``[tool.venvpack]`` or Makefile is a
    ConfigError and leaves the project untouched."""
    path = project / "pyproject.toml"
    if not path.is_file():
        raise ConfigError(
            f"no pyproject.toml in {project.absolute()}: venvpack init adds its settings to "
            "a project's pyproject.toml (write one first, e.g. with 'uv init')"
        )
    if "venvpack" in _tool_table(path):
        raise ConfigError(
            f"{path} already has a [tool.venvpack] section; edit it (venvpack init never "
            "rewrites one)"
        )
    make_path = project / "Makefile"
    if makefile and os.path.lexists(make_path):
        raise _makefile_exists(make_path)
    original = path.read_bytes()
    addition = venvpack_section(project)
    if b"\r\n" in original:
        addition = addition.replace("\n", "\r\n")
    newline = b"\r\n" if b"\r\n" in original else b"\n"
    if original and not original.endswith(b"\n"):
        original += newline
    target = path.resolve()
    st = target.stat()
    if st.st_nlink > 1:
        # The file is replaced by a renamed copy: its other names would keep the old text.
        raise ConfigError(
            f"{path} has {st.st_nlink} hard links; venvpack init replaces the file, which "
            "would part it from them: give it a file of its own first, or add [tool.venvpack] "
            "by hand"
        )
    with atomic_output(target, replace=True, error=ConfigError) as staged:
        staged.write_bytes(original + addition.encode("utf-8"))
        _keep_owner(staged, st, path)
        staged.chmod(st.st_mode & 0o7777)
        _check_loads(staged, path)
    written = [path]
    if makefile:
        try:
            with atomic_output(make_path, error=ConfigError) as staged:
                makefile_text = render("init/Makefile", formats=format_names())
                staged.write_text(makefile_text, encoding="utf-8")
        except OutputExistsError:
            raise _makefile_exists(make_path) from None
        written.append(make_path)
    return written


def _keep_owner(staged: Path, st: os.stat_result, path: Path) -> None:
    """Give the new file the old one's owner and group: ``sudo venvpack init`` must not
    leave the user a pyproject.toml only root can write."""
    if (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.chown(staged, st.st_uid, st.st_gid)
    except PermissionError:
        raise ConfigError(
            f"{path} belongs to another user; venvpack init would make it yours: run it as "
            "the file's owner"
        ) from None


def _makefile_exists(path: Path) -> ConfigError:
    return ConfigError(f"{path} already exists; venvpack init --makefile never replaces one")


def _toml(path: Path) -> Mapping[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _tool_table(path: Path) -> Mapping[str, Any]:
    tool = _toml(path).get("tool", {})
    return tool if isinstance(tool, dict) else {}


def _check_loads(staged: Path, path: Path) -> None:
    """The new file must parse and pass venvpack's own settings check; where the project's
    TOML forbids appending a table (``tool = {...}`` inline), say so instead of writing."""
    try:
        read_pyproject(staged.parent, format_options())
    except ConfigError as exc:
        reason = str(exc).replace(f"{staged}: ", "")
        raise ConfigError(
            f"{path}: cannot append a [tool.venvpack] section to this file ({reason}); add "
            "the settings by hand"
        ) from None


def _first_person(table: Mapping[str, Any]) -> str:
    """``Name <address>`` of the first maintainer, else author, that has both, as the deb
    emitter takes it by default; empty when none has."""
    for key in ("maintainers", "authors"):
        people = table.get(key, [])
        for person in people if isinstance(people, list) else []:
            if isinstance(person, dict):
                name, email = person.get("name"), person.get("email")
                if isinstance(name, str) and isinstance(email, str) and name and email:
                    return f"{name} <{email}>"
    return ""
