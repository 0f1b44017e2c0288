"""``FlowMutator`` and ``StepMutator``: change a flow's decorators before it runs.

A mutator is a class applied like a decorator, to the flow class (``FlowMutator``) or
to a step (``StepMutator``), with or without arguments (``@robust``,
``@robust(times=2)``; the arguments go to its ``init``). Mutators run once the
configs are read and before the graph is built, in every process that builds the
graph (so a task started as ``python flow.py step ...`` sees the same decorators):
a flow mutator's ``pre_mutate`` and then ``mutate`` get a :class:`MutableFlow`, a
step mutator's ``mutate`` gets a :class:`MutableStep`.

What a mutator may do here: read the configs and parameters, list each step's
decorators, add decorators to steps (by name with ``"retry:times=2"`` spec, or a
decorator usable as ``@name``) and remove them. Adding or removing parameters and
flow-level decorators is not supported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .exceptions import MetaflowlikeException, did_you_mean


class MutatorError(MetaflowlikeException):
    headline = "Invalid mutator"


class MutableStep:
    """One step as a mutator sees it."""

    IGNORE = "ignore"  # adding a decorator the step already has: keep the existing one
    OVERRIDE = "override"  # ... replace it
    ERROR = "error"  # ... raise

    def __init__(self, name: str, func: Callable) -> None:
        self.name = name
        self._func = func

    def __repr__(self) -> str:
        return f"<MutableStep {self.name}>"

    @property
    def decorators(self) -> list:
        return self._func.__dict__.setdefault("decorators", [])

    @property
    def decorator_specs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(name, attributes)`` of each decorator of the step."""
        for deco in self.decorators:
            yield deco.name, dict(deco.attributes)

    def add_decorator(
        self,
        deco: Any,
        deco_kwargs: dict[str, Any] | None = None,
        duplicates: str = IGNORE,
    ) -> None:
        """Add ``deco`` (``"retry"``, ``"retry:times=2"``, or a decorator such as
        ``retry`` or a ``@user_step_decorator``) with ``deco_kwargs``."""
        instance = _instantiate(deco, deco_kwargs or {})
        existing = [d for d in self.decorators if d.name == instance.name]
        if existing:
            if duplicates == self.IGNORE:
                return
            if duplicates == self.ERROR:
                raise MutatorError(f'Step "{self.name}" already has @{instance.name}.')
            if duplicates != self.OVERRIDE:
                raise MutatorError(
                    f"duplicates= is MutableStep.IGNORE, OVERRIDE or ERROR, not {duplicates!r}."
                )
            self.decorators[:] = [d for d in self.decorators if d.name != instance.name]
        self.decorators.append(instance)

    def remove_decorator(self, name: str) -> bool:
        """Remove the step's ``@name``; True if it had one."""
        before = len(self.decorators)
        self.decorators[:] = [d for d in self.decorators if d.name != name]
        return len(self.decorators) != before


class MutableFlow:
    """The flow as a mutator sees it: its steps, configs and parameters."""

    def __init__(self, flow_cls: type) -> None:
        self._flow_cls = flow_cls

    @property
    def steps(self) -> Iterator[tuple[str, MutableStep]]:
        for name, func in _step_functions(self._flow_cls).items():
            yield name, MutableStep(name, func)

    @property
    def configs(self) -> Iterator[tuple[str, Any]]:
        from .config_values import _VALUES, _wrap, flow_configs

        for cfg in flow_configs(self._flow_cls):
            yield cfg._name, _wrap(_VALUES.get(cfg._attr_name))

    @property
    def parameters(self) -> Iterator[tuple[str, Any]]:
        from .parameters import flow_parameters

        for p in flow_parameters(self._flow_cls):
            yield p.name, p

    def step(self, name: str) -> MutableStep:
        steps = _step_functions(self._flow_cls)
        if name not in steps:
            raise MutatorError(f'The flow has no step "{name}".' + did_you_mean(name, steps))
        return MutableStep(name, steps[name])


