#!/usr/bin/env python3
"""Time `venvpack build` and its stages; print medians, since this machine is shared and noisy.

    python scripts/bench_build.py [--python 3.12] [--runs 5] [REQUIREMENT ...]

The default builds the example app. The uv cache is warm after the first run, which is
the common case on a build machine; pass --cold to clear it before every run.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from venvpack.build import build_environment
from venvpack.config import BuildSpec

HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello"


class _StageTimes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.times: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        name = getattr(record, "venvpack_stage", None)
        if name is not None:
            self.times[name] = float(getattr(record, "venvpack_seconds", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="*", default=[str(HELLO)])
    parser.add_argument("--python", default="3.12")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="clear uv's cache before each run")
    args = parser.parse_args()

    log = logging.getLogger("venvpack")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    totals: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    sizes: list[int] = []
    for _ in range(args.runs):
        if args.cold:
            subprocess.run(["uv", "cache", "clean"], check=False, capture_output=True)
        handler = _StageTimes()
        log.handlers[:] = [handler]
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            spec = BuildSpec(requirements=tuple(args.requirements), python=args.python)
            build_environment(spec, Path(tmp) / "env")
            totals.append(time.monotonic() - started)
            sizes.append(
                sum(
                    p.stat().st_size
                    for p in Path(tmp).rglob("*")
                    if p.is_file() and not p.is_symlink()
                )
            )
        for name, seconds in handler.times.items():
            stages[name].append(seconds)
    print(
        f"venvpack build {' '.join(args.requirements)} --python {args.python}: "
        f"{args.runs} runs, median {statistics.median(totals):.2f}s "
        f"(min {min(totals):.2f}s, max {max(totals):.2f}s), "
        f"tree {statistics.median(sizes) / 2**20:.0f} MiB"
    )
    total = statistics.median(totals)
    for name, values in stages.items():
        med = statistics.median(values)
        print(f"  {name:<9} median {med:6.2f}s  {100 * med / total:4.0f}%")


if __name__ == "__main__":
    main()
