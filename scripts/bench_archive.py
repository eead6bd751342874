"""Time venvpack's archive writer on a real tree, for every compression and level.

    .venv/bin/python scripts/bench_archive.py [--tree DIR] [--runs N] [zstd:10 xz:6 ...]

Prints, per configuration, the median wall time over N runs, the CPU time of that run
(all threads), the archive size, its ratio to the uncompressed tar, and time and size
relative to the system pipeline `tar | zstd -T0` (zstd's default level 3). Then the cost
of md5 digests: streamed with the archive, and as a separate pass over the files.

The default levels in venvpack.archive were chosen from this script's output (summarised
next to them). Wall times mean something only on an otherwise idle machine; CPU times are
steadier.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from venvpack.archive import Compression, TarPlan, write_archive, write_tar

DEFAULT_TREE = Path("/root/.pyenv/versions/3.12.1")
DEFAULT_CONFIGS = [
    "none",
    "zstd:3",
    "zstd:6",
    "zstd:10",
    "zstd:12",
    "zstd:15",
    "zstd:19",
    "gzip:6",
    "gzip:9",
    "xz:6",
    "xz:9",
]


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measure(runs: int, job: Callable[[], int]) -> tuple[float, float, int]:
    """Median wall seconds, CPU seconds of the median run, and the size ``job`` returns."""
    results = []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), _cpu()
        size = job()
        results.append((time.perf_counter() - wall, _cpu() - cpu, size))
    results.sort()
    return results[len(results) // 2]


def _system_pipeline(tree: Path, out: Path) -> int:
    tar = subprocess.Popen(
        ["tar", "--sort=name", "--format=gnu", "-cf", "-", "-C", str(tree.parent), tree.name],
        stdout=subprocess.PIPE,
    )
    with out.open("wb") as f:
        zstd = subprocess.run(["zstd", "-T0", "-q", "-c"], stdin=tar.stdout, stdout=f, check=True)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() or zstd.returncode:
        sys.exit("tar | zstd failed")
    return out.stat().st_size


class _Null:
    def write(self, data: bytes, /) -> int:
        return len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=DEFAULT_TREE)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("configs", nargs="*", default=DEFAULT_CONFIGS, help="NAME[:LEVEL]")
    args = parser.parse_args()

    plan = TarPlan()
    plan.add_tree(args.tree, args.tree.name)
    print(
        f"{args.tree}: {len(plan.entries)} entries, tar {plan.size / 1e6:.1f} MB,"
        f" {os.cpu_count()} CPUs, {args.runs} runs, load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        out = Path(tmp) / "out"
        base_s, base_cpu, base_size = _measure(args.runs, lambda: _system_pipeline(args.tree, out))
        print(
            f"{'config':<10} {'median s':>9} {'cpu s':>7} {'MB':>8} {'ratio':>6} "
            f"{'t/base':>7} {'size/base':>9}"
        )
        row = "{:<10} {:>9.2f} {:>7.1f} {:>8.2f} {:>6.3f} {:>7.2f} {:>9.3f}"
        print(
            row.format(
                "tar|zstd", base_s, base_cpu, base_size / 1e6, base_size / plan.size, 1.0, 1.0
            )
        )
        for config in args.configs:
            name, _, level = config.partition(":")
            compression = Compression(name)
            lvl = int(level) if level else None

            def job(c: Compression = compression, lv: int | None = lvl) -> int:
                write_archive(plan, out, c, lv)
                return out.stat().st_size

            secs, cpu, size = _measure(args.runs, job)
            print(
                row.format(
                    config, secs, cpu, size / 1e6, size / plan.size, secs / base_s, size / base_size
                ),
                flush=True,
            )

    files = [e.source for e in plan.entries if isinstance(e.source, Path)]

    def md5_pass() -> int:
        for path in files:
            digest = hashlib.md5(usedforsecurity=False)
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return 0

    plain, _, _ = _measure(args.runs, lambda: len(write_tar(plan, _Null())))
    streamed, _, _ = _measure(args.runs, lambda: len(write_tar(plan, _Null(), digests=True)))
    separate, _, _ = _measure(args.runs, md5_pass)
    print(
        f"tar to /dev/null: {plain:.2f} s; with md5 streamed: {streamed:.2f} s;"
        f" separate md5 pass: {separate:.2f} s (warm page cache)"
    )


if __name__ == "__main__":
    main()
