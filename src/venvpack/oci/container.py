"""Running an unpacked image the way a container runtime applies its config, without one:
as the image's user and group, in namespaces of its own, with only the image's environment,
in its working directory, nothing of the host bound in but ``/proc`` and ``/dev``.

Containers cannot always be started where venvpack runs (crun refuses cgroups in hybrid
mode; CI jobs run in containers themselves), and ``verify`` must not trust the image: bwrap
gives it a user namespace as an unused id of the host (:data:`venvpack.roots.SANDBOX_ID_BASE`
plus its uid), never root, and no capability. The image has no shell: a launcher of
``bin/`` (a ``#!/bin/sh`` polyglot) is started by the ``python`` beside it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from venvpack.errors import ArtifactError, ConfigError, ToolMissingError

__all__ = ["is_python_script", "run_in_rootfs", "without_shell"]


def is_python_script(head: bytes) -> bool:
    """A ``#!`` script Python runs: a python shebang, or venvpack's ``#!/bin/sh``
    launcher, whose shell part is a Python string (``'''true'`` / ``'''exec'``)."""
    first, _, rest = head.partition(b"\n")
    if not first.startswith(b"#!"):
        return False
    return b"python" in first or rest.startswith((b"'''true'", b"'''exec'"))


def without_shell(rootfs: Path, argv: list[str]) -> list[str]:
    """``argv`` as the image can run it: a launcher of ``bin/`` (a ``#!/bin/sh`` polyglot)
    is started by the ``python`` beside it, as the image's entrypoint is -- the image has
    no shell."""
    from venvpack.unpack import read_inside

    if not argv or not argv[0].startswith("/"):
        return argv
    head = read_inside(rootfs, rootfs / argv[0].lstrip("/"), 4096)
    if head is None or not is_python_script(head) or b"python" in head.partition(b"\n")[0]:
        return argv
    return [str(PurePosixPath(argv[0]).parent / "python"), *argv]


def run_in_rootfs(
    rootfs: Path, argv: Sequence[str], config: Mapping[str, Any], timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the unpacked image ``rootfs`` the way a container runtime applies
    its config (``config``: the ``user``, ``env`` and ``workdir`` that
    :func:`venvpack.emit.oci.describe_image` reads): as the image's user and group in
    namespaces of its own (user, mount, pid, network, IPC, UTS, cgroup), with only the
    image's environment, in its working directory, and nothing of the host but a ``/proc``
    of the sandbox's own processes, ``/dev`` and a fresh ``/tmp``. The image is read-only
    (``/proc``, ``/dev`` and ``/tmp`` are made in it when missing, as a runtime makes its
    mount points); the process has no capability, and on the host it is an unused id
    (:data:`venvpack.roots.SANDBOX_ID_BASE` + its uid), never root. Runs as root."""
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
