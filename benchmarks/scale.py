"""metaflowlike at scale, against the machine's floor rather than against Metaflow.

Cases (``--cases``, all by default):

* ``width``: a trivial foreach (``flows/widejoin.py --touch one``) of 500, 2,000 and
  10,000 tasks with ``--max-workers 2``. For each: CPU (user+sys) per task of the whole
  process tree, split between the runtime and its tasks, minor page faults per task,
  the runtime's peak RSS, and how many read calls the join made to build ``inputs``
  (it touches one input, so that should not grow with the width). CPU per task is
  also given *marginal* (a 1-split run's cost subtracted), so that start-up does not
  flatter the small widths.
* ``floor``: the bare mechanism in the same session (once after each ``width`` run, so
  that each ratio compares runs made minutes apart at most on a machine whose load
  drifts, and once at the end): a parent that has imported what
  the runtime imports (metaflowlike, its runtime and CLI, the flow) forks, two at a time,
  children that each write one small JSON record atomically (temporary file, ``fsync``
  unless ``METAFLOWLIKE_FSYNC=0``, rename, ``fsync`` of the folder: what the local
  datastore promises) and exit, reading each child's pipe and waiting for it.
* ``bytes``: saving a 256 MiB float64 array through the content store against hashing
  and writing the same bytes directly with the same algorithm and calls (SHA-256 of
  4 MiB pieces on the same number of threads, then of the digests; one temporary file,
  ``fsync``, rename, ``fsync`` of the folder).
* ``client``: on the datastore of the widest ``width`` run: opening its ``body`` step
  (listing its tasks), reading one artifact from each of 1,000 tasks; then, in a
  datastore holding 10,000 runs of a small flow, listing them all, and answering
  ``latest_run`` and ``latest_successful_run``, with the number of files each read.

CPU times and page faults come from ``getrusage`` and are what to compare on a shared
machine; wall times are given for reference only.

    python benchmarks/scale.py                     # everything (15 to 30 min on 2 CPUs)
    python benchmarks/scale.py --sizes 200,1000 --cases width,floor
    python benchmarks/scale.py --json scale.json   # also keep the raw figures
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOWS = Path(__file__).resolve().parent / "flows"
WIDE = FLOWS / "widejoin.py"

#: runs a flow's CLI in this process and reports its own rusage and its children's
DRIVER = r"""
import atexit, json, os, resource, runpy, sys, time
me, out, t0 = os.getpid(), os.environ["SCALE_RESULT"], time.perf_counter()
def report():
    if os.getpid() != me:
        return
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as f:
        json.dump({"wall": time.perf_counter() - t0,
                   "runtime_cpu": s.ru_utime + s.ru_stime, "tasks_cpu": c.ru_utime + c.ru_stime,
                   "runtime_user": s.ru_utime, "runtime_sys": s.ru_stime,
                   "tasks_user": c.ru_utime, "tasks_sys": c.ru_stime,
                   "runtime_faults": s.ru_minflt, "tasks_faults": c.ru_minflt,
                   "runtime_rss_kib": s.ru_maxrss, "tasks_rss_kib": c.ru_maxrss}, f)
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

#: the bare mechanism: fork a warm parent, pipe, one small atomic record, exit, wait
FLOOR = r"""
import json, os, resource, runpy, sys, tempfile, time
import metaflowlike.cli, metaflowlike.runtime, metaflowlike.task  # what the runtime holds
runpy.run_path(sys.argv[1], run_name="bench_flow")
n, root, out = int(sys.argv[2]), sys.argv[3], sys.argv[4]
durable = os.environ.get("METAFLOWLIKE_FSYNC", "1").lower() not in ("0", "false", "no", "off")
spool = os.path.join(root, ".spool")
os.makedirs(spool)

def task(i):
    fd, tmp = tempfile.mkstemp(dir=spool)
    os.write(fd, json.dumps({"task": i, "status": "ok", "finished_at": time.time()}).encode())
    if durable:
        os.fsync(fd)
    os.close(fd)
    os.replace(tmp, os.path.join(root, f"{i}.json"))
    if durable:
        d = os.open(root, os.O_RDONLY)
        os.fsync(d)
        os.close(d)

def start(i):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        try:
            task(i)
        finally:
            os._exit(0)
    os.close(w)
    return pid, r

def finish(pid, r):
    while os.read(r, 65536):
        pass
    os.close(r)
    os.waitpid(pid, 0)

def usage():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime, s.ru_minflt, c.ru_minflt,
            time.perf_counter())

u0, pending = usage(), []
for i in range(n):
    if len(pending) == 2:
        finish(*pending.pop(0))
    pending.append(start(i))
for p in pending:
    finish(*p)
u1 = usage()
with open(out, "w") as f:
    json.dump({"n": n, "parent_cpu": u1[0] - u0[0], "children_cpu": u1[1] - u0[1],
               "parent_faults": u1[2] - u0[2], "children_faults": u1[3] - u0[3],
               "wall": u1[4] - u0[4], "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, f)
"""

