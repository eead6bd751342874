"""The service user's script (deb postinst, rpm %pre) run for real against account files.

It runs under ``sh -e`` as a maintainer script does, in a sandbox whose ``/etc`` is a
directory of the test's: with the host's getent and useradd, and with neither (a minimal
system: the script reads and writes the files itself). An account or group of the user's
name made for another role stops the installation; one the package made earlier is reused;
``--existing-user`` neither makes nor checks one, but needs it to exist.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import sandbox
from venvpack import templates

PASSWD = "root:x:0:0:root:/root:/bin/sh\nusers:x:100:100::/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nusers:x:100:\n"


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    if sandbox.missing_tools("bwrap"):
        sandbox.unavailable("bwrap not installed (apt-get install bubblewrap)")


def run_script(
    etc: Path, *, existing: bool = False, tools: bool = True
) -> subprocess.CompletedProcess[str]:
    script = templates.render(
        "system/create-user.sh",
        user="hello",
        home="/var/lib/hello",
        package="hello",
        existing=existing,
    )
    (etc.parent / "script.sh").write_text(script)
    return subprocess.run(
        [
            "bwrap",
            *("--ro-bind", "/", "/"),
            *("--bind", str(etc), "/etc"),
            *("--tmpfs", "/tmp", "--ro-bind", str(etc.parent / "script.sh"), "/tmp/script.sh"),
            *("--dev", "/dev", "--proc", "/proc", "--unshare-all", "--unshare-user"),
            *("--uid", "0", "--gid", "0", "--clearenv"),
            *("--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin" if tools else "/nonexistent"),
            *("/bin/sh", "-e", "/tmp/script.sh"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def make_etc(tmp_path: Path, passwd: str = PASSWD, group: str = GROUP) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(passwd)
    (etc / "group").write_text(group)
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\n")
    if Path("/etc/login.defs").is_file():
        shutil.copy("/etc/login.defs", etc / "login.defs")  # useradd reads its limits there
    return etc


@pytest.mark.parametrize("tools", [True, False], ids=["getent-useradd", "files-only"])
def test_the_user_is_made_once_with_its_own_group(tmp_path: Path, tools: bool) -> None:
    etc = make_etc(tmp_path)
    first = run_script(etc, tools=tools)
    assert first.returncode == 0, first.stderr
    users = [line for line in (etc / "passwd").read_text().splitlines() if line[:6] == "hello:"]
    groups = [line for line in (etc / "group").read_text().splitlines() if line[:6] == "hello:"]
    assert len(users) == 1, users
    assert len(groups) == 1, groups
    assert users[0].split(":")[3] == groups[0].split(":")[2]  # its primary group is its own
    assert users[0].split(":")[6] == "/usr/sbin/nologin"
    before = (etc / "passwd").read_text(), (etc / "group").read_text()
    again = run_script(etc, tools=tools)  # an upgrade or reinstallation
    assert again.returncode == 0, again.stderr
    assert ((etc / "passwd").read_text(), (etc / "group").read_text()) == before


@pytest.mark.parametrize("tools", [True, False], ids=["getent-useradd", "files-only"])
def test_a_group_of_the_name_is_not_joined(tmp_path: Path, tools: bool) -> None:
    etc = make_etc(tmp_path, group=GROUP + "hello:x:6:alice\n")  # a privileged group
    result = run_script(etc, tools=tools)
    assert result.returncode == 1
    assert "hello: a group named hello exists, for another role" in result.stderr
    assert "hello:" not in (etc / "passwd").read_text()


@pytest.mark.parametrize("tools", [True, False], ids=["getent-useradd", "files-only"])
def test_an_account_with_another_primary_group_is_not_taken(tmp_path: Path, tools: bool) -> None:
    passwd = PASSWD + "hello:x:1000:100:Hello User:/home/hello:/bin/sh\n"
    etc = make_etc(tmp_path, passwd=passwd)
    result = run_script(etc, tools=tools)
    assert result.returncode == 1
    assert "the user hello exists with another primary group" in result.stderr
    assert "--existing-user" in result.stderr
    assert (etc / "passwd").read_text() == passwd


@pytest.mark.parametrize("tools", [True, False], ids=["getent", "files-only"])
def test_an_existing_user_is_used_as_it_is_and_must_exist(tmp_path: Path, tools: bool) -> None:
    etc = make_etc(tmp_path)
    missing = run_script(etc, existing=True, tools=tools)
    assert missing.returncode == 1
    assert "runs as the account hello, which this system does not have" in missing.stderr
    assert "hello:" not in (etc / "passwd").read_text() + (etc / "group").read_text()

    passwd = PASSWD + "hello:x:1000:100:Hello User:/home/hello:/bin/sh\n"
    (etc / "passwd").write_text(passwd)
    present = run_script(etc, existing=True, tools=tools)
    assert present.returncode == 0, present.stderr
    assert (etc / "passwd").read_text() == passwd
    assert (etc / "group").read_text() == GROUP
