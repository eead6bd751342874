"""Requirements files (``-r``, ``-c``) with their relative paths made absolute.

**Rule**: a relative path in a requirements file (``./x.whl``, ``../proj``, ``-e ./lib``,
``--find-links wheels``, ``-r other.txt``, ``name @ ./x.whl``) means a path relative to the
*file*, wherever venvpack runs: a file that sits beside its wheels works from any directory.
pip reads such lines against the current directory and uv 0.13 does the same, and venvpack
runs the installer in the project directory; so neither would agree with the user's shell.
Each file (and each file it includes) is rewritten into a private directory with absolute
paths, and the installer reads the rewritten copy: uv and pip follow the same rule.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from venvpack.errors import ConfigError

__all__ = ["absolute_copy", "read_lines", "requirement_lines"]

# Options whose value is a local file or directory, as requirements files spell them.
_FILE_OPTIONS = ("-r", "--requirement", "-c", "--constraint")
_PATH_OPTIONS = ("-e", "--editable", "-f", "--find-links")
_OPTION_RE = re.compile(r"(?P<opt>--?[A-Za-z-]+)(?:(?:=|\s+)(?P<value>\S+))?(?P<rest>.*)")
_DIRECT_RE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*@\s*)(?P<url>\S+)")
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")


def read_lines(path: Path) -> list[str]:
    """The logical lines of ``path``: continuations joined, comments and blanks dropped."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read requirements file {path}: {exc}") from None
    out = []
    for line in raw.replace("\\\r\n", " ").replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("#"):
            continue
        line = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _is_url(text: str) -> bool:
    return "://" in text or text.startswith("file:")


def _absolute(value: str, base: Path) -> str:
    """``value`` made absolute against ``base`` when it is a local relative path."""
    if _is_url(value):
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    return os.path.normpath(base / path)


def _looks_like_path(head: str, base: Path) -> bool:
    """pip's test: a requirement is a path when it starts like one, or names an archive or
    an existing directory (``lib/pkg``), rather than a distribution."""
    if _is_url(head) or head.startswith("/"):
        return False
    plain = re.sub(r"\[[^\]]*\]$", "", head)
    if plain.startswith(("./", "../", "~/")) or plain in (".", ".."):
        return True
    return plain.endswith(_ARCHIVES) or ("/" in plain and (base / plain).exists())


def _rewrite_line(line: str, base: Path, include: dict[str, str]) -> str:
    """One logical line with its local relative paths made absolute against ``base``;
    ``include`` maps an included file's absolute path to its rewritten copy."""
    option = _OPTION_RE.fullmatch(line) if line.startswith("-") else None
    if option is not None:
        opt, value, rest = option["opt"], option["value"], option["rest"]
        if value is not None and opt in _FILE_OPTIONS:
            target = _absolute(value, base)
            return f"{opt} {include.get(target, target)}{rest}"
        if value is not None and opt in _PATH_OPTIONS:
            return f"{opt} {_absolute(value, base)}{rest}"
        return line
    direct = _DIRECT_RE.match(line)
    if direct is not None:
        url = direct["url"]
        if not _is_url(url):
            return f"{direct['name']}{_absolute(url, base)}{line[direct.end() :]}"
        return line
    head, sep, rest = line.partition(" ")
    if _looks_like_path(head, base):
        extras = re.search(r"\[[^\]]*\]$", head)
        plain = head[: extras.start()] if extras else head
        return f"{_absolute(plain, base)}{extras[0] if extras else ''}{sep}{rest}"
    return line


def _included(lines: list[str], base: Path) -> list[Path]:
    found = []
    for line in lines:
        option = _OPTION_RE.fullmatch(line) if line.startswith("-") else None
        if option is not None and option["opt"] in _FILE_OPTIONS and option["value"]:
            value = option["value"]
            if not _is_url(value):
                found.append(Path(_absolute(value, base)))
    return found


def absolute_copy(path: Path, out_dir: Path) -> Path:
    """A copy of requirements file ``path`` in ``out_dir`` whose relative paths (and those of
    every file it includes, copied likewise) are absolute, resolved against the file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include: dict[str, str] = {}
    pending = [path.absolute()]
    order: list[Path] = []
    while pending:  # every file reachable by -r/-c, each once (includes may form a cycle)
        current = pending.pop(0)
        if str(current) in include:
            continue
        include[str(current)] = str(out_dir / f"{len(include)}-{current.name}")
        order.append(current)
        pending += _included(read_lines(current), current.parent)
    for current in order:
        lines = [_rewrite_line(line, current.parent, include) for line in read_lines(current)]
        Path(include[str(current)]).write_text("".join(f"{ln}\n" for ln in lines), "utf-8")
    return Path(include[str(path.absolute())])


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of ``path`` (not its options), relative paths made absolute."""
    base = path.absolute().parent
    out = []
    for line in read_lines(path):
        if not line.startswith("-"):
            out.append(_rewrite_line(line, base, {}).split(" --", 1)[0].strip())
    return out
