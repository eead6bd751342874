#!/usr/bin/env python3
"""Time venvpack against the other ways to ship a Python application; write docs/benchmarks.md.

    .venv/bin/python scripts/bench.py                 # every workload (20-45 min on 2 shared cores)
    .venv/bin/python scripts/bench.py --quick         # smoke run of every code path (2-4 min)
    .venv/bin/python scripts/bench.py --workload small --runs 3 -o /tmp/bench.md

Each workload is built by every tool N times, *interleaved* (A B C, C B A, A B C ...), after
one untimed warm-up round (uv's, PyInstaller's and the page cache warm), so the machine's
drift, which is large on a shared host, cancels in the ratios: a ratio is the median over
rounds of the job's wall time divided by the baseline's in the same round.

Per job: wall time (median, min-max), CPU seconds and peak RSS of the job's process tree
(``wait4``'s rusage: CPU is summed over every process, ``ru_maxrss`` is the largest single
process, not a sum), and the artifact's size. Groups:

* build: ``venvpack tar`` (defaults, and ``--level 3``, or 10 when 3 is the default) vs
  the workaround posted on uv's issues (``uv venv`` + ``uv pip install`` + ``cp -a`` of the
  interpreter + ``tar | zstd -3``, the baseline), the floor (the work nobody can avoid: the
  same install, ``cp -a`` of the pruned runtime venvpack ships, ``tar | zstd`` at venvpack's
  level), ``venv-pack`` (no interpreter inside) and PyInstaller ``--onedir``; plus
  venvpack's own stage times, read from its ``--json`` result;
* from: packing a finished environment: ``venvpack tar --from`` vs ``tar | zstd`` at the
  same level, ``venvpack deb --from`` vs ``dpkg-deb --build`` of ``--tree-only``'s
  tree with the same compressor, and the share of ``venvpack rpm --from`` spent in rpmbuild;
* rebuild: ``venvpack tar --project`` of a locked copy of examples/hello after editing one
  of its source files vs ``venvpack tar --from`` of its finished environment; once per run,
  untimed, whether such a rebuild is byte-identical to a cold build (empty
  ``VENVPACK_CACHE``) of the same sources under ``SOURCE_DATE_EPOCH``;
* start-up: ``bin/python -c pass`` and the example app's command, packed vs the source
  interpreter.

The comparison tools (pyinstaller, venv-pack) live in a tool environment under
``~/.cache/venvpack-bench`` (``--cache``), installed from PyPI on first use. Jobs are shell
scripts because what they compare are shell recipes; the document shows them verbatim.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from venvpack import __version__ as venvpack_version
from venvpack.archive import Compression
from venvpack.emit.deb import DebOptions

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
TOOLS = ("pyinstaller==6.22.3", "venv-pack==0.2.0")
"""The comparison tools, pinned so that a rerun measures the same thing."""


ALL_TOOLS = ("workaround", "floor", "venvpack", "venvpack-level", "venv-pack", "pyinstaller")
ALL_PACKING = ("tar", "deb", "rpm")


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    requirements: tuple[str, ...]
    python: str
    """Interpreter version, found in ``$(pyenv root)/versions``."""
    imports: tuple[str, ...]
    """What PyInstaller's script imports."""
    runs: int
    find_links: str | None = None
    tools: tuple[str, ...] = ALL_TOOLS
    """Which of :data:`ALL_TOOLS` build this workload."""
    packing: tuple[str, ...] = ()
    """Which of :data:`ALL_PACKING` to compare on the finished environment."""
    packing_runs: int = 3
    """Rounds of the packing section (xz and rpmbuild make it the slowest per round)."""
    note: str = ""


WORKLOADS = {
    w.key: w
    for w in (
        Workload("small", "requests", ("requests",), "3.12", ("requests",), 5, packing=ALL_PACKING),
        Workload("medium", "black + httpie", ("black", "httpie"), "3.12", ("black", "httpie"), 3),
        Workload(
            "large",
            "numpy + pandas",
            ("numpy", "pandas"),
            "3.12",
            ("numpy", "pandas"),
            3,
            packing=("tar", "deb"),
            packing_runs=2,
            note="rpm is compared on the small workload only (rpmbuild's xz is single-threaded "
            "and would double this section's time).",
        ),
        Workload(
            "torch",
            "PyTorch CPU",
            ("torch==2.13.0",),
            "3.11",
            ("torch",),
            2,
            "/opt/wheels",
            tools=("workaround", "floor", "venvpack"),
            note="Only venvpack, the workaround and the floor: this workload is here for "
            "venvpack's peak memory, and PyInstaller's analysis of torch alone takes minutes "
            "per run.",
        ),
    )
}
QUICK = Workload(
    "quick",
    "examples/hello",
    (str(HELLO),),
    "3.12",
    ("hello",),
    1,
    packing=ALL_PACKING,
    packing_runs=1,
)
STARTUP_RUNS = 40
REBUILD_RUNS = 5
SOURCE_DATE_EPOCH = "1700000000"
"""The identity check's epoch: any fixed value, so both of its builds stamp the same times."""
PY_LEGEND = "- `$PY` = the workload's interpreter: "


