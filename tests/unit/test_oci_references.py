"""Registry references read as docker reads them, and skopeo's failures turned into one line
without credentials. The messages are what skopeo 1.9 printed against a real registry
(pushing through ``docker-registry`` in ``tests/integration/test_oci_registry.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvpack.errors import ConfigError, ToolMissingError
from venvpack.oci.registry import _reason as reason
from venvpack.oci.registry import parse_reference, push, scrub

DIGEST = "sha256:" + "ab" * 32


def test_references_name_their_registry_as_docker_reads_them() -> None:
    cases = {
        "127.0.0.1:5000/hello:1.0": ("127.0.0.1:5000", "hello", "1.0", None, True),
        "localhost/team/app": ("localhost", "team/app", None, None, True),
        "[::1]:5000/a:b": ("[::1]:5000", "a", "b", None, True),
        "python:3.12-slim": ("docker.io", "python", "3.12-slim", None, False),
        "me/app:1": ("docker.io", "me/app", "1", None, False),
        f"ghcr.io/me/app@{DIGEST}": ("ghcr.io", "me/app", None, DIGEST, False),
        "registry.example:443/x/y:2": ("registry.example:443", "x/y", "2", None, False),
        "127.0.0.2.example.com/x": ("127.0.0.2.example.com", "x", None, None, False),
    }
    for text, (registry, repository, tag, digest, loopback) in cases.items():
        ref = parse_reference(text)
        assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
            registry,
            repository,
            tag,
            digest,
        ), text
        assert ref.loopback is loopback, text
        assert str(ref) == text
    for bad in ("Upper/Case", "a:b:c", "", "x@sha256:short", "name:" + "t" * 200, "a b"):
        with pytest.raises(ConfigError, match="is not an image reference"):
            parse_reference(bad)


REF = parse_reference("127.0.0.1:5077/hello:1.0")
FATAL = 'time="2026-12-07T04:57:05Z" level=fatal msg="{}"\n'
SEEN = {
    "unauthorized": (
        "trying to reuse blob sha256:88a3b61f7bcd905afc43d661300a529ed0a6bd7dd633343c7ecf6f681b5887"
        "71 at destination: checking whether a blob sha256:88a3b61f7bcd905afc43d661300a529ed0a6bd7"
        "dd633343c7ecf6f681b588771 exists in 127.0.0.1:5077/hello: unauthorized: authentication"
        " required",
        "127.0.0.1:5077 refused the credentials (or found none): log in with 'skopeo login"
        " 127.0.0.1:5077' or name an auth file",
    ),
    "refused": (
        "trying to reuse blob sha256:88a3b61f7bcd905afc43d661300a529ed0a6bd7dd633343c7ecf6f681b5887"
        '71 at destination: pinging container registry 127.0.0.1:5077: Get \\"http://127.0.0.1:'
        '5077/v2/\\": dial tcp 127.0.0.1:5077: connect: connection refused',
        "cannot reach 127.0.0.1:5077: connection refused",
    ),
    "plain http": (
        'pinging container registry 127.0.0.1:5077: Get \\"https://127.0.0.1:5077/v2/\\": http:'
        " server gave HTTP response to HTTPS client",
        "127.0.0.1:5077 speaks plain HTTP; venvpack verifies TLS for every registry not on a"
        " loopback address",
    ),
}


@pytest.mark.parametrize("case", sorted(SEEN))
def test_skopeo_failures_become_the_sentence_that_helps(case: str) -> None:
    message, expected = SEEN[case]
    stderr = "Getting image source signatures\nCopying blob sha256:88a3\n" + FATAL.format(message)
    assert reason(stderr, REF) == expected


def test_an_unknown_failure_keeps_its_cause_without_digests_or_credentials() -> None:
    stderr = FATAL.format(
        "writing manifest: Authorization: Basic Ym9iOmh1bnRlcjI=:"
        f" blob {DIGEST} unknown: manifest invalid at https://bob:hunter2@127.0.0.1:5077/v2/"
    )
    text = reason(stderr, REF)
    assert "hunter2" not in text
    assert "Ym9iOmh1bnRlcjI" not in text
    assert DIGEST not in text
    assert "manifest invalid" in text
    assert "\n" not in text
    assert reason("", REF) == "skopeo gave no reason"


def test_scrub_hides_every_credential_shape() -> None:
    for secret in (
        "https://alice:s3cret@registry.example/v2/",
        'Authorization: Bearer eyJhbGciOi.s3cret.sig"',
        "password=s3cret&user=alice",
        '{"auth": "YWxpY2U6czNjcmV0"}',
        "token: s3cret",
        "identitytoken=s3cret",
    ):
        cleaned = scrub(secret)
        assert "s3cret" not in cleaned, secret
        assert "YWxpY2U6czNjcmV0" not in cleaned, secret


def test_without_skopeo_the_error_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    image = tmp_path / "image.tar"
    image.write_bytes(b"")
    with pytest.raises(ToolMissingError, match="skopeo not found on PATH; apt-get install skopeo"):
        push(image, "127.0.0.1:5000/hello:1.0")
    with pytest.raises(ConfigError, match="neither an image archive nor an image layout"):
        push(tmp_path / "missing.tar", "127.0.0.1:5000/hello:1.0")
    with pytest.raises(ConfigError, match=r"auth file .* does not exist"):
        push(image, "127.0.0.1:5000/hello:1.0", auth_file=tmp_path / "none.json")
