"""``verify`` runs packages as untrusted code: a .deb's postinst and an .rpm's %post that try
to reach the host (writing next to the artifact, through a device node of the host's disk and
a mount of it, after a chroot escape, mounting a tmpfs, planting a link for the host to follow)
fail inside the sandbox, leave the artifact's directory untouched and nothing mounted; a
package with a service user (files chowned to a second uid) still verifies."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox
from venvpack.build import build_environment
from venvpack.config import BuildSpec
from venvpack.emit.deb import DebEmitter, DebOptions
from venvpack.roots import SANDBOX_ID_BASE, fresh_copy, get_root, run_untrusted
from venvpack.verify import Check, verify_artifact

pytestmark = [pytest.mark.integration, pytest.mark.roots, pytest.mark.packaging]

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"

# Each attempt prints "name: ok" or the error (strerror) on stderr.
# argv: the watched directory, its path inside its file system, the disk's major and minor
# numbers, the file system type.
ESCAPE_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int put(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    int ok = write(fd, "pwned\n", 6) == 6;
    close(fd);
    return ok ? 0 : -1;
}

static void report(const char *name, int result) {
    fprintf(stderr, "%s: %s\n", name, result == 0 ? "ok" : strerror(errno));
}

int main(int argc, char **argv) {
    char path[4096];
    if (argc != 6) return 2;
    const char *watched = argv[1], *inside = argv[2], *fstype = argv[5];
    unsigned major_no = (unsigned)atoi(argv[3]), minor_no = (unsigned)atoi(argv[4]);

    /* Next to the artifact: in its directory (the watched one) on the host, and where
       sandboxes bind it. */
    const char *siblings[] = {"%s/SIBLING", "/tmp/pkg/SIBLING", "/tmp/artifact/SIBLING"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, siblings[i], watched);
        fprintf(stderr, "sibling %s: %s\n", path, put(path) == 0 ? "ok" : strerror(errno));
    }

    /* The host's disk: a device node (on a tmpfs of our own, which allows them), mounted. */
    mkdir("/tmp/vp-dev", 0755);
    mkdir("/tmp/vp-mnt", 0755);
    report("tmpfs", mount("none", "/tmp/vp-dev", "tmpfs", 0, NULL));
    int r = mknod("/tmp/vp-dev/disk", S_IFBLK | 0600, makedev(major_no, minor_no));
    report("mknod", r);
    if (r == 0) {
        r = mount("/tmp/vp-dev/disk", "/tmp/vp-mnt", fstype, 0, NULL);
        report("mount disk", r);
    }
    if (r == 0) {
        snprintf(path, sizeof path, "/tmp/vp-mnt/%s/FROM-DISK", inside);
        report("write via disk", put(path));
    }

    /* A link for the host to follow when it moves the installed tree to /srv. */
    rmdir("/srv");
    report("plant /srv", symlink(watched, "/srv"));

    /* Out of the chroot a scriptlet runs in: chroot deeper, climb past the old root. */
    mkdir("vp-x", 0755);
    r = chroot("vp-x");
    for (int i = 0; r == 0 && i < 64; i++) r = chdir("..");
    if (r == 0) r = chroot(".");
    report("chroot escape", r);
    snprintf(path, sizeof path, "%s/ESCAPED", watched);
    report("write after escape", put(path));
    report("tmpfs after escape", mount("none", watched, "tmpfs", 0, NULL));
    return 0;
}
"""

# The environment the reader finds (pyvenv.cfg) with one module, whose "python" prints what
# the maintainer script recorded: verify's import check shows it as the failure's detail.
PYTHON = '#!/bin/sh\ncat "$(dirname "$0")/../attempts" >&2\nexit 1\n'


@pytest.fixture(scope="module")
def escape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if sandbox.missing_tools("gcc", "bwrap", "nsenter", "unshare"):
        sandbox.unavailable("needs gcc (static libc6-dev), bwrap, nsenter and unshare")
    work = tmp_path_factory.mktemp("escape")
    (work / "escape.c").write_text(ESCAPE_C)
    out = work / "escape"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(work / "escape.c")], check=True)
    return out


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    """The artifact's directory on the host, with a file beside it."""
    directory = tmp_path / "watched"
    directory.mkdir()
    (directory / "keep").write_text("keep\n")
    return directory


def _attempts(watched: Path) -> str:
    """The maintainer script's command: the escape program aimed at ``watched``, through the
    block device and file system that hold it."""
    mount = watched
    while not os.path.ismount(mount):
        mount = mount.parent
    device = os.stat(watched).st_dev
    fstype = "ext4"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(mount):
            fstype = fields[fields.index("-") + 1]
    argv = [
        "/opt/hostile/escape",
        str(watched),
        str(watched.relative_to(mount)),
        str(os.major(device)),
        str(os.minor(device)),
        fstype,
    ]
    return f"{shlex.join(argv)} 2> /opt/hostile/attempts || true\n"


def _tree(dest: Path, escape: Path) -> None:
    env = dest / "opt" / "hostile"
    info = env / "lib" / "python3.11" / "site-packages" / "hostile-1.dist-info"
    info.mkdir(parents=True)
    (info / "top_level.txt").write_text("hostile\n")
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (env / "bin").mkdir()
    (env / "bin" / "python").write_text(PYTHON)
    (env / "bin" / "python").chmod(0o755)
    (env / "escape").write_bytes(escape.read_bytes())
    (env / "escape").chmod(0o755)


