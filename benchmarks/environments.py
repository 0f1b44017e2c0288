#!/usr/bin/env python3
"""Cold vs warm set-up of per-step environments (``@pypi``), against plain steps.

Runs one five-step flow four ways, each in a fresh datastore:

- ``plain (fork)``: no ``@pypi``, the default launcher: the baseline a user compares with;
- ``plain (subprocess)``: no ``@pypi``, each task a fresh ``python flow.py step``;
- ``pypi cold``: ``--environment=pypi`` with an empty environment cache (uv's own
  download cache stays as it is, so this measures resolution + building, not downloads);
- ``pypi warm``: the same again, with the environment cache from the cold run.

Per case it reports the wall time of the whole ``run`` command, the time spent before
the first task started (resolving and building environments), and the per-step set-up:
the median, over the run's tasks, of the time from the runtime launching a task to the
task's own code starting (``started_at`` of the ``.done`` marker vs. of ``task.json``).
The target: warm set-up per step within 300 ms of a plain step's.

Usage: ``python benchmarks/environments.py [--repeat N] [--json PATH]``. Uses only the
standard library and the metaflowlike installed in the running interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = ("start", "a", "b", "c", "end")
TARGET_MS = 300.0

FLOW = """
import os, time
from metaflowlike import FlowSpec, step, pypi_base

def note(name):
    # CPU this task process used before user code: a set-up cost load does not change
    with open(os.environ["ENVBENCH_CPU_LOG"], "a") as f:
        f.write(f"{name} {time.process_time()}\\n")

@pypi_base(packages={"six": "1.16.0"})
class EnvBenchFlow(FlowSpec):
    @step
    def start(self):
        note("start")
        import six
        self.v = six.__version__
        self.next(self.a)

    @step
    def a(self):
        note("a")
        self.next(self.b)

    @step
    def b(self):
        note("b")
        self.next(self.c)

    @step
    def c(self):
        note("c")
        self.next(self.end)

    @step
    def end(self):
        note("end")
        pass

if __name__ == "__main__":
    EnvBenchFlow()
"""

PLAIN = FLOW.replace(", pypi_base", "").replace('@pypi_base(packages={"six": "1.16.0"})\n', "")
PLAIN = PLAIN.replace(
    "        import six\n        self.v = six.__version__\n", "        self.v = 1\n"
)


def run_case(folder: Path, source: str, top: list[str], args: list[str], envs: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    flow = folder / "flow.py"
    flow.write_text(source)
    root = folder / "ds"
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    cpu_log = folder / "cpu.log"
    env.update(
        METAFLOWLIKE_DATASTORE_ROOT=str(root),
        METAFLOWLIKE_ENVS_DIR=str(envs),
        ENVBENCH_CPU_LOG=str(cpu_log),
    )
    cmd = [sys.executable, str(flow), *top, "run", *args]
    began = time.time()
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.time() - began
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    tasks = _task_times(root)
    first_launch = min(t["launched"] for t in tasks)
    return {
        "wall_s": wall,
        "before_first_task_s": first_launch - began,
        "setup_per_step_ms": statistics.median(t["setup"] for t in tasks) * 1000,
        "setup_cpu_per_step_ms": statistics.median(
            float(line.split()[1]) for line in cpu_log.read_text().splitlines()
        )
        * 1000,
    }


def _task_times(root: Path) -> list[dict]:
    """Launch time (runtime side) and code start (task side) of every task."""
    found = []
    for marker in root.glob("flows/EnvBenchFlow/*/*/*/0.done"):
        info = json.loads((marker.parent / "0" / "task.json").read_text())
        done = json.loads(marker.read_text())
        found.append(
            {"launched": done["started_at"], "setup": info["started_at"] - done["started_at"]}
        )
    if len(found) != len(STEPS):
        raise SystemExit(f"expected {len(STEPS)} tasks, found {len(found)} under {root}")
    return found


def one_repetition(scratch: Path) -> dict[str, dict]:
    envs = scratch / "envs"
    return {
        "plain (fork)": run_case(scratch / "plain-fork", PLAIN, [], [], envs),
        "plain (subprocess)": run_case(
            scratch / "plain-sub", PLAIN, [], ["--launcher", "subprocess"], envs
        ),
        "pypi cold": run_case(scratch / "cold", FLOW, ["--environment", "pypi"], [], envs),
        "pypi warm": run_case(scratch / "warm", FLOW, ["--environment", "pypi"], [], envs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    opts = parser.parse_args(argv)
    reps = []
    for _ in range(opts.repeat):
        with tempfile.TemporaryDirectory(prefix="mfl-envbench-") as tmp:
            reps.append(one_repetition(Path(tmp)))
    cases = list(reps[0])
    med = {
        case: {m: statistics.median(r[case][m] for r in reps) for m in reps[0][case]}
        for case in cases
    }
    head = ("case", "run wall", "before 1st task", "set-up/step", "set-up CPU/step")
    print(f"{head[0]:<20} {head[1]:>9} {head[2]:>16} {head[3]:>12} {head[4]:>16}")
    for case in cases:
        m = med[case]
        print(
            f"{case:<20} {m['wall_s']:>8.2f}s {m['before_first_task_s']:>15.2f}s "
            f"{m['setup_per_step_ms']:>9.0f} ms {m['setup_cpu_per_step_ms']:>13.0f} ms"
        )
    for metric, label in (("setup_per_step_ms", "wall"), ("setup_cpu_per_step_ms", "CPU")):
        extra = med["pypi warm"][metric] - med["plain (fork)"][metric]
        verdict = "PASS" if extra <= TARGET_MS else "FAIL"
        print(
            f"warm @pypi step vs plain step, set-up {label}: +{extra:.0f} ms per step "
            f"(target <= {TARGET_MS:.0f} ms): {verdict}"
        )
    if opts.json:
        Path(opts.json).write_text(json.dumps({"repetitions": reps, "median": med}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
