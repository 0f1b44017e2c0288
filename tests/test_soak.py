"""Soak: kill runtimes and tasks at random instants, N times, and check every promise.

Each round starts a run, waits a random time, then kills the runtime (SIGKILL or
SIGTERM) or one of its running tasks (SIGKILL), and checks: no partial artifact is
visible, no process of the run survives, what the kill left in temporary space is
swept by the next run, and ``resume`` produces exactly the bytes an uninterrupted run
produces. ``METAFLOWLIKE_SOAK_KILLS`` sets N (small here; ``nox -s soak`` runs a large
N), ``METAFLOWLIKE_SOAK_SEED`` the random seed, and ``METAFLOWLIKE_SOAK_REPORT`` a file
that receives the figures as JSON.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from metaflowlike import Flow
from metaflowlike.datastore import scratch

from .test_faults import Running, verify_blobs, wait_gone

KILLS = int(os.environ.get("METAFLOWLIKE_SOAK_KILLS", "3"))
SEED = int(os.environ.get("METAFLOWLIKE_SOAK_SEED", "20261202"))

pytestmark = pytest.mark.timeout(120 + 90 * KILLS)

SOAK_FLOW = """
import hashlib, os, random
from metaflowlike import FlowSpec, step

SIZE = 20 * 1024 * 1024  # spooled before its rename, hashed on a thread pool

class SoakFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        print("PID", os.getpid(), flush=True)
        self.blob = random.Random(self.input).randbytes(SIZE)  # the same in every run
        self.next(self.join)

    @step
    def join(self, inputs):
        self.digests = [hashlib.sha256(i.blob).hexdigest() for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("PID", os.getpid(), flush=True)
        self.final = hashlib.sha256("".join(self.digests).encode()).hexdigest()

if __name__ == "__main__":
    SoakFlow()
"""


def _ours(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return [p for p in folder.iterdir() if p.name.startswith(scratch.PREFIXES)]


def _size(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        total += sum(f.stat().st_size for f in files)
    return total


def test_random_kills_never_lose_or_leak_anything(make_flow, tmp_path):
    rng = random.Random(SEED)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir)}
    flow = make_flow(SOAK_FLOW)
    spool = flow.root / ".spool"

    started = time.monotonic()
    flow.run("run", env=env)
    duration = time.monotonic() - started
    expected = Flow("SoakFlow").latest_run.data.final

    figures: Counter = Counter()
    leftover_bytes = 0
    for n in range(KILLS):
        id_file = tmp_path / f"run-{n}"
        run = Running(flow, "run", "--run-id-file", str(id_file), env=env)
        time.sleep(rng.uniform(0, duration))
        pids = [int(p) for p in re.findall(r"PID (\d+)", "".join(run.out))]
        target = rng.choice(["runtime-SIGKILL", "runtime-SIGTERM", "task-SIGKILL"])
        if target == "task-SIGKILL" and not pids:
            target = "runtime-SIGKILL"
        pid = rng.choice(pids) if target.startswith("task") else run.pid
        try:
            os.kill(pid, signal.SIGTERM if target.endswith("SIGTERM") else signal.SIGKILL)
        except ProcessLookupError:
            pass
        rc = run.wait()
        figures["kills"] += 1
        figures[f"kills {target}"] += 1
        pids = [int(p) for p in re.findall(r"PID (\d+)", "".join(run.out))]
        assert wait_gone(pids, timeout=60) == [], f"orphan task after {target}"
        verify_blobs(flow.root)  # nothing partial is visible

        left = _ours(spool) + _ours(tmpdir)
        figures["leftover entries"] += len(left)
        leftover_bytes += _size(left)
        if not id_file.exists():  # killed before the run existed: nothing to resume
            assert rc != 0
            figures["killed before the run existed"] += 1
            flow.run("run", env=env)  # the next run still sweeps what was left
            assert _ours(spool) == [] and _ours(tmpdir) == []
            continue
        killed_run = Flow("SoakFlow")[id_file.read_text()]
        if rc == 0 or killed_run.successful:
            # the kill came after the run had finished its work (with a successful run
            # already recorded, a kill while it prints its summary only changes the exit
            # status): there is nothing to resume
            figures["runs finished anyway"] += 1
            assert killed_run.successful and killed_run.data.final == expected
            continue
        proc = flow.run("resume", env=env)
        assert f"Resuming run SoakFlow/{id_file.read_text()}," in proc.stdout
        figures["resumes"] += 1
        resumed = Flow("SoakFlow").latest_run
        assert resumed.successful and resumed.data.final == expected  # byte-exact
        assert _ours(spool) == [] and _ours(tmpdir) == [], "temporary space not reclaimed"
    figures["leftover bytes"] = leftover_bytes
    verify_blobs(flow.root)
    report = dict(sorted(figures.items()), seed=SEED, orphans=0, partial_artifacts=0)
    print("soak:", json.dumps(report))
    if os.environ.get("METAFLOWLIKE_SOAK_REPORT"):
        Path(os.environ["METAFLOWLIKE_SOAK_REPORT"]).write_text(json.dumps(report, indent=2))