BYTES = r"""
import hashlib, json, os, resource, shutil, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from metaflowlike.datastore import content_store
from metaflowlike.datastore.content_store import ContentStore
from metaflowlike.datastore.local_storage import LocalStorage
base, out, repeat, mib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def cpu():
    s = resource.getrusage(resource.RUSAGE_SELF)
    return s.ru_utime + s.ru_stime, time.perf_counter()

def ours(arr, root):
    ContentStore(LocalStorage(root)).save([("a", arr)])

def direct(arr, root):
    view = memoryview(arr).cast("B")
    step = content_store.PIECE_SIZE
    parts = [view[i:i + step] for i in range(0, view.nbytes, step)]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        digests = list(pool.map(lambda p: hashlib.sha256(p).digest(), parts))
    key = hashlib.sha256(b"".join(digests)).hexdigest()
    folder = os.path.join(root, "data", key[:2])
    spool = os.path.join(root, ".spool")
    os.makedirs(folder)
    os.makedirs(spool)
    fd, tmp = tempfile.mkstemp(dir=spool)
    with os.fdopen(fd, "wb") as f:
        f.write(view)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, key))
    d = os.open(folder, os.O_RDONLY)
    os.fsync(d)
    os.close(d)

results = {"ours": [], "direct": []}
for rep in range(repeat):
    arr = np.random.default_rng(rep).random(mib * (1 << 20) // 8)
    for name in (("ours", "direct") if rep % 2 == 0 else ("direct", "ours")):
        root = tempfile.mkdtemp(dir=base)
        c0, w0 = cpu()
        (ours if name == "ours" else direct)(arr, root)
        c1, w1 = cpu()
        results[name].append({"cpu": c1 - c0, "wall": w1 - w0})
        shutil.rmtree(root)
with open(out, "w") as f:
    json.dump(results, f)
"""

CLIENT = r"""
import json, os, sys, time
from metaflowlike import Flow, Run, namespace
from metaflowlike.client.settings import _store
namespace(None)
out, run_id, n_read = sys.argv[1], sys.argv[2], int(sys.argv[3])
storage = _store().fds.storage
reads = {"n": 0}
for name in ("get_bytes", "list_dir", "get_file"):
    real = getattr(storage, name)
    def counted(*a, _real=real, **k):
        reads["n"] += 1
        return _real(*a, **k)
    setattr(storage, name, counted)

def measure(fn):
    reads["n"] = 0
    t0 = time.perf_counter()
    value = fn()
    return value, {"wall": time.perf_counter() - t0, "reads": reads["n"]}

res = {}
tasks, res["open_step"] = measure(lambda: list(Run(f"WideJoinFlow/{run_id}")["body"]))
res["open_step"]["tasks"] = len(tasks)
values, res["read_artifacts"] = measure(lambda: [t.data.sq for t in tasks[:n_read]])
res["read_artifacts"]["tasks"] = len(values)
with open(out, "w") as f:
    json.dump(res, f)
"""

RUNS = r"""
import json, os, sys, time
from metaflowlike import Flow, namespace
from metaflowlike.client.settings import _store
namespace(None)
out, flow = sys.argv[1], sys.argv[2]
storage = _store().fds.storage
reads = {"n": 0}
for name in ("get_bytes", "list_dir", "get_file"):
    real = getattr(storage, name)
    def counted(*a, _real=real, **k):
        reads["n"] += 1
        return _real(*a, **k)
    setattr(storage, name, counted)
res = {}
for what, fn in (
    ("latest_run", lambda: Flow(flow).latest_run.id),
    ("latest_successful_run", lambda: Flow(flow).latest_successful_run.id),
    ("list_runs", lambda: len(list(Flow(flow).runs()))),
):
    _store().records.clear()  # each question from a cold client
    reads["n"] = 0
    t0 = time.perf_counter()
    value = fn()
    res[what] = {"wall": time.perf_counter() - t0, "reads": reads["n"], "value": value}
with open(out, "w") as f:
    json.dump(res, f)
"""


