"""``FlowSpec``: the base class users write their flow as.

Building a flow object has no side effects except when it is created as the script's
entry point (``MyFlow()`` at the bottom of ``flow.py``), which hands over to the CLI,
as users of Metaflow expect. Inside a task, attribute reads fall through to the
artifacts the task inherited, loaded lazily and only when touched; attribute writes
become the task's new artifacts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .config_values import Config
from .datastore.records import ArtifactEntry
from .decorators import step  # noqa: F401  (re-exported for `from metaflowlike.flowspec import step`)
from .exceptions import (
    MergeArtifactsError,
    MetaflowlikeException,
    ReadOnlyAttribute,
    did_you_mean,
)
from .graph import RESERVED_NAMES
from .parameters import Parameter

_MISSING = object()


def _class_attribute(flow_cls: type, name: str) -> Any:
    """``name`` as the user's flow classes define it (FlowSpec's own attributes and
    properties excluded), read from the class ``__dict__``s so no descriptor runs."""
    for klass in flow_cls.__mro__:
        if klass is FlowSpec or klass is object:
            break
        if name in vars(klass):
            value = vars(klass)[name]
            return _MISSING if isinstance(value, property) else value
    return _MISSING


def _is_code(value: Any) -> bool:
    """Methods, static/class methods and other descriptors are not constants."""
    return callable(value) or hasattr(value, "__get__")


class ArtifactSource:
    """Where a flow object reads inherited artifacts from (set by the task runner)."""

    def __init__(
        self,
        manifest: dict[str, ArtifactEntry],
        load: Callable[[str], Any],
        foreach_stack: list[dict[str, Any]],
        input_loader: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.manifest = manifest
        self.load = load  # key -> object
        self.foreach_stack = foreach_stack
        self.input_loader = input_loader  # frame -> the foreach item
        self.loaded: dict[str, str] = {}  # name -> key of artifacts read so far


class FlowSpec:
    """Subclass this and decorate methods with ``@step``."""

    _source: ArtifactSource | None = None

    def __init__(self, use_cli: bool = True) -> None:
        if use_cli:
            from .cli import main

            main(type(self))

    # --- artifacts -----------------------------------------------------------------

    def _artifact(self, name: str) -> Any:
        if name in self.__dict__:
            return self.__dict__[name]
        src = self.__dict__.get("_source")
        if src is None or name not in src.manifest:
            raise AttributeError(name)
        key = src.manifest[name].key
        value = src.load(key)
        self.__dict__[name] = value
        src.loaded[name] = key
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        """Artifacts are set as attributes; refuse the names that cannot be artifacts."""
        if not name.startswith("_"):
            cls_attr = _class_attribute(type(self), name)
            why = None
            if name in RESERVED_NAMES:
                why = f"'{name}' is part of FlowSpec's API"
            elif getattr(cls_attr, "is_step", False) is True:
                why = f"'{name}' is a step of this flow"
            elif isinstance(cls_attr, (Parameter, Config)):
                kind = "Parameter" if isinstance(cls_attr, Parameter) else "Config"
                why = f"'{name}' is a {kind}, whose value is fixed for the whole run"
            elif cls_attr is not _MISSING and not _is_code(cls_attr):
                why = f"'{name}' is a constant of the flow class, read-only as in Metaflow"
            if why:
                raise ReadOnlyAttribute(
                    f"Cannot set self.{name}: {why}. Store the value under another name."
                )
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._artifact(name)
        except AttributeError:
            src = self.__dict__.get("_source")
            known = list(src.manifest) if src else []
            raise AttributeError(
                f"Flow {type(self).__name__} has no attribute or artifact '{name}'."
                + did_you_mean(name, known)
            ) from None

    def _artifact_names(self) -> list[str]:
        src = self.__dict__.get("_source")
        names = set(src.manifest) if src else set()
        names.update(n for n in self.__dict__ if not n.startswith("_"))
        return sorted(names)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """Iterate over (name, value) of the artifacts visible here."""
        for name in self._artifact_names():
            yield name, self._artifact(name)

    @property
    def name(self) -> str:
        """The flow's name (its class name)."""
        return type(self).__name__

    # --- transitions ---------------------------------------------------------------

    def next(
        self,
        *steps: Any,
        foreach: str | None = None,
        num_parallel: int | None = None,
        condition: str | None = None,
    ) -> None:
        """Declare the next step(s); the graph was parsed from this call already,
        here we only record what the running step asked for.

        A switch, ``self.next({"a": self.a, "b": self.b}, condition="route")``, goes to
        the one step whose key equals the value of ``self.route`` now."""
        if self.__dict__.get("_transition") is not None:
            raise MetaflowlikeException("self.next() was called twice in one step.")
        if condition is not None or (len(steps) == 1 and isinstance(steps[0], dict)):
            self.__dict__["_transition"] = ((self._switch_target(steps, condition),), None)
            return
        names = [_step_name(s) for s in steps]
        if num_parallel is not None:
            if isinstance(num_parallel, bool) or not isinstance(num_parallel, int):
                raise MetaflowlikeException(
                    f"num_parallel= must be an integer, got {num_parallel!r}."
                )
            if num_parallel < 1:
                raise MetaflowlikeException(
                    f"num_parallel= must be at least 1, got {num_parallel}."
                )
            self.__dict__["_num_parallel"] = num_parallel
        self.__dict__["_transition"] = (tuple(names), foreach)

    def _switch_target(self, steps: tuple[Any, ...], condition: str | None) -> str:
        if len(steps) != 1 or not isinstance(steps[0], dict):
            raise MetaflowlikeException(
                "condition= goes with one dict of cases: "
                'self.next({"a": self.a, "b": self.b}, condition="attr").'
            )
        if not isinstance(condition, str):
            raise MetaflowlikeException(
                "A switch needs condition= naming the artifact whose value picks the case, "
                f"got {condition!r}."
            )
        cases = steps[0]
        try:
            value = getattr(self, condition)
        except AttributeError:
            raise MetaflowlikeException(
                f'The switch condition "{condition}" names no artifact: set self.{condition} '
                "before calling self.next()."
            ) from None
        try:
            target = cases[value]
        except (KeyError, TypeError):
            known = ", ".join(repr(k) for k in cases)
            raise MetaflowlikeException(
                f"self.{condition} is {value!r}, which is none of the switch's cases ({known})."
            ) from None
        self.__dict__["_switch_value"] = value
        return _step_name(target)

    # --- foreach -------------------------------------------------------------------

    @property
    def index(self) -> int | None:
        stack = self._stack()
        return stack[-1]["index"] if stack else None

    @property
    def input(self) -> Any:
        stack = self._stack()
        if not stack:
            return None
        src = self.__dict__["_source"]
        return src.input_loader(stack[-1])

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """``[(index, num_splits, value), ...]`` from the outermost foreach inwards."""
        src = self.__dict__.get("_source")
        load = src.input_loader if src is not None else None
        return [(f["index"], f["num_splits"], load and load(f)) for f in self._stack()]

    def _stack(self) -> list[dict[str, Any]]:
        src = self.__dict__.get("_source")
        return src.foreach_stack if src else []

    # --- joins ---------------------------------------------------------------------

    def merge_artifacts(
        self,
        inputs: Iterable[FlowSpec],
        exclude: list[str] | None = None,
        include: list[str] | None = None,
    ) -> None:
        """Carry artifacts of the join's inputs forward.

        An artifact that every input holding it has with the same value (same content
        key: no bytes are read) is merged; one whose values differ is an error unless
        this join step already set it or it is excluded. The merge is all or nothing:
        when it raises, no artifact was merged (as in Metaflow)."""
        if exclude and include:
            raise MergeArtifactsError("merge_artifacts() takes exclude or include, not both.")
        inputs = list(inputs)
        exclude_set = set(exclude or [])
        candidates: dict[str, set[str]] = {}
        for inp in inputs:
            src = inp.__dict__.get("_source")
            for name, entry in (src.manifest if src else {}).items():
                candidates.setdefault(name, set()).add(entry.key)
        if include:
            missing = [n for n in include if n not in candidates]
            if missing:
                raise MergeArtifactsError(
                    f"merge_artifacts(include=...) names artifacts no input has: {', '.join(missing)}."
                )
            names = set(include)
        else:
            names = set(candidates) - exclude_set
        own = self.__dict__["_source"]
        merged: dict[str, ArtifactEntry] = {}
        conflicts = []
        for name in sorted(names):
            if name.startswith("_") or name in self.__dict__ or name in own.manifest:
                continue
            keys = candidates[name]
            if len(keys) > 1:
                conflicts.append(name)
                continue
            merged[name] = next(
                i.__dict__["_source"].manifest[name]
                for i in inputs
                if name in i.__dict__["_source"].manifest
            )
        if conflicts:
            # nothing is merged: the step sees the same artifacts as before the call
            raise MergeArtifactsError(
                "These artifacts have different values in the join's inputs: "
                f"{', '.join(conflicts)}. Set them in the join step, or pass them in "
                "exclude=[...] to merge_artifacts()."
            )
        own.manifest.update(merged)