@dataclass(frozen=True)
class Job:
    key: str
    label: str
    script: str
    """Bash, run with ``-euo pipefail`` in a fresh directory ``$W``; ``$ROUND`` is the
    round's number (or ``warm-up``)."""
    artifact: str | None = None
    """The file the job makes, relative to ``$W``."""
    stages: bool = False
    """The job is ``venvpack --json`` writing ``$W/result.json``: read its stage times."""


@dataclass
class Sample:
    wall: float
    cpu: float
    rss: int
    """Bytes."""
    size: int | None
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class Group:
    title: str
    baseline: str
    """The key of the job every ratio divides by."""
    jobs: list[Job]
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    measured: str = ""
    """When, at which commit and under which load the samples were taken."""

    def label(self, key: str) -> str:
        return next(j.label for j in self.jobs if j.key == key)


class BenchError(Exception):
    """A job failed; the message names it and shows the end of its output."""


# ----------------------------------------------------------------------------- running


def run_job(job: Job, env: dict[str, str], work: Path) -> Sample:
    """Run ``job`` once in a fresh directory under ``work``; measure it; remove the directory."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    log_path = run_dir.with_suffix(".log")
    with log_path.open("wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", job.script],
            env={**env, "W": str(run_dir)},
            cwd=run_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    output = log_path.read_text(errors="replace")
    log_path.unlink()
    try:
        if proc.returncode:
            tail = "\n".join(output.splitlines()[-15:])
            raise BenchError(f"{job.label} failed (exit {proc.returncode}):\n{tail}")
        size = None
        if job.artifact is not None:
            artifact = run_dir / job.artifact
            if not artifact.is_file():
                raise BenchError(f"{job.label} made no {job.artifact}:\n{output[-2000:]}")
            size = artifact.stat().st_size
        stages = {}
        if job.stages:
            try:
                result = json.loads((run_dir / "result.json").read_text())
                stages = {k: float(v) for k, v in result["timings"]["steps"].items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise BenchError(
                    f"{job.label}: no stage times in its --json result: {exc}"
                ) from exc
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    cpu = usage.ru_utime + usage.ru_stime
    return Sample(wall, cpu, usage.ru_maxrss * 1024, size, stages)


def run_group(group: Group, env: dict[str, str], work: Path, runs: int, warm_up: bool) -> None:
    """Untimed warm-up round, then ``runs`` interleaved rounds, every other one reversed."""
    jobs = group.jobs
    if warm_up:
        for job in jobs:
            _say(f"  warm-up: {job.label}")
            run_job(job, {**env, "ROUND": "warm-up"}, work)
    group.samples = {job.key: [] for job in jobs}
    load = os.getloadavg()[0]
    started = datetime.now(timezone.utc)
    for i in range(runs):
        for job in jobs if i % 2 == 0 else list(reversed(jobs)):
            sample = run_job(job, {**env, "ROUND": str(i + 1)}, work)
            group.samples[job.key].append(sample)
            _say(f"  run {i + 1}/{runs}: {job.label}: {sample.wall:.2f}s")
    group.measured = (
        f"Measured {started:%Y-%m-%d %H:%M} UTC, {(datetime.now(timezone.utc) - started).seconds}"
        f" s, venvpack at commit `{_commit()}`, load average {load:.1f} at the start."
    )


def prepare(script: str, env: dict[str, str], what: str) -> None:
    """An untimed setup step (``script`` in bash); a failure stops the benchmark."""
    _say(f"  preparing {what}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise BenchError(f"preparing {what} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the jobs


def interpreter(version: str) -> Path:
    """The newest pyenv CPython ``version``.x."""
    root = Path(
        subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
    )
    found = sorted(
        (
            p
            for p in root.glob(f"versions/{version}.*/bin/python{version}")
            if re.fullmatch(r"[\d.]+", p.parts[-3])
        ),
        key=lambda p: [int(x) for x in p.parts[-3].split(".")],
    )
    if not found:
        raise BenchError(f"no CPython {version} in {root}/versions (pyenv install {version})")
    return found[-1]


def tool_env(cache: Path, python: Path, uv: str) -> Path:
    """A venv of ``python`` with the comparison tools, made once; its site-packages."""
    version = python.name.removeprefix("python")
    venv = cache / f"tools-{version}"
    site = venv / "lib" / python.name / "site-packages"
    stamp = venv / ".bench-tools"
    if not stamp.is_file() or stamp.read_text() != " ".join(TOOLS):
        shutil.rmtree(venv, ignore_errors=True)
        _say(f"  installing {' '.join(TOOLS)} into {venv}")
        subprocess.run([uv, "venv", "-q", "--python", str(python), str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *TOOLS],
            check=True,
        )
        stamp.write_text(" ".join(TOOLS))
    return site


def build_jobs(w: Workload, level: int) -> list[Job]:
    """The build group: every tool makes a shippable artifact from the requirements."""
    reqs = shlex.join(w.requirements)
    links = f" --find-links {w.find_links}" if w.find_links else ""
    uv_env = (
        '"$UV" venv -q --python "$PY" "$W/venv"\n'
        f'"$UV" pip install -q{links} --python "$W/venv/bin/python" {reqs}'
    )
    imports = "; ".join(f"import {m}" for m in w.imports)
    other_level = 3 if level != 3 else 10  # zstd's own default, or venvpack's former one
    jobs = [
        Job(
            "workaround",
            "workaround: uv, cp -a, tar + zstd -3",
            '"$UV" venv -q --python "$PY" "$W/app"\n'
            f'"$UV" pip install -q{links} --python "$W/app/bin/python" {reqs}\n'
            'cp -a "$PY_HOME" "$W/app/python"\n'
            'tar -C "$W" -cf - app | zstd -q -T0 -3 -o "$W/app.tar.zst"',
            "app.tar.zst",
        ),
        Job(
            "floor",
            f"floor: uv, cp -a of the pruned runtime, tar + zstd -{level}",
            '"$UV" venv -q --python "$PY" "$W/app"\n'
            f'"$UV" pip install -q{links} --python "$W/app/bin/python" {reqs}\n'
            'cp -a "$RUNTIME" "$W/app/python"\n'
            f'tar -C "$W" -cf - app | zstd -q -T0 -{level} -o "$W/app.tar.zst"',
            "app.tar.zst",
        ),
        Job(
            "venvpack",
            "venvpack tar",
            f'"$VENVPACK" tar --json --python "$PY"{links} -o "$W/app.tar.zst" {reqs}'
            ' > "$W/result.json"',
            "app.tar.zst",
            stages=True,
        ),
        Job(
            "venvpack-level",
            f"venvpack tar --level {other_level}",
            f'"$VENVPACK" tar --level {other_level} --python "$PY"{links}'
            f' -o "$W/app.tar.zst" {reqs}',
            "app.tar.zst",
        ),
        Job(
            "venv-pack",
            "venv-pack + zstd (no interpreter inside)",
            f"{uv_env}\n"
            '"$TOOLS/bin/venv-pack" -q -p "$W/venv" --format tar -o "$W/app.tar"\n'
            f'zstd -q -T0 -{level} --rm "$W/app.tar" -o "$W/app.tar.zst"',
            "app.tar.zst",
        ),
        Job(
            "pyinstaller",
            "PyInstaller --onedir, tar + zstd",
            f"{uv_env}\n"
            'echo "$TOOLS_SITE" > "$W/venv/lib/$PY_NAME/site-packages/_bench_tools.pth"\n'
            f'echo {shlex.quote(imports)} > "$W/app.py"\n'
            '"$W/venv/bin/python" -m PyInstaller --onedir --noconfirm --log-level WARN \\\n'
            '    --distpath "$W/dist" --workpath "$W/build" --specpath "$W" "$W/app.py"\n'
            f'tar -C "$W/dist" -cf - app | zstd -q -T0 -{level} -o "$W/app.tar.zst"',
            "app.tar.zst",
        ),
    ]
    return [j for j in jobs if j.key in w.tools]


def build_note(w: Workload, runs: int, level: int) -> str:
    """What the build section's table does not say."""
    note = f"`{' '.join(w.requirements)}`, {runs} round(s). "
    note += "The workaround compresses as posted (zstd -3)"
    others = [
        name
        for key, name in (("venv-pack", "venv-pack's"), ("pyinstaller", "PyInstaller's"))
        if key in w.tools
    ]
    if others:
        note += f"; {' and '.join(others)} trees at venvpack's default (zstd {level})"
    note += "."
    if "floor" in w.tools:
        note += (
            " The floor is the work nobody can avoid: the workaround's install, `cp -a` of the "
            "pruned runtime venvpack ships (`$RUNTIME`) and `tar | zstd` at venvpack's level."
        )
    if "venv-pack" in w.tools:
        note += " venv-pack's archive carries **no interpreter**: the target needs the same Python."
    return f"{note} {w.note}".strip()


