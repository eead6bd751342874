"""Every rule a .deb and an .rpm share, run through both formats: the same verdict, the same
exit code, the same unit.

The options go through the real command line (``venvpack deb --tree-only`` and ``venvpack rpm
--spec-only``, ``--from`` a small environment, so no dpkg-deb or rpmbuild is needed); the
tampered manifest fields go through each format's emitter, as made by its ``Format`` from
the same option values (the ``--from`` audit would refuse most of them before an emitter
sees them). One table holds the cases: a rule that one format applies differently from the
other makes its row fail.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from fakes import LICENSE_FILE, MIT_TEXT, fake_env_tree, fake_manifest, fake_metadata
from sandbox import unavailable
from venvpack.cli import main
from venvpack.emit import deb, rpm
from venvpack.errors import VenvpackError
from venvpack.manifest import BuiltEnv
from venvpack.system_package import license_of_text

MAINTAINER = "Jane Doe <jane@example.org>"
FORMATS = ("deb", "rpm")
# What makes each format write what it would package, without its build tool.
TREE_FLAGS = {"deb": ["--tree-only"], "rpm": ["--spec-only"]}
OK = 0
USAGE = 2  # ConfigError: a bad option, or a manifest field no package can hold
EMIT = 7

SOURCE = __file__  # any readable file, for --config-file
_BASE_ACCOUNTS = ("disk", "shadow", "sudo", "staff", "kmem", "nobody", "nogroup", "wheel", "adm")
_BASE_FILES = (
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d/hello",
    "/etc/crontab",
    "/etc/cron.d/hello",
    "/etc/cron.daily/hello",
    "/etc/pam.d/hello",
    "/etc/ld.so.preload",
)

# (id, flags, exit code of both formats)
OPTION_CASES: list[tuple[str, list[str], int]] = [
    # --- URLs: http(s) with a host, nothing else ---------------------------------------------
    ("url-http", ["--homepage", "http://example.org/x"], OK),
    ("url-https", ["--homepage", "https://example.org/x?a=1#b"], OK),
    ("url-ftp", ["--homepage", "ftp://example.org/x"], USAGE),
    ("url-file", ["--homepage", "file:///etc/passwd"], USAGE),
    ("url-mailto", ["--homepage", "mailto:jane@example.org"], USAGE),
    ("url-javascript", ["--homepage", "javascript:alert(1)"], USAGE),
    ("url-no-scheme", ["--homepage", "example.org"], USAGE),
    ("url-no-host", ["--homepage", "https://"], USAGE),
    ("url-blank", ["--homepage", "https://example.org/a b"], USAGE),
    ("url-quote", ["--homepage", 'https://example.org/"'], USAGE),
    ("url-newline", ["--homepage", "https://example.org/\nDepends: evil"], USAGE),
    ("url-line-separator", ["--homepage", "https://example.org/\u2028X: y"], USAGE),
    ("url-macro", ["--homepage", "https://example.org/%{lua:os.execute('id')}"], OK),
    # --- text: synopsis and extended description -----------------------------------------------
    ("text-plain", ["--description", "Greets\nA longer text."], OK),
    ("text-field-injection", ["--description", "x\nDepends: evil"], OK),
    ("text-field-injection-cr", ["--description", "x\rDepends: evil"], USAGE),
    ("text-bell", ["--description", "Synopsis\x07"], USAGE),
    ("text-escape", ["--description", "Syn\n\x1b[31mred"], USAGE),
    ("text-nel", ["--description", "Syn\x85Depends: evil"], USAGE),
    ("text-line-separator", ["--description", "Syn\u2028Depends: evil"], USAGE),
    ("text-macros-inside", ["--description", "Uses %{name}, %(id) and 100%"], OK),
    ("text-macro-line", ["--description", "Syn\n%(touch /tmp/venvpack-canary)"], USAGE),
    ("text-lua-line", ["--description", "Syn\n%{lua: os.execute('id')}"], USAGE),
    ("text-include-line", ["--description", "Syn\n  %include /etc/passwd"], USAGE),
    ("text-comment-line", ["--description", "Syn\n# Heading"], USAGE),
    ("text-shell", ["--description", "Syn $(rm -rf /) `id`; a | b && c > d < e"], OK),
    ("text-empty-synopsis", ["--description", "\nonly a body"], USAGE),
    ("text-long-synopsis", ["--description", "x" * 81], USAGE),
    ("text-80-synopsis", ["--description", "x" * 80], OK),
    # --- the maintainer --------------------------------------------------------------------
    ("maintainer-injection", ["--maintainer", f"{MAINTAINER}\nDepends: evil"], USAGE),
    ("maintainer-name-only", ["--maintainer", "Jane Doe"], USAGE),
    ("maintainer-two", ["--maintainer", f"{MAINTAINER}, Bob <bob@example.org>"], USAGE),
    ("maintainer-macro", ["--maintainer", "%(id) <x@example.org>"], OK),
    # --- relations: one grammar, each operator in each spelling ------------------------------
    ("relation-name", ["--conflicts", "old"], OK),
    ("relation-deb-lt-lt", ["--conflicts", "old (<< 2)"], OK),
    ("relation-deb-le", ["--conflicts", "old (<= 2)"], OK),
    ("relation-deb-eq", ["--replaces", "old (= 2)"], OK),
    ("relation-deb-ge", ["--recommends", "new (>= 2)"], OK),
    ("relation-deb-gt-gt", ["--conflicts", "old (>> 2)"], OK),
    ("relation-rpm-lt", ["--conflicts", "old < 2"], OK),
    ("relation-rpm-le", ["--conflicts", "old <= 2"], OK),
    ("relation-rpm-eq", ["--replaces", "old = 2"], OK),
    ("relation-rpm-ge", ["--recommends", "new >= 2"], OK),
    ("relation-rpm-gt", ["--conflicts", "old > 2"], OK),
    ("relation-epoch-revision", ["--conflicts", "old (<< 1:2.0-1)"], OK),
    ("relation-deb-obsolete-lt", ["--conflicts", "old (< 2)"], USAGE),
    ("relation-deb-obsolete-gt", ["--conflicts", "old (> 2)"], USAGE),
    ("relation-two-revisions", ["--conflicts", "old (<< 2.0-1-1)"], USAGE),
    ("relation-version-letter", ["--conflicts", "old >= v2"], USAGE),
    ("relation-upper-case", ["--conflicts", "Old"], USAGE),
    ("relation-two", ["--conflicts", "old, evil"], USAGE),
    ("relation-alternative", ["--recommends", "a | b"], USAGE),
    ("relation-newline", ["--conflicts", "old\nDepends: evil"], USAGE),
    ("relation-macro", ["--conflicts", "old >= %{version}"], USAGE),
    ("relation-shell", ["--conflicts", "old;rm"], USAGE),
    ("provides-version", ["--provides", "api (= 1.0)"], OK),
    ("provides-range", ["--provides", "api (>= 1.0)"], USAGE),
    # --- users -----------------------------------------------------------------------------
    ("user", ["--user", "app"], OK),
    ("user-root", ["--user", "root"], USAGE),
    ("user-upper-case", ["--user", "App"], USAGE),
    ("user-shell", ["--user", "a;b"], USAGE),
    ("user-option", ["--user", "-x"], USAGE),
    ("user-31-characters", ["--user", "a" * 31], OK),
    ("user-long", ["--user", "a" * 32], USAGE),  # systemd warns about it on every load
    ("user-newline", ["--user", "app\n"], USAGE),
    # A user or group a standard system already has (policy/system-base.json), never the
    # build host's: the service would join a privileged group, or postinst fail (nobody's
    # group is nogroup on Debian).
    *((f"user-{name}", ["--user", name], USAGE) for name in _BASE_ACCOUNTS),
    # ... unless it is that account on purpose; root never.
    ("existing-user", ["--user", "www-data", "--existing-user"], OK),
    ("existing-user-root", ["--user", "root", "--existing-user"], USAGE),
    ("existing-user-alone", ["--existing-user"], USAGE),
    # --- files -------------------------------------------------------------------------------
    ("config-file", ["--config-file", f"{SOURCE}:/etc/hello/hello.toml"], OK),
    *(
        (f"config-file-{dest}", ["--config-file", f"{SOURCE}:{dest}"], USAGE)
        for dest in _BASE_FILES
    ),
    # --- service commands --------------------------------------------------------------------
    ("service", ["--service-command", "hello --port 80"], OK),
    ("service-specials", ["--service-command", "hello '100%' '$HOME' ';' 'a \"b\"'"], OK),
    ("service-injection", ["--service-command", "hello 'a\nExecStartPre=/bin/evil'"], USAGE),
    ("service-missing", ["--service-command", "nope"], USAGE),
    ("service-relative", ["--service-command", "bin/hello"], USAGE),
    ("service-unbalanced", ["--service-command", "hello 'unbalanced"], USAGE),
    ("service-absolute", ["--service-command", "/usr/bin/env true"], OK),
    ("service-missing-inside", ["--service-command", "/opt/hello/bin/nope"], USAGE),
    # --- release and epoch ---------------------------------------------------------------------
    ("release", ["--release", "2"], OK),
    ("release-macro", ["--release", "1%{?dist}"], USAGE),
    ("release-hyphen", ["--release", "1-2"], USAGE),
    ("epoch", ["--epoch", "3"], OK),
    ("epoch-negative", ["--epoch", "-1"], USAGE),
]


@pytest.fixture(autouse=True)
def _no_maintainer_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEBEMAIL", "EMAIL", "DEBFULLNAME", "NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


@pytest.fixture(scope="module")
def env_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_env_tree(tmp_path_factory.mktemp("rules") / "env")


def _cli(fmt: str, root: Path, out: Path, flags: list[str]) -> int:
    if "--maintainer" not in flags:
        flags = ["--maintainer", MAINTAINER, *flags]
    argv = [fmt, "-q", "--from", str(root), *TREE_FLAGS[fmt], "-o", str(out), *flags]
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


@pytest.mark.parametrize(
    ("flags", "code"),
    [pytest.param(flags, code, id=case) for case, flags, code in OPTION_CASES],
)
def test_options_get_the_same_verdict_from_deb_and_rpm(
    env_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    code: int,
) -> None:
    results = {}
    for fmt in FORMATS:
        out = tmp_path / fmt
        results[fmt] = _cli(fmt, env_root, out, flags)
        err = capsys.readouterr().err
        if results[fmt]:
            assert err.startswith("venvpack: error: "), err
            assert err.count("\n") == 1, err
            assert not out.exists() or not any(out.iterdir())  # nothing written
    assert results == {"deb": code, "rpm": code}


# --- tampered manifest fields ------------------------------------------------------------------

# (id, changes to the manifest, exit code of both formats)
MANIFEST_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("version-epoch", {"version": "2!1.0"}, OK),
    ("version-newline", {"version": "1.0\nPackage: evil"}, USAGE),
    ("version-words", {"version": "not a version"}, USAGE),
    ("version-revision", {"version": "1.0-1"}, USAGE),
    ("version-macro", {"version": "1.0 %(id)"}, USAGE),
    ("name-upper-case", {"name": "Hello"}, USAGE),
    ("name-newline", {"name": "hello\nPackage: evil"}, USAGE),
    ("name-option", {"name": "-hello"}, USAGE),
    ("name-path", {"name": "../hello"}, USAGE),
    ("prefix-system", {"prefix": "/opt"}, USAGE),
    ("prefix-path-dir", {"prefix": "/usr/bin/hello"}, USAGE),
    ("prefix-blank", {"prefix": "/opt/my app"}, USAGE),
    ("prefix-macro", {"prefix": "/opt/%{x}"}, USAGE),
    ("prefix-relative", {"prefix": "opt/hello"}, USAGE),
    ("prefix-dotdot", {"prefix": "/opt/../etc/x"}, USAGE),
    ("glibc-floor-none", {"glibc_floor": ""}, OK),
    ("glibc-floor-macro", {"glibc_floor": "2.34 %(id)"}, USAGE),
    ("glibc-floor-newline", {"glibc_floor": "2.34\nDepends: evil"}, USAGE),
    ("glibc-floor-words", {"glibc_floor": "new"}, USAGE),
    ("python-version-macro", {"python_version": "3.12 %(id)"}, USAGE),
    ("python-version-newline", {"python_version": "3.12.1\nX: y"}, USAGE),
    ("machine-unknown", {"machine": "pdp11"}, EMIT),
]


def _tampered(root: Path, changes: Mapping[str, Any]) -> BuiltEnv:
    python_changes = {
        key.removeprefix("python_"): value
        for key, value in changes.items()
        if key in ("python_version", "machine")
    }
    if "python_version" in python_changes:
        python_changes["version"] = python_changes.pop("python_version")
    manifest = fake_manifest(glibc_floor="2.17")
    manifest = dataclasses.replace(
        manifest,
        python=dataclasses.replace(manifest.python, **python_changes),
        **{k: v for k, v in changes.items() if k not in ("python_version", "machine")},
    )
    return BuiltEnv(root, manifest)


def _emit(fmt: str, env: BuiltEnv, out: Path, values: Mapping[str, Any]) -> int:
    values = {"maintainer": MAINTAINER, **values}
    try:
        if fmt == "deb":
            deb.FORMAT.emitter({**values, "tree_only": True}, None, None).emit(env, out)
        else:
            rpm.FORMAT.emitter({**values, "spec_only": True}, None, None).emit(env, out)
    except VenvpackError as exc:
        return exc.exit_code
    return 0


@pytest.mark.parametrize(
    ("changes", "code"),
    [pytest.param(changes, code, id=case) for case, changes, code in MANIFEST_CASES],
)
def test_tampered_manifest_gets_the_same_verdict_from_deb_and_rpm(
    env_root: Path, tmp_path: Path, changes: dict[str, Any], code: int
) -> None:
    env = _tampered(env_root, changes)
    results = {fmt: _emit(fmt, env, tmp_path / fmt, {}) for fmt in FORMATS}
    assert results == {"deb": code, "rpm": code}


# --- the same service, the same unit -------------------------------------------------------


def _written(out: Path) -> Path:
    """The one tree (deb) or spec directory (rpm) written into ``out`` (beside its SBOM)."""
    (written,) = [p for p in out.iterdir() if not p.name.endswith(".cdx.json")]
    return written


def _units(root: Path, out: Path, flags: list[str]) -> dict[str, str]:
    """The unit file each format would install, read from what it wrote."""
    units = {}
    for fmt in FORMATS:
        assert _cli(fmt, root, out / fmt, flags) == 0
    units["deb"] = (_written(out / "deb") / "usr/lib/systemd/system/hello.service").read_text()
    (source,) = _written(out / "rpm").glob("*.tar")
    with tarfile.open(source) as tar:
        member = tar.extractfile("usr/lib/systemd/system/hello.service")
        assert member is not None
        units["rpm"] = member.read().decode()
    return units


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--service-command", "hello --port 80"], id="generated-synopsis"),
        pytest.param(
            [
                "--service-command",
                "hello '100%' '$HOME'",
                "--user",
                "hello",
                "--description",
                "Serves 100% of hello\nOver HTTP.",
                "--homepage",
                "https://example.org/%{x}",
            ],
            id="given-text-and-user",
        ),
    ],
)
def test_the_same_service_gets_the_same_unit(
    env_root: Path, tmp_path: Path, flags: list[str]
) -> None:
    units = _units(env_root, tmp_path, flags)
    assert units["deb"] == units["rpm"]
    assert re.search(r"^Description=\S", units["deb"], re.MULTILINE)


def test_the_project_summary_is_the_synopsis_of_both(tmp_path: Path) -> None:
    root = fake_env_tree(tmp_path / "env")
    env = BuiltEnv.load(root)
    metadata = fake_metadata(summary="A greeter.", homepage="ftp://example.org/hello")
    BuiltEnv(root, dataclasses.replace(env.manifest, metadata=metadata)).save()
    units = _units(root, tmp_path / "out", ["--service-command", "hello"])
    assert units["deb"] == units["rpm"]
    assert "\nDescription=Greeter\n" in units["deb"]  # no article, no final stop
    assert "Documentation=" not in units["deb"]  # the project's ftp homepage: no link
    control = (_written(tmp_path / "out/deb") / "DEBIAN/control").read_text()
    (spec,) = _written(tmp_path / "out/rpm").glob("*.spec")
    assert "\nDescription: Greeter\n" in control
    assert "\nSummary:        Greeter\n" in spec.read_text()
    assert "Homepage" not in control
    assert "\nURL:" not in spec.read_text()


# --- a license recognised from its text ------------------------------------------------------

APACHE = Path("/usr/share/common-licenses/Apache-2.0")


def _apache_text() -> str:
    if not APACHE.is_file():
        pytest.skip("no /usr/share/common-licenses/Apache-2.0 on this system (base-files)")
    return APACHE.read_text(encoding="utf-8")


def test_license_texts_are_recognised_only_whole() -> None:
    text = _apache_text()
    assert license_of_text(text) == "Apache-2.0"
    assert license_of_text("   " + text.replace("\n", "\n  ")) == "Apache-2.0"
    notice = "Licensed under the Apache License, Version 2.0 (the 'License')."
    assert license_of_text(notice) == ""
    assert license_of_text(text + "\n\n" + MIT_TEXT * 20) == ""  # a second license appended
    assert license_of_text(MIT_TEXT) == ""


def test_legacy_license_metadata_is_recognised_by_both(tmp_path: Path) -> None:
    """``license = { file = "LICENSE" }`` and a classifier that names no version (posting):
    the metadata has no SPDX license, the license file is Apache-2.0's text. The .deb points
    to Debian's copy instead of embedding it (lintian: copyright-file-contains-full-apache-2-
    license), the .rpm says ``License: Apache-2.0``."""
    root = fake_env_tree(tmp_path / "env")
    (root / LICENSE_FILE).parent.mkdir(parents=True)
    (root / LICENSE_FILE).write_text(_apache_text())
    env = BuiltEnv.load(root)
    metadata = fake_metadata(license=None, license_files=(LICENSE_FILE,))
    BuiltEnv(root, dataclasses.replace(env.manifest, metadata=metadata)).save()
    for fmt in FORMATS:
        assert _cli(fmt, root, tmp_path / fmt, []) == 0
    copyright_ = (_written(tmp_path / "deb") / "usr/share/doc/hello/copyright").read_text()
    files_star = copyright_.split("\n\n")[1]
    assert files_star.startswith("Files: *\n")
    assert files_star.endswith("\nLicense: Apache-2.0")  # the text is in its own paragraph
    assert " /usr/share/common-licenses/Apache-2.0.\n" in copyright_
    assert "TERMS AND CONDITIONS FOR USE" not in copyright_
    (spec,) = _written(tmp_path / "rpm").glob("*.spec")
    assert "\nLicense:        Apache-2.0\n" in spec.read_text()
    # Two license files of different licenses: no guess, as before.
    (root / "LICENSE-MIT").write_text(MIT_TEXT)
    metadata = dataclasses.replace(metadata, license_files=(LICENSE_FILE, "LICENSE-MIT"))
    BuiltEnv(root, dataclasses.replace(env.manifest, metadata=metadata)).save()
    assert _cli("rpm", root, tmp_path / "rpm2", []) == 0
    (spec,) = _written(tmp_path / "rpm2").glob("*.spec")
    assert "\nLicense:        NOASSERTION\n" in spec.read_text()


# --- the unit's sandbox, as systemd rates it ------------------------------------------------

_EXPOSURE_RE = re.compile(r"Overall exposure level for \S+: ([0-9.]+) ([A-Z]+)")


def _exposure(unit: str, where: Path) -> tuple[float, str]:
    """``systemd-analyze security --offline=true``'s overall exposure of ``unit``."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        unavailable("systemd-analyze is not installed (Debian: systemd)")
    path = where / "hello.service"
    path.write_text(unit)
    done = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = _EXPOSURE_RE.search(done.stdout)
    assert match, done.stdout + done.stderr
    return float(match[1]), match[2]


def test_the_unit_is_sandboxed_with_and_without_a_user(env_root: Path, tmp_path: Path) -> None:
    as_user = _units(env_root, tmp_path / "user", ["--service-command", "hello", "--user", "app"])
    as_root = _units(env_root, tmp_path / "root", ["--service-command", "hello"])
    assert as_user["deb"] == as_user["rpm"]
    assert as_root["deb"] == as_root["rpm"]
    score, level = _exposure(as_user["deb"], tmp_path)
    assert score <= 4.0, (score, level)
    assert level == "OK", (score, level)
    score, level = _exposure(as_root["deb"], tmp_path)
    assert level not in ("UNSAFE", "EXPOSED"), (score, level)
    assert "\nUser=" not in as_root["deb"]
    assert "\nProtectSystem=strict\n" in as_root["deb"]
