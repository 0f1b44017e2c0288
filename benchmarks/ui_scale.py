#!/usr/bin/env python3
"""``metaflowlike ui`` at scale: 10,000 runs of a flow, and a run with a 5,000-task foreach.

How the datastore is built (fast, and said plainly in the report):

- ``ManyRuns``: one real run of a four-step flow, then 9,999 more runs made by cloning
  its run record and end record through ``FlowDatastore.write_run`` /
  ``write_run_end`` under new run ids (every tenth one marked failed, every seventh
  tagged). Only the real run has tasks; that is the run the benchmark opens.
- ``WideFlow``: one real run of ``start -> body (foreach) -> join -> end`` over 20
  items, then its ``body`` tasks cloned through ``write_task`` / ``write_log`` /
  ``mark_done`` until the step has 5,000 tasks (each with its own completion marker,
  manifest and log, as a real task leaves them).

Then the real ``metaflowlike ui`` command serves that datastore and each API request is
timed from a client in this process: wall time (median of the repeats) and the
server's CPU time for the request (from ``/proc/<pid>/stat``, robust to other load on a
shared machine). ``cold`` is the first request after the server started (nothing
cached); ``warm`` are the repeats.

Usage: ``python benchmarks/ui_scale.py [--runs 10000] [--tasks 5000] [--repeat 5]
[--json PATH] [--keep DIR]``; ``--keep`` builds the datastore in DIR (or reuses the one
an earlier run left there). Needs ``metaflowlike[ui]`` in the running interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from metaflowlike.datastore.local_storage import LocalStorage
from metaflowlike.datastore.task_datastore import FlowDatastore

MANY = """
from metaflowlike import FlowSpec, Parameter, step