def packing_jobs(w: Workload, level: int, deb_compression: str, deb_level: int) -> list[Job]:
    """The from group, on the environment ``$PREP/env`` and the trees :func:`run` prepares."""
    jobs = [
        Job(
            "floor",
            f"tar + zstd -T0 -{level} (packing floor)",
            f'tar -C "$PREP" -cf - env | zstd -q -T0 -{level} -o "$W/app.tar.zst"',
            "app.tar.zst",
        ),
        Job(
            "tar",
            "venvpack tar --from",
            '"$VENVPACK" tar -q --from "$PREP/env" -o "$W/app.tar.zst"',
            "app.tar.zst",
        ),
        Job(
            "dpkg-deb",
            f"dpkg-deb --build -Z{deb_compression} -z{deb_level}",
            f"dpkg-deb --root-owner-group -Z{deb_compression} -z{deb_level} "
            '--build "$PREP"/debtree/*/ "$W/app.deb" > /dev/null',  # the tree, not its SBOM
            "app.deb",
        ),
        Job(
            "deb",
            "venvpack deb --from",
            f'"$VENVPACK" deb -q --compression {deb_compression} --level {deb_level}'
            ' --from "$PREP/env" -o "$W/app.deb"',
            "app.deb",
        ),
        Job(
            "rpm",
            "venvpack rpm --from",
            '"$VENVPACK" rpm -q --from "$PREP/env" -o "$W/app.rpm"',
            "app.rpm",
        ),
        Job(
            "rpmbuild",
            "rpmbuild -bb of rpm --spec-only",
            'src=$(echo "$PREP"/rpmsrc/*/)\n'  # the sources, not their SBOM
            'mkdir "$W/home"\n'
            'HOME="$W/home" LC_ALL=C rpmbuild -bb --quiet --define "_topdir $W" \\\n'
            '    --define "_sourcedir $src" --define "_tmppath $W" "$src"/*.spec\n'
            'mv "$W"/RPMS/*/*.rpm "$W/app.rpm"',
            "app.rpm",
        ),
    ]
    wanted = {"floor"} | set(w.packing)
    if "deb" in w.packing:
        wanted.add("dpkg-deb")
    if "rpm" in w.packing:
        wanted.add("rpmbuild")
    return [j for j in jobs if j.key in wanted]


