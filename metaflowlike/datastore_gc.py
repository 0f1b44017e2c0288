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
3. **Set aside.** Each unreferenced blob is *moved* to ``data/_gc/<key>``. From then
   on a writer that saves the same value no longer finds it and writes it again, and a
   reader that finds it missing moves it back (``ContentStore.restore_collected``).
4. **Wait, then purge.** The runs that may be running *after* the blobs were set aside
   are noted in a journal (``gc/<stamp>.json``). Only once every one of them has ended
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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .datastore.content_store import DATA_PREFIX, blob_path, collected_path
from .datastore.task_datastore import FLOWS, GC_JOURNALS, FlowDatastore
from .exceptions import MetaflowlikeException
from .resume import run_state
from .tracking.registry import MODELS

KEY = re.compile(r"\A[0-9a-f]{64}\Z")
PREFIX = re.compile(r"\A[0-9a-f]{2}\Z")


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
    keys: set[str] = set()
    paths = [p for p in paths if p.endswith(".json") or p.endswith(".done")]
    for raw in storage.get_many(paths) if paths else []:
        try:
            _keys_in(json.loads(raw), keys)
        except ValueError:
            continue  # a damaged record refers to nothing readable
    return keys


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
        claim = self.fds.read_json(f"{self.fds.run_dir(flow, run_id)}/_claim.json")
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
                record = self.fds.read_run(flow, todo.pop()) or {}
                origin = record.get("origin_run_id")
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
        paths = _walk(self.storage, self.fds.run_dir(flow, run_id))
        paths = [p for p in paths if p.endswith(".json")]
        for raw in self.storage.get_many(paths) if paths else []:
            try:
                _sized_keys_in(json.loads(raw), sizes)
            except ValueError:
                continue
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
                run_dir = self.fds.run_dir(flow, run_id)
                self.storage.delete(f"{run_dir}/_run.json")  # invisible from now on
                for path in _walk(self.storage, run_dir):
                    self.storage.delete(path)
                local = self.storage.local_path(run_dir)
                if local:  # object stores have no folders; a local disk keeps empty ones
                    shutil.rmtree(local, ignore_errors=True)
            for name, is_dir in self.storage.list_dir(f"{FLOWS}/{flow}"):
                if not is_dir and name.startswith("_tags.") and name.split(".")[1] in gone:
                    self.storage.delete(f"{FLOWS}/{flow}/{name}")

    # --- 2. mark ---------------------------------------------------------------------

    def referenced(self) -> set[str]:
        """Keys named by the records of every run still in the store and the registry."""
        paths = _walk(self.storage, MODELS)
        for flow in self.fds.list_flows():
            for run_id in self.fds.list_runs(flow):
                paths += _walk(self.storage, self.fds.run_dir(flow, run_id))
        return _record_keys(self.storage, paths)

    def blobs(self) -> list[str]:
        prefixes = [n for n, is_dir in self.storage.list_dir(DATA_PREFIX) if is_dir]
        keys = []
        for prefix in prefixes:
            if not PREFIX.match(prefix):
                continue  # set aside (damaged, collected) or not a blob folder (S3 tool files)
            keys += [
                n for n, is_dir in self.storage.list_dir(f"{DATA_PREFIX}/{prefix}") if not is_dir
            ]
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
                self.storage.move(blob_path(key), collected_path(key))
            except FileNotFoundError:
                continue
        waiting = [
            f"{flow}/{run_id}"
            for flow in self.fds.list_flows()
            for run_id in self.fds.list_runs(flow)
            if self._may_run(flow, run_id)
        ]
        name = f"{GC_JOURNALS}/{int(time.time() * 1e6)}-{uuid.uuid4().hex[:8]}.json"
        doc = {"at": time.time(), "waiting_for": waiting, "keys": keys}
        self.storage.put_bytes(name, json.dumps(doc).encode())

    def purge(self) -> tuple[int, int, list[str]]:
        """Finish every journal whose runs have all ended: (deleted, moved back, runs
        still waited for)."""
        deleted = restored = 0
        still: set[str] = set()
        referenced: set[str] | None = None
        for name, is_dir in sorted(self.storage.list_dir(GC_JOURNALS)):
            if is_dir or not name.endswith(".json"):
                continue
            path = f"{GC_JOURNALS}/{name}"
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
                    self.storage.delete(collected_path(key))
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
        # what the dropped runs alone referenced
        kept_paths = _walk(fds.storage, MODELS)
        for flow, runs in plan.kept.items():
            for run_id in runs:
                kept_paths += _walk(fds.storage, fds.run_dir(flow, run_id))
        referenced = _record_keys(fds.storage, kept_paths)
    else:
        gc.drop_runs(plan)
        referenced = gc.referenced()
    plan.unreferenced = [k for k in gc.blobs() if k not in referenced]
    plan.blobs = len(plan.unreferenced)
    sizes = [gc._size(blob_path(k)) for k in plan.unreferenced]
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
