"""``@cache``: opt one step in to caching, or out with ``@cache(enabled=False)``."""

from __future__ import annotations

from ..decorators import StepDecorator


class CacheDecorator(StepDecorator):
    """Reuse an earlier task of this step whose cache key is the same instead of running
    it again (``run --cache`` does this for every step). ``enabled=False`` opts a step
    with side effects out even under ``run --cache``."""

    name = "cache"
    defaults = {"enabled": True}
