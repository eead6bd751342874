"""The OCI image emitter: the environment as a layered container image, written without a
daemon or a Dockerfile (docs/commands/oci.md).

Layers follow what changes, bottom up (:func:`venvpack.oci.layers.split_layers`):

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
as a container runtime would apply the config
(:func:`venvpack.oci.container.run_in_rootfs`).
"""

from __future__ import annotations

import logging
import platform as _host
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from venvpack.archive import Compression, Progress, TarPlan, source_date_epoch
from venvpack.config import BuildSpec
from venvpack.emit import INSTALL, LEVEL, METADATA, OUTPUT, Option
from venvpack.errors import ArtifactError, ConfigError, EmitError
from venvpack.glibc import parse_glibc, version_text
from venvpack.interpreter import foreign_root
from venvpack.manifest import BuiltEnv, Manifest
from venvpack.oci.base import Base, default_base, has_ca_bundle, image_glibc
from venvpack.oci.container import is_python_script, run_in_rootfs, without_shell
from venvpack.oci.layers import APPLICATION, INTERPRETER, LAYERS, split_layers
from venvpack.output import atomic_output
from venvpack.platform import is_foreign, package_arch
from venvpack.validate import control_character, file_name

if TYPE_CHECKING:
    from venvpack.oci.image import BlobStore, Layer, LoadedImage
    from venvpack.sysroot import Sysroot
    from venvpack.unpack import Stream, Unpacker
    from venvpack.verify import Installed, Target

__all__ = [
    "FORMAT",
    "ImageConfig",
    "OciEmitter",
    "OciFormat",
    "describe_image",
    "image_config",
    "oci_platform",
    "read_image",
]

log = logging.getLogger("venvpack")

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
    if head.startswith(b"\x7fELF") or not is_python_script(head):
        return [f"{prefix}/bin/{wanted}"]
    return [f"{prefix}/bin/python", f"{prefix}/bin/{wanted}"]


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
    prefix = m.prefix.rstrip("/")
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
        self._sysroot: Sysroot | None = None
        """The root another machine's interpreter is built from: its default base's too."""
        self._default: Base | None = None

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
        if spec.prefix is not None:
            _check_prefix(spec.prefix)
        foreign = foreign_root(spec.python, spec.sysroot)
        if foreign is None:
            self.check_platform(_host.machine())
            return
        machine, self._sysroot = foreign
        self.check_platform(machine)
        if self.base is None:  # made of that machine's packages: refused now if it cannot be
            self._default_base(machine, _mtime())

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
        _check_prefix(m.prefix)
        self.check_platform(m.target.machine)
        mtime = _mtime()
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
            for name in LAYERS:
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
            base = self._default_base(m.target.machine, mtime)
            where = "this host's" if self._sysroot is None else f"{self._sysroot.path}'s"
            _check_floor(floor, base.glibc, f"the default base ({where} libc6)")
            packages = " ".join(f"{k}={v}" for k, v in base.packages.items())
            created_by = f"venvpack: base ({packages})"
            layer = store.add_layer(base.plan, created_by, level=self.level)
            history = [{"created": _created(source_date_epoch()), "created_by": created_by}]
            return [layer], history, {_BASE_PACKAGES: packages}, None, True
        _check_floor(floor, image_glibc(loaded), f"--base {self.base}")
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
        return layers, history, annotations, dict(loaded.config), has_ca_bundle(loaded)

    def _default_base(self, machine: str, mtime: int) -> Base:
        """venvpack's own base, made of ``machine``'s packages: this host's, or those of
        the root another machine's interpreter came from (its packages of every
        architecture, like the CA bundle its scripts never made there, from this host)."""
        if self._default is not None:
            return self._default
        deb = package_arch(machine, "deb", "Debian")
        if self._sysroot is not None:
            root = self._sysroot.path
            self._default = default_base(root, dpkg_arch=deb.arch, mtime=mtime, data_root=Path("/"))
        elif is_foreign(machine):
            # --from: the root the interpreter came from is not known; this host may still
            # have that machine's libc6 (dpkg's multiarch).
            try:
                self._default = default_base(dpkg_arch=deb.arch, mtime=mtime)
            except EmitError:
                raise EmitError(
                    f"the default base of an image for {machine} is made of that machine's "
                    f"packages, and this host has no {deb.arch} libc6: build the image with "
                    "--python from that machine's root instead of --from, or give --base"
                ) from None
        else:
            self._default = default_base(dpkg_arch=deb.arch, mtime=mtime)
        return self._default

    def _cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self._loaded = None


def _mtime() -> int:
    """Every entry's date: ``SOURCE_DATE_EPOCH``, else 1970."""
    epoch = source_date_epoch()
    return epoch if epoch is not None else 0


def _created_by(layer: str, m: Manifest) -> str:
    """The history line of one of venvpack's layers: what it holds."""
    if layer == INTERPRETER:
        return f"venvpack: interpreter (CPython {m.python.version})"
    if layer == APPLICATION:
        return f"venvpack: application ({m.name} {m.version})"
    return f"venvpack: {layer}"


def _check_prefix(prefix: str) -> None:
    """ConfigError for a prefix in the base's own directories: the environment's ``lib``,
    ``bin`` and ``lib64`` link would shadow the system's (``/usr/lib64`` holds the loader)."""
    parts = PurePosixPath(prefix).parts[1:]
    if not parts or parts[0] in _SYSTEM_DIRS or ".." in parts:
        raise ConfigError(
            f"--prefix {prefix}: an image's environment cannot lie in the base's system "
            "directories (/usr, /etc, /lib ...): use /opt/<name> (the default), /app or "
            "another directory of its own"
        )


_SYSTEM_DIRS = frozenset(
    {
        "bin",
        "boot",
        "dev",
        "etc",
        "home",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "root",
        "run",
        "sbin",
        "sys",
        "tmp",
        "usr",
        "var",
    }
)


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


# -- the format ------------------------------------------------------------------------------


class OciFormat:
    """``venvpack oci``; see :class:`venvpack.emit.Format`."""

    name = "oci"
    noun = "an OCI image"
    summary = "a layered container image, no daemon needed"
    sample = "hello-1.0.0-amd64.oci.tar"
    init_template: str | None = "init/oci.toml"
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
            "assembles from this host's packages, or from the root another machine's "
            "interpreter is read from).",
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
        return run_in_rootfs(rootfs, without_shell(rootfs, argv), facts)

    entry = [*facts["entrypoint"], "--help"] if facts["entrypoint"] else []
    installed = target.installed_at.lstrip("/")
    return Installed(run, rootfs, "/", installed, "srv/moved app", entrypoint=tuple(entry))
