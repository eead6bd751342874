"""The OCI image emitter: the environment as a layered container image, written without a
daemon or a Dockerfile (docs/commands/oci.md).

Layers follow what changes, bottom up (:func:`split_layers`):

1. the base: venvpack's own minimal glibc system (:mod:`venvpack.oci.base`), the layers
   of ``--base REF`` unchanged, or nothing (``--base scratch``);
2. the interpreter, ``<prefix>/python``;
3. the third-party distributions: the site-packages entries the RECORDs of every
   distribution but the application's own hold, their console scripts, and the libraries
   grafted for them;
4. the application: its distribution, the launchers, ``bin/``, ``pyvenv.cfg`` and
   ``.venvpack/`` -- everything left.

Every entry of every layer is dated ``SOURCE_DATE_EPOCH`` (else 1970, as ko and jib date
theirs) and owned by root, so a layer is the same bytes whenever the same files are built:
after an application-only change only the top layer (and the small config and manifest)
is new, and a registry that has the others is sent one layer. The config runs the
application's console script as the unprivileged user 65532 with ``<prefix>/bin`` first on
``PATH``; the bundled OpenSSL is pointed at the base's CA bundle.

The artifact is an ``oci-archive`` (one tar, what ``skopeo``, ``podman load`` and
``docker load`` read) or, with ``--layout``, an OCI image layout directory; ``--push``
copies it to a registry afterwards. Read back, its layers are laid in order into one tree
(whiteouts honoured) by the contained reader; ``verify`` runs the entrypoint in that tree
as a container runtime would apply the config (:func:`run_in_rootfs`).
"""

from __future__ import annotations

import csv
import logging
import os
import platform as _host
import posixpath
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from venvpack.archive import Compression, Progress, TarPlan, source_date_epoch
from venvpack.config import BuildSpec
from venvpack.emit import INSTALL, LEVEL, METADATA, OUTPUT, Option
from venvpack.errors import ArtifactError, ConfigError, ToolMissingError
from venvpack.glibc import parse_glibc, version_text
from venvpack.manifest import BuiltEnv, Manifest
from venvpack.output import atomic_output
from venvpack.platform import package_arch
from venvpack.validate import control_character, file_name

if TYPE_CHECKING:
    from venvpack.oci.image import BlobStore, Layer, LoadedImage
    from venvpack.unpack import Stream, Unpacker
    from venvpack.verify import Installed, Target

__all__ = [
    "APPLICATION",
    "FORMAT",
    "INTERPRETER",
    "THIRD_PARTY",
    "ImageConfig",
    "OciEmitter",
    "OciFormat",
    "image_config",
    "oci_platform",
    "run_in_rootfs",
    "split_layers",
]

log = logging.getLogger("venvpack")

INTERPRETER = "interpreter"
THIRD_PARTY = "third-party distributions"
APPLICATION = "application"
_LAYERS = (INTERPRETER, THIRD_PARTY, APPLICATION)
"""venvpack's own layers, bottom up (the base's come first)."""

_DEFAULT_USER = "65532:65532"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ANNOTATION = "org.opencontainers.image."
_BASE_PACKAGES = "io.github.venvpack.base.packages"
"""The default base's packages and versions (``libc6=2.36-9 ...``), in the annotations."""
_USER_RE = re.compile(
    r"[0-9]{1,10}(:[0-9]{1,10})?|[a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?"
)
_PORT_RE = re.compile(r"([0-9]{1,5})(/(tcp|udp|sctp))?")
_LABEL_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_SCRATCH = "scratch"


# -- what goes in which layer ----------------------------------------------------------------


