"""The cache key of a task: everything that can change what the task computes.

A key is made of named *parts*, each a small ``{label: digest}`` table, so that
``cache explain`` can say which part (and which entry in it) differs from an earlier
task:

* ``code``: the step and the project code it reaches (``fingerprint.code_parts``);
* ``inputs``: the content key of every input artifact the task can read (all of them
  when ``fingerprint.self_reads`` cannot prove which ones it reads, and always every
  artifact of every input of a join);
* ``parameters``: the stored value of each parameter the task can read;
* ``decorators``: the step's decorators and their arguments (``@cache`` itself aside);
* ``environment``: Python version, the step's ``@pypi``/uv lock, the run's configs;
* ``foreach``: for each enclosing foreach, the item's content key (and its index when
  the step can read ``self.index``).

Random seeds are not special: a seed that is a parameter is part of the key, one drawn
inside the step is not (such a step should opt out with ``@cache(enabled=False)``).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from typing import Any

from ..datastore.content_store import content_key, pieces
from ..datastore.records import ArtifactEntry
from ..datastore.serialization import serialize
from ..decorators import step_decorators
from ..task import TaskSpec, _build_inputs, _Loader
from .fingerprint import Reads, code_parts, self_reads

PARTS = ("code", "inputs", "parameters", "decorators", "environment", "foreach")


def key_of(parts: dict[str, dict[str, str]]) -> str:
    """The cache key: a hash of the parts, independent of their order."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _stable(value: Any) -> Any:
    """A decorator argument as JSON that is the same in every process (an object
    without a stable text form counts by its type)."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _stable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _value_digest(value: Any) -> str:
    return content_key(pieces(serialize(value, "foreach item").chunks))


class KeyMaker:
    """Works out the key parts of a run's tasks, in the runtime process, from the same
    records the task itself will read (nothing is loaded but foreach items)."""

    def __init__(
        self,
        fds: Any,
        flow_cls: type,
        graph: Any,
        *,
        params: dict[str, ArtifactEntry],
        with_decorators: list,
        environment: dict | None,
        configs: dict | None,
        project_root: str,
    ) -> None:
        self.fds, self.flow_cls, self.graph = fds, flow_cls, graph
        self.params = params
        self.with_decorators = with_decorators
        self.environment = environment or {}
        self.configs = configs or {}
        self.project_root = project_root
        self.loader = _Loader(fds, graph.name)
        self._static: dict[str, tuple[dict, Reads]] = {}

    def _step_parts(self, step: str) -> tuple[dict, Reads]:
        """The parts that are the same for every task of ``step`` in this run."""
        if step not in self._static:
            reads = self_reads(self.flow_cls, step)
            decorators = {
                d.name: json.dumps(_stable(d.attributes), sort_keys=True)
                for d in step_decorators(self.graph[step], self.with_decorators)
                if d.in_cache_key
            }
            env = {
                "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
                "lock": str((self.environment.get("steps") or {}).get(step)),
            }
            if self.configs:
                env["configs"] = key_of({"configs": self.configs})[:32]
            params = {
                name: entry.key
                for name, entry in self.params.items()
                if reads.names is None or name in reads.names
            }
            static = {
                "code": code_parts(self.flow_cls, step, self.project_root),
                "decorators": decorators,
                "environment": env,
                "parameters": params,
            }
            self._static[step] = (static, reads)
        return self._static[step]

    def parts(self, spec: TaskSpec) -> tuple[dict[str, dict[str, str]], Any]:
        """The key parts of ``spec`` and its inherited ``ArtifactSource`` (what a clone
        of an earlier task starts from)."""
        static, reads = self._step_parts(spec.step_name)
        source, _, stack = _build_inputs(self.flow_cls, self.graph, spec, self.loader, self.params)
        node = self.graph[spec.step_name]
        readable: dict[str, str] = {}
        if node.is_join:  # every artifact of every input, one entry per input in order
            for i, path in enumerate(spec.input_paths):
                for name, entry in self.loader.record(path).artifacts.items():
                    if name not in self.params:
                        readable[f"{path.split('/')[1]}[{i}].{name}"] = entry.key
        else:
            for name, entry in source.manifest.items():
                if name not in self.params and (reads.names is None or name in reads.names):
                    readable[name] = entry.key
        needs_index = reads.names is None or bool({"index", "foreach_stack"} & reads.names)
        foreach: dict[str, str] = {}
        for depth, frame in enumerate(stack):
            label = f"{depth}:{frame['step']}"
            if frame.get("var") is None:
                foreach[label] = f"index {frame['index']}"
                continue
            item = _value_digest(self.loader.foreach_item(frame))
            foreach[label] = f"index {frame['index']} {item}" if needs_index else item
        parts = dict(static, inputs=readable, foreach=foreach)
        parts = {name: parts[name] for name in PARTS}
        return parts, source