def _step_name(target: Any) -> str:
    name = getattr(target, "__name__", None)
    if not isinstance(name, str) or not callable(target):
        raise MetaflowlikeException(f"self.next() takes steps such as self.a, got {target!r}.")
    return name


class Inputs:
    """The ``inputs`` of a join: a sequence of input views, also reachable by step name
    (``inputs.train_a``) after a static branch. Not a ``list`` subclass, so that a step
    may be called ``copy`` or ``count`` and still be reached by name."""

    def __init__(self, views: list[FlowSpec]) -> None:
        self._views = list(views)

    def __iter__(self) -> Iterator[FlowSpec]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def __getitem__(self, i: int) -> FlowSpec:
        return self._views[i]

    def __getattr__(self, name: str) -> FlowSpec:
        if name.startswith("__"):
            raise AttributeError(name)
        for inp in self._views:
            if inp.__dict__.get("_step_name") == name:
                return inp
        raise AttributeError(
            f"This join has no input from step '{name}'."
            + did_you_mean(name, [i.__dict__.get("_step_name", "") for i in self._views])
        )


class InputView:
    """Marks a read-only flow object that represents one input of a join."""


def input_view(flow_cls: type, step_name: str, source: ArtifactSource) -> FlowSpec:
    """A read-only object of the user's flow class over one input task's artifacts."""
    view_cls = _view_class(flow_cls)
    view: FlowSpec = object.__new__(view_cls)
    view.__dict__["_source"] = source
    view.__dict__["_step_name"] = step_name
    return view


_VIEW_CLASSES: dict[type, type] = {}


def _view_class(flow_cls: type) -> type:
    if flow_cls not in _VIEW_CLASSES:

        def __setattr__(self: object, name: str, value: Any) -> None:
            raise MetaflowlikeException(
                f"Cannot set '{name}' on an input of a join: inputs are read-only. "
                f"Set it on self instead."
            )

        _VIEW_CLASSES[flow_cls] = type(
            flow_cls.__name__, (InputView, flow_cls), {"__setattr__": __setattr__}
        )
    return _VIEW_CLASSES[flow_cls]
