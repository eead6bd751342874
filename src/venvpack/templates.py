"""Rendering of every generated file from ``packaging-templates/`` with jinja2.

Templates are rendered with ``StrictUndefined`` from an explicit context; each target
syntax gets its own escaping filter, so user text cannot break out of the place it is put.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2

__all__ = ["render", "templates_dir"]


def templates_dir() -> Path:
    """``packaging-templates/`` of a source checkout, or its copy inside the installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parents[1] / "packaging-templates"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("venvpack's packaging-templates directory is missing from the installation")


def _sh_quote(value: object) -> str:
    """A single shell word, safe in any POSIX shell."""
    return shlex.quote(str(value))


def _fish_quote(value: object) -> str:
    """A single fish word: single quotes, with backslash and quote escaped."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


_PROMPT_UNSAFE_RE = re.compile(r"[^A-Za-z0-9 ._+,:=@/~-]")


def _prompt_text(value: object) -> str:
    """Text for a shell prompt: bash and zsh expand ``$(...)``, backquotes, ``\\``, ``!``
    and ``%`` in PS1 *every time it is shown*, after the assignment's quoting is gone; so
    every other character becomes ``_``. Still to be quoted for the shell (``sh``/``fish``)."""
    return _PROMPT_UNSAFE_RE.sub("_", str(value))


_env: jinja2.Environment | None = None


def _environment() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir())),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _env.filters["sh"] = _sh_quote
        _env.filters["fish"] = _fish_quote
        _env.filters["prompt"] = _prompt_text
    return _env


def render(
    template: str, *, filters: Mapping[str, Callable[..., str]] | None = None, **context: Any
) -> str:
    """Render ``template`` (a path relative to packaging-templates/) with ``context``.

    ``filters`` adds the escaping filters of one target syntax (deb control, rpm spec ...);
    the emitter that owns that syntax defines them.
    """
    env = _environment()
    if filters:
        env = env.overlay()
        env.filters.update(filters)
    return env.get_template(template).render(**context)