def startup_jobs() -> list[Job]:
    return [
        Job("source", "source interpreter: python -c pass", 'exec "$PY" -c pass'),
        Job("python", "venvpack env: bin/python -c pass", 'exec "$HELLO_ENV/bin/python" -c pass'),
        Job(
            "source-app", "venv of the source interpreter: bin/hello", 'exec "$SRC_VENV/bin/hello"'
        ),
        Job("app", "venvpack env: bin/hello", 'exec "$HELLO_ENV/bin/hello"'),
    ]


# ----------------------------------------------------------------------------- report


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio(group: Group, key: str, baseline: str, attr: str = "wall") -> float:
    """Median over rounds of ``key``'s value divided by ``baseline``'s in the same round."""
    pairs = zip(group.samples[key], group.samples[baseline])
    return med([getattr(a, attr) / getattr(b, attr) for a, b in pairs])


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _mb(size: float) -> str:
    return f"{size / 1e6:.1f}" if size >= 1e7 else f"{size / 1e6:.2f}"


def table(group: Group) -> list[str]:
    """One row per job: wall, ratio to the baseline, CPU, peak RSS, artifact size."""
    base = group.samples[group.baseline]
    rows = [
        f"| tool | wall s: median (min-max) | wall x {_cell(group.label(group.baseline))} "
        "| CPU s | peak RSS MB | artifact MB | size x |",
        "|---|---|---|---|---|---|---|",
    ]
    for job in group.jobs:
        s = group.samples[job.key]
        walls = [x.wall for x in s]
        sizes = [x.size for x in s if x.size is not None]
        size = _mb(med(sizes)) if sizes else "-"
        size_ratio = "-"
        if sizes and base[0].size is not None:
            size_ratio = f"{ratio(group, job.key, group.baseline, 'size'):.2f}"
        p = 3 if max(walls) < 1 else 2
        rows.append(
            f"| {_cell(job.label)} | {med(walls):.{p}f} ({min(walls):.{p}f}-{max(walls):.{p}f}) "
            f"| {ratio(group, job.key, group.baseline):.2f} | {med([x.cpu for x in s]):.{p}f} "
            f"| {med([x.rss for x in s]) / 1e6:.0f} | {size} | {size_ratio} |"
        )
    return rows


def stage_table(group: Group) -> list[str]:
    """venvpack's own stage times (``timings`` of its ``--json`` result)."""
    samples = next((group.samples[j.key] for j in group.jobs if j.stages), None)
    if not samples:
        return []
    total = med([s.wall for s in samples])
    rows = ["| venvpack tar stage | median s | share of wall |", "|---|---|---|"]
    for name in samples[0].stages:
        m = med([s.stages.get(name, 0.0) for s in samples])
        rows.append(f"| {name} | {m:.2f} | {100 * m / total:.0f} % |")
    rest = med([s.wall - sum(s.stages.values()) for s in samples])
    share = 100 * rest / total
    rows.append(f"| rest: start-up, checks before the build | {rest:.2f} | {share:.0f} % |")
    return rows


@dataclass(frozen=True)
class Target:
    what: str
    value: float
    limit: float
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.value <= self.limit


