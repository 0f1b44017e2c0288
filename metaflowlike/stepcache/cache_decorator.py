"""``@cache``: opt one step in to caching, or out with ``@cache(enabled=False)``."""

from __future__ import annotations

from typing import Any

from ..decorators import StepDecorator
from ..exceptions import MetaflowlikeException


class CacheDecorator(StepDecorator):
    """Reuse an earlier task of this step whose cache key is the same instead of running
    it again (``run --cache`` does this for every step). ``enabled=False`` opts a step
    with side effects out even under ``run --cache``."""

    name = "cache"
    defaults = {"enabled": True}
    # where the cache is used cannot change what a task computes
    in_cache_key = False

    def caches(self) -> bool | None:
        return bool(self.attributes["enabled"])

    def step_init(self, *, flow_cls: type, graph: Any, step_name: str) -> None:
        enabled = self.attributes["enabled"]
        if not isinstance(enabled, bool):
            raise MetaflowlikeException(
                f'@cache(enabled={enabled!r}) on step "{step_name}": enabled takes True or False.'
            )
