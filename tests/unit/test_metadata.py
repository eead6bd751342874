"""Core metadata of the application, read from METADATA texts written here (no build)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fakes import fake_manifest
from venvpack import metadata
from venvpack.manifest import AppMetadata, Manifest
from venvpack.metadata import (
    homepage_of,
    one_line,
    parse_spdx,
    read_app_metadata,
    spdx_expression,
)

SITE = "lib/python3.12/site-packages"

METADATA_24 = """\
Metadata-Version: 2.4
Name: Hello_World
Version: 1.0.0
Summary: Says hello
Project-URL: Issues, https://example.org/hello/issues
Project-URL: Source Code, https://example.org/hello/src
Project-URL: Home-Page, https://example.org/hello
Author-email: "Doe, Jane" <jane@example.org>, bob@example.org, Ann Other <ann@example.org>
Maintainer-email: Max Mustermann <max@example.org>
License-Expression: mit or (apache-2.0 and BSD-3-Clause)
License-File: LICENSE
License-File: licenses/NOTICE.txt
License-File: MISSING
Classifier: License :: OSI Approved :: MIT License
Description-Content-Type: text/markdown

# Hello

The body is the description.
"""

METADATA_21 = """\
Metadata-Version: 2.1
Name: hello-world
Version: 0.9
Summary: An old-style
  folded summary
Home-page: https://old.example.org/
Author: Jane Doe
Author-email: jane@example.org
License: GNU General Public License, version 2, see COPYING for the whole text
Classifier: Programming Language :: Python
Classifier: License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)
Description: First line
        |second line
        |
        |third

