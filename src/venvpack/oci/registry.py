"""Container registries: pushing an image venvpack wrote (:func:`push`) and pulling a base
image into an image layout (:func:`pull`), through skopeo.

Why skopeo and not a Python client. Pushing well is most of the distribution API: a HEAD for
every blob before it is uploaded (so a release moves only the layers that changed),
chunked uploads, cross-repository mounts, token and basic auth, retries, and credentials from
where podman, buildah and docker keep them (``REGISTRY_AUTH_FILE``,
``$XDG_RUNTIME_DIR/containers/auth.json``, ``~/.docker/config.json`` and their credential
helpers). skopeo, from the containers project that also makes podman, does all of it, is
packaged by every distribution (``apt-get install skopeo``) and is what the tests already
read images back with. The Python clients on PyPI cover part of it: ``oras`` (pre-1.0, made
for OCI artifacts, reads only docker's config), ``python-dxf`` (a low-level v2 client
without containers' auth files or credential helpers); ``docker`` needs a daemon. So one
subprocess, with an argument list, is the smaller and better-kept dependency.

Rules kept here, whatever skopeo's configuration says: credentials never appear on a command
line or in anything venvpack prints (skopeo is given at most the *path* of an auth file, and
its messages are scrubbed of anything credential-like before they become an error); TLS is
verified, except for a registry on a loopback address (``127.0.0.0/8``, ``::1``,
``localhost``), which may speak plain HTTP, as docker and podman allow.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from venvpack import proc
from venvpack.errors import ConfigError, RegistryError, VenvpackError
from venvpack.ui import printable

__all__ = [
    "DEFAULT_REGISTRY",
    "Reference",
    "parse_reference",
    "pull",
    "push",
    "scrub",
]

DEFAULT_REGISTRY = "docker.io"
"""The registry of a reference that names none (``python:3.12``), as docker reads it."""

# The grammar of github.com/distribution/reference: [domain/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"
_REFERENCE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
_INSTALL_HINT = "apt-get install skopeo"


@dataclass(frozen=True)
class Reference:
    """An image in a registry: ``registry/repository[:tag][@digest]``."""

    registry: str
    """``host[:port]`` (``docker.io`` when the reference names none)."""
    repository: str
    tag: str | None
    digest: str | None
    text: str
    """The reference as it was given (what skopeo is told, after ``docker://``)."""

    @property
    def host(self) -> str:
        """The registry's host name or address, without port or brackets."""
        host = self.registry
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def loopback(self) -> bool:
        """Whether the registry is on this machine's loopback (plain HTTP allowed)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return self.text


def parse_reference(text: str) -> Reference:
    """``text`` (``127.0.0.1:5000/hello:1.0``, ``ghcr.io/me/app@sha256:...``,
    ``python:3.12``) as a :class:`Reference`; ConfigError, one line, when it is none."""
    match = _REFERENCE.fullmatch(text)
    if match is None or len(text) > 255 + 128 + 80:
        raise ConfigError(
            f"'{printable(text[:120])}' is not an image reference"
            " (registry/name:tag, as docker and podman write it)"
        )
    domain, path = match["domain"], match["path"]
    # As docker reads it: a first component is a registry when it looks like a host
    # (a dot, a port, localhost); otherwise the name is on the default registry.
    if domain is not None and not (
        "." in domain or ":" in domain or domain == "localhost" or domain.startswith("[")
    ):
        path = f"{domain}/{path}"
        domain = None
    return Reference(domain or DEFAULT_REGISTRY, path, match["tag"], match["digest"], text)


def _skopeo() -> str:
    return proc.which("skopeo", _INSTALL_HINT)


def _tls(side: str, reference: Reference) -> str:
    return f"--{side}-tls-verify={'false' if reference.loopback else 'true'}"


def _auth(auth_file: Path | None) -> list[str]:
    if auth_file is None:
        return []
    if not auth_file.is_file():
        raise ConfigError(f"auth file {auth_file} does not exist or is not a file")
    return ["--authfile", os.fspath(auth_file.absolute())]


def _local(path: Path, what: str) -> str:
    """``path`` as skopeo's ``oci:``/``oci-archive:`` transports take it: they cut the
    reference at the first colon, so a path holding one cannot be named."""
    text = os.fspath(path.absolute())
    if ":" in text:
        raise ConfigError(f"{what} {printable(text)}: skopeo cannot be given a path with ':'")
    return text


class _SkopeoFailed(VenvpackError):
    """skopeo exited non-zero; its stderr is the detail, turned into one line by _reason."""


def push(
    image: Path,
    ref: str,
    *,
    auth_file: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> str:
    """Push ``image`` (an oci-archive file or an image layout directory holding one
    manifest) to the registry reference ``ref``; the digest of the pushed manifest.

    Blobs the registry already has are not uploaded again (skopeo asks first), and the
    manifest is pushed byte for byte (``--preserve-digests``): the registry's digest is the
    image's. RegistryError, one line and free of credentials, when the registry cannot be
    reached or refuses; ToolMissingError without skopeo.
    """
    reference = parse_reference(ref)
    if image.is_dir():
        source = f"oci:{_local(image, 'image layout')}"
    elif image.is_file():
        source = f"oci-archive:{_local(image, 'image archive')}"
    else:
        raise ConfigError(f"{image} is neither an image archive nor an image layout")
    auth = _auth(auth_file)
    skopeo = _skopeo()
    if log is not None:
        log(f"pushing {image.name} to {reference}")
    with tempfile.TemporaryDirectory(prefix="venvpack-push-") as tmp:
        digest_file = Path(tmp, "digest")
        _copy(
            [
                skopeo,
                "copy",
                "--quiet",
                "--preserve-digests",
                "--digestfile",
                os.fspath(digest_file),
                _tls("dest", reference),
                *auth,
                source,
                f"docker://{reference}",
            ],
            f"pushing to {reference}",
            reference,
        )
        try:
            digest = digest_file.read_text().strip()
        except OSError:
            digest = ""
    if not re.fullmatch(_DIGEST, digest):
        raise RegistryError(f"pushing to {reference}: skopeo reported no manifest digest")
    return digest


def pull(
    ref: str,
    dest_layout_dir: Path,
    *,
    auth_file: Path | None = None,
    platform: tuple[str, str, str | None] | None = None,
) -> None:
    """Copy the image ``ref`` from its registry into a new image layout directory
    ``dest_layout_dir`` (one manifest, untagged), for the platform (os, architecture,
    variant) given, else the host's, when ``ref`` names a list of several. The layout is
    read back like any other (:func:`venvpack.oci.image.load_image`): nothing pulled is
    trusted more than a file the user gave."""
    reference = parse_reference(ref)
    if os.path.lexists(dest_layout_dir):
        raise ConfigError(f"{dest_layout_dir} already exists")
    auth = _auth(auth_file)
    overrides: list[str] = []
    if platform is not None:
        os_name, arch, variant = platform
        overrides = ["--override-os", os_name, "--override-arch", arch]
        if variant:
            overrides += ["--override-variant", variant]
    try:
        _copy(
            [
                _skopeo(),
                *overrides,
                "copy",
                "--quiet",
                _tls("src", reference),
                *auth,
                f"docker://{reference}",
                f"oci:{_local(dest_layout_dir, 'image layout')}",
            ],
            f"pulling {reference}",
            reference,
        )
    except BaseException:
        shutil.rmtree(dest_layout_dir, ignore_errors=True)
        raise


def _copy(argv: Sequence[str], what: str, reference: Reference) -> None:
    try:
        proc.run(argv, error=_SkopeoFailed, what=what, full_output=True)
    except _SkopeoFailed as exc:
        raise RegistryError(f"{what} failed: {_reason(exc.detail, reference)}") from None


# What skopeo says, reduced to the sentence that helps: its last fatal message is a chain
# of contexts ("trying to reuse blob ... at destination: checking whether a blob ... exists
# in ...: unauthorized: authentication required"); the cause is at the end.
_FATAL = re.compile(r'level=fatal msg="((?:[^"\\]|\\.)*)"')
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "network is unreachable",
    "no route to host",
    "connection reset by peer",
    "context deadline exceeded",
    "TLS handshake timeout",
)


def _reason(stderr: str, reference: Reference) -> str:
    """skopeo's failure as one line naming the cause, scrubbed of credentials."""
    messages = _FATAL.findall(stderr)
    if messages:
        try:
            message = json.loads(f'"{messages[-1]}"')
        except ValueError:
            message = messages[-1]
    else:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        message = lines[-1] if lines else "skopeo gave no reason"
    message = scrub(message)
    lowered = message.lower()
    registry = reference.registry
    if "unauthorized" in lowered or "authentication required" in lowered or " 401" in message:
        return (
            f"{registry} refused the credentials (or found none): log in with"
            f" 'skopeo login {registry}' or name an auth file"
        )
    if "denied" in lowered or " 403" in message:
        return f"{registry} denied access to {reference.repository}: {_tail(message)}"
    if "server gave http response to https client" in lowered:
        return (
            f"{registry} speaks plain HTTP; venvpack verifies TLS for every registry not"
            " on a loopback address"
        )
    if "x509:" in lowered or "certificate" in lowered:
        return f"the TLS certificate of {registry} is not trusted: {_tail(message)}"
    for cause in _UNREACHABLE:
        if cause.lower() in lowered:
            return f"cannot reach {registry}: {cause}"
    return _tail(message)


def _tail(message: str, keep: int = 2) -> str:
    """The last ``keep`` clauses of a ``context: context: cause`` chain, without digests."""
    message = re.sub(r"\bsha256:[0-9a-f]{64}\b", "sha256:...", message)
    clauses = [c.strip() for c in message.split(": ") if c.strip()]
    text = ": ".join(clauses[-keep:]) if clauses else message
    return printable(text[:300])


_SECRETS = (
    # user:password@ in a URL
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@"), r"\1"),
    # Authorization headers and tokens
    (re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._~-]+"), r"\1 <hidden>"),
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|token|access_token|auth|authorization|"
            r"identitytoken|registrytoken)(\"?\s*[:=]\s*\"?)[^\s\",&]+"
        ),
        r"\1\2<hidden>",
    ),
)


def scrub(text: str) -> str:
    """``text`` without anything that looks like a credential: user:password in URLs,
    Basic/Bearer values, ``password=``/``token:`` values."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text