class ManyRuns(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.x = 1
        self.next(self.middle)

    @step
    def middle(self):
        self.y = self.x * self.alpha
        self.next(self.end)

    @step
    def end(self):
        print("y", self.y)

if __name__ == "__main__":
    ManyRuns()
"""

WIDE = """
from metaflowlike import FlowSpec, step

class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(20))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.out = {"item": self.input, "square": self.input ** 2}
        print("item", self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out["square"] for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    WideFlow()
"""


def run_flow(folder: Path, root: Path, name: str, source: str) -> str:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
    subprocess.run(
        [sys.executable, str(path), "--datastore-root", str(root), "run", "--max-workers", "2"],
        cwd=folder, env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    fds = FlowDatastore(LocalStorage(str(root)))
    return fds.list_runs(name)[0]


def clone_runs(fds: FlowDatastore, flow: str, run_id: str, count: int) -> list[str]:
    """``count - 1`` more runs of ``flow``: copies of the real run's records."""
    rec = fds.read_run(flow, run_id)
    end = fds.read_run_end(flow, run_id)
    ids = []
    base = int(run_id)
    for i in range(1, count):
        new_id = str(base - i * 1000)  # older than the real run: it stays the newest
        tags = list(rec.tags) + (["nightly"] if i % 7 == 0 else [])
        fds.write_run(replace(rec, run_id=new_id, created_at=rec.created_at - i * 60, tags=tags))
        status = "failed" if i % 10 == 0 else end.status
        fds.write_run_end(
            flow, new_id, replace(end, status=status, finished_at=end.finished_at - i * 60 + i % 13)
        )
        ids.append(new_id)
    return ids


def clone_tasks(fds: FlowDatastore, flow: str, run_id: str, step: str, total: int) -> str:
    """Grow ``step`` of the run to ``total`` tasks by copying its first task's records;
    returns the id of the last one."""
    existing = sorted(fds.list_tasks(flow, run_id, step), key=int)
    model = fds.read_task(f"{flow}/{run_id}/{step}/{existing[0]}")
    log = fds.read_log(model.pathspec, model.attempt, "stdout")
    spool = tempfile.mkdtemp()
    next_id = 100_000
    for i in range(len(existing), total):
        pathspec = f"{flow}/{run_id}/{step}/{next_id + i}"
        frame = model.info.foreach_stack[-1]
        fds.write_task(
            pathspec, 0, replace(model.info, foreach_stack=[dict(frame, index=i, num_splits=total)])
        )
        log_file = os.path.join(spool, "stdout")  # the local backend moves it into place
        with open(log_file, "wb") as f:
            f.write(log)
        fds.write_log(pathspec, 0, "stdout", log_file)
        fds.mark_done(pathspec, 0, replace(model.done, split_index=i))
    shutil.rmtree(spool, ignore_errors=True)
    return str(next_id + total - 1)


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class Server:
    def __init__(self, root: Path) -> None:
        exe = Path(sys.executable).with_name("metaflowlike")
        env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOWLIKE_")}
        self.proc = subprocess.Popen(
            [str(exe), "ui", "--datastore-root", str(root), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        self.url = re.search(r"at (http://\S+/) ", line).group(1)
        self.hz = os.sysconf("SC_CLK_TCK")

    def time(self, path: str) -> tuple[float, float, int]:
        """(wall ms, server CPU ms, response bytes) of one GET."""
        before = cpu_ticks(self.proc.pid)
        t0 = time.perf_counter()
        with urllib.request.urlopen(self.url + path, timeout=600) as r:
            body = r.read()
            assert r.status == 200, (path, r.status)
        wall = (time.perf_counter() - t0) * 1000
        cpu = (cpu_ticks(self.proc.pid) - before) * 1000 / self.hz
        return wall, cpu, len(body)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def measure(server: Server, label: str, path: str, repeat: int) -> dict:
    cold = server.time(path)
    warm = [server.time(path) for _ in range(repeat)]
    row = {
        "request": label,
        "path": path,
        "cold_ms": round(cold[0], 1),
        "cold_cpu_ms": round(cold[1], 1),
        "warm_ms": round(statistics.median(w[0] for w in warm), 1),
        "warm_cpu_ms": round(statistics.median(w[1] for w in warm), 1),
        "bytes": warm[-1][2],
    }
    print(
        f"{label:<44} cold {row['cold_ms']:>8.1f} ms (cpu {row['cold_cpu_ms']:>7.1f})"
        f"   warm {row['warm_ms']:>7.1f} ms (cpu {row['warm_cpu_ms']:>6.1f})"
        f"   {row['bytes']:>8} B",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path, help="build the datastore in this folder, or reuse it")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="mfl-ui-scale-") as tmp:
        folder = args.keep or Path(tmp)
        root = folder / "ds"
        fds = FlowDatastore(LocalStorage(str(root)))
        t0 = time.perf_counter()
        if args.keep and (root / "flows").exists():  # built by an earlier run: reuse it
            many_id = max(fds.list_runs("ManyRuns"), key=int)
            (wide_id,) = fds.list_runs("WideFlow")
            last = max(fds.list_tasks("WideFlow", wide_id, "body"), key=int)
            args.runs = len(fds.list_runs("ManyRuns"))
            args.tasks = len(fds.list_tasks("WideFlow", wide_id, "body"))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            many_id = run_flow(folder, root, "ManyRuns", MANY)
            wide_id = run_flow(folder, root, "WideFlow", WIDE)
            clone_runs(fds, "ManyRuns", many_id, args.runs)
            last = clone_tasks(fds, "WideFlow", wide_id, "body", args.tasks)
        built = time.perf_counter() - t0
        print(f"datastore ready in {built:.1f} s: {args.runs} runs, a {args.tasks}-task foreach")

        server = Server(root)
        rows = []
        try:
            plan = [
                ("flows", "api/flows"),
                ("10k runs: first page", "api/flows/ManyRuns/runs"),
                ("10k runs: page at offset 5000", "api/flows/ManyRuns/runs?offset=5000"),
                ("10k runs: filter status=failed", "api/flows/ManyRuns/runs?status=failed"),
                ("10k runs: filter tag=nightly", "api/flows/ManyRuns/runs?tag=nightly"),
                ("10k runs: sort by duration", "api/flows/ManyRuns/runs?sort=duration"),
                ("10k runs: open the newest run", f"api/runs/ManyRuns/{many_id}"),
                ("5k foreach: open the run", f"api/runs/WideFlow/{wide_id}"),
                ("5k foreach: timeline page 1", f"api/runs/WideFlow/{wide_id}/tasks"),
                (
                    "5k foreach: timeline, last page",
                    f"api/runs/WideFlow/{wide_id}/tasks?offset={args.tasks - 200}",
                ),
                ("5k foreach: a task", f"api/tasks/WideFlow/{wide_id}/body/{last}"),
                (
                    "5k foreach: a task's log",
                    f"api/tasks/WideFlow/{wide_id}/body/{last}/logs/stdout",
                ),
            ]
            for label, path in plan:
                rows.append(measure(server, label, path, args.repeat))
        finally:
            server.stop()
    result = {
        "runs": args.runs,
        "tasks": args.tasks,
        "build_seconds": round(built, 1),
        "cpus": os.cpu_count(),
        "requests": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