def split_layers(root: Path, manifest: Manifest) -> dict[str, list[str]]:
    """Every path of the environment at ``root`` (files, symlinks and empty directories,
    relative to it) in exactly one of venvpack's layers, by layer name, sorted. A
    directory that holds something is in no list: each layer makes the parents it needs."""
    owners = _Owners(root, manifest)
    layers: dict[str, list[str]] = {name: [] for name in _LAYERS}
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(directory)
        rel_dir = here.relative_to(root).as_posix()
        links = [d for d in dirs if (here / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links]
        for name in [*files, *links]:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            layers[owners.layer_of(rel)].append(rel)
        if not files and not dirs and not links and rel_dir != ".":
            layers[owners.layer_of(rel_dir)].append(rel_dir)
    return {name: sorted(paths) for name, paths in layers.items()}


class _Owners:
    """Which layer a path of the environment belongs to: the interpreter's tree, what the
    third-party distributions' RECORDs hold (with the byte-code of their modules and the
    libraries grafted for them), or the application."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        app = manifest.metadata
        app_paths = {p.rstrip("/") for p in (app.paths if app is not None else ())}
        self.site_dirs: list[str] = []
        self.third_files: set[str] = set()
        self.app_files: set[str] = set()
        self.third_tops: set[str] = set()
        self.app_tops: set[str] = set(app_paths)
        for site in sorted(root.glob("lib/python3*/site-packages")):
            if site.is_symlink() or not site.is_dir():
                continue
            site_rel = site.relative_to(root).as_posix()
            self.site_dirs.append(site_rel)
            for dist_info in sorted(site.glob("*.dist-info")):
                info_rel = dist_info.relative_to(root).as_posix()
                is_app = info_rel in app_paths
                files, tops = self.app_files, self.app_tops
                if not is_app:
                    files, tops = self.third_files, self.third_tops
                tops.add(info_rel)
                for path in _record_paths(dist_info / "RECORD", site_rel):
                    files.add(path)
                    if path.startswith(site_rel + "/"):
                        tops.add("/".join(path.split("/")[: site_rel.count("/") + 2]))
        self.third_tops -= self.app_tops  # a namespace both use: file by file
        prefix = "python/"
        self.grafted = {g.path for g in manifest.grafted if not g.path.startswith(prefix)}

    def layer_of(self, rel: str) -> str:
        if rel == "python" or rel.startswith("python/"):
            return INTERPRETER
        if rel in self.third_files or rel in self.grafted:
            return THIRD_PARTY
        if rel in self.app_files:
            return APPLICATION
        source = _source_of_bytecode(rel)
        if source is not None and source != rel:
            return self.layer_of(source)
        for site in self.site_dirs:
            if rel.startswith(site + "/"):
                top = "/".join(rel.split("/")[: site.count("/") + 2])
                if top in self.third_tops:
                    return THIRD_PARTY
                break
        return APPLICATION


def _record_paths(record: Path, site_rel: str) -> Iterable[str]:
    """The paths a RECORD lists, relative to the environment root (a console script's
    ``../../../bin/x`` is ``bin/x``); those leaving the environment are dropped."""
    try:
        text = record.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for row in csv.reader(text.splitlines()):
        if not row or not row[0]:
            continue
        path = posixpath.normpath(posixpath.join(site_rel, row[0]))
        if not path.startswith("../") and path != ".." and not path.startswith("/"):
            yield path


def _source_of_bytecode(rel: str) -> str | None:
    """``pkg/mod.py`` for ``pkg/__pycache__/mod.cpython-311.pyc``: byte-code goes where its
    source goes, whether or not a RECORD lists it."""
    path = PurePosixPath(rel)
    if path.parent.name != "__pycache__" or path.suffix != ".pyc":
        return None
    return str(path.parent.parent / (path.name.split(".", 1)[0] + ".py"))


# -- the config --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageConfig:
    """The container config options (``--entrypoint`` ...), checked."""

    entrypoint: str | None = None
    cmd: tuple[str, ...] = ()
    user: str = _DEFAULT_USER
    workdir: str = "/"
    expose: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


def oci_platform(machine: str) -> tuple[str, str | None]:
    """The OCI architecture and variant of ``machine`` (``platform.machine()``)."""
    arch = package_arch(machine, "oci", "OCI image")
    return arch.arch, arch.variant


def _created(epoch: int | None) -> str:
    stamp = time.gmtime(epoch if epoch is not None else time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp)


def _entrypoint(env: BuiltEnv, wanted: str | None) -> list[str]:
    """The command the image runs: ``--entrypoint``, else the application's one console
    script, else the interpreter. A Python script (every launcher venvpack writes) is
    started by ``bin/python`` itself: the image has no shell to read its first line."""
    m = env.manifest
    prefix = m.prefix.rstrip("/")
    bin_dir = env.root / "bin"
    if wanted is None:
        if len(m.commands) > 1:
            raise ConfigError(
                f"the environment has several commands ({', '.join(m.commands)}): "
                "choose the image's with --entrypoint"
            )
        wanted = m.commands[0] if m.commands else "python"
    script = bin_dir / wanted
    if not script.exists() or script.is_dir():
        have = ", ".join(sorted(p.name for p in bin_dir.iterdir() if p.name[0] != "."))
        raise ConfigError(f"--entrypoint {wanted}: no such command in bin/ (there: {have})")
    with script.open("rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"\x7fELF") or not _is_python_script(head):
        return [f"{prefix}/bin/{wanted}"]
    return [f"{prefix}/bin/python", f"{prefix}/bin/{wanted}"]


def _is_python_script(head: bytes) -> bool:
    """A ``#!`` script Python runs: a python shebang, or venvpack's ``#!/bin/sh``
    launcher, whose shell part is a Python string (``'''true'`` / ``'''exec'``)."""
    first, _, rest = head.partition(b"\n")
    if not first.startswith(b"#!"):
        return False
    return b"python" in first or rest.startswith((b"'''true'", b"'''exec'"))


def image_config(
    env: BuiltEnv,
    options: ImageConfig,
    *,
    base_config: Mapping[str, Any] | None = None,
    certificates: bool = True,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The OCI image config (without ``rootfs`` and ``history``) and the manifest's
    annotations for ``env``: its platform, the entrypoint, user, environment and working
    directory, and the ``org.opencontainers.image.*`` labels of the application's
    metadata. ``base_config``'s environment is kept (its ``PATH`` after ours);
    ``certificates``: the base has the CA bundle the bundled OpenSSL is pointed at."""
    from venvpack.oci.base import CA_BUNDLE

    m = env.manifest
    target = m.target
    arch, variant = oci_platform(target.machine)
    prefix = m.prefix.rstrip("/") or "/"
    base_runtime = (base_config or {}).get("config") or {}
    inherited = [e for e in base_runtime.get("Env") or () if isinstance(e, str) and "=" in e]
    env_vars = dict(e.split("=", 1) for e in inherited)
    env_vars["PATH"] = f"{prefix}/bin:" + env_vars.get("PATH", _DEFAULT_PATH)
    if certificates:
        env_vars.setdefault("SSL_CERT_FILE", f"/{CA_BUNDLE}")
    env_vars.setdefault("LANG", "C.UTF-8")
    epoch = source_date_epoch()
    labels = _metadata_labels(m, _created(epoch))
    labels.update(options.labels)
    runtime: dict[str, Any] = {
        "Entrypoint": _entrypoint(env, options.entrypoint),
        "Env": [f"{k}={v}" for k, v in env_vars.items()],
        "User": options.user,
        "WorkingDir": options.workdir,
        "Labels": labels,
    }
    if options.cmd:
        runtime["Cmd"] = list(options.cmd)
    if options.expose:
        runtime["ExposedPorts"] = {_port(p): {} for p in options.expose}
    if options.volumes:
        runtime["Volumes"] = {v: {} for v in options.volumes}
    config: dict[str, Any] = {
        "created": _created(epoch),
        "architecture": arch,
        "os": "linux",
        "config": runtime,
    }
    if variant:
        config["variant"] = variant
    annotations = {k: v for k, v in labels.items() if k.startswith(_ANNOTATION)}
    return config, annotations


def _metadata_labels(m: Manifest, created: str) -> dict[str, str]:
    labels = {
        f"{_ANNOTATION}title": m.name,
        f"{_ANNOTATION}version": m.version,
        f"{_ANNOTATION}created": created,
    }
    meta = m.metadata
    if meta is not None:
        if meta.summary:
            labels[f"{_ANNOTATION}description"] = meta.summary
        if meta.license:
            labels[f"{_ANNOTATION}licenses"] = meta.license
        if meta.homepage:
            labels[f"{_ANNOTATION}url"] = meta.homepage
        source = next(
            (url for label, url in meta.urls if label.lower() in ("source", "repository")), None
        )
        if source:
            labels[f"{_ANNOTATION}source"] = source
        if meta.authors:
            labels[f"{_ANNOTATION}authors"] = ", ".join(meta.authors)
    return labels


def _port(text: str) -> str:
    match = _PORT_RE.fullmatch(text)
    if match is None or not 0 < int(match.group(1)) < 65536:
        raise ConfigError(f"--expose {text!r}: use PORT or PORT/tcp, PORT/udp (1-65535)")
    return f"{int(match.group(1))}/{match.group(3) or 'tcp'}"


def _check_options(values: Mapping[str, Any]) -> ImageConfig:
    user = values.get("image_user") or _DEFAULT_USER
    if not _USER_RE.fullmatch(user):
        raise ConfigError(f"--image-user {user!r}: use UID[:GID] or NAME[:GROUP]")
    workdir = values.get("workdir") or "/"
    if not workdir.startswith("/") or control_character(workdir):
        raise ConfigError(f"--workdir {workdir!r} must be an absolute path")
    for port in values.get("expose") or ():
        _port(port)
    volumes = tuple(values.get("volume") or ())
    for volume in volumes:
        if not volume.startswith("/") or control_character(volume):
            raise ConfigError(f"--volume {volume!r} must be an absolute path")
    labels: dict[str, str] = {}
    for item in values.get("label") or ():
        key, sep, value = item.partition("=")
        if not sep or not _LABEL_KEY_RE.fullmatch(key) or control_character(value, "\t"):
            raise ConfigError(f"--label {item!r}: use KEY=VALUE (KEY of letters, digits, ._/-)")
        labels[key] = value
    entrypoint = values.get("entrypoint")
    if entrypoint is not None and (not entrypoint or "/" in entrypoint or entrypoint[0] == "."):
        raise ConfigError(f"--entrypoint {entrypoint!r}: name a command of the environment")
    cmd_text = values.get("cmd")
    try:
        cmd = tuple(shlex.split(cmd_text)) if cmd_text else ()
    except ValueError as exc:
        raise ConfigError(f"--cmd {cmd_text!r}: {exc}") from None
    return ImageConfig(
        entrypoint, cmd, user, workdir, tuple(values.get("expose") or ()), volumes, labels
    )


# -- writing ------------------------------------------------------------------------------


class OciEmitter:
    """Writes ``<name>-<version>-<arch>.oci.tar`` (or, with ``layout``, the image layout
    directory ``<name>-<version>-<arch>.oci``); see :class:`venvpack.emit.Emitter`."""

    format = "oci"

    def __init__(
        self,
        options: ImageConfig,
        *,
        base: str | None = None,
        layout: bool = False,
        level: int | None = None,
        push: str | None = None,
        auth_file: Path | None = None,
    ) -> None:
        self.options = options
        self.base = base
        self.layout = layout
        self.level = level
        self.push = push
        self.auth_file = auth_file
        self._loaded: LoadedImage | None = None
        self._workdir: Path | None = None

    # Checked before anything is built.

    def load_base(self, machine: str) -> LoadedImage | None:
        """The ``--base`` image, read (and digest-checked) once, for ``machine`` when it
        lists several platforms; None for the default base or scratch."""
        if self.base in (None, _SCRATCH):
            return None
        if self._loaded is None:
            from venvpack.oci.image import load_image, parse_image_ref

            ref = parse_image_ref(self.base)
            arch, variant = oci_platform(machine)
            # Read before the build and used after it: removed when the emitter is.
            self._workdir = Path(tempfile.mkdtemp(prefix="venvpack-base-"))
            weakref.finalize(self, shutil.rmtree, self._workdir, ignore_errors=True)
            self._loaded = load_image(
                ref,
                self._workdir,
                platform=("linux", arch, variant),
                auth_file=self.auth_file,
            )
        return self._loaded

    def check_platform(self, machine: str) -> None:
        """ConfigError when the ``--base`` image is for another platform than ``machine``."""
        loaded = self.load_base(machine)
        if loaded is None:
            return
        arch, variant = oci_platform(machine)
        os_name, base_arch, base_variant = loaded.platform
        wanted = f"linux/{arch}" + (f"/{variant}" if variant else "")
        have = f"{os_name}/{base_arch}" + (f"/{base_variant}" if base_variant else "")
        # A base that names no variant runs on every variant of its architecture.
        if os_name != "linux" or base_arch != arch or base_variant not in (None, variant):
            raise ConfigError(
                f"--base {self.base} is an image for {have}; the environment runs on "
                f"{wanted}: give a base of that platform"
            )

    def check_build(self, spec: BuildSpec) -> None:
        self.check_platform(_host.machine())

    def filename(self, env: BuiltEnv) -> str:
        m = env.manifest
        arch, _ = oci_platform(m.target.machine)
        suffix = ".oci" if self.layout else ".oci.tar"
        return file_name(f"{m.name}-{m.version}-{arch}{suffix}", "image name")

    def replaceable(self, path: Path) -> bool:
        return self.layout and _is_layout(path)

    def extras(self, env: BuiltEnv, dest: Path) -> tuple[Path, ...]:
        return ()

    def emit(self, env: BuiltEnv, dest: Path, *, replace: bool = True) -> Path:
        from venvpack.oci.image import image_manifest, write_archive, write_layout

        m = env.manifest
        self.check_platform(m.target.machine)
        epoch = source_date_epoch()
        mtime = epoch if epoch is not None else 0
        replaceable = _is_layout if self.layout else None
        with atomic_output(dest, replace=replace, replaceable=replaceable) as tmp:
            from venvpack.oci.image import BlobStore

            store = BlobStore(tmp.parent / "store")
            layers, history, annotations, base_config, certificates = self._base(store, m, mtime)
            config, labels = image_config(
                env, self.options, base_config=base_config, certificates=certificates
            )
            split = split_layers(env.root, m)
            prefix = m.prefix.strip("/")
            for name in _LAYERS:
                if not split[name]:
                    continue  # nothing of its kind (no third-party distribution)
                plan = TarPlan(mtime=mtime)
                for rel in split[name]:
                    plan.add_path(env.root / rel, f"{prefix}/{rel}" if prefix else rel)
                created_by = _created_by(name, m)
                layers.append(store.add_layer(plan, created_by, level=self.level))
                history.append({"created": config["created"], "created_by": created_by})
            config["history"] = history
            annotations.update(labels)
            manifest = image_manifest(store, config, layers, annotations)
            write = write_layout if self.layout else write_archive
            write(store, manifest, tmp, m.version, image_name=f"{m.name}:{m.version}")
        self._cleanup()
        if self.push is not None:
            from venvpack.oci.registry import push

            digest = push(dest, self.push, auth_file=self.auth_file, log=log.info)
            log.info("pushed %s (%s)", self.push, digest)
        return dest

    def _base(
        self, store: BlobStore, m: Manifest, mtime: int
    ) -> tuple[list[Layer], list[dict[str, Any]], dict[str, str], dict[str, Any] | None, bool]:
        """The base's layers (stored), history, annotations and config, and whether it has
        the CA bundle; its glibc checked against the environment's floor first."""
        floor = m.target.floor or m.glibc_floor or None
        if self.base == _SCRATCH:
            return [], [], {}, None, False
        loaded = self.load_base(m.target.machine)
        if loaded is None:
            from venvpack.oci.base import default_base

            deb = package_arch(m.target.machine, "deb", "Debian")
            base = default_base(dpkg_arch=deb.arch, mtime=mtime)
            _check_floor(floor, base.glibc, "the default base (this host's libc6)")
            packages = " ".join(f"{k}={v}" for k, v in base.packages.items())
            created_by = f"venvpack: base ({packages})"
            layer = store.add_layer(base.plan, created_by, level=self.level)
            history = [{"created": _created(source_date_epoch()), "created_by": created_by}]
            return [layer], history, {_BASE_PACKAGES: packages}, None, True
        _check_floor(floor, _image_glibc(loaded), f"--base {self.base}")
        layers: list[Layer] = []
        for layer in loaded.layers:
            store.add_blob_file(loaded.store.path(layer.descriptor.digest), layer.descriptor)
            layers.append(layer)
        history = [dict(h) for h in loaded.config.get("history") or () if isinstance(h, dict)]
        if sum(1 for h in history if not h.get("empty_layer")) != len(layers):
            history = [{"created_by": layer.created_by or "base layer"} for layer in layers]
        annotations = {
            f"{_ANNOTATION}base.digest": loaded.manifest.digest,
            f"{_ANNOTATION}base.name": self.base or "",
        }
        return layers, history, annotations, dict(loaded.config), _has_bundle(loaded)

    def _cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self._loaded = None


def _created_by(layer: str, m: Manifest) -> str:
    """The history line of one of venvpack's layers: what it holds (never what changes
    with the application, for the lower ones: the config holds it, not the layer)."""
    if layer == INTERPRETER:
        return f"venvpack: interpreter (CPython {m.python.version})"
    if layer == THIRD_PARTY:
        return "venvpack: third-party distributions"
    return f"venvpack: application ({m.name} {m.version})"


def _check_floor(floor: str | None, have: tuple[int, int] | None, what: str) -> None:
    if floor is None:
        return
    if have is None:
        raise ConfigError(f"{what} has no glibc (no libc.so.6): the environment needs {floor}")
    if parse_glibc(floor) > have:
        raise ConfigError(
            f"{what} has glibc {version_text(have)}, older than the environment's floor "
            f"{floor}: give a newer base"
        )


def _is_layout(path: Path) -> bool:
    """An OCI image layout directory (and nothing else in it): what ``--layout --force``
    replaces."""
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return (
        names <= {"oci-layout", "index.json", "blobs"}
        and "oci-layout" in names
        and (path / "oci-layout").is_file()
        and not (path / "oci-layout").is_symlink()
    )


def _image_glibc(loaded: LoadedImage) -> tuple[int, int] | None:
    """The glibc release of the image's ``libc.so.6`` (the highest layer that has one)."""
    from venvpack.oci.base import glibc_release

    found: tuple[int, int] | None = None
    for layer in loaded.layers:
        for _name, data in _layer_files(loaded, layer, _libc_member):
            release = glibc_release(data)
            if release is not None:
                found = release
    return found


def _has_bundle(loaded: LoadedImage) -> bool:
    from venvpack.oci.base import CA_BUNDLE

    return any(
        True
        for layer in loaded.layers
        for _ in _layer_files(loaded, layer, lambda n: n.lstrip("./") == CA_BUNDLE)
    )


def _libc_member(name: str) -> bool:
    base = PurePosixPath(name).name
    return base == "libc.so.6" or re.fullmatch(r"libc-[0-9]+\.[0-9]+\.so", base) is not None


_MEMBER_LIMIT = 64 << 20


def _layer_files(loaded: LoadedImage, layer: Layer, wanted: Any) -> Iterable[tuple[str, bytes]]:
    """The regular members of ``layer`` whose names ``wanted`` accepts, with their data
    (at most 64 MiB each): the layer read as a stream, nothing written."""
    import tarfile

    path = loaded.store.path(layer.descriptor.digest)
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                if member.isreg() and wanted(member.name) and member.size <= _MEMBER_LIMIT:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield member.name, handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"base layer {layer.descriptor.digest}: unreadable ({exc})") from None


# -- the format ------------------------------------------------------------------------------


class OciFormat:
    """``venvpack oci``; see :class:`venvpack.emit.Format`."""

    name = "oci"
    noun = "an OCI image"
    summary = "a layered container image, no daemon needed"
    sample = "hello-1.0.0-amd64.oci.tar"
    init_template: str | None = None
    fixed_location = True
    help = (
        "Build (or take --from) an environment and write it as a layered OCI container image "
        "(an oci-archive, or with --layout an image layout directory): base, interpreter, "
        "third-party distributions and application in layers of their own; no daemon or "
        "Dockerfile needed."
    )
    examples = (
        "venvpack oci --project . -o dist/",
        "venvpack oci --from build/env -o hello.tar --push registry.example.org/hello:1.0.0",
        "venvpack oci --from build/env --layout -o hello.oci   # an image layout directory",
    )
    options = (
        Option(
            "base",
            ("--base",),
            "The image to build on: oci-archive:PATH, oci:DIR[:TAG], a registry reference "
            "(docker://REF), or scratch for none (default: a minimal glibc base venvpack "
            "assembles from this host's packages).",
            metavar="REF",
            group=INSTALL,
        ),
        Option(
            "entrypoint",
            ("--entrypoint",),
            "The command of bin/ the image runs (default: the application's one console script).",
            metavar="NAME",
            group=INSTALL,
        ),
        Option(
            "cmd",
            ("--cmd",),
            "The arguments the entrypoint gets by default (split like a shell does).",
            metavar="ARGS",
            group=INSTALL,
        ),
        Option(
            "image_user",
            ("--image-user",),
            "The user the image runs as: UID[:GID] or NAME[:GROUP].",
            default=_DEFAULT_USER,
            show_default=True,
            metavar="USER",
            group=INSTALL,
        ),
        Option(
            "workdir",
            ("--workdir",),
            "The working directory of the image's command.",
            default="/",
            show_default=True,
            metavar="DIR",
            group=INSTALL,
        ),
        Option(
            "expose",
            ("--expose",),
            "A port the application listens on, PORT[/tcp|udp] (repeatable).",
            multiple=True,
            metavar="PORT",
            group=INSTALL,
        ),
        Option(
            "volume",
            ("--volume",),
            "A directory that holds data, as an absolute path (repeatable).",
            multiple=True,
            metavar="DIR",
            group=INSTALL,
        ),
        Option(
            "label",
            ("--label",),
            "A label KEY=VALUE of the image (repeatable; org.opencontainers.image.* ones "
            "from the project's metadata are set already).",
            multiple=True,
            metavar="KEY=VALUE",
            group=METADATA,
        ),
        Option(
            "layout",
            ("--layout",),
            "Write an OCI image layout directory (-o names it) instead of an oci-archive.",
            is_flag=True,
            default=False,
            group=OUTPUT,
        ),
        Option(
            "push",
            ("--push",),
            "After writing, push the image to this registry reference "
            "(registry.example.org/app:1.0); only the blobs the registry lacks are sent.",
            metavar="REF",
            group=OUTPUT,
        ),
        Option(
            "registry_auth_file",
            ("--registry-auth-file",),
            "Credentials for --push (default: REGISTRY_AUTH_FILE, then the containers' and "
            "docker's usual files).",
            type=Path,
            path="file",
            in_pyproject=False,
            group=OUTPUT,
        ),
        LEVEL,
    )

    def extensions(self, values: Mapping[str, Any]) -> tuple[str, ...] | None:
        return None if values.get("layout") else (".tar",)

    def emitter(
        self, values: Mapping[str, Any], artifact: str | None, progress: Progress | None
    ) -> OciEmitter:
        source_date_epoch()
        options = _check_options(values)
        level = values.get("level")
        if level is not None:
            Compression.GZIP.resolve_level(level)  # the layers' compression
        base = values.get("base") or None
        if base is not None and base != _SCRATCH:
            from venvpack.oci.image import parse_image_ref

            parse_image_ref(base)
        push = values.get("push") or None
        if push is not None:
            from venvpack.oci.registry import parse_reference

            parse_reference(push)
        return OciEmitter(
            options,
            base=base,
            layout=bool(values.get("layout")),
            level=level,
            push=push,
            auth_file=values.get("registry_auth_file"),
        )

    def detect(self, head: bytes) -> bool:
        from venvpack.oci.image import is_oci_archive

        return is_oci_archive(head)

    def unpack(self, artifact: Stream, into: Unpacker) -> None:
        with _OpenedImage(artifact, into.name) as loaded:
            for layer in loaded.layers:
                with loaded.store.path(layer.descriptor.digest).open("rb") as blob:
                    into.archive(blob, "tar", layer=True)

    def install(self, target: Target) -> Installed:
        return _install(target)

    def describe(self, path: Path) -> dict[str, Any]:
        """For ``inspect``: what the image's config and manifest say (:func:`describe_image`)."""
        return describe_image(path)


FORMAT = OciFormat()


# -- reading back ---------------------------------------------------------------------------


class _OpenedImage:
    """The image at ``artifact`` (an oci-archive open for reading, whose file the reader
    reads again by name: the layout's blobs are taken out of it, checked, into a private
    directory, removed afterwards)."""

    def __init__(self, artifact: Stream, name: str) -> None:
        self.path = getattr(artifact, "name", None)
        self.label = name
        self.tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> LoadedImage:
        from venvpack.oci.image import ImageRef, load_image

        if not isinstance(self.path, str):
            raise ArtifactError(f"{self.label}: an image is read from a file")
        self.tmp = tempfile.TemporaryDirectory(prefix="venvpack-image-")
        return load_image(ImageRef("oci-archive", self.path, None), Path(self.tmp.name))

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


def read_image(path: Path) -> tuple[Mapping[str, Any], Mapping[str, Any], list[dict[str, Any]]]:
    """The config, manifest and layers (digest, size, created_by) of the image ``path``."""
    from venvpack.oci.image import ImageRef, load_image

    with tempfile.TemporaryDirectory(prefix="venvpack-image-") as tmp:
        loaded = load_image(ImageRef("oci-archive", str(path), None), Path(tmp))
        history = [
            h
            for h in loaded.config.get("history") or ()
            if isinstance(h, dict) and not h.get("empty_layer")
        ]
        layers = []
        for i, layer in enumerate(loaded.layers):
            holds = history[i].get("created_by", "") if i < len(history) else ""
            layers.append(
                {"digest": layer.descriptor.digest, "size": layer.descriptor.size, "holds": holds}
            )
        return dict(loaded.config), dict(loaded.manifest_json), layers


def describe_image(path: Path) -> dict[str, Any]:
    """What ``inspect`` says of an image beyond its environment: platform, layers (size and
    what each holds), base and its digest, entrypoint, user, working directory."""
    config, manifest, layers = read_image(path)
    runtime = config.get("config") or {}
    annotations = manifest.get("annotations") or {}
    platform = f"{config.get('os', '?')}/{config.get('architecture', '?')}"
    if config.get("variant"):
        platform += f"/{config['variant']}"
    return {
        "platform": platform,
        "layers": layers,
        "base": annotations.get(f"{_ANNOTATION}base.name")
        or (
            f"venvpack default ({annotations[_BASE_PACKAGES]})"
            if _BASE_PACKAGES in annotations
            else None
        ),
        "base_digest": annotations.get(f"{_ANNOTATION}base.digest"),
        "entrypoint": list(runtime.get("Entrypoint") or ()),
        "cmd": list(runtime.get("Cmd") or ()),
        "user": runtime.get("User") or "0",
        "workdir": runtime.get("WorkingDir") or "/",
        "env": list(runtime.get("Env") or ()),
    }


def _install(target: Target) -> Installed:
    """``verify``: the layers laid in order into a clean directory by the contained
    reader, then every command run there as the image's config says."""
    from venvpack.unpack import extract
    from venvpack.verify import Installed

    rootfs = target.work / "rootfs"
    facts = describe_image(target.artifact)
    extract(target.artifact, rootfs, kind=FORMAT.name, whole=True)
    rootfs.chmod(0o755)

    def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return run_in_rootfs(rootfs, _without_shell(rootfs, argv), facts)

    entry = [*facts["entrypoint"], "--help"] if facts["entrypoint"] else []
    installed = target.installed_at.lstrip("/")
    return Installed(run, rootfs, "/", installed, "srv/moved app", entrypoint=tuple(entry))


def _without_shell(rootfs: Path, argv: list[str]) -> list[str]:
    """``argv`` as the image can run it: a launcher of ``bin/`` (a ``#!/bin/sh`` polyglot)
    is started by the ``python`` beside it, as the image's entrypoint is -- the image has
    no shell."""
    from venvpack.unpack import read_inside

    if not argv or not argv[0].startswith("/"):
        return argv
    head = read_inside(rootfs, rootfs / argv[0].lstrip("/"), 4096)
    if head is None or not _is_python_script(head) or b"python" in head.partition(b"\n")[0]:
        return argv
    return [str(PurePosixPath(argv[0]).parent / "python"), *argv]


def run_in_rootfs(
    rootfs: Path, argv: Sequence[str], config: Mapping[str, Any], timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the unpacked image ``rootfs`` the way a container runtime applies
    its config (``config``: :func:`describe_image`'s ``user``, ``env`` and ``workdir``):
    as the image's user and group in namespaces of its own (user, mount, pid, network,
    IPC, UTS, cgroup), with only the image's environment, in its working directory, and
    nothing of the host but a ``/proc`` of the sandbox's own processes, ``/dev`` and a
    fresh ``/tmp``. The image is
    read-only (``/proc``, ``/dev`` and ``/tmp`` are made in it when missing, as a runtime
    makes its mount points); the process has no capability, and on the host it is an
    unused id (:data:`venvpack.roots.SANDBOX_ID_BASE` + its uid), never root."""
    from venvpack.roots import SANDBOX_ID_BASE, SANDBOX_IDS

    for mount in ("proc", "dev", "tmp"):
        place = rootfs / mount
        if place.is_symlink() or (place.exists() and not place.is_dir()):
            raise ArtifactError(f"/{mount} of the image is not a directory")
        place.mkdir(mode=0o755, exist_ok=True)

    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    if bwrap is None or setpriv is None:
        raise ToolMissingError("running an image needs bwrap and setpriv (bubblewrap, util-linux)")
    uid, gid = _ids(rootfs, str(config.get("user") or "0"))
    if not (0 <= uid < SANDBOX_IDS and 0 <= gid < SANDBOX_IDS):
        raise ConfigError(f"the image's user {uid}:{gid} is outside the ids a sandbox maps")
    host_uid, host_gid = SANDBOX_ID_BASE + uid, SANDBOX_ID_BASE + gid
    # bwrap binds the rootfs as root first (its directory's parents may be closed to the
    # image's user, as pytest's and mkdtemp's are), then drops to that user for good.
    command = [bwrap, "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    command += ["--perms", "0755", "--tmpfs", "/run", "--perms", "0755", "--dir", "/run/vp"]
    command += ["--ro-bind", str(rootfs), _ROOTFS, "--unshare-pid", "--die-with-parent", "--"]
    command += [setpriv, f"--reuid={host_uid}", f"--regid={host_gid}", "--clear-groups", "--"]
    command += [bwrap, "--unshare-all", "--unshare-user", "--uid", str(uid), "--gid", str(gid)]
    # The outer sandbox's own /proc (only its processes): a user namespace may not mount
    # another one under it.
    command += ["--ro-bind", _ROOTFS, "/", "--ro-bind", "/proc", "/proc", "--dev", "/dev"]
    command += ["--perms", "1777", "--tmpfs", "/tmp", "--clearenv"]
    for item in config.get("env") or ():
        key, _, value = str(item).partition("=")
        command += ["--setenv", key, value]
    command += ["--chdir", str(config.get("workdir") or "/"), "--die-with-parent"]
    command += ["--new-session", "--", *argv]
    return subprocess.run(
        command,
        env={},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


_ROOTFS = "/run/vp/root"
"""Where :func:`run_in_rootfs`'s outer sandbox binds the image for the inner one."""


def _ids(rootfs: Path, user: str) -> tuple[int, int]:
    """The uid and gid ``USER[:GROUP]`` names, names looked up in the image's own
    ``/etc/passwd`` and ``/etc/group``, as a runtime does."""
    from venvpack.unpack import read_text_inside

    name, _, group = user.partition(":")

    def lookup(file: str, column: int, key: str) -> list[str] | None:
        text = read_text_inside(rootfs, rootfs / "etc" / file) or ""
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[column] == key and fields[2].isdigit():
                return fields
        return None

    entry = lookup("passwd", 2 if name.isdigit() else 0, name)
    if entry is None and not name.isdigit():
        raise ConfigError(f"the image's user {name!r} is not in its /etc/passwd")
    uid = int(name) if name.isdigit() else int(entry[2]) if entry else 0
    gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    if group.isdigit():
        gid = int(group)
    elif group:
        found = lookup("group", 0, group)
        if found is None:
            raise ConfigError(f"the image's group {group!r} is not in its /etc/group")
        gid = int(found[2])
    return uid, gid
