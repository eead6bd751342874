"""The oci format: which file goes in which layer, the default base made from a dpkg root,
the config, and images written through the real command and read back with ``tarfile``
(an independent reader) -- byte-identical twice, lower layers unchanged by an application
change, whiteouts honoured when read back, bad options and bases refused before a build."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from fakes import fake_env_tree, fake_manifest, fake_metadata
from venvpack import build
from venvpack.archive import TarPlan
from venvpack.cli import main
from venvpack.emit.oci import ImageConfig, OciEmitter, image_config, oci_platform
from venvpack.errors import ArtifactError, BuildError, ConfigError, EmitError
from venvpack.manifest import BuiltEnv
from venvpack.oci.base import NONROOT, default_base
from venvpack.oci.image import (
    MEDIA_LAYER_GZIP,
    BlobStore,
    Layer,
    image_manifest,
    write_archive,
)
from venvpack.oci.layers import APPLICATION, INTERPRETER, THIRD_PARTY, split_layers
from venvpack.unpack import extract

SITE = "lib/python3.12/site-packages"
EPOCH = "1700000000"


def write(path: Path, text: str = "", mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def rich_env(root: Path, *, app_line: str = "print('hello')\n") -> BuiltEnv:
    """A fake environment with an application, a third-party distribution with a console
    script and byte-code, a namespace package both use, a stray file and an empty directory."""
    fake_env_tree(root)
    site = root / SITE
    write(site / "hello.py", app_line)
    write(site / "hello-1.0.0.dist-info/METADATA", "Name: hello\nVersion: 1.0.0\n")
    write(
        site / "hello-1.0.0.dist-info/RECORD",
        "hello.py,,\nhello-1.0.0.dist-info/METADATA,,\n../../../bin/hello,,\n"
        "shared/app_part.py,,\n",
    )
    write(site / "markupsafe/__init__.py", "X = 1\n")
    write(site / "markupsafe/__pycache__/__init__.cpython-312.pyc", "pyc")
    write(
        site / "markupsafe-2.1.5.dist-info/RECORD",
        "markupsafe/__init__.py,,\n"
        "markupsafe-2.1.5.dist-info/RECORD,,\n../../../bin/msafe,,\nshared/lib_part.py,,\n",
    )
    write(site / "shared/app_part.py")
    write(site / "shared/lib_part.py")
    write(site / "shared/__pycache__/lib_part.cpython-312.pyc", "pyc")
    write(site / "stray.pth", "")
    launcher = "#!/bin/sh\n'''exec' \"$(dirname -- \"$0\")/python\" \"$0\" \"$@\"\n' '''\n"
    write(root / "bin/hello", launcher + "import hello\n", 0o755)
    write(root / "bin/msafe", launcher + "import markupsafe\n", 0o755)
    write(root / "python/lib/python3.12/os.py", "")
    (root / "share/empty").mkdir(parents=True)
    manifest = fake_manifest(
        glibc_floor=json.loads((root / ".venvpack/manifest.json").read_text())["glibc_floor"],
        metadata=fake_metadata(paths=(f"{SITE}/hello-1.0.0.dist-info", f"{SITE}/hello.py")),
    )
    env = BuiltEnv(root, manifest)
    env.save()
    return env


def tree_paths(root: Path) -> set[str]:
    """Files, symlinks and empty directories of ``root``, relative."""
    found: set[str] = set()
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        links = [d for d in dirs if (here / d).is_symlink()]
        for name in [*files, *links]:
            found.add((here / name).relative_to(root).as_posix())
        if not files and not dirs and here != root:
            found.add(here.relative_to(root).as_posix())
    return found


def test_every_path_is_in_exactly_one_layer(tmp_path: Path) -> None:
    env = rich_env(tmp_path / "env")
    layers = split_layers(env.root, env.manifest)
    every = [path for paths in layers.values() for path in paths]
    assert len(every) == len(set(every)), "a path in two layers"
    assert set(every) == tree_paths(env.root)


def test_layers_follow_what_changes(tmp_path: Path) -> None:
    env = rich_env(tmp_path / "env")
    layers = {name: set(paths) for name, paths in split_layers(env.root, env.manifest).items()}
    assert {"python/bin/python3.12", "python/lib/python3.12/os.py"} <= layers[INTERPRETER]
    assert {
        f"{SITE}/markupsafe/__init__.py",
        f"{SITE}/markupsafe/__pycache__/__init__.cpython-312.pyc",  # its RECORD omits it
        f"{SITE}/markupsafe-2.1.5.dist-info/RECORD",
        "bin/msafe",  # a third-party console script
        f"{SITE}/shared/lib_part.py",
        f"{SITE}/shared/__pycache__/lib_part.cpython-312.pyc",
    } <= layers[THIRD_PARTY]
    assert {
        f"{SITE}/hello.py",
        f"{SITE}/hello-1.0.0.dist-info/RECORD",
        "bin/hello",
        "bin/python",
        ".venvpack/manifest.json",
        f"{SITE}/shared/app_part.py",  # a namespace both use: file by file
        f"{SITE}/stray.pth",  # no RECORD holds it: the application's
        "share/empty",
    } <= layers[APPLICATION]


def dpkg_root(root: Path, *, missing: str | None = None) -> Path:
    """A small Debian-like sysroot: merged /usr, dpkg's status and file lists."""
    (root / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    files = {
        "libc6": {
            "/lib/x86_64-linux-gnu/libc.so.6": b"\x7fELF GNU C Library release version 2.36\n",
            "/usr/share/doc/libc6/copyright": b"glibc copyright\n",
            "/usr/share/doc/libc6/changelog.Debian.gz": b"left out",
        },
        "libgcc-s1": {"/lib/x86_64-linux-gnu/libgcc_s.so.1": b"\x7fELF gcc"},
        "tzdata": {"/usr/share/zoneinfo/UTC": b"TZif2"},
        "netbase": {"/etc/services": b"https 443/tcp\n"},
        "ca-certificates": {},
    }
    status = []
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    for package, contents in files.items():
        if package == missing:
            continue
        status.append(
            f"Package: {package}\nStatus: install ok installed\nArchitecture: amd64\n"
            f"Version: 1.{len(package)}\nDescription: x\n continued line\n"
        )
        listing = ["/.", *sorted({str(Path(p).parent) for p in contents}), *contents]
        (info / f"{package}:amd64.list").write_text("\n".join(listing) + "\n")
        for path, data in contents.items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    (root / "var/lib/dpkg/status").write_text("\n".join(status))
    write(root / "etc/ssl/certs/ca-certificates.crt", "-----BEGIN CERTIFICATE-----\n")
    write(root / "usr/lib/os-release", 'ID=debian\nVERSION_ID="12"\n')
    return root


def test_default_base_is_made_of_the_roots_packages(tmp_path: Path) -> None:
    base = default_base(dpkg_root(tmp_path / "root"), dpkg_arch="amd64", mtime=0)
    entries = {e.arcname: e for e in base.plan.entries}
    assert base.glibc == (2, 36)
    assert base.packages == {
        "ca-certificates": "1.15",
        "libc6": "1.5",
        "libgcc-s1": "1.9",
        "netbase": "1.7",
        "tzdata": "1.6",
    }
    # merged /usr: the listed /lib path is its real place, and the link is in the layer
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in entries
    assert entries["lib"].linkname == "usr/lib"
    assert "usr/share/doc/libc6/copyright" in entries
    assert "usr/share/doc/libc6/changelog.Debian.gz" not in entries
    for path in ("usr/share/zoneinfo/UTC", "etc/services", "etc/ssl/certs/ca-certificates.crt"):
        assert path in entries
    assert entries["etc/os-release"].source == b'ID=debian\nVERSION_ID="12"\n'
    assert entries["tmp"].mode == 0o1777
    home = entries["home/nonroot"]
    assert (home.uid, home.gid, home.mode) == (NONROOT, NONROOT, 0o700)
    passwd = entries["etc/passwd"].source
    assert isinstance(passwd, bytes)
    assert b"nonroot:x:65532:65532:" in passwd
    assert {e.mtime for e in entries.values()} == {0}


def test_default_base_names_what_is_missing(tmp_path: Path) -> None:
    root = dpkg_root(tmp_path / "root", missing="tzdata")
    with pytest.raises(EmitError, match=r"needs the package tzdata:amd64 .*apt-get install tzdata"):
        default_base(root, dpkg_arch="amd64")
    root = dpkg_root(tmp_path / "other")
    (root / "etc/ssl/certs/ca-certificates.crt").unlink()
    with pytest.raises(EmitError, match="needs the CA bundle"):
        default_base(root, dpkg_arch="amd64")
    with pytest.raises(ConfigError, match="made of a Debian system's packages"):
        default_base(tmp_path / "empty")


def test_config_runs_the_application_as_nonroot(tmp_path: Path) -> None:
    env = rich_env(tmp_path / "env")
    config, annotations = image_config(env, ImageConfig(cmd=("--serve",), expose=("8080",)))
    runtime = config["config"]
    # a launcher is a shell polyglot: the image has no shell, python starts it
    assert runtime["Entrypoint"] == ["/opt/hello/bin/python", "/opt/hello/bin/hello"]
    assert runtime["Cmd"] == ["--serve"]
    assert runtime["User"] == "65532:65532"
    assert runtime["Env"][0].startswith("PATH=/opt/hello/bin:")
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in runtime["Env"]
    assert runtime["ExposedPorts"] == {"8080/tcp": {}}
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert annotations["org.opencontainers.image.licenses"] == "MIT"
    assert annotations["org.opencontainers.image.source"] == "https://example.org/hello/src"
    assert runtime["Labels"]["org.opencontainers.image.title"] == "hello"
    # a base's environment is kept, its PATH after the environment's
    base = {"config": {"Env": ["PATH=/usr/bin", "TZ=UTC"]}}
    config, _ = image_config(env, ImageConfig(), base_config=base, certificates=False)
    assert config["config"]["Env"] == ["PATH=/opt/hello/bin:/usr/bin", "TZ=UTC", "LANG=C.UTF-8"]


def test_the_entrypoint_is_chosen_or_asked_for(tmp_path: Path) -> None:
    env = rich_env(tmp_path / "env")
    several = BuiltEnv(env.root, fake_manifest(commands=("hello", "msafe")))
    with pytest.raises(ConfigError, match=r"several commands \(hello, msafe\).*--entrypoint"):
        image_config(several, ImageConfig())
    config, _ = image_config(several, ImageConfig(entrypoint="msafe"))
    assert config["config"]["Entrypoint"] == ["/opt/hello/bin/python", "/opt/hello/bin/msafe"]
    with pytest.raises(ConfigError, match="--entrypoint nope: no such command"):
        image_config(env, ImageConfig(entrypoint="nope"))
    assert oci_platform("aarch64") == ("arm64", "v8")
    assert oci_platform("x86_64") == ("amd64", None)


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def read_image(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[bytes]]:
    """The manifest, config and layers (uncompressed tars) of an oci-archive, by tarfile."""
    with tarfile.open(path) as archive:
        members = {m.name.removeprefix("./"): m for m in archive.getmembers()}

        def blob(digest: str) -> bytes:
            handle = archive.extractfile(members[f"blobs/sha256/{digest.split(':')[1]}"])
            assert handle is not None
            data = handle.read()
            assert hashlib.sha256(data).hexdigest() == digest.split(":")[1]
            return data

        index_file = archive.extractfile(members["index.json"])
        assert index_file is not None
        index = json.loads(index_file.read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        layers = [gzip.decompress(blob(layer["digest"])) for layer in manifest["layers"]]
    return manifest, config, layers


def layer_names(layer: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        return {m.name for m in archive.getmembers() if not m.isdir() or not m.name.count("/")}


def test_image_read_back_is_the_tree_byte_identical_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    env = rich_env(tmp_path / "env")
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    for out in (first, second):
        assert run(["oci", "--from", str(env.root), "--base", "scratch", "-q", "-o", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(first), str(second)]
    assert first.read_bytes() == second.read_bytes()
    manifest, config, layers = read_image(first)
    assert [h["created_by"] for h in config["history"]] == [
        "venvpack: interpreter (CPython 3.12.1)",
        "venvpack: third-party distributions",
        "venvpack: application (hello 1.0.0)",
    ]
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    assert config["rootfs"]["diff_ids"] == diff_ids
    files: list[str] = []
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
            for member in archive.getmembers():
                assert (member.uid, member.gid, member.mtime) == (0, 0, int(EPOCH))
                if not member.isdir() or not any(
                    m.name.startswith(member.name + "/") for m in archive.getmembers()
                ):
                    files.append(member.name)
    assert len(files) == len(set(files))
    assert set(files) == {f"opt/hello/{p}" for p in tree_paths(env.root)}
    assert manifest["annotations"]["org.opencontainers.image.version"] == "1.0.0"


def test_an_application_change_keeps_the_lower_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = []
    for i, line in enumerate(("print('hello')\n", "print('hello, world')\n")):
        env = rich_env(tmp_path / f"env{i}", app_line=line)
        out = tmp_path / f"{i}.tar"
        assert run(["oci", "--from", str(env.root), "--base", "scratch", "-q", "-o", str(out)]) == 0
        manifest, _, _ = read_image(out)
        digests.append([layer["digest"] for layer in manifest["layers"]])
    # without SOURCE_DATE_EPOCH too: a layer's bytes never hold when it was built
    assert digests[0][:2] == digests[1][:2]
    assert digests[0][2] != digests[1][2]


def test_layout_directory_and_its_replacement(tmp_path: Path) -> None:
    env = rich_env(tmp_path / "env")
    out = tmp_path / "hello.oci"
    args = ["oci", "--from", str(env.root), "--base", "scratch", "--layout", "-q", "-o", str(out)]
    assert run(args) == 0
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert run(args) == 2  # exists
    assert run([*args, "--force"]) == 0
    other = tmp_path / "mine"
    (other / "data").mkdir(parents=True)
    assert run([*args[:-1], str(other), "--force"]) == 2  # not an image layout: never replaced
    assert (other / "data").is_dir()


def image_with_layers(path: Path, layers: list[TarPlan], *, arch: str = "amd64") -> str:
    store = BlobStore(path.parent / f"{path.name}.store")
    stored = [store.add_layer(plan, f"layer {i}") for i, plan in enumerate(layers)]
    config = {"architecture": arch, "os": "linux", "config": {"Env": ["PATH=/usr/bin"]}}
    manifest = image_manifest(store, config, stored, {})
    write_archive(store, manifest, path, "base")
    return manifest.digest


def test_whiteouts_remove_what_lower_layers_laid(tmp_path: Path) -> None:
    lower, upper = TarPlan(mtime=0), TarPlan(mtime=0)
    for name in ("a/gone", "a/kept", "d/old", "d/deeper/old", "link-target"):
        lower.add_file(name, b"lower")
    lower.add_symlink("a/link", "../link-target")
    upper.add_file("a/.wh.gone", b"")
    upper.add_file("a/.wh.link", b"")
    upper.add_file("d/new", b"upper")
    upper.add_file("d/.wh..wh..opq", b"")
    image = tmp_path / "image.tar"
    image_with_layers(image, [lower, upper])
    dest = tmp_path / "tree"
    extract(image, dest, kind="oci")
    assert tree_paths(dest) == {"a/kept", "d/new", "link-target"}
    assert (dest / "link-target").read_text() == "lower"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # the layer's own directory "outside" replaces the lower layer's link first
        ("outside/.wh.passwd", None),
        ("d/.wh..", "invalid whiteout"),
        ("d/.wh.", "invalid whiteout"),
    ],
)
def test_a_whiteout_never_reaches_outside_the_tree(
    tmp_path: Path, name: str, message: str | None
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "passwd").write_text("keep me")
    lower, upper = TarPlan(mtime=0), TarPlan(mtime=0)
    lower.add_symlink("outside", str(victim))
    lower.add_file("d/file", b"x")
    upper.add_file(name, b"")
    image = tmp_path / "image.tar"
    image_with_layers(image, [lower, upper])
    if message is None:
        extract(image, tmp_path / "tree", kind="oci")
        assert not (tmp_path / "tree/outside").is_symlink()
    else:
        with pytest.raises(ArtifactError, match=message):
            extract(image, tmp_path / "tree", kind="oci")
    assert (victim / "passwd").read_text() == "keep me"


def test_a_whiteout_beyond_a_link_is_refused(tmp_path: Path) -> None:
    """A layer written by another tool need not name a whiteout's parent directory."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "passwd").write_text("keep me")
    lower = TarPlan(mtime=0)
    lower.add_symlink("outside", str(victim))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        archive.addfile(tarfile.TarInfo("outside/.wh.passwd"), io.BytesIO(b""))
    store = BlobStore(tmp_path / "store")
    layers = [store.add_layer(lower, "lower")]
    blob = store.add_bytes(gzip.compress(raw.getvalue(), mtime=0), MEDIA_LAYER_GZIP)
    layers.append(Layer(blob, "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest(), "upper"))
    manifest = image_manifest(store, {"architecture": "amd64", "os": "linux"}, layers, {})
    write_archive(store, manifest, tmp_path / "image.tar", None)
    with pytest.raises(ArtifactError, match="lies beyond the symlink outside"):
        extract(tmp_path / "image.tar", tmp_path / "tree", kind="oci")
    assert (victim / "passwd").read_text() == "keep me"


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record build work instead of doing it; the build stops with exit 6."""
    calls: list[str] = []

    def interpreter(*args: Any, **kwargs: Any) -> Any:
        calls.append("choose_interpreter")
        raise BuildError("stopped before the build")

    monkeypatch.setattr(build, "choose_interpreter", interpreter)
    return calls


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--expose", "http"], "--expose 'http': use PORT"),
        (["--expose", "70000"], "--expose '70000'"),
        (["--label", "novalue"], "--label 'novalue': use KEY=VALUE"),
        (["--image-user", "root user"], "--image-user 'root user'"),
        (["--workdir", "relative"], "--workdir 'relative' must be an absolute path"),
        (["--volume", "data"], "--volume 'data' must be an absolute path"),
        (["--cmd", "'unclosed"], "--cmd"),
        (["--level", "11"], "gzip level must be 1..9"),
        (["--base", "ftp:/x"], ""),
        (["--entrypoint", "../x"], "--entrypoint '../x'"),
        (["--prefix", "/usr/local/hello"], "cannot lie in the base's system directories"),
        (["--prefix", "/"], "--prefix /: an image's environment"),
    ],
)
def test_bad_options_are_one_line_before_any_build(
    tmp_path: Path,
    no_build: list[str],
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    assert run(["oci", "hello-req", "-q", "-o", str(out), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("venvpack: error: "), err
    assert err.count("\n") == 1, err
    assert message in err
    assert no_build == []
    assert not out.exists()


def test_a_base_of_another_architecture_is_refused_before_building(
    tmp_path: Path, no_build: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    plan = TarPlan(mtime=0)
    plan.add_file("etc/hostname", b"arm\n")
    base = tmp_path / "arm.tar"
    image_with_layers(base, [plan], arch="arm64")
    assert run(["oci", "hello-req", "-q", "--base", f"oci-archive:{base}"]) == 2
    err = capsys.readouterr().err
    assert "is an image for linux/arm64; the environment runs on linux/amd64" in err
    assert no_build == []


def test_a_base_is_kept_and_recorded_and_its_glibc_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    env = rich_env(tmp_path / "env")
    plan = TarPlan(mtime=0)
    plan.add_file("usr/lib/libc.so.6", b"\x7fELF GNU C Library release version 2.31\n")
    plan.add_file("etc/ssl/certs/ca-certificates.crt", b"-----BEGIN CERTIFICATE-----\n")
    base = tmp_path / "base.tar"
    digest = image_with_layers(base, [plan])
    old = BuiltEnv(env.root, fake_manifest(glibc_floor="2.34"))
    emitter = OciEmitter(ImageConfig(), base=f"oci-archive:{base}")
    with pytest.raises(ConfigError, match=r"has glibc 2\.31, older than the environment's floor"):
        emitter.emit(old, tmp_path / "old.tar")
    assert not (tmp_path / "old.tar").exists()
    ok = BuiltEnv(env.root, fake_manifest(glibc_floor="2.31"))
    out = OciEmitter(ImageConfig(), base=f"oci-archive:{base}").emit(ok, tmp_path / "ok.tar")
    manifest, config, layers = read_image(out)
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == digest
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == f"oci-archive:{base}"
    assert "usr/lib/libc.so.6" in layer_names(layers[0])
    assert len(layers) == 4
    assert config["history"][0]["created_by"] == "layer 0"
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in config["config"]["Env"]


def _stanza_root(root: Path, packages: dict[str, tuple[str, str, dict[str, bytes]]]) -> Path:
    """A dpkg root: ``packages`` maps a name to (architecture, state, files)."""
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    status = []
    for package, (arch, state, contents) in packages.items():
        status.append(
            f"Package: {package}\nStatus: install ok {state}\nArchitecture: {arch}\n"
            f"Version: {arch}-1\n"
        )
        listing = ["/.", *sorted({str(Path(p).parent) for p in contents}), *contents]
        (info / f"{package}:{arch}.list").write_text("\n".join(listing) + "\n")
        for path, data in contents.items():
            write(root / path.lstrip("/"), data.decode())
    (root / "var/lib/dpkg/status").write_text("\n".join(status))
    return root


def test_another_machines_base_takes_only_architecture_free_data_from_this_host(
    tmp_path: Path,
) -> None:
    """A sysroot records its packages unpacked (nothing ran there: no CA bundle); the
    bundle and tzdata and netbase, which are the same for every machine, come from this
    host, never its libc6."""
    libc = b"\x7fELF GNU C Library release version 2.36\n"
    sysroot = _stanza_root(
        tmp_path / "sysroot",
        {
            "libc6": ("arm64", "unpacked", {"/usr/lib/aarch64-linux-gnu/libc.so.6": libc}),
            "libgcc-s1": ("arm64", "unpacked", {"/usr/lib/aarch64-linux-gnu/libgcc_s.so.1": b"g"}),
            "tzdata": ("all", "unpacked", {"/usr/share/zoneinfo/UTC": b"TZif2 sysroot"}),
        },
    )
    host = _stanza_root(
        tmp_path / "host",
        {
            "libc6": ("amd64", "installed", {"/usr/lib/x86_64-linux-gnu/libc.so.6": libc}),
            "libgcc-s1": ("amd64", "installed", {"/usr/lib/x86_64-linux-gnu/libgcc_s.so.1": b"h"}),
            "tzdata": ("all", "installed", {"/usr/share/zoneinfo/UTC": b"TZif2 host"}),
            "netbase": ("all", "installed", {"/etc/services": b"https 443/tcp\n"}),
            "ca-certificates": ("all", "installed", {}),
        },
    )
    write(host / "etc/ssl/certs/ca-certificates.crt", "-----BEGIN CERTIFICATE-----\n")
    base = default_base(sysroot, dpkg_arch="arm64", mtime=0, data_root=host)
    entries = {e.arcname: e for e in base.plan.entries}
    assert base.packages == {
        "ca-certificates": "all-1",
        "libc6": "arm64-1",
        "libgcc-s1": "arm64-1",
        "netbase": "all-1",
        "tzdata": "all-1",
    }
    assert "usr/lib/aarch64-linux-gnu/libc.so.6" in entries
    assert not any("x86_64" in name for name in entries)
    assert entries["usr/share/zoneinfo/UTC"].source == sysroot / "usr/share/zoneinfo/UTC"
    assert entries["etc/services"].source == host / "etc/services"
    assert entries["etc/ssl/certs/ca-certificates.crt"].source == b"-----BEGIN CERTIFICATE-----\n"
    # without a host to take them from, the sysroot lacks netbase
    with pytest.raises(EmitError, match="needs the package netbase:arm64"):
        default_base(sysroot, dpkg_arch="arm64", mtime=0)
    # a package of one architecture is never taken from the host
    (sysroot / "var/lib/dpkg/status").write_text(
        (sysroot / "var/lib/dpkg/status").read_text().replace("Package: libgcc-s1", "Package: x")
    )
    with pytest.raises(EmitError, match=r"needs the package libgcc-s1:arm64 in .*sysroot"):
        default_base(sysroot, dpkg_arch="arm64", mtime=0, data_root=host)
