"""Fake manifests for emitter unit tests: the contract without building an environment."""

from __future__ import annotations

import dataclasses
from typing import Any

from venvpack.manifest import Distribution, GraftedLibrary, Manifest, PythonInfo

__all__ = ["fake_manifest"]


def fake_manifest(**changes: Any) -> Manifest:
    """The manifest of a CPython 3.12 ``hello`` 1.0.0 environment, with ``changes`` applied."""
    base = Manifest(
        name="hello",
        version="1.0.0",
        prefix="/opt/hello",
        link_mode="symlink",
        python=PythonInfo(
            version="3.12.1",
            source="pyenv",
            executable="python/bin/python3.12",
            machine="x86_64",
            sha256="0" * 64,
        ),
        glibc_floor="2.34",
        commands=("hello",),
        grafted=(
            GraftedLibrary(
                soname="libffi.so.8",
                origin="/usr/lib/x86_64-linux-gnu/libffi.so.8.1.2",
                path="python/lib/libffi.so.8",
            ),
        ),
        distributions=(Distribution("hello", "1.0.0"), Distribution("markupsafe", "2.1.5")),
        venvpack_version="0.1.0",
    )
    return dataclasses.replace(base, **changes)