def targets(groups: dict[str, Group]) -> list[Target]:
    """The issue's targets, each from the same run's samples."""
    found: list[Target] = []
    for key, g in groups.items():
        kind, name = key.split(":", 1)
        have = g.samples.keys()
        if kind == "build":
            found.append(
                Target(f"{name}: venvpack tar / workaround", ratio(g, "venvpack", "workaround"), 1)
            )
            if "floor" in have and name in ("small", "large", "quick"):
                found.append(
                    Target(
                        f"{name}: venvpack tar / floor (install, runtime copy, tar | zstd)",
                        ratio(g, "venvpack", "floor"),
                        1.3,
                    )
                )
            if "pyinstaller" in have:
                found.append(
                    Target(
                        f"{name}: venvpack tar / PyInstaller",
                        ratio(g, "venvpack", "pyinstaller"),
                        0.5,
                    )
                )
            if name in ("torch", "quick"):
                rss = max(s.rss for s in g.samples["venvpack"]) / 1e6
                found.append(Target(f"{name}: venvpack tar peak RSS, max of runs", rss, 300, "MB"))
        elif kind == "from":
            # Start-up and the fixed costs weigh more against a small tree's compression.
            limit = 1.2 if name == "large" else 1.5
            found.append(
                Target(f"{name}: tar --from / tar | zstd -T0", ratio(g, "tar", "floor"), limit)
            )
            if "deb" in have:
                found.append(
                    Target(f"{name}: deb --from / dpkg-deb", ratio(g, "deb", "dpkg-deb"), 1.0)
                )
                if name in ("large", "quick"):  # the target: numpy + pandas
                    found.append(
                        Target(f"{name}: deb --from / tar --from", ratio(g, "deb", "tar"), 1.5)
                    )
        elif kind == "rebuild":
            found.append(
                Target(f"{name}: app-only rebuild / tar --from", ratio(g, "rebuild", "from"), 1.5)
            )
        elif kind == "startup":
            found.append(
                Target(
                    "bin/python -c pass / source interpreter", ratio(g, "python", "source"), 1.05
                )
            )
    return found


