#!/usr/bin/env python3
"""Benchmark metaflowlike against Metaflow 2.19 on the same flows.

Why one stand-alone script: the numbers must be reproducible by anyone with a checkout,
so the runner uses only the standard library, creates the Metaflow virtualenv it needs by
itself, and runs every command in a fresh temporary folder with a local datastore and
local metadata for each framework.

Every measured command runs inside a tiny *wrapper* process (``WRAPPER`` below). The
wrapper starts the command, waits for it and then reads ``getrusage(RUSAGE_CHILDREN)``,
which covers exactly the command's process tree: user+sys CPU of every reaped descendant
and ``ru_maxrss`` of the largest one. Wall time is taken inside the wrapper too, so the
wrapper's own start-up is not counted.

The two frameworks alternate within each repetition (and swap order every repetition) so
that drift on the machine hits both alike. The median over ``--repeat`` runs is reported.

Usage: ``python benchmarks/run.py [--cases a,b] [--repeat N] [--only FRAMEWORK] [--quick]
[--json out.json]``; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLOWS = HERE / "flows"
METAFLOW_VENV = HERE / ".venvs" / "metaflow"
OURS_VENV = HERE / ".venvs" / "metaflowlike"
METAFLOW_REQUIREMENT = "metaflow==2.19.*"
FLOW_FILES = ("linear10.py", "foreach.py", "bigartifact.py", "resume4.py")
MiB = 1024 * 1024
# Interpreter settings of the calling shell that would make one side slower or different.
PY_VARS = {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPYCACHEPREFIX"}

CASES = (
    "import",
    "linear10",
    "foreach100",
    "foreach500",
    "bigartifact",
    "bigartifact-again",
    "resume",
    "show",
    "check",
    "client1000",
)

# Runs the command given as JSON in argv[1] and prints one JSON line of measurements.
# The wait is a blocking one on purpose: Popen.wait(timeout=...) polls with sleeps of up
# to 50 ms, which would round every wall time up to the next poll. A timer thread
# enforces the timeout instead.
WRAPPER = r"""
import json, os, resource, signal, subprocess, sys, threading, time
spec = json.loads(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_CHILDREN)
timed_out = []
with open(spec["stdout"], "wb") as out, open(spec["stderr"], "wb") as err:
    t0 = time.perf_counter()
    proc = subprocess.Popen(spec["cmd"], cwd=spec["cwd"], stdout=out, stderr=err,
                            start_new_session=True)
    def kill():
        timed_out.append(True)
        os.killpg(proc.pid, signal.SIGKILL)
    timer = threading.Timer(spec["timeout"], kill)
    timer.daemon = True
    timer.start()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    timer.cancel()
if timed_out:
    rc = "timeout after %ss" % spec["timeout"]
after = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"rc": rc, "wall": wall, "cpu": cpu, "maxrss_kb": after.ru_maxrss}))
"""


class CaseError(Exception):
    """A command of a case failed; the message carries the stderr tail."""


@dataclass
class Framework:
    """One side of the comparison: its interpreter, flows and scratch folder."""

    name: str  # "metaflowlike" or "metaflow"
    label: str
    python: str
    workdir: Path
    state: dict = field(default_factory=dict)

    @property
    def flows(self) -> Path:
        return self.workdir / "flows"

    def datastore(self, root: Path) -> Path:
        """Where this framework keeps its datastore when run in ``root``."""
        return root / (".metaflowlike" if self.name == "metaflowlike" else ".metaflow")

    def env(self, root: Path, extra: dict | None = None) -> dict:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("METAFLOW", "BENCH_", "VIRTUAL_ENV")) and k not in PY_VARS
        }
        env["USERNAME"] = env["USER"] = "bench"
        # Bytecode is cached, as on any user's machine, but in the scratch folder: the same
        # for both frameworks (even if the environment says PYTHONDONTWRITEBYTECODE) and
        # nothing is written next to the sources.
        env["PYTHONPYCACHEPREFIX"] = str(self.workdir / "pycache")
        if self.name == "metaflow":
            env.update(
                METAFLOW_HOME=str(self.workdir / "metaflow-home"),  # ignore ~/.metaflowconfig
                METAFLOW_DEFAULT_DATASTORE="local",
                METAFLOW_DEFAULT_METADATA="local",
                METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root),
            )
        else:
            env["METAFLOWLIKE_DATASTORE_ROOT"] = str(self.datastore(root))
        env.update(extra or {})
        return env


@dataclass
class Ctx:
    args: argparse.Namespace
    sizes: dict
    timeout: float


# --- running commands ---------------------------------------------------------------


def measure(
    fw: Framework,
    root: Path,
    argv: list[str],
    tag: str,
    ctx: Ctx,
    extra_env: dict | None = None,
    expect_ok: bool = True,
) -> dict:
    """Run ``fw.python *argv`` in ``root`` under the wrapper and return its measurements."""
    root.mkdir(parents=True, exist_ok=True)
    logs = fw.workdir / "logs"
    logs.mkdir(exist_ok=True)
    spec = {
        "cmd": [fw.python, *argv],
        "cwd": str(root),
        "stdout": str(logs / f"{tag}.out"),
        "stderr": str(logs / f"{tag}.err"),
        "timeout": ctx.timeout,
    }
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps(spec)],
        env=fw.env(root, extra_env),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise CaseError(f"benchmark wrapper failed:\n{proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["stdout_path"] = spec["stdout"]
    ok = res["rc"] == 0
    if ok != expect_ok:
        what = "failed" if expect_ok else "unexpectedly succeeded"
        raise CaseError(
            f"`{' '.join(argv)}` {what} (exit {res['rc']}) in {root}\n"
            + tail(Path(spec["stderr"]))
            + ("" if expect_ok else tail(Path(spec["stdout"])))
        )
    return res


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"    | {line}\n" for line in text)


def snapshot(folder: Path) -> dict[str, int]:
    """Relative path -> size of every file below ``folder``."""
    files = {}
    if folder.exists():
        for dirpath, _dirs, names in os.walk(folder):
            for name in names:
                p = os.path.join(dirpath, name)
                try:
                    files[os.path.relpath(p, folder)] = os.path.getsize(p)
                except OSError:
                    pass
    return files


def is_data(rel: str) -> bool:
    """True for files of the content-addressed artifact store (a ``data/`` folder)."""
    return "data" in Path(rel).parts


def growth(before: dict[str, int], after: dict[str, int]) -> dict:
    def added(only_data: bool) -> int:
        return sum(
            max(0, size - before.get(rel, 0))
            for rel, size in after.items()
            if not only_data or is_data(rel)
        )

    return {
        "new_bytes": added(False),
        "new_data_bytes": added(True),
        "new_data_files": sum(1 for rel in after if rel not in before and is_data(rel)),
    }


# --- the cases ------------------------------------------------------------------------


def flow(fw: Framework, name: str) -> str:
    return str(fw.flows / name)


def foreach_args(n: int) -> list[str]:
    # Metaflow refuses a foreach wider than --max-num-splits (default 100).
    return ["--n", str(n), "--max-workers", "2", "--max-num-splits", str(max(100, n))]


def case_import(ctx: Ctx, fw: Framework, rep: int) -> dict:
    root = fw.workdir / "import"
    bare = measure(fw, root, ["-c", "pass"], f"import-pass-{rep}", ctx)
    res = measure(fw, root, ["-c", f"import {fw.name}"], f"import-{rep}", ctx)
    res["bare_python_s"] = bare["wall"]
    res["import_net_ms"] = (res["wall"] - bare["wall"]) * 1000
    return res


def case_linear10(ctx: Ctx, fw: Framework, rep: int) -> dict:
    return measure(
        fw, fw.workdir / "linear10", [flow(fw, "linear10.py"), "run"], f"linear10-{rep}", ctx
    )


def make_foreach(key: str) -> Callable[[Ctx, Framework, int], dict]:
    def case(ctx: Ctx, fw: Framework, rep: int) -> dict:
        n = ctx.sizes[key]
        argv = [flow(fw, "foreach.py"), "run", *foreach_args(n)]
        res = measure(fw, fw.workdir / key, argv, f"{key}-{rep}", ctx)
        tasks = n + 3
        res["tasks"] = tasks
        res["tasks_per_s"] = tasks / res["wall"]
        res["cpu_ms_per_task"] = res["cpu"] * 1000 / tasks
        return res

    return case


def big_argv(ctx: Ctx, fw: Framework) -> list[str]:
    return [flow(fw, "bigartifact.py"), "run", "--mb", str(ctx.sizes["mb"])]


def case_bigartifact(ctx: Ctx, fw: Framework, rep: int) -> dict:
    root = fw.workdir / f"bigartifact-{rep}"  # a fresh datastore: nothing to dedupe against
    shutil.rmtree(root, ignore_errors=True)
    res = measure(fw, root, big_argv(ctx, fw), f"bigartifact-{rep}", ctx)
    fw.state.setdefault("big_roots", {})[rep] = root
    res["artifact_bytes"] = ctx.sizes["mb"] * MiB
    res["stored_bytes"] = sum(snapshot(fw.datastore(root)).values())
    return res


def case_bigartifact_again(ctx: Ctx, fw: Framework, rep: int) -> dict:
    root = fw.state.get("big_roots", {}).pop(rep, None)
    if root is None:  # bigartifact was not run (or failed): make the first run, untimed
        root = fw.workdir / f"bigartifact-{rep}"
        shutil.rmtree(root, ignore_errors=True)
        measure(fw, root, big_argv(ctx, fw), f"bigartifact-again-setup-{rep}", ctx)
    before = snapshot(fw.datastore(root))
    res = measure(fw, root, big_argv(ctx, fw), f"bigartifact-again-{rep}", ctx)
    res.update(growth(before, snapshot(fw.datastore(root))))
    res["artifact_bytes"] = ctx.sizes["mb"] * MiB
    shutil.rmtree(root, ignore_errors=True)  # ~2x the artifact size per framework
    return res


def case_resume(ctx: Ctx, fw: Framework, rep: int) -> dict:
    root = fw.workdir / "resume"
    script = flow(fw, "resume4.py")
    measure(
        fw,
        root,
        [script, "run"],
        f"resume-fail-{rep}",
        ctx,
        extra_env={"BENCH_FAIL": "1"},
        expect_ok=False,
    )
    return measure(fw, root, [script, "resume"], f"resume-{rep}", ctx)


def make_cli(command: str) -> Callable[[Ctx, Framework, int], dict]:
    def case(ctx: Ctx, fw: Framework, rep: int) -> dict:
        argv = [flow(fw, "linear10.py"), command]
        return measure(fw, fw.workdir / command, argv, f"{command}-{rep}", ctx)

    return case


CLIENT_SCRIPT = """
import json
from {module} import Flow, namespace
namespace(None)
run = Flow("ForeachFlow").latest_run
n = 0
total = 0
for task in run["body"]:
    total += task.data.sq
    n += 1