def run_json(python: str, code: str, args: list[str], env: dict[str, str], cwd: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        env = dict(env, SCALE_RESULT=out)
        argv = [python, "-c", code, *args]
        subprocess.run(argv, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)
    finally:
        os.unlink(out)


def base_env(root: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFLOW")}
    env.pop("PYTHONPATH", None)
    if "METAFLOWLIKE_FSYNC" in os.environ:
        env["METAFLOWLIKE_FSYNC"] = os.environ["METAFLOWLIKE_FSYNC"]
    env.update(METAFLOWLIKE_DATASTORE_ROOT=root, USERNAME="bench", USER="bench")
    return env


def width_run(python: str, scratch: str, n: int, keep: bool = False) -> dict:
    root = os.path.join(scratch, f"width-{n}")
    env = base_env(root)
    env["BENCH_JOIN_IO"] = os.path.join(scratch, f"join-{n}.json")
    args = [str(WIDE), "--quiet", "run", "--n", str(n), "--touch", "one"]
    args += ["--max-workers", "2", "--max-num-splits", str(max(n, 100))]
    res = run_json(python, DRIVER, args, env, scratch)
    with open(env["BENCH_JOIN_IO"]) as f:
        join = json.load(f)
    res["tasks"] = n + 3
    res["join_reads"] = join["before"]["syscr"]
    res["join_bytes"] = join["before"]["rchar"]
    runs = os.listdir(os.path.join(root, "flows", "WideJoinFlow"))
    res["run_id"] = next(r for r in runs if not r.startswith("."))
    res["root"] = root
    if not keep:
        shutil.rmtree(root)
    return res


def per_task(res: dict, base: dict | None) -> dict:
    cpu = res["runtime_cpu"] + res["tasks_cpu"]
    out = {
        "cpu_ms": 1e3 * cpu / res["tasks"],
        "runtime_ms": 1e3 * res["runtime_cpu"] / res["tasks"],
        "tasks_ms": 1e3 * res["tasks_cpu"] / res["tasks"],
        "faults": (res["runtime_faults"] + res["tasks_faults"]) / res["tasks"],
        "runtime_faults": res["runtime_faults"] / res["tasks"],
        "task_faults": res["tasks_faults"] / res["tasks"],
    }
    if base is not None:
        extra = res["tasks"] - base["tasks"]
        base_cpu = base["runtime_cpu"] + base["tasks_cpu"]
        out["marginal_ms"] = 1e3 * (cpu - base_cpu) / extra
    return out


def floor_run(python: str, scratch: str, n: int) -> dict:
    """The bare mechanism (``FLOOR``) for ``n`` children; ``ms`` and ``faults`` per child."""
    root = tempfile.mkdtemp(dir=scratch)
    out = os.path.join(root, "floor.json")
    subprocess.run(
        [python, "-c", FLOOR, str(WIDE), str(n), os.path.join(root, "records"), out],
        check=True,
        env=base_env(os.path.join(scratch, "unused")),
        cwd=scratch,
    )
    with open(out) as f:
        floor = json.load(f)
    shutil.rmtree(root)
    floor["ms"] = 1e3 * (floor["parent_cpu"] + floor["children_cpu"]) / floor["n"]
    floor["faults"] = (floor["parent_faults"] + floor["children_faults"]) / floor["n"]
    return floor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="500,2000,10000")
    p.add_argument("--cases", default="width,floor,bytes,client")
    p.add_argument("--floor-n", type=int, default=1000)
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3, help="repetitions of the bytes case")
    p.add_argument("--runs", type=int, default=10000, help="runs listed by the client case")
    p.add_argument("--python", default=sys.executable, help="interpreter with metaflowlike")
    p.add_argument("--json", help="also write the raw figures here")
    args = p.parse_args(argv)
    cases = set(args.cases.split(","))
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.python}")
    raw: dict = {}
    scratch = tempfile.mkdtemp(prefix="mfl-scale-")
    try:
        if "width" in cases or "client" in cases:
            base = width_run(args.python, scratch, 1)
            raw["width"] = {"1": base}
            print(
                f"\n{'tasks':>7} {'CPU/task':>9} {'marginal':>9} {'runtime':>8} {'tasks':>7} "
                f"{'faults/task':>12} {'runtime RSS':>12} {'join reads':>11} {'wall':>8}"
            )
            for n in sizes:
                res = width_run(args.python, scratch, n, keep=n == max(sizes))
                res["per_task"] = per_task(res, base)
                if "floor" in cases:  # the load of a shared machine drifts: measure
                    res["floor"] = floor_run(args.python, scratch, args.floor_n)  # it near
                raw["width"][str(n)] = res
                t = res["per_task"]
                print(
                    f"{res['tasks']:>7} {t['cpu_ms']:>7.2f}ms {t['marginal_ms']:>7.2f}ms "
                    f"{t['runtime_ms']:>6.2f}ms {t['tasks_ms']:>5.2f}ms "
                    f"{t['runtime_faults']:>5.0f}+{t['task_faults']:<6.0f} "
                    f"{res['runtime_rss_kib'] / 1024:>8.1f} MiB {res['join_reads']:>11} "
                    f"{res['wall']:>7.1f}s"
                )
            lo, hi = raw["width"][str(sizes[0])], raw["width"][str(sizes[-1])]
            ratio = hi["per_task"]["marginal_ms"] / lo["per_task"]["marginal_ms"]
            print(
                f"width: marginal CPU per task at {sizes[-1]} / at {sizes[0]}: x{ratio:.2f} "
                f"(target <= 1.10)"
            )
        if "floor" in cases:
            floor = floor_run(args.python, scratch, args.floor_n)
            raw["floor"] = floor
            ms = floor["ms"]
            print(
                f"\nfloor: {ms:.2f} ms CPU and {floor['faults']:.0f} page faults per child "
                f"({floor['n']} children, parent RSS {floor['rss_kib'] / 1024:.1f} MiB)"
            )
            if "width" in raw:
                for n in sizes:
                    t = raw["width"][str(n)]["per_task"]
                    near = raw["width"][str(n)]["floor"]["ms"]
                    print(
                        f"  {n:>6} tasks: marginal {t['marginal_ms']:.2f} ms = "
                        f"x{t['marginal_ms'] / ms:.2f} the floor, all-in {t['cpu_ms']:.2f} ms "
                        f"= x{t['cpu_ms'] / ms:.2f}; against the floor measured right after "
                        f"it ({near:.2f} ms): marginal x{t['marginal_ms'] / near:.2f} "
                        f"(target <= 2)"
                    )
        if "bytes" in cases:
            out = os.path.join(scratch, "bytes.json")
            subprocess.run(
                [args.python, "-c", BYTES, scratch, out, str(args.repeat), str(args.mib)],
                check=True,
                env=base_env(scratch),
                cwd=scratch,
            )
            with open(out) as f:
                b = json.load(f)
            raw["bytes"] = b
            med = {k: sorted(v, key=lambda r: r["wall"])[len(v) // 2] for k, v in b.items()}
            print(
                f"\nbytes ({args.mib} MiB, median of {args.repeat}): content store "
                f"{med['ours']['wall']:.3f} s wall / {med['ours']['cpu']:.3f} s CPU, direct "
                f"{med['direct']['wall']:.3f} s / {med['direct']['cpu']:.3f} s: "
                f"x{med['ours']['wall'] / med['direct']['wall']:.2f} wall, "
                f"x{med['ours']['cpu'] / med['direct']['cpu']:.2f} CPU (target <= 1.5)"
            )
        if "client" in cases:
            widest = raw["width"][str(max(sizes))]
            out = os.path.join(scratch, "client.json")
            subprocess.run(
                [args.python, "-c", CLIENT, out, widest["run_id"], "1000"],
                check=True,
                env=base_env(widest["root"]),
                cwd=scratch,
            )
            with open(out) as f:
                c = json.load(f)
            raw["client"] = c
            print(
                f"\nclient: open a step of {c['open_step']['tasks']} tasks "
                f"{c['open_step']['wall']:.3f} s ({c['open_step']['reads']} reads); one "
                f"artifact from each of {c['read_artifacts']['tasks']} tasks "
                f"{c['read_artifacts']['wall']:.3f} s ({c['read_artifacts']['reads']} reads)"
            )
            shutil.rmtree(widest["root"])
            runs_root = os.path.join(scratch, "runs")
            many_runs(args.python, scratch, runs_root, args.runs)
            out = os.path.join(scratch, "runs.json")
            subprocess.run(
                [args.python, "-c", RUNS, out, "TwoStepFlow"],
                check=True,
                env=base_env(runs_root),
                cwd=scratch,
            )
            with open(out) as f:
                r = json.load(f)
            raw["runs"] = r
            for what, v in r.items():
                print(f"  {what:<22} over {args.runs} runs: {v['wall']:.3f} s, {v['reads']} reads")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    return 0


def many_runs(python: str, scratch: str, root: str, count: int) -> None:
    """A datastore with ``count`` runs of ``twostep.py``: one real run, its run folder
    then hard-linked under ``count - 1`` newer run ids (the client reads them as runs)."""
    subprocess.run(
        [python, str(FLOWS / "twostep.py"), "--quiet", "run"],
        check=True,
        env=base_env(root),
        cwd=scratch,
        stdout=subprocess.DEVNULL,
    )
    flow_dir = os.path.join(root, "flows", "TwoStepFlow")
    (first,) = [r for r in os.listdir(flow_dir) if not r.startswith(".")]
    for i in range(1, count):
        shutil.copytree(
            os.path.join(flow_dir, first),
            os.path.join(flow_dir, str(int(first) + i)),
            copy_function=os.link,
        )


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"\n(whole benchmark: {time.perf_counter() - t0:.0f} s)")
    sys.exit(code)
