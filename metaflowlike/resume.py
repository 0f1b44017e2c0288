"""``resume``: a new run that reuses every successful task of an earlier one.

The new run walks the graph as usual, but before launching a task it looks for the
same task in the origin run (same step, same inputs once mapped to the origin's task
ids, same foreach index). A successful match outside the steps being rerun is *cloned*:
its record is written into the new run pointing at the same content keys, so no
artifact byte is copied. Everything else runs with the current code.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import click

from .datastore.records import TaskInfo
from .exceptions import MetaflowlikeException, did_you_mean
from .owners import Owner


class ResumeError(MetaflowlikeException):
    headline = "Cannot resume"


class Cloner:
    """Maps tasks of the new run to finished tasks of the origin run.

    The origin may itself be a resume that was interrupted: the tasks it never reached
    are then looked up in *its* origin, and so on up the chain, so that a second resume
    still reuses everything that ever succeeded. A task found in a run counts as the same
    task in the run it was cloned from or rerun for (``origin_task``/``resumed_from``)."""

    MAX_CHAIN = 20

    def __init__(self, fds: Any, flow: str, origin_run_id: str, rerun_steps: set[str]) -> None:
        self.fds, self.flow, self.origin = fds, flow, origin_run_id
        self.rerun = rerun_steps
        self.runs: list[str] = []  # the origin, then its origin...
        run_id: str | None = origin_run_id
        while run_id and run_id not in self.runs and len(self.runs) < self.MAX_CHAIN:
            self.runs.append(run_id)
            record = fds.read_run(flow, run_id)
            run_id = record.origin_run_id if record is not None else None
        self.index: dict[str, dict[tuple, Any]] = {run: {} for run in self.runs}
        self.by_path: dict[str, Any] = {}  # "run/step/task" -> record
        for run in self.runs:
            for step in fds.list_steps(flow, run):
                for task_id in fds.list_tasks(flow, run, step):
                    rec = fds.read_task(f"{flow}/{run}/{step}/{task_id}")
                    if rec is None:
                        continue
                    # a task killed before writing its record is known by its marker alone
                    known = rec.info if rec.info is not None else rec.done
                    inputs, split = known.input_paths, known.split_index
                    self.index[run][(step, tuple(inputs), split)] = rec
                    self.by_path[f"{run}/{step}/{task_id}"] = rec
        self.same: dict[str, dict[str, str]] = {}  # new path -> {run id: path there}
        self.from_origin: dict[str, str] = {}  # a path in any origin run -> new path

    def _find(self, spec: Any) -> Any:
        """The nearest record of this task in the chain of origin runs, or None."""
        for run in self.runs:
            try:
                inputs = tuple(self.same[p][run] for p in spec.input_paths)
            except KeyError:
                continue  # an input is unknown to that run
            rec = self.index[run].get((spec.step_name, inputs, spec.split_index))
            if rec is not None:
                return rec
        return None

    def _equivalents(self, path: str) -> dict[str, str]:
        """``path`` and the tasks it was cloned from or rerun for, by run id."""
        out: dict[str, str] = {}
        while path and path.split("/")[0] not in out:
            out[path.split("/")[0]] = path
            rec = self.by_path.get(path)
            if rec is None:
                break
            info = rec.info
            older = (info.origin_task or info.resumed_from or "") if info is not None else ""
            path = older.split("/", 1)[1] if "/" in older else ""
        return out

    def __call__(self, runtime: Any, spec: Any) -> TaskInfo | None:
        rec = self._find(spec)
        if rec is not None:
            spec.origin_task = rec.pathspec  # lets @checkpoint find the origin's progress
        if rec is None or rec.status != "ok" or spec.step_name in self.rerun:
            return None  # runs: new, failed before, or asked to rerun
        fds = self.fds
        new_path = f"{spec.run_id}/{spec.step_name}/{spec.task_id}"
        self.same[new_path] = self._equivalents(rec.pathspec.split("/", 1)[1])
        for old in self.same[new_path].values():
            self.from_origin[old] = new_path
        info = replace(
            rec.info or TaskInfo(),
            input_paths=list(spec.input_paths),
            origin_task=rec.pathspec,
            cloned_at=time.time(),
            # foreach frames point at split tasks: map them to this run's task ids
            foreach_stack=[
                dict(f, task=self.from_origin.get(f["task"], f["task"]))
                for f in (rec.info.foreach_stack if rec.info is not None else [])
            ],
        )
        marker = replace(rec.done, attempt=0, cloned_from=rec.pathspec)
        fds.copy_task(rec, spec.pathspec, info, marker)
        runtime.reporter.task_cloned(spec, rec.pathspec)
        return info


class _Shown(str):
    """A parameter value already rendered by ``repr`` in the origin run's record."""

    def __repr__(self) -> str:
        return str(self)


