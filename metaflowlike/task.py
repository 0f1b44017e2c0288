"""Execute one task, inside the task's own process.

This is the single code path that runs user code: the local runtime calls ``run_task``
in a forked child, and the ``step`` CLI command calls it in a fresh interpreter (a
container, a pod, a Batch job, an Argo or Step Functions state). It reads the records
of its input tasks, builds the flow object over their artifacts, runs the step,
stores what the step set, and writes the task record. The completion marker is written
by whoever supervises the process, after the logs are saved.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import task_errors
from .client import settings as client_settings
from .current import current
from .datastore.local_storage import describe_os_error
from .datastore.records import ArtifactEntry, DoneMarker, TaskInfo
from .datastore.storage import StorageError, StorageUnreachable
from .datastore.task_datastore import FlowDatastore, TaskRecord
from .decorators import TaskContext, step_decorators
from .environment_info import task_facts
from .exceptions import ArtifactLoadError, MetaflowlikeException
from .flowspec import ArtifactSource, FlowSpec, Inputs, input_view
from .graph import FlowGraph
from .lifeline import TaskStopped
from .tracking import metrics as tracked_metrics


@dataclass
class TaskSpec:
    """Everything a task needs to know, all of it serializable to a command line
    (``step_command.py`` is the one place that writes and reads it)."""

    flow_name: str
    run_id: str
    step_name: str
    task_id: str
    attempt: int = 0
    input_paths: list[str] = field(default_factory=list)  # "run_id/step/task_id"
    split_index: int | None = None
    max_num_splits: int = 10000
    user: str = ""
    tags: list[str] = field(default_factory=list)
    origin_run_id: str | None = None
    namespace: str | None = None
    max_retries: int = 0
    catch_fallback: str | None = None  # set: record this failure via @catch, run no user code
    origin_task: str | None = None  # on resume: the origin run's task this one replaces

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"


class _Loader:
    """Reads input task records once and loads artifacts by key.

    Every load unpickles afresh: two join inputs holding the same value get two
    objects, so changing one never changes the other. Each flow object keeps what it
    loaded in its own ``__dict__``."""

    def __init__(self, fds: FlowDatastore, flow_name: str) -> None:
        self.fds, self.flow_name = fds, flow_name
        self.records: dict[str, TaskRecord] = {}
        self.foreach_values: dict[tuple[str, str], Any] = {}
        #: content key -> (artifact name, task it was read from, type): for error messages
        self.origins: dict[str, tuple[str, str, str]] = {}

    def record(self, path: str) -> TaskRecord:
        if path not in self.records:
            rec = self.fds.read_task(f"{self.flow_name}/{path}")
            if rec is None or rec.info is None:
                raise MetaflowlikeException(
                    f"Input task {self.flow_name}/{path} has no finished attempt."
                )
            self.add(path, rec)
        return self.records[path]

    def add(self, path: str, rec: TaskRecord) -> None:
        """Use ``rec`` as the record of the input task ``path``."""
        self.records[path] = rec
        for name, entry in rec.artifacts.items():
            self.origins.setdefault(entry.key, (name, rec.pathspec, entry.type))

    def info(self, path: str) -> TaskInfo:
        """The task record of the input task ``path`` (read once)."""
        return self.record(path).info  # type: ignore[return-value]  # checked by record()

    def load(self, key: str) -> Any:
        try:
            return self.fds.cas.load(key)
        except ArtifactLoadError as e:
            name, task, type_name = self.origins.get(key, (key, "an input task", ""))
            raise e.naming(name, task, type_name) from None

    def foreach_item(self, frame: dict) -> Any:
        """The item of ``frame``; the list is loaded once per split task. A task of a
        gang (``num_parallel=``) has no item."""
        if frame["var"] is None:
            return None
        cache_key = (frame["task"], frame["var"])
        if cache_key not in self.foreach_values:
            info = self.info(frame["task"])
            # An unordered iterable (a set...) was frozen into a list by the split task,
            # so every split sees the same order whatever its process's hash seed.
            key = info.foreach_values or info.artifacts[frame["var"]].key
            items = self.load(key)
            if not hasattr(items, "__getitem__") or isinstance(items, dict):
                items = list(items)
            self.foreach_values[cache_key] = items
        return self.foreach_values[cache_key][frame["index"]]


class _InputSource(ArtifactSource):
    """One input of a join, whose record is read the first time the step looks at it:
    a join of 10,000 inputs that reads one artifact of one input reads two records (that
    input's and the first one's, for the foreach stack), not 10,000."""

    def __init__(self, loader: _Loader, path: str) -> None:
        self._loader, self._path = loader, path
        self._manifest: dict[str, ArtifactEntry] | None = None
        self.load = loader.load
        self.input_loader = loader.foreach_item
        self.loaded = {}

    @property
    def manifest(self) -> dict[str, ArtifactEntry]:  # type: ignore[override]
        if self._manifest is None:
            self._manifest = dict(self._loader.info(self._path).artifacts)
        return self._manifest

    @property
    def foreach_stack(self) -> list[dict]:  # type: ignore[override]
        return self._loader.info(self._path).foreach_stack


def run_task(
    flow_cls: type[FlowSpec],
    graph: FlowGraph,
    spec: TaskSpec,
    fds: FlowDatastore,
    params: dict[str, ArtifactEntry],
    extra_decorators: list | None = None,
    hand_over: Callable[[TaskInfo], None] | None = None,
    known_inputs: dict[str, TaskRecord] | None = None,
) -> bool:
    """Run the step of ``spec``; return True on success. Never raises for user errors:
    a failure is recorded in the task record (exception type, message, traceback).

    The record is written to the datastore, or given to ``hand_over`` when whoever
    supervises this process stores it with the completion marker (a forked task).
    ``known_inputs``: records of finished tasks already in memory (a forked task
    inherits its runtime's), used for the inputs among them instead of reading them."""
    started = time.time()
    node = graph[spec.step_name]
    loader = _Loader(fds, spec.flow_name)
    for path in spec.input_paths:
        if known_inputs and path in known_inputs:
            loader.add(path, known_inputs[path])
    decorators = step_decorators(node, extra_decorators)
    info: dict[str, Any] = {
        "step": spec.step_name,
        "attempt": spec.attempt,
        "input_paths": spec.input_paths,
        "started_at": started,
        "pid": os.getpid(),
        "user": spec.user,
        "tags": spec.tags,
        "resumed_from": spec.origin_task,
        **task_facts(),
    }
    where = runs_on()
    if where:
        info["runs_on"] = where
    flow: FlowSpec = object.__new__(flow_cls)
    task = TaskContext(
        flow=flow,
        graph=graph,
        step_name=spec.step_name,
        run_id=spec.run_id,
        task_id=spec.task_id,
        retry_count=spec.attempt,
        max_retries=spec.max_retries,
        datastore=fds,
        origin_task=spec.origin_task,
    )
    artifacts: dict[str, ArtifactEntry] = {}
    ok = False
    try:
        source, inputs, stack = _build_inputs(flow_cls, graph, spec, loader, params)
        info["foreach_stack"] = stack
        flow.__dict__["_source"] = source
        flow.__dict__["_transition"] = None
        current._update(
            flow_name=spec.flow_name,
            run_id=spec.run_id,
            step_name=spec.step_name,
            task_id=spec.task_id,
            retry_count=spec.attempt,
            origin_run_id=spec.origin_run_id,
            namespace=spec.namespace,
            username=spec.user,
            tags=frozenset(spec.tags),
            is_running_flow=True,
            origin_task=spec.origin_task,
            _datastore=fds,  # for APIs used inside steps (S3, models); hooks get ``task``
        )
        client_settings.read_from(fds)
        task = dataclasses.replace(task, inputs=inputs)
        for deco in decorators:
            deco.task_pre_step(task=task)
        method = getattr(flow, spec.step_name)
        func = (lambda: method(inputs)) if node.is_join else method
        for deco in decorators:
            func = deco.task_decorate(func, task=task)
        if spec.catch_fallback:
            func = _raiser(spec.catch_fallback, spec.attempt)
        try:
            func()
            _check_transition(flow, node)
            for deco in decorators:
                deco.task_post_step(task=task)
        except Exception as e:
            handled = [deco.task_exception(task=task, exception=e) for deco in decorators]
            if not any(handled):
                raise
            info["caught"] = f"{type(e).__module__}.{type(e).__qualname__}: {e}"
            if node.type != "end" and flow.__dict__.get("_transition") is None:
                flow.__dict__["_transition"] = (node.out_funcs, node.foreach_param)
        artifacts = _persist(flow, source, fds)
        # what the step set (not what it only read): a cache hit clones exactly these
        info["produced"] = sorted(
            n
            for n in flow.__dict__
            if not n.startswith("_") and n in artifacts and artifacts[n].key != source.loaded.get(n)
        )
        if node.is_switch:
            info["next_step"] = flow.__dict__["_transition"][0][0]
        if node.is_parallel:
            info["foreach_num_splits"] = _num_parallel(flow, node)
        elif node.foreach_param:
            info["foreach_num_splits"] = _num_splits(flow, node, spec, info.get("caught"))
            frozen = _frozen_foreach_values(flow, node, fds)
            if frozen:
                info["foreach_values"] = frozen
        ok = True
    except TaskStopped:
        raise  # stopped from outside: whoever stopped it records why; nothing is kept
    except BaseException as e:  # noqa: BLE001 - everything is recorded, then reported
        info["exception"] = task_errors.describe(e, node)
        sys.stderr.write(info["exception"]["traceback"])
        if not isinstance(e, StorageUnreachable):  # it would only fail again
            artifacts = _persist_after_failure(flow, fds)
    info["status"] = "ok" if ok else "failed"
    info["finished_at"] = time.time()
    if not ok and info["exception"]["type"].endswith("StorageUnreachable"):
        return False  # the store is unreachable: writing the record would fail again
    for deco in decorators:
        deco.task_finished(task=task, ok=ok, artifacts=artifacts, info=info)
    try:
        tracked_metrics.save(fds, spec.pathspec, spec.attempt)
        record = TaskInfo.from_json(info)
        record.artifacts = artifacts
        if hand_over is None:
            fds.write_task(spec.pathspec, spec.attempt, record)
        else:
            hand_over(record)
    except Exception:
        traceback.print_exc()
        return False
    return ok


def completion_marker(
    spec: TaskSpec,
    info: TaskInfo,
    *,
    exit_status: int | None,
    started: float,
    reason: str | None = None,
) -> DoneMarker:
    """The completion marker of a task that ended with ``exit_status``: written by the
    local runtime, or by a self-sufficient task itself (``task_supervisor.py``)."""
    status = info.status if exit_status == 0 else "failed"
    if not reason and exit_status and exit_status < 0:
        reason = f"killed by signal {-exit_status}"
    return DoneMarker(
        status=status or "failed",
        input_paths=list(spec.input_paths),  # lets resume match a task that left no record
        split_index=spec.split_index,
        attempt=spec.attempt,
        started_at=started,
        finished_at=time.time(),
        exit_status=exit_status,
        reason=reason or None,
    )


#: a launcher describes where a task runs through variables with this prefix
RUNS_ON_PREFIX = "METAFLOWLIKE_RUNS_ON_"
#: ``METAFLOWLIKE_RUNS_ON_JOB_ID_FROM=AWS_BATCH_JOB_ID`` records job_id from that variable
RUNS_ON_INDIRECT = "_FROM"


def runs_on() -> dict[str, str]:
    """Where this task runs (``{"platform": "kubernetes", "pod": ...}``), as its
    launcher described it in the environment; recorded in the task's metadata."""
    n = len(RUNS_ON_PREFIX)
    out = {}
    for k, v in os.environ.items():
        if not k.startswith(RUNS_ON_PREFIX):
            continue
        if k.endswith(RUNS_ON_INDIRECT):
            # what only the platform knows in the container (AWS_BATCH_JOB_ID...)
            k, v = k[: -len(RUNS_ON_INDIRECT)], os.environ.get(v, "")
        out[k[n:].lower()] = v
    return out


def _raiser(reason: str, attempts: int):
    """What a caught task that died runs instead of user code: @catch records this."""
    from .builtin_decorators import FailureHandledByCatch

    def fail() -> None:
        raise FailureHandledByCatch(
            f"Task execution kept failing over {attempts} attempt(s) without raising an "
            f"exception in user code: {reason}."
        )

    return fail


def _build_inputs(
    flow_cls, graph, spec: TaskSpec, loader: _Loader, params: dict[str, ArtifactEntry]
):
    """Work out the inherited manifest, join inputs and foreach stack of this task."""
    node = graph[spec.step_name]
    manifest: dict[str, ArtifactEntry] = {}
    inputs = None
    if not spec.input_paths:  # start
        stack: list[dict] = []
    elif node.is_join:
        inputs = Inputs(
            [
                input_view(flow_cls, path.split("/")[1], _InputSource(loader, path))
                for path in spec.input_paths
            ]
        )
        stack = list(loader.info(spec.input_paths[0]).foreach_stack)
        if closes_foreach(graph, node):
            stack = stack[:-1]
    else:
        (path,) = spec.input_paths
        info = loader.info(path)
        manifest.update(info.artifacts)
        stack = list(info.foreach_stack)
        parent = graph[path.split("/")[1]]
        if parent.split_type == "foreach":
            stack.append(
                {
                    "step": parent.name,
                    "task": path,
                    "var": parent.foreach_param,
                    "index": spec.split_index,
                    "num_splits": info.foreach_num_splits,
                }
            )
    manifest.update(params)
    for name, entry in params.items():
        loader.origins.setdefault(entry.key, (name, f"{spec.flow_name}/{spec.run_id}", entry.type))
    return ArtifactSource(manifest, loader.load, stack, loader.foreach_item), inputs, stack


def closes_foreach(graph, node) -> bool:
    """True if this join closes a foreach (rather than a static branch)."""
    split = node.matching_split
    return split is not None and graph[split].split_type == "foreach"


def _check_transition(flow: FlowSpec, node) -> None:
    transition = flow.__dict__.get("_transition")
    if node.type == "end":
        if transition is not None:
            raise MetaflowlikeException(
                'The "end" step must not call self.next().', lineno=node.next_lineno
            )
        return
    if transition is None:
        raise MetaflowlikeException(
            f'Step "{node.name}" finished without calling self.next().', lineno=node.lineno
        )
    names, foreach = transition
    if node.is_switch:
        if "_switch_value" not in flow.__dict__:
            raise MetaflowlikeException(
                f'Step "{node.name}" is a switch in its source but called '
                f"self.next({', '.join(names)}) without condition=."
            )
        return  # the target is one of the cases: _switch_target looked it up
    if node.is_parallel != ("_num_parallel" in flow.__dict__):
        raise MetaflowlikeException(
            f'Step "{node.name}" called self.next() '
            f"{'without' if node.is_parallel else 'with'} num_parallel=, unlike its source."
        )
    if tuple(names) != tuple(node.out_funcs) or foreach != node.foreach_param:
        raise MetaflowlikeException(
            f'Step "{node.name}" called self.next({", ".join(names)}'
            f"{', foreach=' + repr(foreach) if foreach else ''}) but its source says "
            f"self.next({', '.join(node.out_funcs)}). Conditional transitions are not supported.",
            lineno=node.next_lineno,
        )


def _persist(
    flow: FlowSpec, source: ArtifactSource, fds: FlowDatastore
) -> dict[str, ArtifactEntry]:
    """Store what the step set; pass everything else on by key, reading no bytes."""
    manifest = dict(source.manifest)
    items = [(n, v) for n, v in flow.__dict__.items() if not n.startswith("_")]
    try:
        stored = fds.cas.save(items)
    except OSError as e:
        # a large blob is first spooled by the content store itself: a full disk shows
        # up here as a bare OSError that names no file, so say where we were writing
        where = fds.storage.url() if fds.storage.local_path("") else tempfile.gettempdir()
        raise StorageError(
            f"Cannot store the artifacts of this task in {where}: {describe_os_error(e)}."
        ) from e
    for name, art in stored.items():
        original = source.loaded.get(name)
        if original and art.key != original and _unchanged(fds, original, flow.__dict__[name]):
            continue  # only read: keep its key (a set may pickle in another order)
        manifest[name] = art.entry()
    return manifest


def _unchanged(fds: FlowDatastore, key: str, value: Any) -> bool:
    try:
        return bool(fds.cas.load(key) == value)
    except Exception:  # noqa: BLE001 - e.g. arrays, whose == is elementwise
        return False


def _persist_after_failure(flow: FlowSpec, fds: FlowDatastore) -> dict[str, ArtifactEntry]:
    """Keep what a failed step had, so it can be inspected: whatever can still be
    stored is; an artifact that cannot be serialized is left out (the error names it)."""
    source = flow.__dict__.get("_source")
    if source is None:
        return {}
    manifest = dict(source.manifest)
    for name, value in list(flow.__dict__.items()):
        if name.startswith("_"):
            continue
        try:
            art = fds.cas.save([(name, value)])[name]
        except Exception:
            continue
        manifest[name] = art.entry()
    return manifest


def _frozen_foreach_values(flow: FlowSpec, node, fds: FlowDatastore) -> str | None:
    """For a foreach over something without an order of its own (a set...), store the
    items as a list, so that every split indexes the same sequence."""
    value = getattr(flow, node.foreach_param)
    if hasattr(value, "__getitem__"):
        return None
    return fds.cas.save([(node.foreach_param, list(value))])[node.foreach_param].key


def _num_parallel(flow: FlowSpec, node) -> int:
    n = flow.__dict__.get("_num_parallel")
    if n is None:  # @catch caught an exception before self.next() ran
        raise MetaflowlikeException(
            f'Step "{node.name}" starts a gang with num_parallel= but never reached self.next().'
        )
    return n


def _num_splits(flow: FlowSpec, node, spec: TaskSpec, caught: str | None = None) -> int:
    var = node.foreach_param
    try:
        value = getattr(flow, var)
    except AttributeError:
        why = f" (@catch caught {caught} before it could)" if caught else ""
        raise MetaflowlikeException(
            f'Step "{node.name}" fans out with foreach="{var}" but never set self.{var}{why}.',
            lineno=node.next_lineno,
        ) from None
    try:
        n = len(value) if hasattr(value, "__len__") else len(list(value))
    except TypeError:
        raise MetaflowlikeException(
            f'foreach="{var}" in step "{node.name}" needs an iterable, got {type(value).__name__}.',
            lineno=node.next_lineno,
        ) from None
    if n > spec.max_num_splits:
        raise MetaflowlikeException(
            f'foreach="{var}" in step "{node.name}" makes {n} splits, more than '
            f"--max-num-splits {spec.max_num_splits}.",
            lineno=node.next_lineno,
        )
    return n