print(json.dumps({{"tasks": n, "total": total}}))
"""


def case_client1000(ctx: Ctx, fw: Framework, rep: int) -> dict:
    n = ctx.sizes["client1000"]
    root = fw.workdir / "client1000"
    if not fw.state.get("client_ready"):
        argv = [flow(fw, "foreach.py"), "run", *foreach_args(n)]
        measure(fw, root, argv, "client1000-setup", ctx)
        fw.state["client_ready"] = True
    script = CLIENT_SCRIPT.format(module=fw.name)
    res = measure(fw, root, ["-c", script], f"client1000-{rep}", ctx)
    out = Path(res["stdout_path"]).read_text().strip().splitlines()
    got = json.loads(out[-1]) if out else {}
    want = sum(i * i for i in range(n))
    if got.get("tasks") != n or got.get("total") != want:
        raise CaseError(f"client read {got}, expected {n} tasks with total {want}")
    res["ms_per_task"] = res["wall"] * 1000 / n
    return res


RUNNERS: dict[str, Callable[[Ctx, Framework, int], dict]] = {
    "import": case_import,
    "linear10": case_linear10,
    "foreach100": make_foreach("foreach100"),
    "foreach500": make_foreach("foreach500"),
    "bigartifact": case_bigartifact,
    "bigartifact-again": case_bigartifact_again,
    "resume": case_resume,
    "show": make_cli("show"),
    "check": make_cli("check"),
    "client1000": case_client1000,
}


# --- what is reported, and the targets from the issue -----------------------------------


@dataclass
class Metric:
    case: str
    key: str  # key in a repetition's result dict
    label: str
    unit: str
    higher_is_better: bool = False
    # ("ratio", x): ours must beat Metaflow x-fold; ("below", x): ours must be < x;
    # ("rss", x): ours' peak RSS <= x * artifact size; None: informative only.
    target: tuple | None = None
    scale: float = 1.0
    compare: bool = True  # False: a reference figure, no ratio


METRICS = [
    Metric("import", "wall", "wall", "ms", target=("below", 100.0), scale=1000),
    Metric("import", "import_net_ms", "minus bare python", "ms", compare=False),
    Metric("import", "bare_python_s", "bare `python -c pass`", "ms", scale=1000, compare=False),
    Metric("linear10", "wall", "wall", "s", target=("ratio", 5.0)),
    Metric("foreach100", "wall", "wall", "s"),
    Metric("foreach100", "cpu", "CPU user+sys", "s"),
    Metric("foreach100", "tasks_per_s", "tasks/s", "/s", higher_is_better=True),
    Metric("foreach500", "wall", "wall", "s"),
    Metric(
        "foreach500", "tasks_per_s", "tasks/s", "/s", higher_is_better=True, target=("ratio", 10.0)
    ),
    Metric("foreach500", "cpu_ms_per_task", "CPU per task", "ms", target=("below", 30.0)),
    Metric("bigartifact", "wall", "wall", "s", target=("ratio", 4.0)),
    Metric("bigartifact", "maxrss_kb", "peak RSS", "MiB", target=("rss", 1.5), scale=1 / 1024),
    Metric("bigartifact", "stored_bytes", "datastore size", "MiB", scale=1 / MiB),
    Metric("bigartifact-again", "wall", "wall", "s", target=("ratio", 4.0)),
    Metric(
        "bigartifact-again",
        "new_data_bytes",
        "new artifact bytes",
        "B",
        target=("zero", 0),
    ),
    Metric("bigartifact-again", "new_data_files", "new files in data/", ""),
    Metric("bigartifact-again", "new_bytes", "new bytes (all)", "KiB", scale=1 / 1024),
    Metric("resume", "wall", "wall", "s", target=("ratio", 4.0)),
    Metric("show", "wall", "wall", "s", target=("ratio", 4.0)),
    Metric("check", "wall", "wall", "s", target=("ratio", 4.0)),
    Metric("client1000", "wall", "wall", "s", target=("ratio", 2.0)),
    Metric("client1000", "ms_per_task", "per task", "ms"),
]


def median_of(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if key in r]
    return statistics.median(values) if values else None


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("B", ""):
        return f"{value:,.0f}{' B' if unit == 'B' else ''}"
    digits = 3 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
    return f"{value:,.{digits}f} {unit}".strip()


def judge(m: Metric, ours: float | None, theirs: float | None, ratio: float | None, big) -> str:
    if m.target is None:
        return ""
    kind, x = m.target
    if kind == "ratio":
        want, ok = f"≥{x:g}x", None if ratio is None else ratio >= x
    elif kind == "below":
        want, ok = f"<{x:g} {m.unit}".strip(), None if ours is None else ours < x
    elif kind == "zero":
        want, ok = f"0 {m.unit}".strip(), None if ours is None else ours == 0
    else:  # rss: ours' peak RSS within x times the artifact size
        want = f"≤{x:g}x artifact"
        ok = None if ours is None or not big else ours * MiB <= x * big
    return f"{want} {'n/a' if ok is None else 'PASS' if ok else 'FAIL'}"


def build_table(results: dict, cases: list[str], sizes: dict) -> list[dict]:
    rows = []
    for m in METRICS:
        if m.case not in cases:
            continue
        ours_runs = results.get(m.case, {}).get("metaflowlike", [])
        mf_runs = results.get(m.case, {}).get("metaflow", [])
        ours, theirs = median_of(ours_runs, m.key), median_of(mf_runs, m.key)
        ours = None if ours is None else ours * m.scale
        theirs = None if theirs is None else theirs * m.scale
        ratio = None
        if m.compare and ours is not None and theirs is not None and ours > 0 and theirs > 0:
            ratio = ours / theirs if m.higher_is_better else theirs / ours
        first = not rows or rows[-1]["case"] != m.case
        rss = [max((r["maxrss_kb"] for r in runs), default=None) for runs in (ours_runs, mf_runs)]
        rows.append(
            {
                "case": m.case,
                "metric": m.label,
                "unit": m.unit,
                "metaflowlike": ours,
                "metaflow": theirs,
                "ratio": ratio,
                "peak_rss_mib": [None if v is None else v / 1024 for v in rss] if first else None,
                "target": judge(m, ours, theirs, ratio, sizes["mb"] * MiB),
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    head = [
        "case",
        "metric",
        "metaflowlike",
        "Metaflow",
        "ratio",
        "peak RSS ours",
        "peak RSS Metaflow",
        "target",
    ]
    body = []
    for r in rows:
        rss = r["peak_rss_mib"] or [None, None]
        body.append(
            [
                r["case"],
                r["metric"],
                fmt(r["metaflowlike"], r["unit"]),
                fmt(r["metaflow"], r["unit"]),
                "—" if r["ratio"] is None else f"{r['ratio']:.2f}x",
                fmt(rss[0], "MiB") if r["peak_rss_mib"] else "",
                fmt(rss[1], "MiB") if r["peak_rss_mib"] else "",
                r["target"],
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for cells in body:
        print(line(cells))


# --- set-up -----------------------------------------------------------------------------


def _venv(path: Path, packages: list[str], probe: str, reinstall: str | None = None) -> str:
    """A clean virtualenv at ``path`` holding ``packages``; returns its python.

    Both frameworks run from a venv of their own, so that neither pays for start-up
    hooks (``.pth`` files) of the interpreter that runs this script."""
    python = path / "bin" / "python"
    check = [str(python), "-c", probe]
    if (
        reinstall is None
        and python.exists()
        and subprocess.run(check, capture_output=True).returncode == 0
    ):
        return str(python)
    if not python.exists():
        print(f"creating {path} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    uv = shutil.which("uv")
    pip = (
        [uv, "pip", "install", "-q", "--python", str(python)]
        if uv
        else [str(python), "-m", "pip", "install", "-q"]
    )
    if reinstall:
        pip += ["--reinstall-package", reinstall] if uv else ["--force-reinstall", "--no-deps"]
    subprocess.run([*pip, *packages], check=True)
    subprocess.run(check, check=True)
    return str(python)


def ensure_metaflow_venv() -> str:
    """``benchmarks/.venvs/metaflow`` with Metaflow 2.19 and numpy (created if missing)."""
    return _venv(METAFLOW_VENV, [METAFLOW_REQUIREMENT, "numpy"], "import metaflow, numpy")


def ensure_ours_venv() -> str:
    """``benchmarks/.venvs/metaflowlike`` with this working tree installed as a regular
    (non-editable) package, reinstalled every time so it measures the current code."""
    if not (OURS_VENV / "bin" / "python").exists():
        _venv(OURS_VENV, [str(HERE.parent), "numpy"], "import metaflowlike, numpy")
    return _venv(OURS_VENV, [str(HERE.parent)], "import metaflowlike, numpy", "metaflowlike")


def prepare(fw: Framework) -> None:
    """Copy the flows into the scratch folder, rewriting the import line for Metaflow."""
    fw.flows.mkdir(parents=True)
    (fw.workdir / "metaflow-home").mkdir()
    for name in FLOW_FILES:
        text = (FLOWS / name).read_text()
        if fw.name == "metaflow":
            text = text.replace("from metaflowlike import", "from metaflow import")
        (fw.flows / name).write_text(text)
    # Fill the bytecode cache (one import and one small run) so that no case pays for
    # compiling the framework.
    warm = fw.workdir / "warmup"
    for argv in (
        ["-c", f"from {fw.name} import Flow, namespace"],
        [flow(fw, "linear10.py"), "run"],
    ):
        warm.mkdir(exist_ok=True)
        subprocess.run(
            [fw.python, *argv], cwd=warm, env=fw.env(warm), capture_output=True, check=False
        )
    shutil.rmtree(warm, ignore_errors=True)


def version_of(python: str, module: str) -> str:
    code = (
        f"import importlib.metadata as m, sys\nprint(m.version({module!r}), sys.version.split()[0])"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return proc.stdout.strip() or "unavailable"


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", help=f"comma-separated subset of: {','.join(CASES)}")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per case (median shown)")
    p.add_argument("--only", choices=["metaflowlike", "metaflow"], help="run one framework")
    p.add_argument(
        "--quick", action="store_true", help="small sizes (n=20, mb=16) for a smoke test"
    )
    p.add_argument("--json", metavar="PATH", help="also write all raw results as JSON")
    p.add_argument(
        "--metaflowlike-python",
        metavar="PATH",
        default=None,
        help="interpreter that runs metaflowlike (default: benchmarks/.venvs/metaflowlike, "
        "a clean venv with the working tree installed)",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per command")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    cases = CASES if not args.cases else tuple(c.strip() for c in args.cases.split(","))
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    args.case_list = [c for c in CASES if c in cases]  # canonical order
    # Absolute (commands run in other folders) but not resolved: a venv's python is a
    # symlink, and following it would leave the venv.
    if args.metaflowlike_python:
        args.metaflowlike_python = os.path.abspath(args.metaflowlike_python)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        sizes = {"foreach100": 20, "foreach500": 20, "client1000": 20, "mb": 16}
    else:
        sizes = {"foreach100": 100, "foreach500": 500, "client1000": 1000, "mb": 256}
    ctx = Ctx(args=args, sizes=sizes, timeout=args.timeout)
    scratch = Path(tempfile.mkdtemp(prefix="metaflowlike-bench-"))
    frameworks: list[Framework] = []
    if args.only != "metaflow":
        try:
            ours = args.metaflowlike_python or ensure_ours_venv()
        except (subprocess.CalledProcessError, OSError) as e:
            print(f"ERROR: could not set up the metaflowlike virtualenv: {e}", file=sys.stderr)
            return 2
        frameworks.append(Framework("metaflowlike", "metaflowlike", ours, scratch / "ours"))
    if args.only != "metaflowlike":
        try:
            python = ensure_metaflow_venv()
        except (subprocess.CalledProcessError, OSError) as e:
            print(f"ERROR: could not set up the Metaflow virtualenv: {e}", file=sys.stderr)
            return 2
        frameworks.append(Framework("metaflow", "Metaflow", python, scratch / "metaflow"))

    info = {"machine": machine_info(), "sizes": sizes, "repeat": args.repeat, "versions": {}}
    for fw in frameworks:
        prepare(fw)
        info["versions"][fw.name] = f"{version_of(fw.python, fw.name)} {fw.python}"
    m = info["machine"]
    print(f"machine: {m['nproc']} cpus, {m['cpu']}, {m['platform']}")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*m["loadavg_at_start"]))
    for name, version in info["versions"].items():
        print(f"{name}: {version} (version, python version, interpreter)")
    print(f"scratch: {scratch}\n", flush=True)

    results: dict[str, dict[str, list[dict]]] = {}
    errors: list[str] = []
    started = time.perf_counter()
    for case in args.case_list:
        results[case] = {fw.name: [] for fw in frameworks}
        failed: set[str] = set()
        for rep in range(args.repeat):
            order = frameworks if rep % 2 == 0 else frameworks[::-1]
            for fw in order:
                if fw.name in failed:
                    continue
                try:
                    res = RUNNERS[case](ctx, fw, rep)
                except CaseError as e:
                    failed.add(fw.name)
                    msg = f"{case} on {fw.label} (repetition {rep + 1}): {e}"
                    errors.append(msg)
                    print(f"  ERROR {msg}", flush=True)
                    continue
                results[case][fw.name].append(res)
                print(
                    f"  {case:<18} {fw.label:<13} #{rep + 1}: {res['wall']:8.3f} s wall, "
                    f"{res['cpu']:8.2f} s cpu, {res['maxrss_kb'] / 1024:8.1f} MiB peak",
                    flush=True,
                )

    print(
        f"\ntotal benchmark time {time.perf_counter() - started:.0f} s; medians of "
        f"{args.repeat} run(s); ratio > 1 means metaflowlike is better\n"
    )
    info["loadavg_at_end"] = os.getloadavg()
    print(
        "load average at the end (1, 5, 15 min): {:.2f} {:.2f} {:.2f}\n".format(
            *info["loadavg_at_end"]
        )
    )
    rows = build_table(results, args.case_list, sizes)
    print_table(rows)
    if args.quick:
        print("\n(--quick sizes: the targets are meant for the full sizes)")
    if errors:
        print(f"\n{len(errors)} case(s) failed; see the errors above (logs in {scratch}).")
    if args.json:
        for per_fw in results.values():
            for runs in per_fw.values():
                for r in runs:
                    r.pop("stdout_path", None)
        payload = {"info": info, "table": rows, "runs": results, "errors": errors}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"raw results written to {args.json}")
    if args.keep or errors:
        for big in scratch.glob("*/bigartifact-*"):  # large datastores: never worth keeping
            shutil.rmtree(big, ignore_errors=True)
        print(f"scratch folder kept: {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
