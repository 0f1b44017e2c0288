"""What ``current.track`` costs per call, against the loop body it sits in.

A training loop calls ``track`` every iteration, so the call must be cheap next to the
cheapest real work. This times, in one process and without I/O (points are buffered;
the single write at the end of a task is one small file, measured separately here):

* ``baseline``: an empty loop that computes a float (the floor of any loop body);
* ``track``: the same loop calling ``current.track("loss", x, step=i)``;
* ``track_dict``: the same loop calling ``current.track({"loss": x, "acc": x}, step=i)``;
* ``save``: writing the buffer of N points to a local datastore once.

It prints nanoseconds per call and the ratio of each to the baseline loop iteration.

    python benchmarks/tracking_overhead.py            # 200 000 calls, median of 5
    python benchmarks/tracking_overhead.py --calls 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def _loop(n: int, body) -> float:
    start = time.perf_counter()
    for i in range(n):
        body(i)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from metaflowlike.config import open_datastore
    from metaflowlike.current import current
    from metaflowlike.tracking import metrics

    def baseline(i: int) -> None:
        float(i) * 0.5

    def track(i: int) -> None:
        current.track("loss", float(i) * 0.5, step=i)

    def track_dict(i: int) -> None:
        x = float(i) * 0.5
        current.track({"loss": x, "acc": x}, step=i)

    results: dict[str, list[float]] = {"baseline": [], "track": [], "track_dict": [], "save": []}
    for _ in range(args.repeat):
        for name, body in (("baseline", baseline), ("track", track), ("track_dict", track_dict)):
            metrics._buffer.clear()
            results[name].append(_loop(args.calls, body) / args.calls)
        with tempfile.TemporaryDirectory(prefix="mfl-track-") as tmp:
            fds = open_datastore("local", tmp)
            start = time.perf_counter()
            metrics.save(fds, "Bench/1/start/1", 0)
            results["save"].append(time.perf_counter() - start)
    base = statistics.median(results["baseline"])
    print(f"{'case':<12}{'per call':>14}{'x baseline':>12}")
    for name in ("baseline", "track", "track_dict"):
        per = statistics.median(results[name])
        print(f"{name:<12}{per * 1e9:>11.0f} ns{per / base:>12.1f}")
    save = statistics.median(results["save"])
    print(f"{'save':<12}{save * 1e3:>11.1f} ms  (once per task, {args.calls * 2} points)")


if __name__ == "__main__":
    main()
