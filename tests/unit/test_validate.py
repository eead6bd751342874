"""One check per kind of outside input: file names, installer arguments, URLs and
the commands a system package links into /usr/bin."""

from __future__ import annotations

import pytest

from venvpack.errors import ConfigError
from venvpack.validate import (
    file_name,
    installer_argument,
    public_url,
    redact_urls,
    system_command,
)


@pytest.mark.parametrize(
    "name", ["hello-1.0-linux-x86_64.tar.zst", "hello_1.0~rc1-1_amd64.deb", "a-1.0^x.noarch.rpm"]
)
def test_conventional_file_names_pass(name: str) -> None:
    assert file_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["../../x", "a/b", "..", ".hidden", "-rf", "", "a\nb", "a b", "$(id)", "x" * 256, "a:b"],
)
def test_file_names_that_are_not_one_safe_component_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="single file name"):
        file_name(name)


@pytest.mark.parametrize("req", ["--target=/elsewhere", "-e.", " -r x", "", "a\nb", "six\r"])
def test_installer_arguments_that_would_be_options_are_refused(req: str) -> None:
    with pytest.raises(ConfigError):
        installer_argument(req)


@pytest.mark.parametrize("req", ["six", "six>=1", "./x.whl", "/abs/dir", "a @ https://h/a.whl"])
def test_installer_arguments_pass(req: str) -> None:
    assert installer_argument(req) == req


def test_public_url_drops_userinfo_query_and_non_hash_fragment() -> None:
    assert public_url("https://u:p@h/x.whl?token=abc#frag") == "https://h/x.whl"
    assert public_url("https://h/x.whl#sha256=abcdef") == "https://h/x.whl#sha256=abcdef"
    assert public_url("git+ssh://git@h/r.git") == "git+ssh://git@h/r.git"


@pytest.mark.parametrize(
    "name",
    ["python", "python3", "python3.12", "pip", "pip3", "pip3.12", "activate", "activate.fish"],
)
def test_interpreter_links_are_not_system_commands(name: str) -> None:
    with pytest.raises(ConfigError, match="shadow"):
        system_command(name, ["hello"])


def test_an_apps_own_console_script_of_a_reserved_name_is_allowed() -> None:
    assert system_command("pip", ["pip", "hello"]) == "pip"
    assert system_command("hello", ["hello"]) == "hello"
    assert system_command("serve", ["hello"]) == "serve"  # another script of bin/


def test_logs_mask_the_secrets_of_every_url() -> None:
    text = "six @ https://host/six-1.16.0-py2.py3-none-any.whl?token=abc#sha256=00 --no-index"
    assert (
        redact_urls(text)
        == "six @ https://host/six-1.16.0-py2.py3-none-any.whl?****#sha256=00 --no-index"
    )
    assert redact_urls("git+https://tok@h/x.git?a=1 b") == "git+https://****@h/x.git?**** b"
