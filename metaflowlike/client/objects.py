"""``Metaflow``, ``Flow``, ``Run`` and ``Step``: the containers above a task.

They read only what the question at hand needs: a folder listing to know which runs,
steps or tasks exist, and the (cached) run record for tags and namespaces. How they
nest (iteration, ``in``, ``[]``, ``parent``) is declared once, in ``MetaflowObject``;
each class says which children it has and how to make one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..datastore.records import RunRecord
from ..exceptions import did_you_mean
from ..ids import is_valid
from ..tagging import TagStore
from ..tracking.compare import CompareMixin, parameters_match
from ..tracking.series import RunMetricsMixin
from .html import FlowViews, RunViews, StepViews
from .settings import (
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    MetaflowObject,
    _check_namespace,
    _id_key,
    _parse,
    _Store,
    _store,
    _when,
    get_metadata,
    get_namespace,
)
from .task import MetaflowData, Task

# --- Metaflow and Flow ----------------------------------------------------------------


class Metaflow:
    """The root: every flow with at least one run in the current namespace."""

    def __init__(self) -> None:
        self._store = _store()

    @property
    def flows(self) -> list[Flow]:
        return list(self)

    def __iter__(self) -> Iterator[Flow]:
        for name in self._store.flows(refresh=True):
            flow = Flow._make(self._store, name)
            if get_namespace() is None or next(flow.runs(), None) is not None:
                yield flow

    def __getitem__(self, name: str) -> Flow:
        return Flow(name)

    def __repr__(self) -> str:
        return "Metaflow()"


class Flow(FlowViews, CompareMixin, MetaflowObject):
    """All runs of one flow class, newest first."""

    _NAME = "Flow"

    def __init__(self, pathspec: str, _namespace_check: bool = True) -> None:
        (name,) = _parse(pathspec, 1, "flow", "FlowName")
        store = _store()
        if name not in store.flows() and name not in store.flows(refresh=True):
            raise MetaflowNotFound(
                f"Flow {name} does not exist in {get_metadata()}."
                + did_you_mean(name, store.flows())
            )
        self._init(store, name)

    def _init(self, store: _Store, name: str) -> None:
        self._store, self.id, self.pathspec = store, name, name

    tags = user_tags = system_tags = frozenset()  # type: ignore[assignment]
    origin_pathspec = None

    def is_in_namespace(self) -> bool:
        return get_namespace() is None or next(self.runs(), None) is not None

    def runs(self, *tags: str, **params: Any) -> Iterator[Run]:
        """Runs in the current namespace that carry every tag in ``tags`` and, if given,
        the parameter values in ``params`` (``runs(lr=0.1)``), newest first.

        Tags added after a run started are tag operations: they are listed once per
        call, and read only for the runs that have some."""
        ns = get_namespace()
        wanted = [t for t in (ns, *tags) if t is not None]
        ids = sorted(self._store.fds.list_runs(self.id), key=_id_key, reverse=True)
        tag_store = TagStore(self._store.fds)
        ops = _TagOperations(tag_store, self.id)  # listed once, when first needed
        for run_id in ids:
            rec = self._store.run_record(self.id, run_id)
            if rec is None:  # a run that is only starting has no record yet
                continue
            if params and not parameters_match(rec, params):
                continue
            system = set(rec.system_tags)
            user = None
            missing = [t for t in wanted if t not in system]
            if missing:  # user tags: the record's, unless operations changed them
                user = tag_store.user_tags(self.id, run_id, rec, ops.of(run_id))
                if not all(t in user for t in missing):
                    continue
            run = Run._make(self._store, self, run_id, rec)
            run._user_tags, run._tag_ops = user, ops
            yield run

    def __iter__(self) -> Iterator[Run]:
        """The runs in the current namespace (``runs()``), newest first."""
        return self.runs()

    def __contains__(self, run_id: object) -> bool:
        """A run exists once its record does (its folder appears a moment before)."""
        run_id = str(run_id)
        return is_valid("run id", run_id) and self._store.run_record(self.id, run_id) is not None

    def _child(self, run_id: str) -> Run:
        return Run(f"{self.id}/{run_id}")  # checks the namespace

    def _no_child(self, run_id: str) -> str:
        _parse(f"{self.id}/{run_id}", 2, "run", "FlowName/RunID")  # an invalid id says so
        return f"Run {self.id}/{run_id} does not exist in {get_metadata()}."

    @property
    def latest_run(self) -> Run | None:
        """The newest run in the namespace, finished or not.

        None if the flow has no run at all; if it has runs but none in the current
        namespace, ``MetaflowNamespaceMismatch`` (as Metaflow), not a silent None."""
        run = next(self.runs(), None)
        if run is None and get_namespace() is not None:
            ids = self._store.fds.list_runs(self.id)
            owners = sorted(
                {
                    rec.user or "?"
                    for rid in ids
                    if (rec := self._store.run_record(self.id, rid)) is not None
                }
            )
            if owners:
                raise MetaflowNamespaceMismatch(
                    f"Flow {self.id} has no run in the current namespace '{get_namespace()}' "
                    f"(its runs are by {', '.join(owners)}). Call namespace('user:{owners[0]}') "
                    "or namespace(None) to see them."
                )
        return run

    @property
    def latest_successful_run(self) -> Run | None:
        return next((r for r in self.runs() if r.successful), None)


class _TagOperations:
    """The tag operations of one flow, listed at most once for all the runs one
    ``Flow.runs()`` call yields (reading ``run.tags`` in a loop costs one listing)."""

    def __init__(self, store: TagStore, flow: str) -> None:
        self._store, self._flow = store, flow
        self._ops: dict[str, list[str]] | None = None

    def of(self, run_id: str) -> list[str]:
        if self._ops is None:
            self._ops = self._store.operations(self._flow)
        return self._ops.get(run_id, [])


# --- Run ------------------------------------------------------------------------------


class Run(RunViews, RunMetricsMixin, MetaflowObject):
    """One execution of a flow: its steps, its ``end`` data and its tags."""

    _NAME = "Run"
    _PARENT = "_flow"

    def __init__(self, pathspec: str, _namespace_check: bool = True) -> None:
        flow, run_id = _parse(pathspec, 2, "run", "FlowName/RunID")
        store = _store()
        rec = store.run_record(flow, run_id)
        if rec is None:
            if flow not in store.flows() and flow not in store.flows(refresh=True):
                raise MetaflowNotFound(
                    f"Run {flow}/{run_id} does not exist: there is no flow {flow} in "
                    f"{get_metadata()}." + did_you_mean(flow, store.flows())
                )
            raise MetaflowNotFound(f"Run {flow}/{run_id} does not exist in {get_metadata()}.")
        self._init(store, None, run_id, rec, flow)
        if _namespace_check:
            _check_namespace(self)

    def _init(
        self,
        store: _Store,
        flow: Flow | None,
        run_id: str,
        rec: RunRecord,
        flow_name: str | None = None,
    ) -> None:
        flow_name = flow_name or rec.flow or flow.id  # type: ignore[union-attr]
        self._store, self._flow, self._flow_name = store, flow, flow_name
        self.id, self.pathspec = run_id, f"{flow_name}/{run_id}"
        self._record = rec
        self._user_tags: list[str] | None = None
        self._tag_ops: _TagOperations | None = None  # shared by the runs of one listing

    def _run_obj(self) -> Run:
        return self

    # --- tags ------------------------------------------------------------------------

    def _current_user_tags(self) -> list[str]:
        if self._user_tags is None:
            ops = self._tag_ops.of(self.id) if self._tag_ops is not None else None
            self._user_tags = TagStore(self._store.fds).user_tags(
                self._flow_name, self.id, self._record, ops
            )
        return self._user_tags

    def _mutate_tags(self, add: list[str], remove: list[str]) -> None:
        self._user_tags = TagStore(self._store.fds).mutate(
            self._flow_name, self.id, self._record, add=add, remove=remove
        )

    def add_tag(self, tag: str) -> None:
        """Add one user tag to this run (adding a system tag changes nothing)."""
        self._mutate_tags([tag], [])

    def add_tags(self, tags: list[str]) -> None:
        self._mutate_tags(list(tags) if not isinstance(tags, str) else tags, [])

    def remove_tag(self, tag: str) -> None:
        """Remove one user tag; removing a system tag raises ``MetaflowTaggingError``."""
        self._mutate_tags([], [tag])

    def remove_tags(self, tags: list[str]) -> None:
        self._mutate_tags([], list(tags) if not isinstance(tags, str) else tags)

    def replace_tag(self, tag_to_remove: str, tag_to_add: str) -> None:
        """Remove one tag and add another in one change."""
        self._mutate_tags([tag_to_add], [tag_to_remove])

    def replace_tags(self, tags_to_remove: list[str], tags_to_add: list[str]) -> None:
        self._mutate_tags(list(tags_to_add), list(tags_to_remove))

    # --- steps -----------------------------------------------------------------------

    def _child_ids(self) -> list[str]:
        """Existing steps newest first (``end`` before ``start``), as Metaflow lists
        them: the graph order recorded at the start of the run, reversed."""
        present = set(self._store.fds.list_steps(self._flow_name, self.id))
        order = [s for s in self._record.steps if s in present]
        return list(reversed(order + sorted(present.difference(order))))

    def _child(self, name: str) -> Step:
        return Step._make(self, name)

    def _no_child(self, name: str) -> str:
        graph = self._record.steps
        if name in graph:
            return f'Run {self.pathspec} has not reached step "{name}" (yet).'
        known = ", ".join(reversed(self._listing())) or "none"
        hint = did_you_mean(name, graph) or f" Its steps: {known}."
        return f'Run {self.pathspec} has no step "{name}".' + hint

    @property
    def parent(self) -> Flow:
        if self._flow is None:
            self._flow = Flow._make(self._store, self._flow_name)
        return self._flow

    def steps(self, *tags: str) -> Iterator[Step]:
        if all(t in self.tags for t in tags):
            yield from self

    @property
    def created_at(self) -> datetime | None:
        return _when(self._record.created_at)

    @property
    def end_task(self) -> Task | None:
        """The task of the ``end`` step, or None while the run has not reached it."""
        end = Step._make(self, "end")
        return end.task

    @property
    def data(self) -> MetaflowData | None:
        """Shortcut for ``run['end'].task.data``; None if the run has no ``end`` task."""
        end = self.end_task
        return end.data if end is not None else None

    @property
    def successful(self) -> bool:
        end = self.end_task
        return end is not None and end.successful

    @property
    def finished(self) -> bool:
        end = self.end_task
        return end is not None and end.finished

    @property
    def finished_at(self) -> datetime | None:
        end = self.end_task
        return end.finished_at if end is not None else None

    @property
    def origin_pathspec(self) -> str | None:
        origin = self._record.origin_run_id
        return f"{self._flow_name}/{origin}" if origin else None

    @property
    def user(self) -> str | None:
        return self._record.user

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's parameter values, typed as the flow received them."""
        cas = self._store.fds.cas
        return {name: cas.load(entry.key) for name, entry in self._record.params.items()}

    code = None  # code packages are not stored by the local runtime


