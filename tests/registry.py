"""A real container registry for the tests: Debian's ``docker-registry`` (distribution 2.8)
serving on 127.0.0.1, storing in a directory of the test's, logging every request."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sandbox


def tool(name: str, package: str) -> str:
    """The program ``name`` on PATH; the test is unavailable without it."""
    found = shutil.which(name)
    if found is None:
        sandbox.unavailable(f"{name} not found on PATH (apt-get install {package})")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(work: Path, htpasswd: Path | None = None) -> Iterator[str]:
    """Run a registry storing in ``work/data`` and logging to ``work/registry.log`` (the
    access log included), with basic auth from ``htpasswd`` if given; yields its
    ``127.0.0.1:<port>`` once it accepts connections, and stops it afterwards."""
    server = tool("docker-registry", "docker-registry")
    port = free_port()
    address = f"127.0.0.1:{port}"
    config: dict[str, object] = {  # JSON is YAML
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
        "http": {"addr": address, "secret": "test-only"},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "test", "path": str(htpasswd)}}
    (work / "config.yml").write_text(json.dumps(config))
    log = work / "registry.log"
    with open(log, "wb") as out:
        child = subprocess.Popen(
            [server, "serve", str(work / "config.yml")], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"docker-registry did not start: {log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)
        yield address
    finally:
        child.terminate()
        child.wait(timeout=10)