class _Mutator:
    """Shared by both kinds: ``@M``, ``@M()`` and ``@M(args)`` all work."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._target: Any = None
        if len(args) == 1 and not kwargs and self._accepts(args[0]):
            self._target = args[0]
            self.init()
            self._attach(args[0])
        else:
            self.init(*args, **kwargs)

    def __call__(self, target: Any) -> Any:
        if self._target is not None or not self._accepts(target):
            raise MutatorError(f"@{type(self).__name__} decorates {self._what}, not {target!r}.")
        self._target = target
        self._attach(target)
        return target

    def init(self, *args: Any, **kwargs: Any) -> None:
        """Override to take the mutator's arguments."""

    # each kind says what it decorates (_what), recognises it (_accepts) and records
    # itself on it (_attach)
    _what = ""
    _accepts: Callable[[Any], bool]
    _attach: Callable[[Any], None]


class FlowMutator(_Mutator):
    """Subclass it and override ``pre_mutate`` and/or ``mutate``; apply it to the flow."""

    _what = "a flow class"

    def _accepts(self, target: Any) -> bool:
        return isinstance(target, type)

    def _attach(self, target: Any) -> None:
        # a list of this class only, so a subclass flow does not share a base's list
        target._flow_mutators = [*target.__dict__.get("_flow_mutators", []), self]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__new__(cls)
        if len(args) == 1 and not kwargs and isinstance(args[0], type):
            cls.__init__(obj, *args)
            return args[0]  # bare @Mutator above a class: the class itself
        return obj

    def pre_mutate(self, mutable_flow: MutableFlow) -> None:
        """Called first, with the configs already read."""

    def mutate(self, mutable_flow: MutableFlow) -> None:
        """Called after every flow mutator's ``pre_mutate``."""


class StepMutator(_Mutator):
    """Subclass it and override ``mutate``; apply it to a step (above ``@step``)."""

    _what = "a step"

    def _accepts(self, target: Any) -> bool:
        return callable(target) and not isinstance(target, type)

    def _attach(self, target: Any) -> None:
        target.__dict__.setdefault("step_mutators", []).append(self)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__new__(cls)
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], type):
            cls.__init__(obj, *args)
            return args[0]  # bare @Mutator above a step: the function itself
        return obj

    def mutate(self, mutable_step: MutableStep) -> None:
        """Called once the configs are read."""


def _instantiate(deco: Any, kwargs: dict[str, Any]) -> Any:
    from .decorators import StepDecorator, parse_with

    if isinstance(deco, str):
        instance = parse_with(deco)
        instance.attributes.update(kwargs)
        return instance
    cls = getattr(deco, "decorator_class", None)
    if isinstance(deco, type) and issubclass(deco, StepDecorator):
        cls = deco
    if cls is None:
        raise MutatorError(
            f"add_decorator() takes a decorator name or a step decorator, not {deco!r}."
        )
    return cls(**kwargs)


def _step_functions(flow_cls: type) -> dict[str, Callable]:
    steps: dict[str, Callable] = {}
    for klass in reversed(flow_cls.__mro__):
        for name, value in vars(klass).items():
            if callable(value) and getattr(value, "is_step", False) is True:
                steps[name] = value
    return steps


def apply_mutators(flow_cls: type) -> None:
    """Run the flow's mutators once in this process (they only add and remove
    decorators, so running them again would find nothing to do)."""
    if flow_cls.__dict__.get("_mutated"):
        return
    setattr(flow_cls, "_mutated", True)  # noqa: B010 - not declared on type
    mutators = [m for k in reversed(flow_cls.__mro__) for m in k.__dict__.get("_flow_mutators", [])]
    mutable = MutableFlow(flow_cls)
    for m in mutators:
        m.pre_mutate(mutable)
    for m in mutators:
        m.mutate(mutable)
    for name, func in _step_functions(flow_cls).items():
        for m in func.__dict__.get("step_mutators", []):
            m.mutate(MutableStep(name, func))