# --- Step -----------------------------------------------------------------------------


class Step(StepViews, MetaflowObject):
    """The tasks one step of a run executed (one, or one per foreach split)."""

    _NAME = "Step"
    _PARENT = "_run"

    def __init__(self, pathspec: str, _namespace_check: bool = True) -> None:
        flow, run_id, name = _parse(pathspec, 3, "step", "FlowName/RunID/StepName")
        run = Run(f"{flow}/{run_id}", _namespace_check=_namespace_check)
        self._init(run, name)
        if not self._listing():
            raise MetaflowNotFound(
                f'Step {self.pathspec} does not exist: run {run.pathspec} has no task for "{name}".'
                + did_you_mean(name, run._listing(refresh=True))
            )

    def _init(self, run: Run, name: str) -> None:
        self._run, self.id = run, name
        self.pathspec = f"{run.pathspec}/{name}"

    def _child_ids(self) -> list[str]:
        """Task ids newest first, as Metaflow lists them."""
        ids = self._run._store.fds.list_tasks(self._run._flow_name, self._run.id, self.id)
        return sorted(ids, key=_id_key, reverse=True)

    def _child(self, task_id: str) -> Task:
        return Task._make(self, task_id)

    def _no_child(self, task_id: str) -> str:
        return f"Step {self.pathspec} has no task {task_id}."

    def tasks(self, *tags: str) -> Iterator[Task]:
        if all(t in self.tags for t in tags):
            yield from self

    @property
    def task(self) -> Task | None:
        """The newest task (the only one, for a step outside a foreach)."""
        ids = self._listing()
        return Task._make(self, ids[0]) if ids else None

    @property
    def created_at(self) -> datetime | None:
        task = self.task
        return task.created_at if task is not None else None

    @property
    def finished_at(self) -> datetime | None:
        """When the last task finished; None while any task is unfinished."""
        times = [t.finished_at for t in self]
        if not times or any(t is None for t in times):
            return None
        return max(times)  # type: ignore[type-var]

    @property
    def origin_pathspec(self) -> str | None:
        """After ``resume``: this step in the run its task was cloned from, else None."""
        task = self.task
        origin = task.origin_pathspec if task is not None else None
        return origin.rsplit("/", 1)[0] if origin else None
