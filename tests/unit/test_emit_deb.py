"""The deb emitter on a small fake environment: validation, escaping, golden control files.

Every generated file is compared with a golden copy under ``tests/golden/deb/``; regenerate
them with ``VENVPACK_UPDATE_GOLDEN=1 pytest tests/unit/test_emit_deb.py`` and review the diff.
Control files are also parsed back here with a deliberately naive RFC 822 reader: whatever
the user typed, the set of fields must be exactly the one the template writes.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from fakes import LICENSE_FILE, MIT_TEXT, fake_manifest, fake_metadata
from venvpack.archive import Entry, EntryKind
from venvpack.emit import deb, systemd
from venvpack.emit.deb import (
    DebEmitter,
    DebOptions,
    DebPackage,
    data_digests,
    deb_description,
    deb_line,
    debian_arch,
    maintainer_from_environment,
    parse_depends,
    plan_package,
)
from venvpack.errors import ConfigError, EmitError
from venvpack.manifest import AppMetadata, BuiltEnv

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "deb"
UPDATE = os.environ.get("VENVPACK_UPDATE_GOLDEN") == "1"
EPOCH = 1700000000
MAINTAINER = "Jane Doe <jane@example.org>"
FIELDS = [
    "Package",
    "Version",
    "Architecture",
    "Maintainer",
    "Installed-Size",
    "Depends",
    "Section",
    "Priority",
    "Homepage",
    "Description",
]

MakeEnv = Callable[..., BuiltEnv]


@pytest.fixture(autouse=True)
def _source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))


@pytest.fixture
def make_env(tmp_path: Path) -> MakeEnv:
    """A fake environment: the shape of a real one, a few bytes per file."""
    counter = iter(range(1000))

    def make(license_text: str | None = None, **changes: Any) -> BuiltEnv:
        """``license_text``: written where :func:`fake_metadata` puts the license file."""
        root = tmp_path / f"env{next(counter)}"
        for d in ("bin", "python/bin", "python/lib/python3.12", "lib/python3.12/site-packages"):
            (root / d).mkdir(parents=True)
        (root / "bin/hello").write_text("#!/bin/sh\n'''exec' python \"$0\" \"$@\"\n' '''\n")
        (root / "bin/hello").chmod(0o4775)  # odd modes are normalised
        (root / "bin/serve").write_text("#!/bin/sh\n")
        (root / "bin/serve").chmod(0o755)
        (root / "python/bin/python3.12").write_bytes(b"\x7fELF fake interpreter")
        (root / "python/bin/python3.12").chmod(0o755)
        os.link(root / "python/bin/python3.12", root / "python/bin/python3")
        (root / "bin/python").symlink_to("../python/bin/python3.12")
        (root / "python/lib/libffi.so.8").write_bytes(b"\x7fELF" + b"x" * 3000)
        (root / "python/lib/python3.12/LICENSE.txt").write_text(
            'i.e., "Copyright (c) 2001-2024 Python Software Foundation; All Rights\n'
            'Reserved" are retained in Python alone\n'
        )
        (root / "lib/python3.12/site-packages/hello.py").write_text("def main(): pass\n")
        if license_text is not None:
            (root / LICENSE_FILE).parent.mkdir(parents=True)
            (root / LICENSE_FILE).write_text(license_text, encoding="utf-8")
        env = BuiltEnv(root=root, manifest=fake_manifest(**changes))
        env.save()
        return env

    return make


def _options(**changes: Any) -> DebOptions:
    return DebOptions(**{"maintainer": MAINTAINER, **changes})


def _entries(package: DebPackage, tree: str = "data") -> tuple[Entry, ...]:
    if tree == "data":
        return package.data.entries
    return package.control_plan(data_digests(package)).entries


def _member(package: DebPackage, path: str, tree: str = "data") -> Entry:
    return next(e for e in _entries(package, tree) if e.arcname == f"./{path}")


def _content(entry: Entry) -> bytes:
    if isinstance(entry.source, bytes):
        return entry.source
    assert entry.source is not None
    return Path(entry.source).read_bytes()


def _text(package: DebPackage, path: str, tree: str = "data") -> str:
    return _content(_member(package, path, tree)).decode()


def _fields(control: str) -> list[str]:
    """Field names as dpkg sees them: every line that does not start with white space."""
    assert control.endswith("\n")
    assert "\n\n" not in control
    names = []
    for line in control.splitlines():
        if not line[:1].isspace():
            name, sep, _ = line.partition(":")
            assert sep, f"not a field: {line!r}"
            names.append(name)
    return names


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with VENVPACK_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden copy"


# --- golden packages ---------------------------------------------------------------------


def test_default_package_golden(make_env: MakeEnv) -> None:
    package = plan_package(make_env(), _options())
    assert package.filename == "hello_1.0.0-1_amd64.deb"
    assert [e.arcname for e in _entries(package, "control")] == [".", "./control", "./md5sums"]
    _check_golden("default/control", _text(package, "control", "control"))
    _check_golden("default/md5sums", _text(package, "md5sums", "control"))
    _check_golden("default/copyright", _text(package, "usr/share/doc/hello/copyright"))
    _check_golden("default/lintian-overrides", _text(package, "usr/share/lintian/overrides/hello"))
    changelog = _content(_member(package, "usr/share/doc/hello/changelog.Debian.gz"))
    assert changelog[4:8] == b"\0\0\0\0", "gzip mtime must be 0"
    _check_golden("default/changelog", gzip.decompress(changelog).decode())


def test_service_package_golden(make_env: MakeEnv) -> None:
    options = _options(
        service_command="serve --bind '0.0.0.0:80' '100%' '$HOME' ';' 'a \"b\" \\c'",
        homepage="https://example.org/hello",
        depends=("libpq5 (>= 15), ca-certificates | ca-bundle",),
        entry_points=("hello", "serve"),
        section="web",
        description="Serves hello over HTTP\nA longer text.",
    )
    package = plan_package(make_env(), options)
    assert [e.arcname for e in _entries(package, "control")] == [
        ".",
        "./control",
        "./md5sums",
        "./postinst",
        "./postrm",
        "./prerm",
    ]
    for name in ("control", "md5sums", "postinst", "prerm", "postrm"):
        _check_golden(f"service/{name}", _text(package, name, "control"))
        mode = _member(package, name, "control").mode
        assert mode == (0o755 if name.startswith("post") or name == "prerm" else 0o644)
    _check_golden("service/hello.service", _text(package, "usr/lib/systemd/system/hello.service"))
    _check_golden("service/lintian-overrides", _text(package, "usr/share/lintian/overrides/hello"))


def test_hostile_metadata_golden(make_env: MakeEnv) -> None:
    description = (
        "Synopsis\twith a tab\x07\n"
        "Package: evil\n"
        "Version: 99\r\n"
        "\n"
        ".\n"
        "Depends: rootkit\x0bX-Vertical-Tab: 1\x0cX-Form-Feed: 1\x85X-Nel: 1\u2028X-Ls: 1\n"
        "  Verbatim: line stays verbatim\n"
        ".hidden line\n"
        "Description: again\n" + "A long line of words that goes on and on " * 4 + "\n\n\n"
    )
    # --description refuses such text (package.check_description), but what the project's
    # metadata says reaches the control file only through the filters: they are the last
    # defence, so they are tested with the text put past the options' own check.
    options = _options()
    object.__setattr__(options, "description", description)
    package = plan_package(make_env(), options)
    control = _text(package, "control", "control")
    assert _fields(control) == [f for f in FIELDS if f != "Homepage"]
    _check_golden("hostile/control", control)


def _paragraphs(text: str) -> list[list[str]]:
    """deb822 paragraphs as lists of field names (a line that does not start with white
    space is a field), the way a DEP-5 reader splits the copyright file."""
    assert text.endswith("\n")
    assert "\n\n\n" not in text
    paragraphs = []
    for block in text.split("\n\n"):
        names = []
        for line in block.splitlines():
            if not line[:1].isspace():
                name, sep, _ = line.partition(":")
                assert sep, f"not a field: {line!r}"
                names.append(name)
        paragraphs.append(names)
    return paragraphs


DEP5 = [
    ["Format", "Upstream-Name", "Upstream-Contact", "Source", "Comment"],
    ["Files", "Copyright", "License"],  # *: the application
    ["Files", "Copyright", "License"],  # lib/*: the distributions
    ["Files", "Copyright", "License"],  # the application's own files in site-packages
    ["Files", "Copyright", "License"],  # python/*
    ["Files", "Copyright", "License"],  # the grafted libffi
    ["License"],  # the stand-alone MIT text
]


def test_metadata_package_golden(make_env: MakeEnv) -> None:
    """A project that states its summary, description, license, homepage and authors."""
    env = make_env(metadata=fake_metadata(), license_text=MIT_TEXT)
    package = plan_package(env, DebOptions())  # no --maintainer: the first author
    control = _text(package, "control", "control")
    _check_golden("metadata/control", control)
    assert _fields(control) == FIELDS
    assert package.fields["maintainer"] == "Jane Doe <jane@example.org>"
    assert package.fields["homepage"] == "https://example.org/hello"
    assert control.partition("Description: ")[2].startswith(
        "Greets the world from its own Python\n hello prints a greeting"
    )
    copyright_ = _text(package, "usr/share/doc/hello/copyright")
    _check_golden("metadata/copyright", copyright_)
    assert _paragraphs(copyright_) == DEP5
    assert "\nLicense: MIT\n /opt/hello/lib/python3.12/site-packages/hello-1.0.0.dist-info/" in (
        copyright_
    )
    assert " Permission is hereby granted, free of charge," in copyright_


def test_flags_win_over_metadata(make_env: MakeEnv) -> None:
    env = make_env(metadata=fake_metadata(), license_text=MIT_TEXT)
    package = plan_package(
        env,
        _options(
            maintainer="Max <max@example.org>",
            description="Given synopsis\nGiven text.",
            homepage="https://given.example.org/",
        ),
    )
    control = _text(package, "control", "control")
    assert "\nMaintainer: Max <max@example.org>\n" in control
    assert "\nHomepage: https://given.example.org/\n" in control
    assert "\nDescription: Given synopsis\n Given text.\n" in control
    assert "prints a greeting" not in control
    # A synopsis alone still gets the project's paragraph.
    package = plan_package(env, _options(description="Given synopsis"))
    assert "\nDescription: Given synopsis\n hello prints a greeting" in (
        _text(package, "control", "control")
    )


@pytest.mark.parametrize(
    ("changes", "maintainer"),
    [
        ({}, "Jane Doe <jane@example.org>"),
        ({"maintainers": ("Max <max@example.org>",)}, "Max <max@example.org>"),
        # Debian takes no comma in a name, and needs both a name and an address.
        (
            {"authors": ("Doe, Jane <j@example.org>", "bob@example.org", "Bob <b@example.org>")},
            "Bob <b@example.org>",
        ),
        ({"authors": ("Evil\nPackage: x <e@example.org>",)}, "Evil Package: x <e@example.org>"),
    ],
)
def test_maintainer_from_metadata(
    make_env: MakeEnv, changes: dict[str, Any], maintainer: str
) -> None:
    env = make_env(metadata=fake_metadata(**changes))
    assert plan_package(env, DebOptions()).fields["maintainer"] == maintainer


@pytest.mark.parametrize(
    "metadata", [None, fake_metadata(authors=("bob@example.org", "Jane Doe"), maintainers=())]
)
def test_no_maintainer_anywhere(make_env: MakeEnv, metadata: AppMetadata | None) -> None:
    with pytest.raises(ConfigError, match=r"no maintainer: give --maintainer .*DEBEMAIL"):
        plan_package(make_env(metadata=metadata), DebOptions())


@pytest.mark.parametrize(
    ("summary", "synopsis"),
    [
        ("A tool that greets.", "Tool that greets"),
        ("the greeter", "Greeter"),
        ("Another greeter...", "Another greeter..."),
        ("word " * 30, ("word " * 15).strip() + " ..."),
    ],
)
def test_synopsis_from_summary(make_env: MakeEnv, summary: str, synopsis: str) -> None:
    env = make_env(metadata=fake_metadata(summary=summary, description=""))
    control = _text(plan_package(env, _options()), "control", "control")
    assert f"\nDescription: {synopsis}\n" in control
    if synopsis.endswith(" ..."):  # the whole summary opens the extended description
        assert "\n word word" in control


@pytest.mark.parametrize(
    ("expression", "dep5"),
    [
        (None, "other"),
        ("MIT", "MIT"),
        ("MIT OR Apache-2.0", "MIT or Apache-2.0"),
        ("(MIT OR Apache-2.0) AND BSD-3-Clause", "MIT or Apache-2.0, and BSD-3-Clause"),
        ("MIT OR (ISC AND Zlib)", "MIT or ISC and Zlib"),
        (
            "GPL-2.0-or-later WITH Classpath-exception-2.0",
            "GPL-2.0-or-later with Classpath-exception-2.0 exception",
        ),
        ("MIT AND (ISC OR (Zlib AND (A OR B)))", "other"),  # deeper than DEP-5 can say
        ("MIT\nFiles: *", "other"),
    ],
)
def test_dep5_license(expression: str | None, dep5: str) -> None:
    assert deb.dep5_license(expression) == dep5


@pytest.mark.parametrize(
    ("expression", "common"), [("Apache-2.0", "Apache-2.0"), ("GPL-3.0-or-later", "GPL-3")]
)
def test_common_licenses_are_referred_to(make_env: MakeEnv, expression: str, common: str) -> None:
    """Debian has these texts in /usr/share/common-licenses; lintian calls a copy an error."""
    text = "Apache License\nVersion 2.0, January 2004\nTERMS AND CONDITIONS FOR USE ...\n"
    env = make_env(metadata=fake_metadata(license=expression), license_text=text)
    copyright_ = _text(plan_package(env, _options()), "usr/share/doc/hello/copyright")
    assert _paragraphs(copyright_) == DEP5
    assert copyright_.endswith(
        f"\n\nLicense: {expression}\n"
        f" On Debian systems, the full text of the {expression} license is in\n"
        f" /usr/share/common-licenses/{common}.\n .\n hello's own copy:\n"
        f" /opt/hello/{LICENSE_FILE}\n"
    )
    assert "TERMS AND CONDITIONS" not in copyright_


def test_license_without_files(make_env: MakeEnv) -> None:
    env = make_env(metadata=fake_metadata(license_files=()))
    copyright_ = _text(plan_package(env, _options()), "usr/share/doc/hello/copyright")
    assert _paragraphs(copyright_) == DEP5[:-1]  # no stand-alone paragraph without a text
    assert "\nLicense: MIT\n hello names no license file in its metadata. The text of MIT" in (
        copyright_
    )


def test_compound_license_text_stays_in_its_files_paragraph(make_env: MakeEnv) -> None:
    env = make_env(metadata=fake_metadata(license="MIT OR Apache-2.0"), license_text=MIT_TEXT)
    copyright_ = _text(plan_package(env, _options()), "usr/share/doc/hello/copyright")
    assert _paragraphs(copyright_) == DEP5[:-1]
    assert copyright_.count(" Permission is hereby granted") == 2  # "*" and the app's files


def test_hostile_project_metadata_golden(make_env: MakeEnv) -> None:
    """Project metadata is user text too: nothing in it may add a field or a paragraph."""
    hostile_license = (
        "MIT License\n\nFiles: *\nLicense: evil\n.\n\x1b[31mred\x07\r\nPackage: evil\x0c"
        "Format: x\u2028Comment: y\n\n\n"
    )
    metadata = fake_metadata(
        summary="Synopsis\nPackage: evil\n\nEssential: yes",
        description="Plain words in a paragraph\nDepends: rootkit\n.\nHomepage: x\x85X: y\n",
        license="MIT\nFiles: *",
        authors=("Evil\nPackage: x <e@example.org>", "Jane\n\nFormat: y"),
        maintainers=("Max <max@example.org>\nX-Evil: 1",),
        homepage="https://example.org/\nX: y",
        name="hello\nUpstream-Contact: evil",
        paths=("lib/python3.12/site-packages/hello.py\nFiles: *", "lib/x y", "/etc", "../x"),
        # Only files inside the environment are copied into the copyright file.
        license_files=(LICENSE_FILE, "/etc/passwd", "../../../../../../../../etc/passwd"),
    )
    env = make_env(metadata=metadata, license_text=hostile_license)
    package = plan_package(env, DebOptions())
    control = _text(package, "control", "control")
    assert _fields(control) == [f for f in FIELDS if f != "Homepage"]
    _check_golden("hostile-metadata/control", control)
    copyright_ = _text(package, "usr/share/doc/hello/copyright")
    _check_golden("hostile-metadata/copyright", copyright_)
    assert "root:" not in copyright_
    assert copyright_.count("dist-info/licenses/LICENSE:") == 1
    assert _paragraphs(copyright_) == [
        ["Format", "Upstream-Name", "Upstream-Contact", "Comment"],
        *DEP5[1:3],
        *DEP5[4:6],
    ]


# --- validation: bad values are refused before anything is built -------------------------


@pytest.mark.parametrize(
    "name",
    ["MyApp", "a", "-app", "app_name", "app name", "app\nPackage: x", "app\n", "äpp", ""],
)
def test_bad_package_names(make_env: MakeEnv, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid application name"):
        plan_package(make_env(name=name), _options())


@pytest.mark.parametrize(
    "version", ["1.0-1", "not a version", "1.0\nPackage: x", "", "1.0_1", "1.0:1", "1.0~rc1"]
)
def test_bad_versions(make_env: MakeEnv, version: str) -> None:
    with pytest.raises(ConfigError):
        plan_package(make_env(version=version), _options())


@pytest.mark.parametrize(
    ("version", "deb", "filename"),
    [
        (" 1.0\n", "1.0-1", "hello_1.0-1_amd64.deb"),  # PEP 440 strips the white space
        ("2!1.0rc1", "2:1.0~rc1-1", "hello_1.0~rc1-1_amd64.deb"),
        (
            "1.0.post1.dev2+local.7",
            "1.0+post1~dev2+local.local.7-1",
            "hello_1.0+post1~dev2+local.local.7-1_amd64.deb",
        ),
    ],
)
def test_versions_and_file_names(make_env: MakeEnv, version: str, deb: str, filename: str) -> None:
    env = make_env(version=version)
    package = plan_package(env, _options())
    assert package.version == deb
    assert f"\nVersion: {deb}\n" in _text(package, "control", "control")
    assert package.filename == filename == DebEmitter(_options()).filename(env)
    assert DebEmitter(_options(tree_only=True)).filename(env) == filename[: -len(".deb")]


@pytest.mark.parametrize(
    "maintainer",
    [
        "Jane Doe <jane@example.org>\nPackage: evil",
        "Jane Doe <jane@example.org>\rX: y",
        "Jane Doe",
        "<jane@example.org>",
        "Jane Doe <jane>",
        "Jane Doe <jane@example.org>, Bob <bob@example.org>",
        "Jane <a b@example.org>",
        " Jane <jane@example.org>",
        "Jane\x00 <jane@example.org>",
    ],
)
def test_bad_maintainers(maintainer: str) -> None:
    with pytest.raises(ConfigError, match="maintainer"):
        _options(maintainer=maintainer)


@pytest.mark.parametrize(
    "homepage",
    [
        "https://example.org\nPackage: evil",
        "https://example.org/\u2028X: y",
        "javascript:alert(1)",
        "ftp://example.org/",
        "https://example.org/a b",
        "https://",
        "example.org",
        'https://example.org/"',
    ],
)
def test_bad_homepages(homepage: str) -> None:
    with pytest.raises(ConfigError, match="homepage"):
        _options(homepage=homepage)


@pytest.mark.parametrize(
    "depends",
    [
        "foo\nPackage: evil",
        "foo, Package: evil",
        "foo (>= 1.0) [amd64]",
        "foo <!nocheck>",
        "foo (>= 1\n.0)",
        "foo (> 1.0)",
        "foo (>= x1.0)",
        "foo (>= 1.0-)",
        "Foo",
        "foo,",
        "foo | ",
        "foo\tbar",
        "foo\n",
    ],
)
def test_bad_depends(depends: str) -> None:
    with pytest.raises(ConfigError, match="--depends"):
        _options(depends=(depends,))


def test_depends_are_canonical_and_follow_libc() -> None:
    assert parse_depends(["libpq5(>=15)", "aa|bb ,cc:any ( << 2:1.0-1 )"]) == (
        "libpq5 (>= 15)",
        "aa | bb",
        "cc:any (<< 2:1.0-1)",
    )


def test_depends_field(make_env: MakeEnv) -> None:
    package = plan_package(make_env(glibc_floor="2.36"), _options(depends=("libpq5",)))
    assert package.fields["depends"] == "libc6 (>= 2.36), libpq5"
    assert plan_package(make_env(glibc_floor=""), _options()).fields["depends"] == ""
    assert "Depends" not in _fields(
        _text(plan_package(make_env(glibc_floor=""), _options()), "control", "control")
    )
    with pytest.raises(ConfigError, match="glibc_floor"):
        plan_package(make_env(glibc_floor="2.34\nX: y"), _options())


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"section": "misc\nPackage: x"}, "section"),
        ({"section": "Misc"}, "section"),
        ({"section": "misc\n"}, "section"),
        ({"entry_points": ("hello\n",)}, "--entry-point"),
        ({"compression": "bzip2"}, "compression"),
        ({"entry_points": ("../hello",)}, "--entry-point"),
        ({"entry_points": ("a b",)}, "--entry-point"),
        ({"description": "\nonly an extended description"}, "synopsis"),
        ({"description": "x" * 81}, "synopsis"),
        ({"service_command": "  "}, "empty"),
    ],
)
def test_bad_options(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _options(**changes)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"entry_points": ("nope",)}, "no such command"),
        ({"entry_points": ("hello",), "bin_links": False}, "exclude each other"),
        ({"service_command": "nope --x"}, "not a command"),
        ({"service_command": "bin/hello"}, "absolute path"),
        ({"service_command": "/opt/hello/bin/nope"}, "not in the environment"),
        ({"service_command": "hello 'unbalanced"}, "quotation"),
    ],
)
def test_options_checked_against_the_environment(
    make_env: MakeEnv, changes: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        plan_package(make_env(), _options(**changes))


def test_service_argument_with_newline_is_refused(make_env: MakeEnv) -> None:
    with pytest.raises(ConfigError, match="control character"):
        plan_package(make_env(), _options(service_command="hello 'a\nExecStartPre=/bin/evil'"))


@pytest.mark.parametrize(
    "prefix",
    [
        "/opt",
        "/opt/../etc/x",
        "/opt/my\napp",
        "opt/hello",
        "/opt/hello/",
        "/opt//x",
        "/",
        "/opt/\t",
    ],
)
def test_bad_prefixes(make_env: MakeEnv, prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        plan_package(make_env(prefix=prefix), _options())


def test_unknown_machine(make_env: MakeEnv) -> None:
    env = make_env()
    env = dataclasses.replace(
        env,
        manifest=dataclasses.replace(
            env.manifest, python=dataclasses.replace(env.manifest.python, machine="pdp11")
        ),
    )
    with pytest.raises(EmitError, match="pdp11"):
        plan_package(env, _options())


def test_arch_map() -> None:
    assert debian_arch("x86_64").arch == "amd64"
    assert debian_arch("aarch64").arch == "arm64"
    assert debian_arch("ppc64le").arch == "ppc64el"
    assert debian_arch("alpha").libc == "libc6.1"


def test_file_name_with_newline_is_refused(make_env: MakeEnv) -> None:
    env = make_env()
    (env.root / "lib/evil\nname").write_text("x")
    with pytest.raises(EmitError, match="control character"):
        plan_package(env, _options())


def test_special_files_are_refused(make_env: MakeEnv) -> None:
    env = make_env()
    os.mkfifo(env.root / "fifo")
    with pytest.raises(EmitError, match="fifo"):
        plan_package(env, _options())


# --- the data tree -----------------------------------------------------------------------


def test_data_tree(make_env: MakeEnv) -> None:
    package = plan_package(make_env(), _options())
    by_path = {e.arcname: e for e in package.data.entries}
    paths = list(by_path)
    assert paths[:3] == [".", "./opt", "./opt/hello"]
    for path in paths[1:]:  # every parent directory is a member of its own, and comes first
        parent = os.path.dirname(path)
        assert by_path[parent].kind is EntryKind.DIR
        assert paths.index(parent) < paths.index(path)
    assert by_path["./usr/bin/hello"].kind is EntryKind.SYMLINK
    assert by_path["./usr/bin/hello"].linkname == "/opt/hello/bin/hello"
    assert "./usr/bin/serve" not in by_path  # only the manifest's commands by default
    assert by_path["./opt/hello/bin/hello"].mode == 0o755
    assert by_path["./opt/hello/lib/python3.12/site-packages/hello.py"].mode == 0o644
    assert by_path["./opt/hello/bin/python"].linkname == "../python/bin/python3.12"
    assert by_path["./opt/hello/python/bin/python3"].kind is EntryKind.FILE
    hardlink = by_path["./opt/hello/python/bin/python3.12"]
    assert hardlink.kind is EntryKind.HARDLINK
    assert hardlink.linkname == "./opt/hello/python/bin/python3"
    assert by_path["./opt/hello/.venvpack/manifest.json"].kind is EntryKind.FILE
    assert all(e.mtime <= EPOCH for e in package.data.entries)
    assert not any(p.startswith("./etc/") for p in paths)


def test_md5sums_and_installed_size(make_env: MakeEnv) -> None:
    env = make_env()
    package = plan_package(env, _options())
    lines = _text(package, "md5sums", "control").splitlines()
    listed = {line[34:]: line[:32] for line in lines}
    assert all(line[32:34] == "  " for line in lines)
    interpreter = hashlib.md5((env.root / "python/bin/python3.12").read_bytes()).hexdigest()
    assert listed["opt/hello/python/bin/python3"] == interpreter
    assert listed["opt/hello/python/bin/python3.12"] == interpreter
    entries = package.data.entries
    regular = {e.arcname[2:] for e in entries if e.kind in (EntryKind.FILE, EntryKind.HARDLINK)}
    assert set(listed) == regular
    for entry in entries:
        if entry.kind is EntryKind.FILE:
            assert listed[entry.arcname[2:]] == hashlib.md5(_content(entry)).hexdigest()
    # 1 KiB per directory and symlink, whole KiB per file, hardlinks once.
    dirs = sum(e.kind is EntryKind.DIR for e in entries)
    links = sum(e.kind is EntryKind.SYMLINK for e in entries)
    files = sum(-(-e.size // 1024) for e in entries if e.kind is EntryKind.FILE)
    assert package.fields["installed_size"] == str(dirs + links + files)
    assert f"\nInstalled-Size: {dirs + links + files}\n" in _text(package, "control", "control")


def test_conffiles_for_files_under_etc(make_env: MakeEnv) -> None:
    package = plan_package(make_env(prefix="/etc/hello"), _options())
    conffiles = _text(package, "conffiles", "control").splitlines()
    assert "/etc/hello/lib/python3.12/site-packages/hello.py" in conffiles
    assert all(c.startswith("/etc/hello/") for c in conffiles)
    assert "etc/hello" not in _text(package, "md5sums", "control")  # like dh_md5sums
    assert "dir-or-file-in-opt" not in _text(package, "usr/share/lintian/overrides/hello")


def test_entry_points_and_no_bin_links(make_env: MakeEnv) -> None:
    env = make_env()
    package = plan_package(env, _options(entry_points=("serve",)))
    links = [e.arcname for e in package.data.entries if e.arcname.startswith("./usr/bin/")]
    assert links == ["./usr/bin/serve"]
    overrides = _text(package, "usr/share/lintian/overrides/hello")
    assert "no-manual-page [usr/bin/serve]" in overrides
    assert "usr/bin/hello" not in overrides
    package = plan_package(env, _options(bin_links=False))
    assert not any(e.arcname.startswith("./usr/bin") for e in package.data.entries)
    assert "no-manual-page" not in _text(package, "usr/share/lintian/overrides/hello")


def test_manifest_command_missing_from_bin(make_env: MakeEnv) -> None:
    env = make_env(commands=("hello", "gone"))
    with pytest.raises(ConfigError, match="'gone'"):
        plan_package(env, _options())


def test_prefix_colliding_with_usr_bin_links(make_env: MakeEnv) -> None:
    with pytest.raises(ConfigError, match="inside a directory of PATH"):
        plan_package(make_env(prefix="/usr/bin/hello"), _options())


# --- escaping filters --------------------------------------------------------------------


def test_deb_line_refuses_line_breaks() -> None:
    assert deb_line("a\tb") == "a\tb"
    for bad in ("a\nb", "a\rb", "a\x0bb", "a\x85b", "a\u2028b", "a\x00b"):
        with pytest.raises(EmitError):
            deb_line(bad)


def test_deb_description_shape() -> None:
    text = deb_description("  Syn\n\npara one\n  verbatim\n\n\n.dot\n\n")
    assert text == "Syn\n para one\n   verbatim\n .\n .\n  .dot"
    with pytest.raises(EmitError):
        deb_description("\n \n")
    wrapped = deb_description("s\n" + "word " * 40).splitlines()[1:]
    assert all(len(line) <= 80 and line.startswith(" ") for line in wrapped)


def test_systemd_exec_round_trip_cases() -> None:
    argv = ["/opt/x/bin/app", "plain", "a b", "100%", "$HOME", ";", 'q"t', "b\\s", ""]
    assert systemd.systemd_exec(argv) == (
        '/opt/x/bin/app plain "a b" "100%%" "$$HOME" \\; "q\\"t" "b\\\\s" ""'
    )
    with pytest.raises(EmitError):
        systemd.systemd_exec(["relative"])
    with pytest.raises(EmitError):
        systemd.systemd_exec(["/bin/x", "a\nb"])
    assert systemd.systemd_text("50% done \\") == "50%% done"
    with pytest.raises(EmitError):
        systemd.systemd_text("a\nExecStart=/bin/evil")


def test_maintainer_from_environment() -> None:
    assert maintainer_from_environment({"DEBEMAIL": "A B <a@b.org>"}) == "A B <a@b.org>"
    assert maintainer_from_environment({"DEBFULLNAME": "A B", "DEBEMAIL": "a@b.org"}) == (
        "A B <a@b.org>"
    )
    # Incomplete: not an error yet, the application's metadata may name someone.
    assert maintainer_from_environment({"DEBEMAIL": "a@b.org"}) == ""
    assert maintainer_from_environment({}) == ""
    with pytest.raises(ConfigError, match="maintainer"):
        maintainer_from_environment({"DEBEMAIL": "A <a@b.org>\nX: y"})


def test_source_date_epoch_sets_the_changelog_date(
    make_env: MakeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    package = plan_package(make_env(), DebOptions(maintainer=MAINTAINER))
    assert package.mtime == 86400
    changelog = _content(_member(package, "usr/share/doc/hello/changelog.Debian.gz"))
    assert b"Fri, 02 Jan 1970 00:00:00 +0000" in gzip.decompress(changelog)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        plan_package(make_env(), DebOptions(maintainer=MAINTAINER))


# --- the tree for dpkg-deb --build ---------------------------------------------------------


def test_tree_only(make_env: MakeEnv, tmp_path: Path) -> None:
    env = make_env()
    emitter = DebEmitter(_options(tree_only=True, service_command="hello"))
    dest = tmp_path / "out" / emitter.filename(env)
    assert emitter.emit(env, dest) == dest
    assert (dest / "DEBIAN/control").read_text().startswith("Package: hello\n")
    assert os.access(dest / "DEBIAN/postinst", os.X_OK)
    assert os.readlink(dest / "usr/bin/hello") == "/opt/hello/bin/hello"
    assert (dest / "opt/hello/bin/hello").stat().st_mode & 0o7777 == 0o755
    first = (dest / "opt/hello/python/bin/python3").stat()
    assert first.st_ino == (dest / "opt/hello/python/bin/python3.12").stat().st_ino
    assert os.listdir(dest.parent) == [dest.name]


def test_failed_emit_leaves_nothing(
    make_env: MakeEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env()
    out = tmp_path / "out"
    out.mkdir()

    def fail(*args: object, **kwargs: object) -> None:
        raise EmitError("disk full")

    with monkeypatch.context() as patch:  # fails after data.tar is written
        patch.setattr(deb, "write_ar", fail)
        with pytest.raises(EmitError, match="disk full"):
            DebEmitter(_options()).emit(env, out / "hello.deb")
    with monkeypatch.context() as patch:  # fails half-way through the tree
        patch.setattr("shutil.copyfile", fail)
        with pytest.raises(EmitError, match="disk full"):
            DebEmitter(_options(tree_only=True)).emit(env, out / "hello")
    (env.root / "bin/bad\nname").write_text("")  # fails while planning
    for tree_only in (True, False):
        with pytest.raises(EmitError):
            DebEmitter(_options(tree_only=tree_only)).emit(env, out / "hello")
    assert os.listdir(out) == []


def test_deb_members_read_back_with_tarfile(make_env: MakeEnv, tmp_path: Path) -> None:
    """The .deb taken apart by hand (ar is three fixed-size headers) and read by tarfile."""
    env = make_env()
    for compression in ("xz", "gzip", "zstd"):
        dest = DebEmitter(_options(compression=compression)).emit(env, tmp_path / "p.deb")
        raw = dest.read_bytes()
        assert raw.startswith(b"!<arch>\n")
        members: dict[str, bytes] = {}
        offset = 8
        while offset < len(raw):
            header = raw[offset : offset + 60]
            name, size = header[:16].decode().strip(), int(header[48:58])
            assert header[58:60] == b"`\n"
            assert int(header[16:28]) == EPOCH
            members[name] = raw[offset + 60 : offset + 60 + size]
            offset += 60 + size + size % 2
        suffix = {"xz": "xz", "gzip": "gz", "zstd": "zst"}[compression]
        assert list(members) == ["debian-binary", f"control.tar.{suffix}", f"data.tar.{suffix}"]
        assert members["debian-binary"] == b"2.0\n"
        control = _untar(members[f"control.tar.{suffix}"], compression)
        data = _untar(members[f"data.tar.{suffix}"], compression)
        assert control["./control"].startswith(b"Package: hello\n")
        for line in control["./md5sums"].decode().splitlines():
            md5, path = line.split("  ")
            assert hashlib.md5(data[f"./{path}"]).hexdigest() == md5
        assert data["./opt/hello/bin/hello"] == (env.root / "bin/hello").read_bytes()


def _untar(blob: bytes, compression: str) -> dict[str, bytes]:
    if compression == "zstd":
        blob = zstandard.ZstdDecompressor().decompress(blob)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        for info in tar:
            assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "root", "root")
            assert info.mtime <= EPOCH
            assert not info.pax_headers
            if info.isfile():
                extracted = tar.extractfile(info)
                assert extracted is not None
                files[info.name] = extracted.read()
            elif info.islnk():
                files[info.name] = files[info.linkname]
    return files


def test_golden_files_are_plain_text() -> None:
    # Golden files must not hide control characters that the tests above promise are gone.
    for path in GOLDEN.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]", text), path


@pytest.mark.parametrize("metadata", [None, fake_metadata()])
def test_maintainer_fallbacks(
    make_env: MakeEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    metadata: AppMetadata | None,
) -> None:
    """No --maintainer and no DEBFULLNAME/DEBEMAIL: the project's authors, else one error.

    (Through the emitter as the CLI calls it: the fake tree's ELF files would not pass the
    audit that ``--from`` runs.)"""
    for name in ("DEBEMAIL", "EMAIL", "DEBFULLNAME", "NAME"):
        monkeypatch.delenv(name, raising=False)
    env = make_env(metadata=metadata)
    out = tmp_path / "out"
    given = maintainer_from_environment(os.environ)
    assert given == ""
    if metadata is None:
        with pytest.raises(ConfigError, match=r"^no maintainer: give --maintainer"):
            DebEmitter(_options(maintainer=given, tree_only=True)).emit(env, out)
        assert not out.exists()
        return
    DebEmitter(_options(maintainer=given, tree_only=True)).emit(env, out)
    control = (out / "DEBIAN" / "control").read_text()
    assert "\nMaintainer: Jane Doe <jane@example.org>\n" in control
    monkeypatch.setenv("DEBFULLNAME", "Deb Full")
    monkeypatch.setenv("DEBEMAIL", "deb@example.org")
    given = maintainer_from_environment(os.environ)
    DebEmitter(_options(maintainer=given, tree_only=True)).emit(env, tmp_path / "again")
    control = (tmp_path / "again" / "DEBIAN" / "control").read_text()
    assert "\nMaintainer: Deb Full <deb@example.org>\n" in control
    # A bad --maintainer is refused when the options are made, before anything is built.
    with pytest.raises(ConfigError, match="invalid maintainer"):
        _options(maintainer="nobody")


@pytest.mark.parametrize("name", ["python3", "python", "pip3", "activate.fish"])
def test_interpreter_links_are_refused_as_entry_points(make_env: MakeEnv, name: str) -> None:
    # Linking python3 into /usr/bin: /usr/bin/python3 would become the bundled interpreter
    with pytest.raises(ConfigError, match="shadow"):
        plan_package(make_env(), _options(entry_points=(name,)))


# --- service packaging: user, files, configuration files, relations, versions ----------


def test_service_user_package_golden(make_env: MakeEnv, tmp_path: Path) -> None:
    conf = tmp_path / "hello.toml"
    conf.write_text("greeting = 'hi'\n")
    extra = tmp_path / "README.hello"
    extra.write_text("read me\n")
    extra.chmod(0o600)
    options = _options(
        service_command="serve --config /etc/hello/hello.toml",
        user="hello",
        config_files=(f"{conf}:/etc/hello/hello.toml:0640",),
        files=(f"{extra}:/usr/share/hello/README",),
        provides=("hello-api (= 1.0)",),
        conflicts=("hello-old < 2",),
        replaces=("hello-old (<< 2)",),
        recommends=("nginx",),
        release="3",
        epoch=2,
    )
    package = plan_package(make_env(), options)
    assert package.version == "2:1.0.0-3"
    assert package.filename == "hello_1.0.0-3_amd64.deb"
    control = _text(package, "control", "control")
    for line in (
        "Version: 2:1.0.0-3",
        "Recommends: nginx",
        "Conflicts: hello-old (<< 2)",
        "Replaces: hello-old (<< 2)",
        "Provides: hello-api (= 1.0)",
    ):
        assert f"\n{line}\n" in control
    assert package.conffiles == ("/etc/hello/hello.toml",)
    assert _member(package, "etc/hello/hello.toml").mode == 0o640
    assert _text(package, "etc/hello/hello.toml") == "greeting = 'hi'\n"
    assert _member(package, "usr/share/hello/README").mode == 0o644
    unit = _text(package, "usr/lib/systemd/system/hello.service")
    for line in ("User=hello", "Group=hello", "StateDirectory=hello", "NoNewPrivileges=yes"):
        assert f"\n{line}\n" in unit
    _check_golden("user/control", control)
    _check_golden("user/postinst", _text(package, "postinst", "control"))
    _check_golden("user/hello.service", unit)
    # The user is never removed: no maintainer script names userdel or deluser.
    for script in package.scripts.values():
        assert "userdel" not in script
        assert "deluser" not in script


def test_user_without_service_has_only_a_postinst(make_env: MakeEnv) -> None:
    package = plan_package(make_env(), _options(user="hello"))
    assert sorted(package.scripts) == ["postinst"]
    assert "useradd --system" in package.scripts["postinst"]


def test_extra_file_inside_the_prefix_is_refused(make_env: MakeEnv) -> None:
    options = _options(files=(f"{__file__}:/opt/hello/extra",))
    with pytest.raises(ConfigError, match="inside the prefix"):
        plan_package(make_env(), options)


def test_member_compression_level_is_checked_when_the_options_are_made() -> None:
    assert _options(compression="xz", level=9).level == 9
    with pytest.raises(ConfigError, match=r"gzip level must be 1\.\.9"):
        _options(level=10)  # the default compression's range


@pytest.mark.parametrize(
    ("name", "summary", "synopsis"),
    [
        (
            "httpie",
            "HTTPie: modern, user-friendly command-line HTTP client for the API era.",
            "Modern, user-friendly command-line HTTP client for the API era",
        ),
        ("hello", "hello - says hello", "Says hello"),
        ("hello", "Hello is a friendly greeter.", "Friendly greeter"),
        ("hello", "hello", "hello"),  # nothing would be left: kept
        ("hello", "hellothere greets", "hellothere greets"),  # another word: as written
    ],
)
def test_synopsis_does_not_start_with_the_package_name(
    make_env: MakeEnv, name: str, summary: str, synopsis: str
) -> None:
    """lintian: description-starts-with-package-name (httpie 3.2.4's summary)."""
    env = make_env(name=name, prefix=f"/opt/{name}", metadata=fake_metadata(summary=summary))
    package = plan_package(env, _options())
    assert package.fields["description"].split("\n")[0] == synopsis


def test_timestamped_gzip_override_only_when_the_tree_has_one(make_env: MakeEnv) -> None:
    """numpy's test data holds gzip files with a time in their header (lintian's
    package-contains-timestamped-gzip); the override is there only when it is used."""
    env = make_env()
    overrides = _text(plan_package(env, _options()), "usr/share/lintian/overrides/hello")
    assert "timestamped-gzip" not in overrides
    data = env.root / "lib/python3.12/site-packages/data.pkl.gz"
    data.write_bytes(gzip.compress(b"x", mtime=1712919973))
    overrides = _text(plan_package(env, _options()), "usr/share/lintian/overrides/hello")
    assert "hello: package-contains-timestamped-gzip * [opt/hello/*]" in overrides
