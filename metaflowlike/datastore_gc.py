"""``metaflowlike gc``: drop old runs and the blobs nothing refers to any more, safely
while other runs are writing.

Blobs are shared by every run and written without any lock, and saving a value that
already exists writes nothing (it only checks that the blob is there). So a task that
is still running may rely on *any* blob, even one that no record mentions yet. The
protocol therefore never deletes a blob in one step:

1. **Choose runs.** Per flow, the ``--keep-last N`` newest runs are kept, and so is
   every run that may still be running (no end record and its runtime alive, or on
   another machine), every run folder without a run record yet, and the origin runs of
   running resumes (they clone from them). The other runs are dropped: their cache
   index entries first, then their run record (the run disappears from listings at
   once), then the rest of their folder.
2. **Mark.** Every key mentioned in a JSON record of a kept run (parameters, task
   manifests, foreach lists, checkpoints) or of the model registry is referenced.
3. **Set aside.** Each unreferenced blob is *moved* to a folder of its own (the
   datastore's layout says where: ``docs/datastore-layout.md``). From then
   on a writer that saves the same value no longer finds it and writes it again, and a
   reader that finds it missing moves it back (``ContentStore.restore_collected``).
4. **Wait, then purge.** The runs that may be running *after* the blobs were set aside
   are noted in a journal. Only once every one of them has ended
   (immediately, when none was running) are the records marked again, and a set-aside
   blob still unreferenced is deleted; one that became referenced is moved back. A later
   ``gc`` finishes what an earlier one had to leave waiting.

A run that started before step 3 and relied on a blob it found present has, by step 4,
either written the record that references it (so it is kept) or ended without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .datastore.layout import LAYOUT
from .datastore.task_datastore import FlowDatastore
from .exceptions import MetaflowlikeException
from .resume import run_state

KEY = re.compile(r"\A[0-9a-f]{64}\Z")


@dataclass
class Plan:
    """What a collection keeps and drops."""

    kept: dict[str, list[str]] = field(default_factory=dict)  # flow -> run ids
    dropped: dict[str, list[str]] = field(default_factory=dict)
    running: list[str] = field(default_factory=list)  # "flow/run" that may be running
    unreferenced: list[str] = field(default_factory=list)
    protected: set[tuple[str, str]] = field(default_factory=set)  # may be running
    kept_bytes: int | None = None  # with max_size: what the kept runs refer to
    blobs: int = 0
    freed_bytes: int | None = 0  # None: unknown (object stores report no size here)


def _walk(storage: Any, path: str) -> list[str]:
    """Every object under ``path`` (recursively), as full paths."""
    out: list[str] = []
    todo = [path]
    while todo:
        folder = todo.pop()
        for name, is_dir in storage.list_dir(folder):
            (todo if is_dir else out).append(f"{folder}/{name}")
    return out


def _keys_in(doc: Any, into: set[str]) -> None:
    if isinstance(doc, str):
        if KEY.match(doc):
            into.add(doc)
    elif isinstance(doc, dict):
        for value in doc.values():
            _keys_in(value, into)
    elif isinstance(doc, list):
        for value in doc:
            _keys_in(value, into)


def _sized_keys_in(doc: Any, into: dict[str, int]) -> None:
    """``[key, size, ...]`` entries (manifests, checkpoint files) anywhere in ``doc``."""
    if isinstance(doc, list):
        if len(doc) >= 2 and isinstance(doc[0], str) and KEY.match(doc[0]):
            if isinstance(doc[1], int):
                into[doc[0]] = doc[1]
                return
        for value in doc:
            _sized_keys_in(value, into)
    elif isinstance(doc, dict):
        for value in doc.values():
            _sized_keys_in(value, into)


def _record_keys(storage: Any, paths: list[str]) -> set[str]:
    """Every key named in the JSON records among ``paths`` (whatever the record: a
    manifest, parameters, a frozen foreach list, a checkpoint, a model version)."""
    keys: set[str] = set()
    for doc in _records(storage, paths):
        _keys_in(doc, keys)
    return keys


def _records(storage: Any, paths: list[str]) -> Iterator[Any]:
    """The parsed JSON records among ``paths`` (a damaged one refers to nothing)."""
    paths = [p for p in paths if LAYOUT.is_record(p)]
    for raw in storage.get_many(paths) if paths else []:
        try:
            yield json.loads(raw)
        except ValueError:
            continue


def _kept_keys(fds: FlowDatastore, runs: dict[str, list[str]]) -> set[str]:
    """Keys named by the model registry and by the records of ``runs`` (flow -> ids)."""
    paths = _walk(fds.storage, LAYOUT.models())
    for flow, run_ids in runs.items():
        for run_id in run_ids:
            paths += _walk(fds.storage, LAYOUT.run_dir(flow, run_id))
    return _record_keys(fds.storage, paths)


_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str, option: str) -> int:
    """``"20GB"``, ``"500 MB"``, ``"1.5g"``, ``"1000"`` -> bytes (powers of 1000)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", text, re.IGNORECASE)
    if m is None:
        raise MetaflowlikeException(
            f"{option} {text!r} is not a size: write a number of bytes with an optional "
            "unit, e.g. 500MB or 20GB."
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _size_text(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _by_age(runs: list[str]) -> list[str]:
    return sorted(runs, key=lambda r: (len(r), r), reverse=True)


class Collector:
    def __init__(self, fds: FlowDatastore, say: Callable[[str], None] = print) -> None:
        self.fds, self.storage, self.say = fds, fds.storage, say

    # --- 1. runs -----------------------------------------------------------------

    def _may_run(self, flow: str, run_id: str) -> bool:
        if self.fds.read_run(flow, run_id) is not None:
            return run_state(self.fds, flow, run_id) != "ended"
        # no run record (yet): being created, unless its claimant is gone
        claim = self.fds.read_claim(flow, run_id)
        if claim is None:
            return False  # nothing there any more
        if claim.get("host") != socket.gethostname():
            return True
        try:
            os.kill(int(claim.get("pid", 0)), 0)
        except (OSError, ValueError):
            return False
        return True

    def plan(self, keep_last: int | None, max_size: int | None = None) -> Plan:
        plan = Plan()
        for flow in self.fds.list_flows():
            runs = _by_age(self.fds.list_runs(flow))
            keep = set(runs if keep_last is None else runs[:keep_last])
            running = {r for r in runs if self._may_run(flow, r)}
            plan.running += [f"{flow}/{r}" for r in sorted(running)]
            todo = list(running)
            while todo:  # a running resume clones from its origin (and its origin's)
                record = self.fds.read_run(flow, todo.pop())
                origin = record.origin_run_id if record is not None else None
                if origin and origin not in keep | running and origin in runs:
                    running.add(origin)
                    todo.append(origin)
            keep |= running
            plan.kept[flow] = [r for r in runs if r in keep]
            plan.dropped[flow] = [r for r in runs if r not in keep]
            plan.protected |= {(flow, r) for r in running}
        if max_size is not None:
            self._fit(plan, max_size)
        return plan

    def _run_sizes(self, flow: str, run_id: str) -> dict[str, int]:
        """Key -> size of the artifacts and files a run's records name."""
        sizes: dict[str, int] = {}
        for doc in _records(self.storage, _walk(self.storage, LAYOUT.run_dir(flow, run_id))):
            _sized_keys_in(doc, sizes)
        return sizes

    def _fit(self, plan: Plan, max_size: int) -> None:
        """Drop the oldest kept runs (of any flow) until what the kept runs refer to fits
        in ``max_size`` bytes; runs that may be running always stay and count first."""
        kept = [(flow, r) for flow, runs in plan.kept.items() for r in runs]
        kept.sort(key=lambda fr: (fr in plan.protected, len(fr[1]), fr[1]), reverse=True)
        total: dict[str, int] = {}
        full = False  # once a run does not fit, every older one goes too
        for flow, run_id in kept:
            protected = (flow, run_id) in plan.protected
            sizes = {} if full and not protected else self._run_sizes(flow, run_id)
            grown = sum(n for k, n in sizes.items() if k not in total)
            full = full or (not protected and sum(total.values()) + grown > max_size)
            if full and not protected:
                plan.kept[flow].remove(run_id)
                plan.dropped[flow].append(run_id)
            else:
                total.update(sizes)
        plan.kept_bytes = sum(total.values())

    def drop_runs(self, plan: Plan) -> None:
        for flow, runs in plan.dropped.items():
            if not runs:
                continue
            gone = set(runs)
            for step in self.fds.list_cached_steps(flow):
                for key in self.fds.list_cache_entries(flow, step):
                    entry = self.fds.read_cache_entry(flow, step, key) or {}
                    if (
                        entry.get("task", "").split("/")[1:2]
                        and entry["task"].split("/")[1] in gone
                    ):
                        self.fds.delete_cache_entry(flow, step, key)
            for run_id in runs:
                run_dir = LAYOUT.run_dir(flow, run_id)
                self.storage.delete(LAYOUT.run_record(flow, run_id))  # invisible from now on
                for path in _walk(self.storage, run_dir):
                    self.storage.delete(path)
                local = self.storage.local_path(run_dir)
                if local:  # object stores have no folders; a local disk keeps empty ones
                    shutil.rmtree(local, ignore_errors=True)
            for run_id, ops in self.fds.tag_operations(flow).items():
                for path in ops if run_id in gone else []:
                    self.storage.delete(path)

    # --- 2. mark ---------------------------------------------------------------------

    def referenced(self) -> set[str]:
        """Keys named by the records of every run still in the store and the registry."""
        runs = {flow: self.fds.list_runs(flow) for flow in self.fds.list_flows()}
        return _kept_keys(self.fds, runs)

    def blobs(self) -> list[str]:
        keys = []
        for name, is_dir in self.storage.list_dir(LAYOUT.blob_folders()):
            folder = LAYOUT.blob_folder(name) if is_dir else None
            if folder is not None:  # not a folder of blobs set aside (damaged, collected)
                keys += [n for n, d in self.storage.list_dir(folder) if not d]
        return [k for k in keys if KEY.match(k)]

    def _size(self, path: str) -> int | None:
        local = self.storage.local_path(path)
        try:
            return os.path.getsize(local) if local else None
        except OSError:
            return 0

    # --- 3. set aside, 4. purge ------------------------------------------------------

    def set_aside(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.storage.move(LAYOUT.blob(key), LAYOUT.collected_blob(key))
            except FileNotFoundError:
                continue
        waiting = [
            f"{flow}/{run_id}"
            for flow in self.fds.list_flows()
            for run_id in self.fds.list_runs(flow)
            if self._may_run(flow, run_id)
        ]
        doc = {"at": time.time(), "waiting_for": waiting, "keys": keys}
        self.fds.write_json(LAYOUT.new_gc_journal(), doc)

    def purge(self) -> tuple[int, int, list[str]]:
        """Finish every journal whose runs have all ended: (deleted, moved back, runs
        still waited for)."""
        deleted = restored = 0
        still: set[str] = set()
        referenced: set[str] | None = None
        for name in sorted(LAYOUT.json_names(self.storage.list_dir(LAYOUT.gc_journals()))):
            path = LAYOUT.gc_journal(name)
            doc = json.loads(self.storage.get_bytes(path))
            pending = [r for r in doc.get("waiting_for", []) if self._may_run(*r.split("/", 1))]
            if pending:
                still.update(pending)
                continue
            if referenced is None:
                referenced = self.referenced()  # after the waited-for runs ended
            for key in doc.get("keys", []):
                if key in referenced:
                    restored += self.fds.cas.restore_collected(key)
                    continue
                try:
                    self.storage.delete(LAYOUT.collected_blob(key))
                    deleted += 1
                except FileNotFoundError:
                    pass
            self.storage.delete(path)
        return deleted, restored, sorted(still)


def collect(
    fds: FlowDatastore,
    keep_last: int | None,
    dry_run: bool,
    say: Callable[[str], None] = print,
    max_size: int | None = None,
) -> Plan:
    """Run the whole protocol (or, with ``dry_run``, only say what it would remove)."""
    gc = Collector(fds, say)
    plan = gc.plan(keep_last, max_size)
    dropped = sum(len(r) for r in plan.dropped.values())
    verb = "Would remove" if dry_run else "Removing"
    for flow, runs in plan.dropped.items():
        runs = plan.dropped[flow] = _by_age(runs)
        if runs:
            say(
                f"{verb} {len(runs)} run{'s' if len(runs) != 1 else ''} of {flow}: {', '.join(runs)}."
            )
    if plan.running:
        say(f"Kept because they may still be running: {', '.join(plan.running)}.")
    if plan.kept_bytes is not None:
        say(f"The kept runs refer to {_size_text(plan.kept_bytes)} of artifacts.")
    if dry_run:
        referenced = _kept_keys(fds, plan.kept)  # what the dropped runs alone referenced
    else:
        gc.drop_runs(plan)
        referenced = gc.referenced()
    plan.unreferenced = [k for k in gc.blobs() if k not in referenced]
    plan.blobs = len(plan.unreferenced)
    sizes = [gc._size(LAYOUT.blob(k)) for k in plan.unreferenced]
    plan.freed_bytes = None if None in sizes else sum(s or 0 for s in sizes)
    amount = "" if plan.freed_bytes is None else f" ({_size_text(plan.freed_bytes)})"
    if dry_run:
        say(
            f"Would remove {dropped} run(s) and {plan.blobs} unreferenced blob(s){amount}. "
            "Nothing was changed (--dry-run)."
        )
        return plan
    if plan.unreferenced:
        gc.set_aside(plan.unreferenced)
    deleted, restored, still = gc.purge()
    say(
        f"Removed {dropped} run(s) and {deleted} blob(s){amount}"
        + (f"; {restored} set-aside blob(s) were referenced again and kept" if restored else "")
        + "."
    )
    if still:
        say(
            f"Blobs set aside while {', '.join(still)} may be running are deleted by the "
            "next gc after those runs end (a reader that needs one moves it back)."
        )
    return plan