"""


def _install(tmp_path: Path, text: str, dist: str = "Hello_World-1.0.0") -> Path:
    """An environment root with one distribution whose METADATA is ``text``."""
    root = tmp_path / "env"
    dist_info = root / SITE / f"{dist}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(text, encoding="utf-8")
    (root / SITE / "hello").mkdir()
    (root / SITE / "hello/__init__.py").write_text("")
    (dist_info / "RECORD").write_text(
        f"hello/__init__.py,,\nhello_extra.py,,\n{dist}.dist-info/METADATA,,\n"
        f"../../../bin/hello,,\n{dist}.dist-info/RECORD,,\n"
    )
    (root / SITE / "hello_extra.py").write_text("")
    return root


def test_metadata_2_4(tmp_path: Path) -> None:
    root = _install(tmp_path, METADATA_24)
    dist_info = root / SITE / "Hello_World-1.0.0.dist-info"
    (dist_info / "licenses/licenses").mkdir(parents=True)
    (dist_info / "licenses/LICENSE").write_text("MIT text\n")
    (dist_info / "licenses/licenses/NOTICE.txt").write_text("notice\n")
    meta = read_app_metadata(root / SITE, "hello-world", root)
    assert meta is not None
    assert (meta.name, meta.version, meta.summary) == ("Hello_World", "1.0.0", "Says hello")
    assert meta.description == "# Hello\n\nThe body is the description."
    assert meta.description_content_type == "text/markdown"
    # License-Expression wins over classifiers; operators normalised, parentheses kept.
    assert meta.license == "mit OR (apache-2.0 AND BSD-3-Clause)"
    assert meta.license_files == (
        f"{SITE}/Hello_World-1.0.0.dist-info/licenses/LICENSE",
        f"{SITE}/Hello_World-1.0.0.dist-info/licenses/licenses/NOTICE.txt",
    )
    assert meta.homepage == "https://example.org/hello"  # "Home-Page" is PEP 753's homepage
    assert meta.urls[0] == ("Issues", "https://example.org/hello/issues")
    assert meta.authors == (
        "Doe, Jane <jane@example.org>",
        "bob@example.org",
        "Ann Other <ann@example.org>",
    )
    assert meta.maintainers == ("Max Mustermann <max@example.org>",)
    assert meta.paths == (
        f"{SITE}/Hello_World-1.0.0.dist-info",
        f"{SITE}/hello",
        f"{SITE}/hello_extra.py",
    )


def test_metadata_2_1_with_classifiers_and_legacy_fields(tmp_path: Path) -> None:
    root = _install(tmp_path, METADATA_21, dist="hello_world-0.9")
    dist_info = root / SITE / "hello_world-0.9.dist-info"
    (dist_info / "COPYING").write_text("GPL text\n")
    (dist_info / "METADATA").write_text(
        METADATA_21.replace("Classifier: Prog", "License-File: COPYING\nClassifier: Prog")
    )
    meta = read_app_metadata(root / SITE, "Hello.World", root)
    assert meta is not None
    assert meta.summary == "An old-style folded summary"
    assert meta.description == "First line\nsecond line\n\nthird"
    # The License: field is prose, so the one license classifier decides.
    assert meta.license == "GPL-2.0-or-later"
    assert meta.license_files == (f"{SITE}/hello_world-0.9.dist-info/COPYING",)
    assert meta.urls == (("Homepage", "https://old.example.org/"),)
    assert meta.homepage == "https://old.example.org/"
    assert meta.authors == ("Jane Doe <jane@example.org>",)  # Author + bare Author-email
    assert meta.maintainers == ()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("License: MIT\n", "MIT"),
        ("License: Apache-2.0 OR MIT\n", "Apache-2.0 OR MIT"),
        ("License: BSD\n", None),  # not an SPDX identifier
        ("License: MIT License\n", None),
        ("License: UNKNOWN\n", None),
        ("Classifier: License :: OSI Approved :: BSD License\n", None),  # which BSD?
        (
            "Classifier: License :: OSI Approved :: MIT License\n"
            "Classifier: License :: OSI Approved :: ISC License (ISCL)\n",
            None,  # "and" or "or"? not ours to guess
        ),
        ("Classifier: License :: OSI Approved :: ISC License (ISCL)\n", "ISC"),
        (
            "License-Expression: MIT\n %(id)\n"
            "Classifier: License :: OSI Approved :: ISC License (ISCL)\n",
            None,
        ),
        ("License-Expression: GPL-2.0-or-later WITH Classpath-exception-2.0\n", None),
    ],
)
def test_license_sources(tmp_path: Path, fields: str, expected: str | None) -> None:
    text = f"Metadata-Version: 2.4\nName: hello-world\nVersion: 1\n{fields}\n"
    root = _install(tmp_path, text)
    meta = read_app_metadata(root / SITE, "hello-world", root)
    assert meta is not None
    if "WITH" in fields:
        expected = "GPL-2.0-or-later WITH Classpath-exception-2.0"
    assert meta.license == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MIT", "MIT"),
        ("  MIT  ", "MIT"),
        ("mit and isc or 0BSD", "(mit AND isc) OR 0BSD"),
        ("(MIT)", "MIT"),
        ("((MIT OR ISC)) AND Zlib", "(MIT OR ISC) AND Zlib"),
        ("GPL-2.0+ WITH Bison-exception-2.2", "GPL-2.0+ WITH Bison-exception-2.2"),
        ("LicenseRef-Proprietary", "LicenseRef-Proprietary"),
        ("MIT\nRequires: evil", None),
        ("MIT %(id)", None),
        ("MIT AND", None),
        ("(MIT", None),
        ("MIT)", None),
        ("And MIT", None),
        ("MIT WITH", None),
        ("MIT, ISC", None),
        ("", None),
    ],
)
def test_spdx_expressions(text: str, expected: str | None) -> None:
    assert spdx_expression(text) == expected


def test_spdx_tree() -> None:
    tree = parse_spdx("A OR B AND C WITH E")
    assert tree == metadata.SpdxCompound(
        "OR",
        (
            metadata.SpdxLicense("A"),
            metadata.SpdxCompound(
                "AND", (metadata.SpdxLicense("B"), metadata.SpdxLicense("C", "E"))
            ),
        ),
    )


@pytest.mark.parametrize(
    ("authors", "emails", "expected"),
    [
        (
            "",
            '"Jane Doe" <jane@example.org>, bob@example.org',
            ("Jane Doe <jane@example.org>", "bob@example.org"),
        ),
        ("", '"Doe, Jane" <jane@example.org>', ("Doe, Jane <jane@example.org>",)),
        ("Jane Doe, Bob", "", ("Jane Doe", "Bob")),
        ("Jane Doe", "jane@example.org", ("Jane Doe <jane@example.org>",)),
        ("Team", "Jane <jane@example.org>", ("Jane <jane@example.org>", "Team")),
        ("", "not an address", ()),
        ("Evil\n Name", "x\x07y@example.org", ("Evil Name <x y@example.org>",)),
    ],
)
def test_people(authors: str, emails: str, expected: tuple[str, ...]) -> None:
    assert metadata._people(authors, emails) == expected


def test_homepage_choice() -> None:
    assert homepage_of([("Source", "https://s.org"), ("Homepage", "https://h.org")]) == (
        "https://h.org"
    )
    assert homepage_of([("Docs", "https://d.org"), ("Repository", "https://r.org")]) == (
        "https://r.org"
    )
    assert homepage_of([("home page", "javascript:alert(1)"), ("GitHub", "https://g.org")]) == (
        "https://g.org"
    )
    assert homepage_of([("Issues", "https://i.org"), ("Funding", "https://f.org")]) is None
    assert homepage_of([("Homepage", "https://x.org/a b")]) is None


def test_missing_distribution(tmp_path: Path) -> None:
    root = _install(tmp_path, METADATA_24)
    assert read_app_metadata(root / SITE, "other", root) is None


def test_one_line() -> None:
    assert one_line("a\n  b\r\n\tc\x00d\u2028e") == "a b c d e"


def test_manifest_round_trip_with_and_without_metadata(tmp_path: Path) -> None:
    root = _install(tmp_path, METADATA_24)
    meta = read_app_metadata(root / SITE, "hello-world", root)
    with_meta = fake_manifest(metadata=meta)
    assert Manifest.from_json(with_meta.to_json()) == with_meta
    without = fake_manifest()
    assert Manifest.from_json(without.to_json()) == without
    # A manifest written before the field existed (``--from`` an older environment).
    old = json.loads(without.to_json())
    del old["metadata"]
    assert Manifest.from_json(json.dumps(old)).metadata is None


def test_license_policy_is_valid() -> None:
    policy = metadata._license_policy()
    assert policy.classifiers["License :: OSI Approved :: MIT License"] == "MIT"
    assert "MIT" in policy.identifiers


def test_app_metadata_from_dict_defaults() -> None:
    meta = AppMetadata.from_dict({"name": "x", "version": "1"})
    assert meta == AppMetadata(name="x", version="1")
    assert dataclasses.asdict(meta)["license"] is None


@pytest.mark.parametrize(
    "metadata", [{"name": "x"}, {"name": "x", "version": "1", "urls": [["only a label"]]}, []]
)
def test_malformed_metadata_in_a_manifest(metadata: object) -> None:
    data = json.loads(fake_manifest().to_json())
    data["metadata"] = metadata
    if metadata == []:  # empty: as if absent
        assert Manifest.from_json(json.dumps(data)).metadata is None
        return
    # BuiltEnv.load turns it into "... is not a venvpack manifest: ..."
    with pytest.raises(ValueError, match=r"version|unpack"):
        Manifest.from_json(json.dumps(data))