def machine(env: dict[str, str]) -> list[str]:
    """Lines describing the host and the tools' versions."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    zstd = re.search(r"v[\d.]+", _first_line(["zstd", "-V"]))
    dpkg = re.search(r"version ([\w.~+-]+)", _first_line(["dpkg-deb", "--version"]))
    commit = _commit()
    uv = _first_line([env["UV"], "--version"])
    return [
        f"- {os.cpu_count()} CPUs ({cpu}), kernel {platform.release()}, "
        f"{' '.join(platform.libc_ver())}, {_first_line(['uname', '-m'])}",
        f"- venvpack {venvpack_version} at commit `{commit}`, {uv}, {', '.join(TOOLS)}, "
        f"zstd {zstd[0] if zstd else '?'}, dpkg-deb {dpkg[1] if dpkg else '?'}, "
        f"{_first_line(['rpmbuild', '--version'])}",
    ]


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True).stdout
    except OSError:
        return f"{argv[0]} missing"
    return out.splitlines()[0].strip() if out.strip() else "?"


def _commit() -> str:
    return _first_line(["git", "-C", str(REPO), "describe", "--always", "--dirty"])


def render(groups: dict[str, Group], header: list[str], commands: list[str]) -> str:
    out = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench.py` (`.venv/bin/python scripts/bench.py` reruns everything;",
        "`--help` for a part). Each job runs in a fresh directory `$W`; after one untimed",
        "warm-up round (uv's and PyInstaller's caches, the page cache), the jobs of a section",
        "run in interleaved rounds (A B C, C B A, A B C ...). **A ratio (x column) is the",
        "median over rounds of the job's value divided by the baseline's in the same round**,",
        "so the shared machine's drift cancels. CPU s is user + system time of every process",
        "of the job; peak RSS is `ru_maxrss` from `wait4`: the **largest single process** of",
        "the job, not a sum.",
        "",
        "## Machine",
        "",
        *header,
        "",
    ]
    for g in groups.values():
        out += [f"## {g.title}", "", f"*{g.measured}*", "", *g.notes, "", *table(g), ""]
        stages = stage_table(g)
        if stages:
            out += [*stages, ""]
    out += ["## Targets", "", "| target | measured | limit | met |", "|---|---|---|---|"]
    for t in targets(groups):
        met = "yes" if t.met else "**no**"
        out.append(
            f"| {_cell(t.what)} | {t.value:.2f} {t.unit} | <= {t.limit:g} {t.unit} | {met} |"
        )
    out += [
        "",
        "Where a missed target's time goes, measured stage by stage, is in "
        "[measurements](measurements.md#speed-to-the-floor).",
        "",
        "## Commands",
        "",
        *commands,
    ]
    return "\n".join(out)


def commands_text(groups: dict[str, Group], legend: list[str]) -> list[str]:
    lines = [
        "Every job is `bash -euo pipefail -c SCRIPT` in a fresh directory `$W`, with:",
        "",
        *legend,
        "",
    ]
    for g in groups.values():
        lines += [f"### {g.title}", ""]
        for job in g.jobs:
            lines += [f"{job.label}:", "", "```sh", job.script, "```", ""]
    return lines


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one round of every job, tiny app")
    parser.add_argument(
        "--workload",
        action="append",
        choices=sorted(WORKLOADS),
        help="run only this workload (repeatable; default: all)",
    )
    parser.add_argument("--runs", type=int, help="rounds per workload (default: per workload)")
    parser.add_argument("--startup-runs", type=int, help=f"default {STARTUP_RUNS}")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up section")
    parser.add_argument(
        "--no-rebuild", action="store_true", help="skip the application-only rebuild section"
    )
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, help="also save the measurements (to --render)")
    parser.add_argument(
        "--render",
        type=Path,
        action="append",
        metavar="JSON",
        help="measure nothing: write the document from saved --json files (repeatable; a "
        "later file's sections replace an earlier one's)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "venvpack-bench",
        help="where the tool venvs live (default: %(default)s)",
    )
    args = parser.parse_args()
    try:
        if args.render:
            rerender(args.render, args.output)
        else:
            run(args)
    except BenchError as exc:
        sys.exit(f"bench: {exc}")


def run(args: argparse.Namespace) -> None:
    """Every section, then the document."""
    workloads = [QUICK] if args.quick else [WORKLOADS[k] for k in args.workload or WORKLOADS]
    level = Compression.ZSTD.resolve_level(None)
    deb_defaults = DebOptions()
    deb_compression = deb_defaults.compression
    deb_level = Compression(deb_compression).resolve_level(deb_defaults.level)
    if args.quick:
        deb_level = 1  # the same code paths at a fraction of xz 6's time
    venvpack = str(Path(sys.executable).parent / "venvpack")
    from uv import find_uv_bin

    uv = str(find_uv_bin())
    load_before = os.getloadavg()
    started = datetime.now(timezone.utc)
    base_env = {**os.environ, "VENVPACK": venvpack, "UV": uv}
    base_env.update(DEBFULLNAME="Bench", DEBEMAIL="bench@example.org")
    base_env.pop("VIRTUAL_ENV", None)
    # venvpack is timed as an installed copy runs: from byte code. (A shell that sets
    # PYTHONDONTWRITEBYTECODE would have every run of an editable install compile its
    # changed modules again.)
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "src"), quiet=1)
    args.cache.mkdir(parents=True, exist_ok=True)
    pythons: dict[str, str] = {}
    groups: dict[str, Group] = {}
    with tempfile.TemporaryDirectory(prefix="venvpack-bench-") as tmp:
        work = Path(tmp)
        for w in workloads:
            py = interpreter(w.python)
            site = tool_env(args.cache, py, uv)
            env = {
                **base_env,
                "PY": str(py),
                "PY_HOME": str(py.parents[1]),
                "PY_NAME": py.name,
                "TOOLS": str(site.parents[2]),
                "TOOLS_SITE": str(site),
                "PREP": str(work / f"prep-{w.key}"),
                "RUNTIME": str(runtime(work, w.python, env=base_env)),
            }
            pythons[w.key] = str(py)
            runs = args.runs or w.runs
            _say(f"{w.key}: {w.title} with {py}, {runs} round(s)")
            g = Group(f"Build: {w.title} (CPython {w.python})", "workaround", build_jobs(w, level))
            g.notes = [build_note(w, runs, level)]
            run_group(g, env, work, runs, warm_up=not args.quick)
            groups[f"build:{w.key}"] = g
            if not w.packing:
                continue
            links = f" --find-links {w.find_links}" if w.find_links else ""
            packing_runs = args.runs or w.packing_runs
            prepare(
                f'"$VENVPACK" build -q --python "$PY"{links} -o "$PREP/env" '
                f"{shlex.join(w.requirements)}\n"
                '"$VENVPACK" deb -q --from "$PREP/env" --tree-only -o "$PREP/debtree"\n'
                '"$VENVPACK" rpm -q --from "$PREP/env" --spec-only -o "$PREP/rpmsrc"',
                env,
                f"{w.key}'s environment, deb tree and rpm sources",
            )
            g = Group(
                f"Packing a finished environment: {w.title}",
                "floor",
                packing_jobs(w, level, deb_compression, deb_level),
            )
            g.notes = [
                f"`$PREP/env` is `venvpack build {' '.join(w.requirements)}`; `$PREP/debtree` and "
                "`$PREP/rpmsrc` are `venvpack deb --tree-only` and `venvpack rpm --spec-only` of "
                f"it. zstd level {level} (venvpack tar's default); deb members {deb_compression} "
                f"level {deb_level} ("
                + ("lowered for --quick" if args.quick else "venvpack deb's default")
                + f"). {packing_runs} round(s), no warm-up round: no tool here has a cache, and "
                "the page cache is warm from preparing."
            ]
            run_group(g, env, work, packing_runs, warm_up=False)
            if "rpm" in w.packing:
                share = ratio(g, "rpmbuild", "rpm")
                g.notes.append(
                    f"\nrpmbuild's share of `venvpack rpm --from`: **{100 * share:.0f} %** "
                    "(median of per-round ratios)."
                )
            groups[f"from:{w.key}"] = g
        if not args.no_rebuild:
            groups["rebuild:hello"] = rebuild(args, base_env, work)
        if not args.no_startup:
            groups["startup:hello"] = startup(args, base_env, work)
    load_after = os.getloadavg()
    minutes = (datetime.now(timezone.utc) - started).seconds // 60
    legend = [
        f"- `$VENVPACK` = `{venvpack}`, `$UV` = `{uv}` (the uv venvpack runs)",
        PY_LEGEND + ", ".join(f"`{p}` ({k})" for k, p in pythons.items()),
        "- `$PY_HOME` = `$PY`'s installation (`$(dirname $(dirname $PY))`), "
        "`$PY_NAME` = `$(basename $PY)`",
        f"- `$TOOLS` = `{args.cache}/tools-X.Y`, a venv of `$PY` with {' and '.join(TOOLS)}; "
        "`$TOOLS_SITE` = its site-packages",
        "- `$PREP` = a directory with what the section's untimed preparation made",
        "- `$RUNTIME` = the `python/` directory of `venvpack build --python $PY examples/hello`:"
        " the pruned runtime venvpack ships for `$PY`",
        "- `$PROJECT` = a copy of examples/hello with a `uv.lock` (`uv lock`), edited by every"
        " rebuild",
    ]
    header = [
        *machine(base_env),
        f"- CPython {', '.join(sorted({w.python for w in workloads}))} from pyenv; started "
        f"{started:%Y-%m-%d %H:%M} UTC, took {minutes} min; load average {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after (the machine is shared: absolute times move, "
        "ratios much less).",
    ]
    state = State(header, legend, groups)
    if args.json:
        args.json.write_text(json.dumps(state.to_json(), indent=1), encoding="utf-8")
    write(state, args.output)


@dataclass
class State:
    """Everything a document is rendered from; ``--json`` saves it, ``--render`` reads it."""

    header: list[str]
    legend: list[str]
    groups: dict[str, Group]

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        groups = {}
        for key, g in data["groups"].items():
            samples = {j: [Sample(**s) for s in v] for j, v in g.pop("samples").items()}
            jobs = [Job(**j) for j in g.pop("jobs")]
            groups[key] = Group(**g, jobs=jobs, samples=samples)
        return cls(data["header"], data["legend"], groups)


def write(state: State, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    text = render(state.groups, state.header, commands_text(state.groups, state.legend))
    output.write_text(text, encoding="utf-8")
    _say(f"wrote {output}")


def rerender(files: list[Path], output: Path) -> None:
    """The document from saved states; a later file's section replaces an earlier one's."""
    states = [State.from_json(json.loads(f.read_text(encoding="utf-8"))) for f in files]
    if len(states) == 1:
        write(states[0], output)
        return
    # The machine and versions from the last run; the run-wide line (start, load) of any
    # one run would mislead, so each section's own line says when and under which load.
    header = [line for line in states[-1].header if not line.startswith("- CPython")]
    header.append(
        f"- Sections from {len(states)} runs (`--render`): each says when it was measured, "
        "at which commit and under which load."
    )
    pythons: list[str] = []
    for state in states:
        for line in state.legend:
            if line.startswith(PY_LEGEND):
                pythons += [p for p in line[len(PY_LEGEND) :].split(", ") if p not in pythons]
    legend = [
        PY_LEGEND + ", ".join(pythons) if line.startswith(PY_LEGEND) else line
        for line in states[-1].legend
    ]
    merged = State(header, legend, {})
    for state in states:
        merged.groups.update(state.groups)
    write(merged, output)


def runtime(work: Path, version: str, *, env: dict[str, str]) -> Path:
    """The pruned runtime venvpack ships for CPython ``version``: the ``python/`` directory
    of an environment it built, made once per run (the floor copies it)."""
    built = work / f"runtime-{version}"
    if not built.is_dir():
        prepare(
            f'"$VENVPACK" build -q --python {shlex.quote(str(interpreter(version)))} '
            f"-o {shlex.quote(str(built))} {shlex.quote(str(HELLO))}",
            env,
            f"the pruned runtime of CPython {version}",
        )
    return built / "python"


def rebuild_jobs() -> list[Job]:
    return [
        Job(
            "from",
            "venvpack tar --from the finished environment",
            '"$VENVPACK" tar -q --from "$PREP/env" -o "$W/app.tar.zst"',
            "app.tar.zst",
        ),
        Job(
            "rebuild",
            "venvpack tar --project after editing a source file",
            # A new line each round: nothing of the application can be reused by content.
            'echo "# round $ROUND, ${W##*/}" >> "$PROJECT/src/hello/__init__.py"\n'
            '"$VENVPACK" tar --json --python "$PY" --project "$PROJECT" -o "$W/app.tar.zst"'
            ' > "$W/result.json"',
            "app.tar.zst",
            stages=True,
        ),
    ]


def rebuild(args: argparse.Namespace, base_env: dict[str, str], work: Path) -> Group:
    """An application-only rebuild of a locked project vs re-packing its finished
    environment; then, untimed, whether a rebuild is byte-identical to a cold build."""
    prep = work / "prep-rebuild"
    env = {
        **base_env,
        "PY": str(interpreter("3.12")),
        "PREP": str(prep),
        "PROJECT": str(prep / "hello"),
        "HELLO": str(HELLO),
    }
    _say("rebuild: examples/hello, locked")
    prepare(
        'mkdir -p "$PREP"\n'
        'cp -a "$HELLO" "$PROJECT"\n'
        '(cd "$PROJECT" && "$UV" lock -q --python "$PY")\n'
        '"$VENVPACK" build -q --python "$PY" --project "$PROJECT" -o "$PREP/env"',
        env,
        "a locked copy of examples/hello and its environment",
    )
    runs = args.runs or (1 if args.quick else REBUILD_RUNS)
    g = Group(
        "Application-only rebuild: examples/hello, locked (CPython 3.12)", "from", rebuild_jobs()
    )
    g.notes = [
        "`$PROJECT` is a copy of examples/hello locked with `uv lock`; `$PREP/env` is `venvpack "
        "build --project $PROJECT`, made before the rounds. Each rebuild first appends a new "
        f"comment line to `src/hello/__init__.py`. {runs} round(s)"
        + ("." if args.quick else ", after an untimed warm-up round.")
    ]
    run_group(g, env, work, runs, warm_up=not args.quick)
    g.notes.append("\n" + identity(env, prep / "check"))
    return g


def identity(env: dict[str, str], check: Path) -> str:
    """Whether an application-only rebuild makes the same bytes as a cold build of the same
    sources: a build (which leaves in the cache what a rebuild reuses), an edit, the rebuild,
    then the cold build of the edited sources with an empty ``VENVPACK_CACHE``."""
    env = {**env, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "CHECK": str(check)}
    prepare(
        'mkdir -p "$CHECK"/{first,rebuilt,cold,empty-cache}\n'
        'pack() { "$VENVPACK" tar -q --python "$PY" --project "$PROJECT" -o "$1/app.tar.zst"; }\n'
        'pack "$CHECK/first"\n'
        'echo "# the identity check" >> "$PROJECT/src/hello/__init__.py"\n'
        'pack "$CHECK/rebuilt"\n'
        'VENVPACK_CACHE="$CHECK/empty-cache" pack "$CHECK/cold"',
        env,
        "a rebuild and a cold build of the same sources",
    )
    rebuilt = (check / "rebuilt" / "app.tar.zst").read_bytes()
    cold = (check / "cold" / "app.tar.zst").read_bytes()
    same = "**yes**" if rebuilt == cold else f"**no** ({len(rebuilt)} and {len(cold)} bytes)"
    return (
        f"Rebuild byte-identical to a cold build (`SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}`, "
        f"empty `VENVPACK_CACHE`): {same}"
    )


def startup(args: argparse.Namespace, base_env: dict[str, str], work: Path) -> Group:
    """``-c pass`` and the example app's command, packed vs the source interpreter."""
    py = interpreter("3.12")
    prep = work / "prep-startup"
    env = {
        **base_env,
        "PY": str(py),
        "HELLO_ENV": str(prep / "env"),
        "SRC_VENV": str(prep / "venv"),
    }
    quick_env = work / "prep-quick" / "env"
    _say("start-up")
    hello = shlex.quote(str(HELLO))
    if quick_env.is_dir():  # --quick packed the same app with the same interpreter already
        env["HELLO_ENV"] = str(quick_env)
    else:
        prepare(f'"$VENVPACK" build -q --python "$PY" -o "$HELLO_ENV" {hello}', env, "hello")
    prepare(
        '"$UV" venv -q --python "$PY" "$SRC_VENV"\n'
        f'"$UV" pip install -q --python "$SRC_VENV/bin/python" {hello}',
        env,
        "a venv of the source interpreter with hello",
    )
    runs = args.startup_runs or (3 if args.quick else STARTUP_RUNS)
    g = Group("Start-up (examples/hello, CPython 3.12)", "source", startup_jobs())
    g.notes = [
        f"{runs} interleaved rounds. `$HELLO_ENV` is `venvpack build examples/hello`; "
        "`$SRC_VENV` is `uv venv` of the source interpreter with examples/hello installed "
        "(`uv pip install`, which writes no byte-code: the first, untimed, run does)."
    ]
    run_group(g, env, work, runs, warm_up=True)
    return g


if __name__ == "__main__":
    main()
