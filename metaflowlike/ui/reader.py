"""What the run browser shows, as plain JSON-ready data, read through the datastore.

Every read goes through ``FlowDatastore`` (and the card, tag and checkpoint stores),
never through paths of our own. Reads are shaped for scale:

* listing the runs of a flow is one folder listing; the records of a page of runs are
  read only for that page, unless a filter or a sort needs every run;
* records that never change once written are cached for the life of the server: run
  records, run end records, completion markers and the records of finished attempts,
  and the state of a task whose latest attempt succeeded;
* artifact bytes are never read to list artifacts: sizes, types and previews come from
  the manifest. Unpickling a value happens only in :meth:`RunBrowser.artifact_value`,
  which the server calls only when started with ``--allow-unpickle``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..datastore.records import DoneMarker, RunEnd, RunRecord, TaskInfo
from ..datastore.task_datastore import FlowDatastore, TaskRecord
from ..exceptions import MetaflowlikeException, NotFound
from ..ids import check_flow_name, check_pathspec_parts, shown
from ..owners import Owner
from ..tagging import TagStore

#: the statuses a run or a task can have in the browser
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
SORTS = ("created", "duration", "status", "user")
MAX_LIMIT = 500
#: a log read returns at most this many bytes; older ones are left out (``skipped``)
LOG_CHUNK = 1 << 20
_CACHE_MAX = 500_000


class BadRequest(MetaflowlikeException):
    headline = "Bad request"


class _Cache(dict):
    """Records that never change once they exist, by key. It forgets everything when it
    grows too big: every record can be read again."""

    def put(self, key: Any, value: Any) -> Any:
        if len(self) >= _CACHE_MAX:
            self.clear()
        self[key] = value
        return value

    def read(self, key: Any, read: Callable[[], Any]) -> Any:
        """The cached value, else ``read()``, kept unless it is missing (None or empty):
        a record that does not exist yet may be written later."""
        value = self.get(key)
        if value is None:
            value = read()
            if value:
                self.put(key, value)
        return value


def _int_arg(value: Any, name: str, default: int, lo: int, hi: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a whole number, got {shown(value)}.") from None
    return max(lo, min(hi, number))


def _id_key(run_id: str) -> tuple:
    return (1, int(run_id), "") if run_id.isdigit() else (0, 0, run_id)


class RunBrowser:
    """Read-only views of one datastore, with caches of what cannot change."""

    def __init__(self, fds: FlowDatastore, allow_unpickle: bool = False) -> None:
        self.fds = fds
        self.allow_unpickle = allow_unpickle
        self._runs = _Cache()  # (flow, run) -> run record
        self._ends = _Cache()  # (flow, run) -> end record
        self._markers = _Cache()  # (pathspec, attempt) -> completion marker
        self._records = _Cache()  # (pathspec, attempt) -> TaskRecord of a finished attempt
        self._final = _Cache()  # pathspec -> task state that cannot change any more
        self._summaries = _Cache()  # (flow, run, tag operations) -> row of an ended run

    # --- flows and runs --------------------------------------------------------------

    def flows(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "runs": len(self.fds.list_runs(name))} for name in self.fds.list_flows()
        ]

    def _run_record(self, flow: str, run_id: str) -> RunRecord | None:
        return self._runs.read((flow, run_id), lambda: self.fds.read_run(flow, run_id))

    def _run_end(self, flow: str, run_id: str) -> RunEnd | None:
        return self._ends.read((flow, run_id), lambda: self.fds.read_run_end(flow, run_id))

    def _run_status(self, rec: RunRecord, end: RunEnd | None) -> str:
        """Ended runs say how; a run without an end record is running while its runtime
        lives (or cannot be checked from here), and failed if its runtime died."""
        if end is not None:
            return SUCCEEDED if end.status == "ok" else FAILED
        owner = Owner.from_record(rec.runtime)
        alive = owner.alive() if owner is not None else False
        return FAILED if alive is False else RUNNING

    def _summary(self, flow: str, run_id: str, tag_ops: dict | None = None) -> dict | None:
        """A run's row in a listing (shared: callers copy it before changing it). The
        row of an ended run is kept, keyed by the names of its tag operations, which
        are new files whenever its tags change."""
        # the flow's operations were listed once for the whole request: a run without
        # any has none (None would list them again, once per run)
        ops = tag_ops.get(run_id, []) if tag_ops is not None else None
        key = (flow, run_id, tuple(ops)) if ops is not None else None
        if key is not None and key in self._summaries:
            return self._summaries[key]
        rec = self._run_record(flow, run_id)
        if rec is None:
            return None  # a run that is only starting has no record yet
        end = self._run_end(flow, run_id)
        status = self._run_status(rec, end)
        created = rec.created_at
        finished = end.finished_at if end is not None else None  # None if its runtime died
        duration = None
        if created is not None:
            if finished is not None:
                duration = finished - created
            elif status == RUNNING:
                duration = time.time() - created
        system = rec.system_tags
        user_tags = TagStore(self.fds).user_tags(flow, run_id, rec, ops)
        row = {
            "flow": flow,
            "id": run_id,
            "pathspec": f"{flow}/{run_id}",
            "status": status,
            "created_at": created,
            "finished_at": finished,
            "duration": duration,
            "user": rec.user,
            "tags": sorted(set(system) | set(user_tags)),
            "user_tags": sorted(user_tags),
            "origin_run_id": rec.origin_run_id,
        }
        if key is not None and status != RUNNING:
            self._summaries.put(key, row)
        return row

    def runs(
        self,
        flow: str,
        *,
        status: str | None = None,
        tag: str | None = None,
        user: str | None = None,
        sort: str = "created",
        order: str = "desc",
        offset: Any = 0,
        limit: Any = 50,
    ) -> dict[str, Any]:
        """One page of the runs of ``flow``. Without a filter and sorted by start time
        (run ids grow with time), only the page's records are read."""
        check_flow_name(flow, "the flow in the URL")
        if flow not in self.fds.list_flows():
            raise NotFound(f"There is no flow {flow} in {self.fds.storage.url()}.")
        if sort not in SORTS:
            raise BadRequest(f"sort must be one of {', '.join(SORTS)}, got {shown(sort)}.")
        if order not in ("asc", "desc"):
            raise BadRequest(f"order must be asc or desc, got {shown(order)}.")
        if status not in (None, "", RUNNING, SUCCEEDED, FAILED):
            raise BadRequest(f"status must be running, succeeded or failed, got {shown(status)}.")
        start = _int_arg(offset, "offset", 0, 0, 1 << 40)
        count = _int_arg(limit, "limit", 50, 1, MAX_LIMIT)
        ids = sorted(self.fds.list_runs(flow), key=_id_key, reverse=order == "desc")
        ops = TagStore(self.fds).operations(flow)
        if not (status or tag or user) and sort == "created":
            page = [s for r in ids[start : start + count] if (s := self._summary(flow, r, ops))]
            return {"flow": flow, "total": len(ids), "offset": start, "limit": count, "runs": page}
        rows = [s for r in ids if (s := self._summary(flow, r, ops)) is not None]
        rows = [
            s
            for s in rows
            if (not status or s["status"] == status)
            and (not tag or tag in s["tags"])
            and (not user or s["user"] == user)
        ]
        if sort != "created":
            rows.sort(key=lambda s: (s[sort] is None, s[sort] or 0), reverse=order == "desc")
        page = rows[start : start + count]
        return {"flow": flow, "total": len(rows), "offset": start, "limit": count, "runs": page}

    def run(self, flow: str, run_id: str) -> dict[str, Any]:
        """A run: its facts, parameters, graph, and each step's state."""
        check_pathspec_parts([flow, run_id], "the run in the URL")
        ops = TagStore(self.fds).operations(flow)
        row = self._summary(flow, run_id, ops)
        if row is None:
            raise NotFound(f"Run {flow}/{run_id} does not exist in {self.fds.storage.url()}.")
        summary = dict(row)
        rec = self._run_record(flow, run_id) or RunRecord()
        steps = []
        for name in self._step_names(flow, run_id, rec):
            tasks = [
                self._task_state(flow, run_id, name, t, summary["status"])
                for t in self._task_ids(flow, run_id, name)
            ]
            steps.append(_step_summary(name, rec, tasks))
        summary.update(
            parameters=rec.param_values,
            graph=rec.graph or {},
            steps=steps,
            resume=self._resume_hint(flow, run_id, summary["status"], steps),
        )
        return summary

    def _step_names(self, flow: str, run_id: str, rec: RunRecord) -> list[str]:
        present = set(self.fds.list_steps(flow, run_id))
        order = [s for s in rec.steps if s in present]
        return order + sorted(present.difference(order))

    def _task_ids(self, flow: str, run_id: str, step: str) -> list[str]:
        return sorted(self.fds.list_tasks(flow, run_id, step), key=_id_key)

    def _marker(self, pathspec: str, attempt: int) -> DoneMarker | None:
        read = lambda: self.fds.read_marker(pathspec, attempt, warn=True)  # noqa: E731
        return self._markers.read((pathspec, attempt), read)

    def _task_state(
        self, flow: str, run_id: str, step: str, task_id: str, run_status: str
    ) -> dict[str, Any]:
        """A task's status and every attempt's times (retries), from its markers."""
        pathspec = f"{flow}/{run_id}/{step}/{task_id}"
        final = self._final.get(pathspec)
        if final is not None:
            return final
        started, finished = self.fds.attempt_states(pathspec)
        attempts = []
        for n in started:
            marker = self._marker(pathspec, n) if n in finished else None
            if marker is not None:
                state = SUCCEEDED if marker.status == "ok" else FAILED
            else:
                state = RUNNING if run_status == RUNNING else FAILED
            attempts.append(
                {
                    "attempt": n,
                    "status": state,
                    "started_at": marker.started_at if marker is not None else None,
                    "finished_at": marker.finished_at if marker is not None else None,
                }
            )
        status = (
            attempts[-1]["status"] if attempts else (RUNNING if run_status == RUNNING else FAILED)
        )
        task_state = {
            "step": step,
            "id": task_id,
            "pathspec": pathspec,
            "status": status,
            "attempts": attempts,
        }
        if status == SUCCEEDED or run_status != RUNNING:
            self._final.put(pathspec, task_state)  # nothing can change it any more
        return task_state

    def tasks(
        self, flow: str, run_id: str, step: str | None = None, offset: Any = 0, limit: Any = 200
    ) -> dict[str, Any]:
        """A page of the run's tasks (all steps, or one) with their attempts: the
        timeline's data."""
        check_pathspec_parts([flow, run_id, *([step] if step else [])], "the URL")
        rec = self._run_record(flow, run_id)
        if rec is None:
            raise NotFound(f"Run {flow}/{run_id} does not exist in {self.fds.storage.url()}.")
        run_status = self._run_status(rec, self._run_end(flow, run_id))
        names = self._step_names(flow, run_id, rec)
        if step is not None and step not in names:
            if step not in rec.steps:
                raise NotFound(f"Run {flow}/{run_id} has no step {step}.")
            names = []  # a step of the graph that has not started (yet)
        elif step is not None:
            names = [step]
        ids = [(s, t) for s in names for t in self._task_ids(flow, run_id, s)]
        start = _int_arg(offset, "offset", 0, 0, 1 << 40)
        count = _int_arg(limit, "limit", 200, 1, MAX_LIMIT * 10)
        page = [
            self._task_state(flow, run_id, s, t, run_status) for s, t in ids[start : start + count]
        ]
        return {"total": len(ids), "offset": start, "limit": count, "tasks": page}

    def _resume_hint(self, flow: str, run_id: str, status: str, steps: list[dict]) -> dict | None:
        if status != FAILED:
            return None
        script = "flow.py"
        for step in steps:
            if step["name"] == "start" and step["tasks"]:
                task = self._finished_record(f"{flow}/{run_id}/start/{step['first_task']}")
                env = (task.info.environment_info if task and task.info else None) or {}
                script = env.get("script") or script
        failed = next((s["name"] for s in steps if s["status"] == FAILED), None)
        command = f"python {script} resume --origin-run-id {run_id}"
        return {"command": command, "failed_step": failed}

    # --- tasks -------------------------------------------------------------------------

    def _finished_record(self, pathspec: str, attempt: int | None = None) -> TaskRecord | None:
        """The record (manifest, facts, marker) of a finished attempt; cached."""
        if attempt is None:
            done = self.fds.attempts(pathspec)
            if not done:
                return None
            attempt = done[-1]
        return self._records.read(
            (pathspec, attempt), lambda: self.fds.read_task(pathspec, attempt)
        )

    def _check_task(self, flow: str, run_id: str, step: str, task_id: str) -> tuple[str, RunRecord]:
        check_pathspec_parts([flow, run_id, step, task_id], "the task in the URL")
        rec = self._run_record(flow, run_id)
        if rec is None:
            raise NotFound(f"Run {flow}/{run_id} does not exist in {self.fds.storage.url()}.")
        pathspec = f"{flow}/{run_id}/{step}/{task_id}"
        started, _ = self.fds.attempt_states(pathspec)
        if not started:
            raise NotFound(f"Task {pathspec} does not exist in {self.fds.storage.url()}.")
        return pathspec, rec

    def task(
        self, flow: str, run_id: str, step: str, task_id: str, attempt: Any = None
    ) -> dict[str, Any]:
        """A task: its attempts, artifacts (with previews), error, checkpoints, cards."""
        from ..cards.store import finished_cards, live_cards
        from ..checkpoint_decorator import list_checkpoints

        pathspec, rec = self._check_task(flow, run_id, step, task_id)
        run_status = self._run_status(rec, self._run_end(flow, run_id))
        state = self._task_state(flow, run_id, step, task_id, run_status)
        numbers = [a["attempt"] for a in state["attempts"]]
        chosen = _int_arg(attempt, "attempt", numbers[-1], 0, 1 << 20) if numbers else None
        if chosen is not None and chosen not in numbers:
            raise NotFound(f"Task {pathspec} has no attempt {chosen}.")
        this = next((a for a in state["attempts"] if a["attempt"] == chosen), None)
        record = None
        if this is not None and this["status"] != RUNNING and chosen is not None:
            record = self._finished_record(pathspec, chosen)
        info = (record.info if record is not None else None) or TaskInfo()
        artifacts = [
            {
                "name": name,
                "sha": entry.key,
                "size": entry.size,
                "type": entry.type,
                "preview": entry.preview,
            }
            for name, entry in sorted((record.artifacts if record else {}).items())
        ]
        error = None
        if record is not None and record.status != "ok":
            exc = info.exception
            if exc:
                error = {k: exc.get(k, "") for k in ("type", "message", "traceback")}
            else:
                reason = record.done.reason or f"exit status {record.done.exit_status}"
                error = {
                    "type": "TaskKilled",
                    "message": f"The task process died: {reason}.",
                    "traceback": "",
                }
        cards = (
            finished_cards(self.fds, pathspec)
            if record is not None and chosen == numbers[-1]
            else []
        )
        if not cards and this is not None and this["status"] == RUNNING:
            cards = live_cards(self.fds, pathspec)
        stack = info.foreach_stack
        return {
            "pathspec": pathspec,
            "flow": flow,
            "run_id": run_id,
            "step": step,
            "id": task_id,
            "status": state["status"],
            "attempt": chosen,
            "attempts": state["attempts"],
            "started_at": (this or {}).get("started_at"),
            "finished_at": (this or {}).get("finished_at"),
            "foreach_index": stack[-1].get("index") if stack else None,
            "input_paths": info.input_paths,
            "origin_task": info.origin_task or (record.done.cloned_from if record else None),
            "artifacts": artifacts,
            "error": error,
            "checkpoints": [
                {k: c.get(k) for k in ("id", "name", "created_at", "attempt")}
                for c in list_checkpoints(self.fds, pathspec)
            ],
            "cards": [
                {
                    "type": c.type,
                    "id": c.id,
                    "attempt": c.attempt,
                    "file": c.file_name,
                    "source": c.pathspec,
                }
                for c in cards
            ],
        }

    def log(
        self,
        flow: str,
        run_id: str,
        step: str,
        task_id: str,
        stream: str,
        attempt: Any = None,
        offset: Any = 0,
    ) -> dict[str, Any]:
        """The part of a log from byte ``offset`` on (at most ``LOG_CHUNK`` bytes, the
        newest ones): polling with the returned ``offset`` follows a running task."""
        if stream not in ("stdout", "stderr"):
            raise NotFound(f"A task has a stdout and a stderr log, not {shown(stream)}.")
        pathspec, rec = self._check_task(flow, run_id, step, task_id)
        run_status = self._run_status(rec, self._run_end(flow, run_id))
        state = self._task_state(flow, run_id, step, task_id, run_status)
        numbers = [a["attempt"] for a in state["attempts"]]
        chosen = _int_arg(attempt, "attempt", numbers[-1], 0, 1 << 20)
        if chosen not in numbers:
            raise NotFound(f"Task {pathspec} has no attempt {chosen}.")
        data = self.fds.read_log(pathspec, chosen, stream)
        start = _int_arg(offset, "offset", 0, 0, 1 << 50)
        if start > len(data):
            start = 0  # the log was replaced by a shorter one: start again
        skipped = max(0, len(data) - start - LOG_CHUNK)
        chunk = data[start + skipped :]
        this = next(a for a in state["attempts"] if a["attempt"] == chosen)
        return {
            "attempt": chosen,
            "stream": stream,
            "offset": len(data),
            "skipped": skipped,
            "text": chunk.decode("utf-8", "replace"),
            "final": this["status"] != RUNNING,
        }

    def card(
        self, flow: str, run_id: str, step: str, task_id: str, file_name: str, attempt: Any = None
    ) -> str:
        """The HTML of one of the task's cards (only a card the task lists)."""
        task = self.task(flow, run_id, step, task_id, attempt)
        from ..cards.store import CardRef, read_card

        for c in task["cards"]:
            if c["file"] == file_name:
                return read_card(self.fds, CardRef(c["source"], c["attempt"], c["type"], c["id"]))
        raise NotFound(f"Task {task['pathspec']} has no card {shown(file_name)}.")

    def artifact_value(
        self, flow: str, run_id: str, step: str, task_id: str, name: str, attempt: Any = None
    ) -> dict[str, Any]:
        """An artifact's value, unpickled and shown by ``repr`` (cut): only called when
        the server was started with ``--allow-unpickle``."""
        from ..cards.components import preview

        task = self.task(flow, run_id, step, task_id, attempt)
        entry = next((a for a in task["artifacts"] if a["name"] == name), None)
        if entry is None:
            raise NotFound(f"Task {task['pathspec']} has no artifact {shown(name)}.")
        if entry["size"] > LOG_CHUNK:
            raise BadRequest(
                f"Artifact {name} is {entry['size']} bytes: too large to show here; read it "
                f"with the client: Task('{task['pathspec']}').data.{name}"
            )
        value = self.fds.cas.load(entry["sha"])
        return dict(entry, value=preview(value, 5000))


def _step_summary(name: str, rec: RunRecord, tasks: list[dict]) -> dict[str, Any]:
    counts = {RUNNING: 0, SUCCEEDED: 0, FAILED: 0}
    for t in tasks:
        counts[t["status"]] += 1
    status = FAILED if counts[FAILED] else RUNNING if counts[RUNNING] else SUCCEEDED
    starts = [a["started_at"] for t in tasks for a in t["attempts"] if a["started_at"]]
    ends = [a["finished_at"] for t in tasks for a in t["attempts"] if a["finished_at"]]
    info = (rec.graph or {}).get(name, {})
    return {
        "name": name,
        "type": info.get("type"),
        "status": status,
        "tasks": len(tasks),
        "counts": counts,
        "first_task": tasks[0]["id"] if tasks else None,
        "started_at": min(starts) if starts else None,
        "finished_at": max(ends) if ends and not counts[RUNNING] else None,
        "retries": sum(max(0, len(t["attempts"]) - 1) for t in tasks),
    }
