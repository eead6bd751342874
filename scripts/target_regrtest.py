"""Rerun CPython's own regression tests with a packed interpreter where only glibc exists.

    python scripts/target_regrtest.py --python 3.12 [--env DIR] [TEST ...]

Builds an environment (examples/hello) with venvpack from the interpreter ``--python``
names (or takes ``--env``, built by venvpack from that interpreter), then runs the selected
tests twice with ``python -m test``: on the host with the source interpreter (the baseline),
and with the environment's bundled interpreter (``python/bin/python3.X``, not the venv's
``bin/python``: CPython's tests assume ``sys.prefix == sys.base_prefix``, and test_venv makes
venvs from it) in the glibc-only root of ``tests/sandbox.py`` (libc6, dash, coreutils), with
the environment mounted at its install prefix. The tests come from the source's own
``Lib/test`` (pyenv installs it as ``lib/python3.X/test``; venvpack prunes it from
environments), bound into the environment's stdlib inside the root; the test-only extension
modules venvpack prunes (``_testcapi`` ...) are copied into the environment's lib-dynload, and
the suites that live inside their packages before 3.12 (``ctypes/test`` ...) into its stdlib,
so both sides run the same tests. Both runs write JUnit XML; the report lists every test case
that passes on the host and does not in the root. Exit status 1 when there is one.

The root gets one file a container always has and the glibc root lacks: an ``/etc/hosts``
naming ``localhost`` (Docker and Podman write it; CPython's socket tests bind "localhost").

``ROOT_CAUSED`` below names the test cases that fail in the root because of what the root
lacks, not because of the environment; they are left out of the root run (``-i``), each with
its reason. Needs root, bwrap and the source interpreter's test package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

import sandbox  # noqa: E402
from venvpack.build import build_environment  # noqa: E402
from venvpack.config import BuildSpec  # noqa: E402
from venvpack.interpreter import find_interpreter  # noqa: E402

DEFAULT_TESTS = (
    "test_venv",
    "test_subprocess",
    "test_sysconfig",
    "test_ssl",
    "test_ctypes",
    "test_curses",
    "test_threading",
    "test_multiprocessing_spawn",
)

# Test cases (regrtest -i globs) that cannot pass in the glibc-only root, and why. Nothing
# here may be a property of the environment: each reason is something the root lacks.
ROOT_CAUSED = {
    "*test_special_chars_bash*": "no bash in the root",
    "*test_special_chars_csh*": "no csh in the root",
    "*test_find_library_with_gcc*": "ctypes.util.find_library('c') runs gcc, absent",
    "*test_find_library_with_ld*": "ctypes.util.find_library('c') runs ld, absent",
}


def _cases(xml_file: Path, reasons: dict[str, str] | None = None) -> dict[str, str]:
    """``{test id: "pass" | "fail" | "error" | "skip"}`` from a regrtest JUnit file; skip
    messages go into ``reasons``."""
    if not xml_file.exists():
        return {}
    out: dict[str, str] = {}
    for case in ET.parse(xml_file).iter("testcase"):
        name = case.get("name", "")  # regrtest writes the dotted id here, classname is empty
        state = "pass"
        for child in case:
            if child.tag in ("failure", "error"):
                state = "fail" if child.tag == "failure" else "error"
            elif child.tag == "skipped":
                state = "skip"
                if reasons is not None:
                    reasons[name] = (child.get("message") or child.text or "").strip()
        out[name] = state
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.12")
    parser.add_argument("--env", type=Path, help="an environment venvpack built from --python")
    parser.add_argument("--work", type=Path, help="where to keep the env and results")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("tests", nargs="*", default=list(DEFAULT_TESTS))
    args = parser.parse_args()

    interp = find_interpreter(args.python)
    test_dir = interp.stdlib / "test"
    if not (test_dir / "__main__.py").exists():
        print(f"{interp.executable} has no Lib/test at {test_dir}", file=sys.stderr)
        return 2
    # pyenv's `make install` of some releases leaves out test directories (3.12.1 has no
    # test_multiprocessing_spawn/); such a test cannot run on either side.
    absent = [
        t for t in args.tests if not (test_dir / t).exists() and not (test_dir / f"{t}.py").exists()
    ]
    args.tests = [t for t in args.tests if t not in absent]
    work = args.work or Path(tempfile.mkdtemp(prefix="venvpack-regrtest-"))
    work.mkdir(parents=True, exist_ok=True)
    env = args.env
    if env is None:
        env = work / "env"
        if not env.exists():
            spec = BuildSpec(
                requirements=(str(REPO / "examples" / "hello"),),
                python=args.python,
                keep_dev=True,  # test_sysconfig checks the Makefile and headers
            )
            build_environment(spec, env)
    prefix = json.loads((env / ".venvpack" / "manifest.json").read_text())["prefix"]
    stdlib_in_env = f"{prefix}/python/lib/python{interp.short_version}"
    env_stdlib = env / f"python/lib/python{interp.short_version}"
    for package in ("ctypes/test", "unittest/test", "sqlite3/test", "lib2to3/tests"):
        # Before 3.12 these suites live inside their packages (test_ctypes imports ctypes.test).
        if (interp.stdlib / package).is_dir() and not (env_stdlib / package).exists():
            shutil.copytree(interp.stdlib / package, env_stdlib / package)
    if interp.lib_dynload is not None:
        dynload = env_stdlib / "lib-dynload"
        for ext in sorted(interp.lib_dynload.glob("*.so")):
            if ext.name.startswith(("_test", "_ctypes_test", "xx")):
                shutil.copy2(ext, dynload / ext.name)
    common = ["-m", "test", "-v", "-u", "curses", "--timeout", "900", *args.tests]

    host_xml = work / "host.xml"
    with open(work / "host.log", "w") as log:
        subprocess.run(
            [str(interp.executable), *common, "--junit-xml", str(host_xml)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work,
            timeout=args.timeout,
            env={**sandbox.HOST_ENV, "TMPDIR": str(work), "TERM": "xterm"},
        )

    root = sandbox.glibc_root()
    ignores = [arg for pattern in ROOT_CAUSED for arg in ("-i", pattern)]
    results = work / "results"
    results.mkdir(exist_ok=True)
    mount = Path(os.path.realpath(env))
    # The test package goes where the stdlib is; bwrap makes the mount point in the env.
    (mount / f"python/lib/python{interp.short_version}/test").mkdir(exist_ok=True)
    hosts = work / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    root_run = sandbox.run_in_root(
        root,
        [
            f"{prefix}/python/bin/python{interp.short_version}",
            *common,
            *ignores,
            "--junit-xml",
            "/results/root.xml",
        ],
        binds={
            mount: prefix,
            test_dir: f"{stdlib_in_env}/test",
            results: "/results",
            hosts: "/etc/hosts",
        },
        cwd="/tmp",
        env={**sandbox.ROOT_ENV, "TERM": "xterm"},
        timeout=args.timeout,
    )
    (work / "root.log").write_text(root_run.stdout + root_run.stderr)

    why: dict[str, str] = {}
    host, inside = _cases(host_xml), _cases(results / "root.xml", why)
    regressions = sorted(
        t for t, s in host.items() if s == "pass" and inside.get(t) in ("fail", "error")
    )
    extra_skips = sorted(t for t, s in host.items() if s == "pass" and inside.get(t) == "skip")
    missing = sorted(t for t, s in host.items() if s == "pass" and t not in inside)

    def count(cases: dict[str, str]) -> str:
        states = ("pass", "fail", "error", "skip")
        return ", ".join(f"{sum(1 for v in cases.values() if v == s)} {s}" for s in states)

    print(f"CPython {interp.version} ({interp.executable}); tests: {' '.join(args.tests)}")
    if absent:
        print(f"not in {test_dir}, not run: {' '.join(absent)}")
    print(f"host (source interpreter): {count(host)}")
    print(f"glibc-only root (packed):  {count(inside)}")
    print(f"passing on the host, failing in the root: {len(regressions)}")
    for name in regressions:
        print(f"  FAIL {name}")
    print(f"passing on the host, skipped in the root: {len(extra_skips)}")
    for name in extra_skips:
        print(f"  skip {name}: {why.get(name, '')}")
    print(f"passing on the host, not run in the root (ROOT_CAUSED): {len(missing)}")
    for pattern, reason in ROOT_CAUSED.items():
        print(f"  {pattern}: {reason}")
    print(f"logs and XML in {work}")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
