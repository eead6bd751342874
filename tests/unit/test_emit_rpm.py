"""The rpm emitter on a small fake environment: escaping, validation, the plan, golden specs.

No rpmbuild here (tests/integration/test_rpm.py builds and installs real packages). Specs are
compared with golden copies under ``tests/golden/rpm/``; regenerate them with
``VENVPACK_UPDATE_GOLDEN=1 pytest tests/unit/test_emit_rpm.py`` and review the diff.

Besides the golden files, every rendered spec is read back the way rpm's parser sees it:
the lines whose first non-blank character is ``%`` are rpm's directives and sections, and
whatever the user typed, that list must be exactly the one the template writes.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fakes import LICENSE_FILE, MIT_TEXT, fake_manifest, fake_metadata
from venvpack.cli import main
from venvpack.emit import rpm
from venvpack.emit.rpm import (
    LintFacts,
    RpmEmitter,
    RpmOptions,
    plan_package,
    render_rpmlintrc,
    render_spec,
    rpm_arch,
    rpm_dep,
    rpm_line,
    rpm_text,
    rpm_token,
    scan_tree,
    write_sources,
)
from venvpack.errors import ConfigError, EmitError, ToolMissingError
from venvpack.manifest import BuiltEnv

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "rpm"
UPDATE = os.environ.get("VENVPACK_UPDATE_GOLDEN") == "1"
EPOCH = 1700000000
PACKAGER = "Jane Doe <jane@example.org>"

# What a test would create if anything in a spec ever ran (it never exists: nothing here
# runs rpmbuild; the integration tests build these same values for real).
CANARY = "/tmp/venvpack-rpm-canary"
HOSTILE_LINES = [
    f"%(touch {CANARY})",
    "%%include /etc/passwd",
    "%include /etc/passwd",
    f'%{{lua: os.execute("touch {CANARY}")}}',
    "%files",
    "%post",
    "%if 1",
    "%endif",
    "%global x 1",
    "%{expand:%%(id)}",
]

MakeEnv = Callable[..., BuiltEnv]


@pytest.fixture(autouse=True)
def _source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))


@pytest.fixture
def make_env(tmp_path: Path) -> MakeEnv:
    """A fake environment: the shape of a real one, a few bytes per file, no ELF."""
    counter = iter(range(1000))

    def make(**changes: Any) -> BuiltEnv:
        root = tmp_path / f"env{next(counter)}"
        for d in ("bin", "python/bin", "python/lib/python3.12", "lib/python3.12/site-packages"):
            (root / d).mkdir(parents=True)
        for command in ("hello", "serve"):
            (root / "bin" / command).write_text("#!/bin/sh\necho hi\n")
            (root / "bin" / command).chmod(0o755)
        (root / "bin/activate").write_text("# source me\n")
        (root / "bin/python").symlink_to("../python/bin/python3.12")
        (root / "python/bin/python3.12").write_bytes(b"not really an interpreter")
        (root / "python/bin/python3.12").chmod(0o755)
        (root / "python/lib/python3.12/base64.py").write_text("#!/usr/bin/env python3\n")
        (root / "lib/python3.12/site-packages/hello.py").write_text("def main(): pass\n")
        env = BuiltEnv(root=root, manifest=fake_manifest(**changes))
        env.save()
        return env

    return make


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with VENVPACK_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden copy"


def _directives(spec: str) -> list[str]:
    """Lines rpm acts on as directives or section starts: first non-blank character ``%``.
    (rpm expands a line before it looks, so this is checked on the text *after* ``%%`` →
    ``%``: a ``%%include`` the escaping failed to break up would show here.)"""
    expanded = spec.replace("%%", "%")
    return [line.strip() for line in expanded.splitlines() if line.lstrip().startswith("%")]


# --- escaping filters --------------------------------------------------------------------


def test_rpm_line_doubles_percent_and_refuses_line_breaks() -> None:
    assert rpm_line("100% sure %{x} %(id)") == "100%% sure %%{x} %%(id)"
    assert rpm_line("  padded  ") == "padded"
    for bad in ("a\nb", "a\rb", "a\x00b", "a\u2028b", "a\x85b", ""):
        with pytest.raises(ConfigError):
            rpm_line(bad)
    with pytest.raises(ConfigError, match="backslash"):
        rpm_line("ends with \\")


def test_rpm_token_refuses_blanks() -> None:
    assert rpm_token("https://e.org/%{x}") == "https://e.org/%%{x}"
    with pytest.raises(ConfigError, match="blanks"):
        rpm_token("https://e.org/ x")


@pytest.mark.parametrize("line", HOSTILE_LINES)
@pytest.mark.parametrize("indent", ["", " ", "\t", "   "])
def test_rpm_text_refuses_lines_starting_with_percent(line: str, indent: str) -> None:
    # A leading blank does not help: rpm skips blanks before it looks for %include & co.
    with pytest.raises(ConfigError, match="line 2 starts with '%'"):
        rpm_text(f"first line\n{indent}{line}\nlast line")


def test_rpm_text_refuses_comment_lines() -> None:
    with pytest.raises(ConfigError, match=r"line 1 starts with '#'.*comment"):
        rpm_text("# Heading\ntext")


def test_rpm_text_keeps_percent_inside_lines() -> None:
    text = "Uses 100% of %{name} and %(id);\n  see %%include /x\n\nends with \\"
    assert rpm_text(text) == (
        "Uses 100%% of %%{name} and %%(id);\n  see %%%%include /x\n\nends with \\"
    )
    with pytest.raises(ConfigError, match="control"):
        rpm_text("a\x1bb")
    with pytest.raises(ConfigError, match="empty"):
        rpm_text("\n\n")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("bash", "bash"),
        ("openssl-libs>=3.0", "openssl-libs >= 3.0"),
        ("  libpq  =  15.2-1 ", "libpq = 15.2-1"),
        ("perl(Foo::Bar) < 2", "perl(Foo::Bar) < 2"),
        ("libc.so.6()(64bit)", "libc.so.6()(64bit)"),
        ("/usr/bin/sh", "/usr/bin/sh"),
        ("(nginx or httpd)", "(nginx or httpd)"),
        ("tzdata >= 1:2024a", "tzdata >= 1:2024a"),
    ],
)
def test_rpm_dep_normalises(given: str, expected: str) -> None:
    assert rpm_dep(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a, b",
        "a b",
        "a >= 1 b",
        "a\nRequires: b",
        "a >= %{version}",
        "%(touch /tmp/x)",
        "(a or %(id))",
        "a\\",
        "-a",
        ">= 1",
    ],
)
def test_rpm_dep_refuses(bad: str) -> None:
    with pytest.raises(ConfigError, match="--requires"):
        rpm_dep(bad)


# --- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"summary": "a\n%files"}, "--summary: line break"),
        ({"license": "MIT\nRequires: x"}, "--license: line break"),
        ({"maintainer": "J <j@example.org>\n%post"}, "invalid maintainer"),
        ({"maintainer": "Jane"}, "invalid maintainer"),  # the rule deb's Maintainer has
        ({"description": "ok\n%%include /etc/passwd"}, "--description: line 2"),
        ({"homepage": "https://e.org/ %(id)"}, "--homepage .* http"),
        ({"homepage": "e.org"}, "--homepage .* http"),
        ({"homepage": "ftp://e.org/x"}, "--homepage .* http"),  # refused by deb too
        ({"release": "1%{?dist}"}, "--release"),
        ({"release": "1-2"}, "--release"),
        ({"release": "1\n"}, "--release"),
        ({"requires": ("a, b",)}, "--requires"),
        ({"entry_points": ("../x",)}, "--entry-point"),
        ({"entry_points": ("-x",)}, "--entry-point"),
    ],
)
def test_bad_options(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RpmOptions(**changes)


# --- the plan ----------------------------------------------------------------------------


def test_plan_defaults(make_env: MakeEnv) -> None:
    plan = plan_package(make_env(), RpmOptions())
    assert (plan.name, plan.epoch, plan.version, plan.release, plan.arch) == (
        "hello",
        None,
        "1.0.0",
        "1",
        "x86_64",
    )
    assert plan.relocatable
    assert plan.links == ("hello",)
    assert plan.unit is None
    assert plan.build_time == EPOCH
    assert plan.filename == "hello-1.0.0-1.x86_64.rpm"
    assert plan.source_tar == "hello-1.0.0-1.x86_64.tar"
    assert plan.summary == "Python application hello with its own interpreter"


@pytest.mark.parametrize(
    ("version", "epoch", "rpm_version", "evr"),
    [
        ("1.0rc1", None, "1.0~rc1", "1.0~rc1-1"),
        ("2!1.0.post1", 2, "1.0+post1", "2:1.0+post1-1"),
        ("1.0.dev3", None, "1.0~~dev3", "1.0~~dev3-1"),
    ],
)
def test_versions(
    make_env: MakeEnv, version: str, epoch: int | None, rpm_version: str, evr: str
) -> None:
    plan = plan_package(make_env(version=version), RpmOptions())
    assert (plan.epoch, plan.version, plan.evr) == (epoch, rpm_version, evr)
    spec = render_spec(plan)
    assert f"\nVersion:        {rpm_version}\n" in spec
    assert ("\nEpoch:" in spec) == (epoch is not None)


def test_copy_mode_and_service_are_not_relocatable(make_env: MakeEnv) -> None:
    for env, options in (
        (make_env(link_mode="copy"), RpmOptions()),
        (make_env(link_mode="hardlink"), RpmOptions()),
        (make_env(), RpmOptions(service_command="serve --port 80")),
    ):
        plan = plan_package(env, options)
        assert not plan.relocatable
        assert "\nPrefix:" not in render_spec(plan)
    assert "\nPrefix:         /opt/hello\n" in render_spec(plan_package(make_env(), RpmOptions()))


def test_entry_points_and_no_bin_links(make_env: MakeEnv) -> None:
    env = make_env()
    assert plan_package(env, RpmOptions(entry_points=("serve", "hello"))).links == (
        "hello",
        "serve",
    )
    plan = plan_package(env, RpmOptions(bin_links=False))
    assert plan.links == ()
    spec = render_spec(plan)
    assert "%ghost" not in spec
    assert "\n%post" not in spec
    with pytest.raises(ConfigError, match="'nope' is not a command"):
        plan_package(env, RpmOptions(entry_points=("nope",)))
    with pytest.raises(ConfigError, match=r"'activate': .* would shadow"):
        plan_package(env, RpmOptions(entry_points=("activate",)))  # venv machinery
    with pytest.raises(ConfigError, match="command 'x y'"):
        plan_package(make_env(commands=("x y",)), RpmOptions())


@pytest.mark.parametrize(
    "prefix",
    [
        "/opt",
        "/usr",
        "/",
        "opt/x",
        "/opt/my app",
        "/opt/%{x}",
        "/opt/x*",
        "/opt/./x",
        "/opt/../etc",
        "/usr/bin/hello",
        "/usr/local",
        "/opt/x\n",
    ],
)
def test_bad_prefixes(make_env: MakeEnv, prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        plan_package(make_env(prefix=prefix), RpmOptions())


def test_manifest_values_are_checked(make_env: MakeEnv) -> None:
    with pytest.raises(ConfigError, match="glibc_floor"):
        plan_package(make_env(glibc_floor="2.34 %(id)"), RpmOptions())
    with pytest.raises(ConfigError, match="python version"):
        plan_package(
            make_env(python=dataclasses.replace(fake_manifest().python, version="3.12 %(id)")),
            RpmOptions(),
        )
    with pytest.raises(ConfigError, match="name"):
        plan_package(make_env(name="Hello"), RpmOptions())
    with pytest.raises(ConfigError, match="PEP 440"):
        plan_package(make_env(version="1.0 %(id)"), RpmOptions())


def test_arch_map() -> None:
    assert rpm_arch("x86_64") == "x86_64"
    assert rpm_arch("aarch64") == "aarch64"
    assert rpm_arch("armv7l") == "armv7hl"
    with pytest.raises(EmitError, match="no RPM architecture"):  # exit 7, as for deb
        rpm_arch("pdp11")


def test_no_glibc_floor(make_env: MakeEnv) -> None:
    spec = render_spec(plan_package(make_env(glibc_floor=""), RpmOptions()))
    assert "\nRequires:       glibc\n" in spec


# --- golden specs and the directives rpm would see ----------------------------------------


def test_default_spec_golden(make_env: MakeEnv) -> None:
    env = make_env()
    plan = plan_package(env, RpmOptions())
    spec = render_spec(plan)
    _check_golden("default/hello.spec", spec)
    facts = scan_tree(env.root, plan.prefix, "3.12")
    _check_golden("default/hello.rpmlintrc", render_rpmlintrc(plan, facts))


def test_service_spec_golden(make_env: MakeEnv) -> None:
    env = make_env(version="2!1.0rc1", link_mode="copy")
    options = RpmOptions(
        summary="Hello service",
        description="Says hello.\n\nOn port 8080.",
        license="MIT",
        homepage="https://example.org/hello",
        release="3",
        maintainer=PACKAGER,
        requires=("openssl-libs >= 3.0", "(nginx or httpd)"),
        entry_points=("hello", "serve"),
        service_command="serve --port 8080",
    )
    plan = plan_package(env, options)
    _check_golden("service/hello.spec", render_spec(plan))
    assert plan.unit is not None
    _check_golden("service/hello.service", plan.unit.text)
    facts = scan_tree(env.root, plan.prefix, "3.12", ["/usr/lib/systemd/system/hello.service"])
    _check_golden("service/hello.rpmlintrc", render_rpmlintrc(plan, facts))


def _hostile_options() -> RpmOptions:
    """Everything hostile that is accepted (the rest is refused, see test_bad_options)."""
    return RpmOptions(
        summary=f"%(touch {CANARY}) %{{lua: os.execute('id')}} %%include /etc/passwd",
        description=(
            f"Runs nothing: %(touch {CANARY})\n"
            f"and %{{lua: os.execute('touch {CANARY}')}}\n"
            "  nor includes: %%include /etc/passwd\n"
            "text before %files\n"
            "ends with a backslash \\\n"
            "100%"
        ),
        license=f"MIT and %(touch {CANARY})",
        homepage="https://example.org/%{lua:os.execute('touch\\32/tmp/venvpack-rpm-canary')}",
        maintainer=f"%{{lua: os.execute('touch {CANARY}')}} <%(id)@example.org>",
    )


def test_hostile_spec_golden(make_env: MakeEnv) -> None:
    env = make_env()
    benign = render_spec(
        plan_package(env, RpmOptions(homepage="https://e.org", maintainer=PACKAGER))
    )
    spec = render_spec(plan_package(env, _hostile_options()))
    _check_golden("hostile/hello.spec", spec)
    assert _directives(spec) == _directives(benign)
    # Every % that came from the user is doubled: none is left single.
    for tag in ("Summary:", "License:", "URL:", "Packager:"):
        line = next(li for li in spec.splitlines() if li.startswith(tag))
        assert "%" not in line.replace("%%", "")


def test_every_template_directive_is_expected(make_env: MakeEnv) -> None:
    spec = render_spec(plan_package(make_env(), RpmOptions(service_command="serve")))
    for line in _directives(spec):
        word = line.split()[0]
        assert word in {
            "%global",
            "%description",
            "%install",
            "%files",
            "%defattr(-,root,root,-)",
            "%ghost",
            "%post",
            "%preun",
            "%postun",
            "%changelog",
        }, line
    # And no comment of the template holds a % (rpm expands comments too).
    for line in spec.splitlines():
        if line.startswith("#"):
            assert "%" not in line, line


def test_changelog_date_follows_source_date_epoch(
    make_env: MakeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    spec = render_spec(plan_package(make_env(), RpmOptions(maintainer=PACKAGER)))
    assert f"\n* Fri Jan 02 1970 {PACKAGER} - 1.0.0-1\n" in spec
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        plan_package(make_env(), RpmOptions())


# --- sources and rpmlintrc ---------------------------------------------------------------


def test_write_sources(make_env: MakeEnv, tmp_path: Path) -> None:
    env = make_env()
    plan = plan_package(env, RpmOptions(service_command="serve"))
    out = tmp_path / "out"
    spec = write_sources(plan, env, out)
    assert spec == out / "hello.spec"
    assert sorted(p.name for p in out.iterdir()) == [
        "hello-1.0.0-1.x86_64.tar",
        "hello.rpmlintrc",
        "hello.spec",
    ]
    with tarfile.open(out / plan.source_tar) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "usr/bin/hello" not in members  # %post makes it; it is no rpm file
    assert members["opt/hello/bin/python"].linkname == "../python/bin/python3.12"
    assert members["opt/hello/bin/hello"].mode == 0o755
    assert members["usr/lib/systemd/system/hello.service"].isreg()
    assert "opt/hello/.venvpack/manifest.json" in members
    assert all(m.uid == 0 and m.gid == 0 and m.mtime <= EPOCH for m in members.values())
    assert not any(name.startswith("/") or ".." in name.split("/") for name in members)


def test_an_rpmlintrc_venvpack_wrote_is_replaced_without_force(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    # name.rpmlintrc carries no version: packing 1.1 beside 1.0 rewrites it, while a file
    # the user wrote there (or a link to anything) still needs --force.
    env = make_env()
    spec = write_sources(plan_package(env, RpmOptions()), env, tmp_path / "src")
    emitter = RpmEmitter(RpmOptions())
    (extra,) = emitter.extras(env, tmp_path / "hello-1.1-1.x86_64.rpm")
    assert extra == tmp_path / "hello.rpmlintrc"
    shutil.copy(spec.parent / "hello.rpmlintrc", extra)
    assert emitter.replaceable(extra)
    extra.write_text("addFilter('mine')\n")
    assert not emitter.replaceable(extra)
    extra.unlink()
    extra.symlink_to(spec.parent / "hello.rpmlintrc")
    assert not emitter.replaceable(extra)
    assert not emitter.replaceable(tmp_path / "src")


def test_lint_facts_of_a_tree_without_elf(make_env: MakeEnv) -> None:
    env = make_env()
    facts = scan_tree(env.root, "/opt/hello", "3.12")
    assert facts == LintFacts(shebang_modules=True)
    plan = plan_package(env, RpmOptions(maintainer=PACKAGER))
    rc = render_rpmlintrc(plan, facts)
    filters = [line for line in rc.splitlines() if line.startswith("addFilter")]
    assert [f.split(": E: ")[1].split()[0] for f in filters] == [
        "dir-or-file-in-opt",
        "(env-script-interpreter|wrong-script-interpreter|non-executable-script)",
        'no-signature$")',
    ]


def test_rpmlintrc_filters_are_limited_to_the_prefix(make_env: MakeEnv) -> None:
    env = make_env(prefix="/srv/my.app", name="my.app")
    plan = plan_package(env, RpmOptions())
    facts = LintFacts(**{f.name: True for f in dataclasses.fields(LintFacts)})
    rc = render_rpmlintrc(plan, facts)
    assert "dir-or-file-in-opt" not in rc  # not in /opt
    assert r'addFilter(r"^my\.app\.x86_64: E: shared-library-not-executable /srv/my\.app/")' in rc
    assert r"no-packager-tag" in rc


# --- the emitter -------------------------------------------------------------------------


def test_filenames(make_env: MakeEnv) -> None:
    env = make_env(version="1!2.0b1")
    assert RpmEmitter(RpmOptions(release="4")).filename(env) == "hello-2.0~b1-4.x86_64.rpm"
    assert RpmEmitter(spec_only=True).filename(env) == "hello-2.0~b1-1.x86_64.rpmbuild"


def test_missing_rpmbuild(
    make_env: MakeEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    dest = tmp_path / "hello.rpm"
    with pytest.raises(ToolMissingError, match=r"dnf install rpm-build.*--spec-only"):
        RpmEmitter().emit(make_env(), dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_spec_only_writes_a_directory_atomically(make_env: MakeEnv, tmp_path: Path) -> None:
    env = make_env()
    emitter = RpmEmitter(spec_only=True)
    dest = tmp_path / emitter.filename(env)
    assert emitter.emit(env, dest) == dest
    assert (dest / "hello.spec").is_file()
    (dest / "stale").write_text("x")
    emitter.emit(env, dest)  # --force: replaced as a whole
    assert not (dest / "stale").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_spec_only(make_env: MakeEnv, tmp_path: Path) -> None:
    # --from audits the tree again: with no ELF file in it, the floor it finds is 2.17.
    env = make_env(glibc_floor="2.17")
    out = tmp_path / "out"
    main(
        [
            "rpm",
            "-q",
            "--from",
            str(env.root),
            "--spec-only",
            "-o",
            str(out),
            "--summary",
            "Hi 100%",
            "--requires",
            "bash >= 5",
        ]
    )
    spec = (out / "hello-1.0.0-1.x86_64.rpmbuild" / "hello.spec").read_text()
    assert "\nSummary:        Hi 100%%\n" in spec
    assert "\nRequires:       bash >= 5\n" in spec
    with pytest.raises(SystemExit) as exc:
        main(["rpm", "-q", "--from", str(env.root), "--spec-only", "-o", str(out)])
    assert exc.value.code == 2  # exists, no --force


@pytest.mark.parametrize(
    "flags",
    [
        ["--description", "fine\n%%include /etc/passwd"],
        ["--summary", "two\nlines"],
        ["--requires", "a, b"],
        ["--release", "1%{?dist}"],
        ["--url", "https://e.org/%(id) x"],
    ],
)
def test_cli_refuses_hostile_text_before_building(
    make_env: MakeEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    env = make_env()
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["rpm", "--from", str(env.root), "--spec-only", "-o", str(out), *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("venvpack: error: ")
    assert err.count("\n") == 1
    assert not out.exists()


def test_module_exports() -> None:
    for name in rpm.__all__:
        assert hasattr(rpm, name), name


# --- the project's metadata ----------------------------------------------------------------


def test_metadata_spec_golden(make_env: MakeEnv) -> None:
    """No flags: summary, description, license, URL and packager come from the project."""
    env = make_env(metadata=fake_metadata())
    (env.root / LICENSE_FILE).parent.mkdir(parents=True)
    (env.root / LICENSE_FILE).write_text(MIT_TEXT)
    plan = plan_package(env, RpmOptions())
    assert (plan.summary, plan.license, plan.url, plan.packager) == (
        "Greets the world from its own Python",
        "MIT",
        "https://example.org/hello",
        "Jane Doe <jane@example.org>",
    )
    assert plan.license_files == (f"/opt/hello/{LICENSE_FILE}",)
    spec = render_spec(plan)
    _check_golden("metadata/hello.spec", spec)
    assert f"\n%license /opt/hello/{LICENSE_FILE}\n" in spec
    assert "\n%description\nhello prints a greeting and the versions" in spec


def test_flags_win_over_metadata(make_env: MakeEnv) -> None:
    env = make_env(metadata=fake_metadata())
    plan = plan_package(
        env,
        RpmOptions(
            summary="Given",
            description="Given text",
            license="Apache-2.0",
            homepage="https://given.example.org",
            maintainer="Max <max@example.org>",
        ),
    )
    assert (plan.summary, plan.description, plan.license, plan.url, plan.packager) == (
        "Given",
        "Given text",
        "Apache-2.0",
        "https://given.example.org",
        "Max <max@example.org>",
    )


@pytest.mark.parametrize(
    ("changes", "license_", "packager"),
    [
        ({"license": None}, "NOASSERTION", "Jane Doe <jane@example.org>"),
        ({"license": "mit or isc"}, "mit OR isc", "Jane Doe <jane@example.org>"),
        ({"license": "MIT\nRequires: evil"}, "NOASSERTION", "Jane Doe <jane@example.org>"),
        ({"authors": ("bob@example.org", "Ann <ann@example.org>")}, "MIT", "Ann <ann@example.org>"),
        (
            {"authors": ("Jane",), "maintainers": ("Max <m@example.org>",)},
            "MIT",
            "Max <m@example.org>",
        ),
        ({"authors": ("Ends with \\",)}, "MIT", ""),
        ({"authors": ()}, "MIT", ""),
    ],
)
def test_metadata_fallbacks(
    make_env: MakeEnv, changes: dict[str, Any], license_: str, packager: str
) -> None:
    plan = plan_package(make_env(metadata=fake_metadata(**changes)), RpmOptions())
    assert (plan.license, plan.packager) == (license_, packager)


def test_unmarkable_license_files_stay_unmarked(make_env: MakeEnv) -> None:
    files = (
        LICENSE_FILE,
        "lib/x/LICENSE %(id)",
        "lib/x/COPYING*",
        "../etc/passwd",
        "lib/a b",
        "lib/NOT-THERE",
    )
    env = make_env(metadata=fake_metadata(license_files=files))
    for rel in files:
        if ".." not in rel and rel != "lib/NOT-THERE":
            (env.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (env.root / rel).write_text("text")
    plan = plan_package(env, RpmOptions())
    assert plan.license_files == (f"/opt/hello/{LICENSE_FILE}",)


def test_hostile_metadata_spec_golden(make_env: MakeEnv) -> None:
    """Project metadata reaches the spec through the same filters as flags: nothing in it
    runs, includes or adds a directive, and it never fails the package."""
    metadata = fake_metadata(
        summary=f"Sum\n%(touch {CANARY})\n%%include /etc/passwd\x07",
        description=(
            f"%(touch {CANARY}) starts the paragraph, and\n%%include /etc/passwd\n"
            f"#comment %{{lua: os.execute('touch {CANARY}')}} %files\n%post and on \\\n"
            + "%if 1 "
            * 30
        ),
        license=f"MIT AND %(touch {CANARY})",
        homepage="https://example.org/%(id)",
        authors=(f"%(touch {CANARY}) <x@example.org>\n%post",),
        license_files=(LICENSE_FILE,),
    )
    env = make_env(metadata=metadata)
    (env.root / LICENSE_FILE).parent.mkdir(parents=True)
    (env.root / LICENSE_FILE).write_text(MIT_TEXT)
    spec = render_spec(plan_package(env, RpmOptions()))
    _check_golden("hostile-metadata/hello.spec", spec)
    benign_env = make_env(metadata=fake_metadata())
    (benign_env.root / LICENSE_FILE).parent.mkdir(parents=True)
    (benign_env.root / LICENSE_FILE).write_text(MIT_TEXT)
    benign = render_spec(plan_package(benign_env, RpmOptions()))
    assert _directives(spec) == _directives(benign)
    for tag in ("Summary:", "License:", "URL:"):
        line = next(li for li in spec.splitlines() if li.startswith(tag))
        assert "%" not in line.replace("%%", ""), line
    assert "\nLicense:        NOASSERTION\n" in spec  # not an SPDX expression
    assert "\nPackager:" not in spec  # the author is no 'Full Name <address>' (deb's rule)
    body = spec.partition("%description\n")[2].partition("\n%install")[0]
    assert all(line.lstrip()[:1] not in ("%", "#") for line in body.splitlines())


@pytest.mark.parametrize("name", ["python3", "python", "python3.12", "pip", "activate"])
def test_interpreter_links_are_refused_as_entry_points(make_env: MakeEnv, name: str) -> None:
    # Linking python3 into /usr/bin: /usr/bin/python3 would become the bundled interpreter
    env = make_env()
    with pytest.raises(ConfigError, match="shadow"):
        plan_package(env, RpmOptions(entry_points=(name,)))


def test_service_user_spec_golden(make_env: MakeEnv, tmp_path: Path) -> None:
    conf = tmp_path / "hello.toml"
    conf.write_text("greeting = 'hi'\n")
    options = RpmOptions(
        maintainer=PACKAGER,
        service_command="serve --config /etc/hello/hello.toml",
        user="hello",
        config_files=(f"{conf}:/etc/hello/hello.toml:0640",),
        files=(f"{conf}:/usr/share/hello/example.toml",),
        provides=("hello-api (= 1.0)",),
        conflicts=("hello-old < 2",),
        replaces=("hello-old (<< 2)",),
        recommends=("nginx",),
        release="3",
        epoch=2,
    )
    env = make_env()
    plan = plan_package(env, options)
    assert (plan.epoch, plan.release) == (2, "3")
    spec = render_spec(plan)
    for line in (
        "Epoch:          2",
        "Release:        3",
        "Recommends:     nginx",
        "Conflicts:      hello-old < 2",
        "Obsoletes:      hello-old < 2",
        "Provides:       hello-api = 1.0",
        "%config(noreplace) %attr(0640,root,root) /etc/hello/hello.toml",
        "%attr(0644,root,root) /usr/share/hello/example.toml",
    ):
        assert f"\n{line}\n" in spec, line
    assert "useradd --system" in spec.partition("\n%pre\n")[2].partition("\n%post")[0]
    assert "\n%dir %attr(0750,hello,hello) /var/lib/hello\n" in spec
    assert "userdel" not in spec
    _check_golden("user/hello.spec", spec)
    out = tmp_path / "sources"
    write_sources(plan, env, out)
    with tarfile.open(out / plan.source_tar) as tar:
        member = tar.getmember("etc/hello/hello.toml")
        assert member.mode == 0o640
        assert tar.extractfile(member).read() == b"greeting = 'hi'\n"  # type: ignore[union-attr]


def test_scan_finds_empty_files_and_duplicated_waste(make_env: MakeEnv) -> None:
    """rpmlint's zero-length and files-duplicated-waste errors (httpie 3.2.4: an empty
    setuptools/_vendor/.lock, 1.5 MB of copies) get a filter only when the tree has them."""
    env = make_env()
    site = env.root / "lib/python3.12/site-packages"
    facts = scan_tree(env.root, "/opt/hello", "3.12")
    assert not facts.zero_length
    assert not facts.duplicated_waste
    (site / "__init__.py").write_bytes(b"")  # expected empty by rpmlint
    (site / "py.typed").write_bytes(b"")
    assert not scan_tree(env.root, "/opt/hello", "3.12").zero_length
    (site / ".lock").write_bytes(b"")
    blob = os.urandom(60_000)
    (site / "a.bin").write_bytes(blob)
    (site / "b.bin").write_bytes(blob)
    facts = scan_tree(env.root, "/opt/hello", "3.12")
    assert facts.zero_length
    assert not facts.duplicated_waste  # 60 000 bytes of waste: under rpmlint's 100 000
    (site / "c.bin").write_bytes(blob)
    (site / "d.bin").write_bytes(os.urandom(60_000))  # same size, other content
    facts = scan_tree(env.root, "/opt/hello", "3.12")
    assert facts.duplicated_waste
    plan = plan_package(env, RpmOptions())
    rc = render_rpmlintrc(plan, facts)
    assert 'addFilter(r"^hello\\.x86_64: E: zero-length /opt/hello/")' in rc
    assert 'addFilter(r"^hello\\.x86_64: E: files-duplicated-waste [0-9]+$")' in rc


def test_hard_links_inside_the_tree_are_no_waste_but_links_outside_are(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    env = make_env()
    site = env.root / "lib/python3.12/site-packages"
    blob = os.urandom(120_000)
    (site / "a.bin").write_bytes(blob)
    os.link(site / "a.bin", site / "b.bin")  # one file twice in the package: no waste
    assert not scan_tree(env.root, "/opt/hello", "3.12").duplicated_waste
    (tmp_path / "cache.bin").write_bytes(blob)  # as uv links from its cache
    os.link(tmp_path / "cache.bin", site / "c.bin")
    assert scan_tree(env.root, "/opt/hello", "3.12").duplicated_waste


def test_scan_finds_static_libraries_without_debuginfo(make_env: MakeEnv) -> None:
    """numpy ships libnpymath.a: rpmlint's static-library-without-debuginfo, filtered only
    when such a library is there (an archive with .debug_ sections is not reported)."""
    env = make_env()
    lib = env.root / "lib/python3.12/site-packages/numpy/lib"
    lib.mkdir(parents=True)
    elf = b"\x7fELF" + b"\0" * 60

    def ar(member: bytes) -> bytes:
        header = b"x.o/".ljust(48) + str(len(member)).encode().ljust(10) + b"`\n"
        return b"!<arch>\n" + header + member + b"\n" * (len(member) % 2)

    (lib / "libdebug.a").write_bytes(ar(elf + b".debug_info"))
    assert not scan_tree(env.root, "/opt/hello", "3.12").static_libs_without_debuginfo
    (lib / "libnpymath.a").write_bytes(ar(elf))
    facts = scan_tree(env.root, "/opt/hello", "3.12")
    assert facts.static_libs_without_debuginfo
    rc = render_rpmlintrc(plan_package(env, RpmOptions()), facts)
    assert "static-library-without-debuginfo /opt/hello/" in rc
