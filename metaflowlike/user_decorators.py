"""``user_step_decorator``: Metaflow's custom step decorators written as generators.

::

    @user_step_decorator
    def timed(step_name, flow, inputs=None, attributes=None):
        start = time.time()
        yield                      # the step's code runs here
        flow.seconds = time.time() - start

Code before ``yield`` runs before the step, code after it once the step succeeded; a
``try``/``except`` around ``yield`` sees the step's exception (re-raise it, or swallow
it to let the task succeed). ``@timed(key=value)`` passes ``attributes``; ``inputs`` is
the join's inputs in a join step. Replacing the step's code by yielding a function
(Metaflow's advanced pattern) is not supported.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from .decorators import StepDecorator, TaskContext, make_decorator
from .exceptions import MetaflowlikeException


class UserDecoratorError(MetaflowlikeException):
    headline = "Invalid user step decorator"


class _UserStepDecorator(StepDecorator):
    """Adapts a generator function to the task hooks; any keyword is an attribute."""

    generator: Callable[..., Any]

    def __init__(self, **attributes: Any) -> None:
        self.attributes = dict(attributes)

    def task_decorate(self, func: Callable[[], None], *, task: TaskContext) -> Callable[[], None]:
        gen_func = type(self).generator

        @functools.wraps(func)
        def run() -> None:
            gen = gen_func(
                task.step_name, task.flow, inputs=task.inputs, attributes=dict(self.attributes)
            )
            if not inspect.isgenerator(gen):
                raise UserDecoratorError(
                    f"@{self.name} must be a generator function (with one `yield`)."
                )
            try:
                replacement = next(gen)
            except StopIteration:
                raise UserDecoratorError(
                    f"@{self.name} returned without reaching `yield`."
                ) from None
            if replacement is not None:
                raise UserDecoratorError(
                    f"@{self.name} yielded {replacement!r}: replacing a step's code from a "
                    "decorator is not supported by metaflowlike yet; use a bare `yield`."
                )
            try:
                func()
            except Exception as e:
                try:
                    gen.throw(e)
                except StopIteration:
                    return  # the decorator handled the failure
                raise UserDecoratorError(f"@{self.name} must `yield` only once.") from None
            try:
                next(gen)
            except StopIteration:
                return
            raise UserDecoratorError(f"@{self.name} must `yield` only once.")

        return run


def user_step_decorator(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a generator function into a step decorator usable as ``@name`` and
    ``@name(key=value)``."""
    if not inspect.isgeneratorfunction(func):
        raise UserDecoratorError(
            f"@user_step_decorator needs a generator function; {func.__name__} has no `yield`."
        )
    cls = type(
        f"UserStepDecorator_{func.__name__}",
        (_UserStepDecorator,),
        {"name": func.__name__, "generator": staticmethod(func), "__doc__": func.__doc__},
    )
    return make_decorator(cls)