def _hostile_deb(escape: Path, watched: Path, work: Path) -> Path:
    tree = work / "deb"
    _tree(tree, escape)
    (tree / "DEBIAN").mkdir()
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (tree / "DEBIAN" / "control").write_text(
        f"Package: hostile\nVersion: 1\nArchitecture: {arch}\nMaintainer: T <t@example.org>\n"
        "Description: tries to reach the host\n"
    )
    (tree / "DEBIAN" / "postinst").write_text("#!/bin/sh\n" + _attempts(watched))
    (tree / "DEBIAN" / "postinst").chmod(0o755)
    deb = watched / "hostile.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(tree), str(deb)],
        capture_output=True,
        check=True,
    )
    return deb


def _hostile_rpm(escape: Path, watched: Path, work: Path) -> Path:
    if sandbox.missing_tools("rpmbuild", "rpm"):
        sandbox.unavailable("rpm tools missing")
    tree = work / "rpm-tree"
    _tree(tree, escape)
    spec = work / "hostile.spec"
    spec.write_text(
        "Name: hostile\nVersion: 1\nRelease: 1\nSummary: tries to reach the host\n"
        "License: MIT\nAutoReqProv: no\n%global debug_package %{nil}\n"
        "%global __os_install_post %{nil}\n%description\nTries to reach the host.\n"
        f"%install\ncp -a {shlex.quote(str(tree))}/. %{{buildroot}}/\n"
        "%files\n/opt/hostile\n%post\n" + _attempts(watched)
    )
    top = work / "rpmbuild"
    subprocess.run(
        ["rpmbuild", "-bb", "--define", f"_topdir {top}", str(spec)],
        capture_output=True,
        check=True,
    )
    (built,) = (top / "RPMS").glob("*/hostile-1-1.*.rpm")
    return Path(built.replace(watched / "hostile.rpm"))


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): b"" if p.is_dir() else p.read_bytes()
        for p in sorted(directory.rglob("*"))
    }


def _results(check: Check) -> dict[str, str]:
    """The escape program's lines, ``name: result``."""
    pairs = (line.rsplit(": ", 1) for line in check.detail.splitlines() if ": " in line)
    return {name: result for name, result in pairs}


@pytest.mark.parametrize(("kind", "root"), [("deb", "bookworm"), ("rpm", "glibc")])
def test_maintainer_scripts_cannot_reach_the_host(
    kind: str, root: str, escape: Path, watched: Path, tmp_path: Path
) -> None:
    cache = sandbox.default_cache()
    get_root(root, cache)  # built before the host's mounts are read
    make = _hostile_deb if kind == "deb" else _hostile_rpm
    artifact = make(escape, watched, tmp_path)
    files, mounts = _snapshot(watched), Path("/proc/self/mountinfo").read_text()

    report = verify_artifact(artifact, [root], cache=cache)

    assert _snapshot(watched) == files
    assert Path("/proc/self/mountinfo").read_text() == mounts
    checks = {(c.step, c.target): c for c in report.checks if c.root == root}
    assert checks["install", artifact.name].status == "ok", checks
    attempts = _results(checks["import", "hostile"])
    assert attempts["tmpfs"] == "Operation not permitted", attempts
    assert attempts["mknod"] == "Operation not permitted", attempts
    assert "mount disk" not in attempts
    assert attempts[f"sibling {watched}/SIBLING"] != "ok"
    assert attempts["chroot escape"] == "ok"  # CAP_SYS_CHROOT, in the sandbox...
    assert attempts["write after escape"] != "ok"  # ... where nothing of the host is
    assert attempts["tmpfs after escape"] != "ok"
    assert attempts["plant /srv"] == "ok"
    moving = checks["run", artifact.name]
    assert moving.status == "failed"
    assert moving.detail.startswith("cannot move /opt/hostile to /srv/moved app")


@pytest.fixture
def searchable() -> Iterator[Path]:
    """A directory the sandbox's ids may pass through (pytest's ``tmp_path`` is below a 0700
    directory: a root copy there cannot be bound)."""
    work = Path(tempfile.mkdtemp(prefix="venvpack-test-"))
    work.chmod(0o755)
    yield work
    shutil.rmtree(work)


def test_sandbox_ids_are_a_shifted_range(searchable: Path) -> None:
    if sandbox.missing_tools("bwrap", "nsenter", "unshare"):
        sandbox.unavailable("needs bwrap, nsenter and unshare")
    root = get_root("glibc", sandbox.default_cache())
    with pytest.raises(ValueError, match="fresh_copy"):
        run_untrusted(fresh_copy(root, searchable / "plain"), ["true"])
    copy = fresh_copy(root, searchable / "copy", untrusted=True)
    assert os.lstat(copy / "bin" / "sh").st_uid == SANDBOX_ID_BASE
    assert os.lstat(root / "bin" / "sh").st_uid == 0  # the cache is not changed
    proc = run_untrusted(copy, ["cat", "/proc/self/uid_map", "/proc/self/gid_map"])
    assert proc.returncode == 0, proc.stderr
    assert [line.split() for line in proc.stdout.splitlines()] == [
        ["0", str(SANDBOX_ID_BASE), "65536"]
    ] * 2


def test_package_with_a_service_user_verifies(tmp_path: Path) -> None:
    """adduser makes a system user and the postinst chowns its state directory to it: ids
    other than 0 must exist in the sandbox."""
    if sandbox.debootstrap_problem():
        sandbox.unavailable(f"debootstrap roots: {sandbox.debootstrap_problem()}")
    env = build_environment(BuildSpec(project=HELLO), tmp_path / "hello")
    options = DebOptions(maintainer="T <t@example.org>", service_command="hello", user="hellosvc")
    deb = DebEmitter(options).emit(env, tmp_path / "hello.deb")
    report = verify_artifact(deb, ["bookworm"], cache=sandbox.default_cache())
    assert report.ok, [c for c in report.checks if c.status != "ok"]