def run_state(fds: Any, flow: str, run_id: str) -> str:
    """``"ended"``, ``"running"``, or ``"unknown"`` (no end record and its runtime is on
    another machine). A run ended when its end record exists or its runtime is gone
    (killed runtimes write no end record)."""
    if fds.read_run_end(flow, run_id) is not None:
        return "ended"
    record = fds.read_run(flow, run_id)
    owner = Owner.from_record(record.runtime if record is not None else None)
    if owner is None:
        return "ended"  # a run record without an owner (older versions): cannot run now
    alive = owner.alive()
    return "unknown" if alive is None else "running" if alive else "ended"


def latest_ended_run(fds: Any, flow: str) -> str:
    """The id of the latest run of ``flow`` that ended; refuses if there is none."""
    runs = sorted(fds.list_runs(flow), key=lambda r: (len(r), r), reverse=True)
    skipped = []
    for run_id in runs:
        if fds.read_run(flow, run_id) is None:
            continue  # a folder whose runtime died before writing the record
        state = run_state(fds, flow, run_id)
        if state == "ended":
            return run_id
        skipped.append(
            f"{run_id} ({'still running' if state == 'running' else 'may be running on another machine'})"
        )
    if not skipped:
        raise ResumeError(f"There is no run of {flow} to resume in {fds.storage.url()}.")
    raise ResumeError(
        f"No run of {flow} has ended yet: {', '.join(skipped)}. Wait for one to end, or "
        "name a run with --origin-run-id."
    )


def add_resume_command(cli: click.Group, flow_cls: type) -> None:
    from .cli import execution_options, run_options

    @cli.command()
    @click.argument("step_name", required=False)
    @click.option("--origin-run-id", default=None, help="Run to resume (default: the latest).")
    @run_options(flow_cls)
    @click.pass_obj
    def resume(state, step_name, origin_run_id, **raw):
        """Rerun a failed run, reusing every task that succeeded."""
        from .parameters import flow_parameters
        from .run import execute

        options = execution_options(raw)
        names = {p.attr_name: p.name for p in flow_parameters(flow_cls)}
        given = [names.get(attr, attr) for attr, value in raw.items() if value is not None]
        if given:
            raise ResumeError(
                f"resume reuses the parameters of the origin run; --{given[0]} cannot be "
                "changed. Start a new run with `run` instead."
            )
        from .ids import check_run_id

        if origin_run_id is not None:
            check_run_id(origin_run_id, "--origin-run-id")
        fds, flow = state.fds, flow_cls.__name__
        if origin_run_id is None:
            origin_run_id = latest_ended_run(fds, flow)
            click.echo(f"Resuming run {flow}/{origin_run_id}, the latest run that ended.")
        origin = fds.read_run(flow, origin_run_id)
        if origin is None:
            raise ResumeError(f"No run {flow}/{origin_run_id} in {fds.storage.url()}.")
        if run_state(fds, flow, origin_run_id) == "running":
            raise ResumeError(
                f"Run {flow}/{origin_run_id} is still running: wait for it to end (or stop "
                "it) before resuming it."
            )
        state.use_stored_configs(origin.configs)  # the origin's, as in Metaflow
        state.validate()
        graph = state.graph
        missing = [s for s in fds.list_steps(flow, origin_run_id) if s not in graph]
        if missing:
            raise ResumeError(
                f"Run {flow}/{origin_run_id} has steps that the flow no longer has: "
                f"{', '.join(sorted(missing))}. Start a new run instead."
            )
        if step_name is not None and step_name not in graph:
            raise ResumeError(
                f'The flow has no step "{step_name}".' + did_you_mean(step_name, graph.nodes)
            )
        end = fds.read_run_end(flow, origin_run_id)
        if step_name is None and end is not None and end.status == "ok":
            raise ResumeError(
                f"Run {flow}/{origin_run_id} finished successfully: there is nothing to resume. "
                "Name a step to rerun from, e.g. `resume end`."
            )
        rerun = graph.reachable(step_name) if step_name else set()
        cloner = Cloner(fds, flow, origin_run_id, rerun)
        # the origin's values as it displayed them, so Run.parameters shows them too
        shown = {k: _Shown(v) for k, v in origin.param_values.items()}
        ok = execute(
            state,
            origin.params,
            shown,
            **options,
            origin_run_id=origin_run_id,
            clone=cloner,
        )
        raise SystemExit(0 if ok else 1)
