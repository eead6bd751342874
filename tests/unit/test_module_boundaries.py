"""Format and platform knowledge stays where it belongs.

A format's name (``deb``, ``rpm``) appears in code only in that format's module and the
registry; a platform (an architecture such as ``x86_64``, a dynamic loader's name) only in the
platform layer and the format modules that spell it for their package managers. Everything
else asks the registry or the platform module, so a new format or architecture is one module
and one data entry, not a hunt through the tree. Docstrings and comments may still use the
names as examples; string literals in code may not.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import venvpack

SRC = Path(venvpack.__file__).parent

FORMAT_NAME = re.compile(r"(?<![A-Za-z0-9_])(deb|rpm|\.deb|\.rpm)(?![A-Za-z0-9_])")
PLATFORM_NAME = re.compile(r"x86_64|x86-64|amd64|aarch64|arm64|ld-linux|ld64\.so|ld-musl")


def _registered_modules() -> set[Path]:
    from venvpack import emit

    return {
        Path(importlib.import_module(module).__file__ or "") for module in emit.FORMATS.values()
    }


def _layers() -> tuple[set[Path], set[Path]]:
    """(modules that may name formats, modules that may name platforms)."""
    formats = _registered_modules()
    registry = {SRC / "emit" / "__init__.py"}
    platform = {SRC / "platform.py"}
    return formats | registry, formats | platform


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
        # An attribute docstring: a string statement right after an assignment.
        if isinstance(node, (ast.Module, ast.ClassDef)):
            for stmt in node.body:
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    ids.add(id(stmt.value))
    return ids


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def _offences(pattern: re.Pattern[str], allowed: set[Path]) -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path in allowed:
            continue
        for line, text in _strings(path):
            match = pattern.search(text)
            if match:
                found.append(f"{path.relative_to(SRC)}:{line}: {match.group(0)!r} in {text!r}")
    return found


def test_only_format_modules_and_the_registry_name_formats() -> None:
    formats, _ = _layers()
    assert _offences(FORMAT_NAME, formats) == []


def test_only_the_platform_layer_and_format_modules_name_platforms() -> None:
    _, platforms = _layers()
    assert _offences(PLATFORM_NAME, platforms) == []


def test_the_checks_can_fail() -> None:
    # The scanner finds a name in a code string and ignores the same name in a docstring.
    sample = SRC / "emit" / "__init__.py"
    assert any(FORMAT_NAME.search(text) for _, text in _strings(sample))
    tree = ast.parse('"""A .deb docstring."""\nx = "a .deb string"\n')
    skip = _docstrings(tree)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in skip]
    assert strings == ["a .deb string"]
