"""`scripts/bench.py --quick`: every job of the benchmark runs once on the example app, so
the harness cannot rot between full runs; the document it writes has every row, with numbers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from venvpack.archive import Compression
from venvpack.emit.deb import DebOptions

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
NUMBER = r"\d+(?:\.\d+)?"
ROW = re.compile(
    rf"\| (?P<tool>[^|]+) \| (?P<wall>{NUMBER}) \({NUMBER}-{NUMBER}\) "
    rf"\| (?P<ratio>{NUMBER}) \| (?P<cpu>{NUMBER}) \| (?P<rss>{NUMBER}) "
    rf"\| (?P<size>{NUMBER}|-) \| (?P<size_ratio>{NUMBER}|-) \|"
)
SECTIONS = {
    "## Build: examples/hello (CPython 3.12)": [
        "workaround: uv, cp -a, tar + zstd -3",
        "floor: uv, cp -a of the pruned runtime, tar + zstd -{level}",
        "venvpack tar",
        "venvpack tar --level {other}",
        "venv-pack + zstd (no interpreter inside)",
        "PyInstaller --onedir, tar + zstd",
    ],
    "## Packing a finished environment: examples/hello": [
        "tar + zstd -T0 -{level} (packing floor)",
        "venvpack tar --from",
        "dpkg-deb --build -Z{deb} -z1",
        "venvpack deb --from",
        "venvpack rpm --from",
        "rpmbuild -bb of rpm --spec-only",
    ],
    "## Application-only rebuild: examples/hello, locked (CPython 3.12)": [
        "venvpack tar --from the finished environment",
        "venvpack tar --project after editing a source file",
    ],
    "## Start-up (examples/hello, CPython 3.12)": [
        "source interpreter: python -c pass",
        "venvpack env: bin/python -c pass",
        "venv of the source interpreter: bin/hello",
        "venvpack env: bin/hello",
    ],
}


def _rows(text: str, heading: str) -> dict[str, dict[str, str]]:
    section = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    return {m["tool"]: m.groupdict() for m in map(ROW.fullmatch, section.splitlines()) if m}


TARGETS = [
    "quick: venvpack tar / workaround",
    "quick: venvpack tar / floor (install, runtime copy, tar \\| zstd)",
    "quick: venvpack tar / PyInstaller",
    "quick: venvpack tar peak RSS, max of runs",
    "quick: tar --from / tar \\| zstd -T0",
    "quick: deb --from / dpkg-deb",
    "quick: deb --from / tar --from",
    "hello: app-only rebuild / tar --from",
    "bin/python -c pass / source interpreter",
]


def test_quick_run_writes_every_row(tmp_path: Path) -> None:
    level = Compression.ZSTD.resolve_level(None)
    other = 10 if level == 3 else 3
    out, samples = tmp_path / "benchmarks.md", tmp_path / "samples.json"
    cmd = [sys.executable, "scripts/bench.py", "--quick", "-o", str(out), "--json", str(samples)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()

    for heading, tools in SECTIONS.items():
        rows = _rows(text, heading)
        expected = [t.format(level=level, other=other, deb=DebOptions().compression) for t in tools]
        assert sorted(rows) == sorted(expected), heading
        for tool, row in rows.items():
            assert float(row["wall"]) > 0, tool
            assert float(row["cpu"]) > 0, tool
            assert float(row["rss"]) > 1, tool  # MB: every job runs at least a Python or tar
            artifact = not heading.startswith("## Start-up")
            assert (row["size"] != "-") is artifact, tool
            if artifact:
                assert float(row["size"]) > 0, tool
        baseline = next(iter(rows.values()))
        assert baseline["ratio"] == "1.00"

    build = _rows(text, "## Build: examples/hello (CPython 3.12)")
    # The workaround ships pyenv's whole interpreter; venvpack's pruned one is smaller, and
    # venv-pack's archive, without any interpreter, smaller still.
    assert float(build["venvpack tar"]["size_ratio"]) < 1
    sizes = {tool: float(row["size"]) for tool, row in build.items()}
    assert sizes["venv-pack + zstd (no interpreter inside)"] < sizes["venvpack tar"]
    # The floor ships the pruned runtime venvpack ships, not pyenv's whole installation.
    floor = f"floor: uv, cp -a of the pruned runtime, tar + zstd -{level}"
    assert 0.8 < sizes[floor] / sizes["venvpack tar"] < 1.25, sizes
    # Byte-identity is what lets a rebuild reuse the rest; the run checks it once, untimed.
    assert re.search(
        r"^Rebuild byte-identical to a cold build \(`SOURCE_DATE_EPOCH=\d+`, "
        r"empty `VENVPACK_CACHE`\): \*\*yes\*\*$",
        text,
        re.M,
    ), "the rebuild differs from a cold build of the same sources"
    assert re.search(r"\| install \| \d+\.\d\d \| \d+ % \|", text), "stage times missing"
    assert re.search(r"rpmbuild's share of `venvpack rpm --from`: \*\*\d+ %\*\*", text)
    assert "load average" in text
    target = r"^\| (.+?) \| [\d.]+ (?:x|MB) \| <= [\d.]+ (?:x|MB) \| (?:yes|\*\*no\*\*) \|$"
    assert re.findall(target, text, re.M) == TARGETS

    groups = json.loads(samples.read_text())["groups"]
    assert set(groups) == {"build:quick", "from:quick", "rebuild:hello", "startup:hello"}
    assert len(groups["build:quick"]["samples"]["venvpack"]) == 1
    assert len(groups["startup:hello"]["samples"]["source"]) == 3
    assert len(groups["rebuild:hello"]["samples"]["rebuild"]) == 1

    # The saved measurements render the same document again, without measuring anything.
    again = tmp_path / "again.md"
    cmd = [sys.executable, "scripts/bench.py", "--render", str(samples), "-o", str(again)]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=60)
    assert again.read_text() == text
