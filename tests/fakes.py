"""Fake manifests for emitter unit tests: the contract without building an environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from venvpack.audit import audit_tree
from venvpack.manifest import (
    AppMetadata,
    BuiltEnv,
    Distribution,
    GraftedLibrary,
    Manifest,
    PythonInfo,
)
from venvpack.platform import system_libraries

__all__ = ["LICENSE_FILE", "MIT_TEXT", "fake_env_tree", "fake_manifest", "fake_metadata"]

LICENSE_FILE = "lib/python3.12/site-packages/hello-1.0.0.dist-info/licenses/LICENSE"
"""Where :func:`fake_metadata` says the license file is; tests write :data:`MIT_TEXT` there."""
MIT_TEXT = """\
MIT License

Copyright (c) 2026 Jane Doe

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction.
"""


def fake_metadata(**changes: Any) -> AppMetadata:
    """What a realistic ``hello`` project says about itself (core metadata 2.4)."""
    base = AppMetadata(
        name="hello",
        version="1.0.0",
        summary="Greets the world from its own Python",
        description=(
            "# hello\n\n[![CI](https://example.org/badge.svg)](https://example.org/ci)\n\n"
            "**hello** prints a greeting and the versions of what it runs on, to show\n"
            "what [venvpack](https://example.org/venvpack) builds.\n\n```sh\nhello\n```\n"
        ),
        description_content_type="text/markdown",
        license="MIT",
        license_files=(LICENSE_FILE,),
        urls=(
            ("Homepage", "https://example.org/hello"),
            ("Source", "https://example.org/hello/src"),
        ),
        homepage="https://example.org/hello",
        authors=("Jane Doe <jane@example.org>", "bob@example.org"),
        maintainers=(),
        paths=(
            "lib/python3.12/site-packages/hello-1.0.0.dist-info",
            "lib/python3.12/site-packages/hello.py",
        ),
    )
    return dataclasses.replace(base, **changes)


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


def fake_env_tree(root: Path) -> Path:
    """An environment directory with a manifest at ``root``: enough for ``--from`` (no ELF,
    no build). Its manifest claims the glibc floor the audit finds, as ``--from`` checks."""
    for d in ("bin", "python/bin", "lib/python3.12/site-packages"):
        (root / d).mkdir(parents=True)
    (root / "bin/hello").write_text("#!/bin/sh\necho hi\n")
    (root / "bin/hello").chmod(0o755)
    (root / "bin/python").symlink_to("../python/bin/python3.12")
    (root / "python/bin/python3.12").write_bytes(b"not really an interpreter")
    floor = audit_tree(root, system_libraries(), ()).glibc_floor
    BuiltEnv(root, fake_manifest(glibc_floor=floor)).save()
    return root
