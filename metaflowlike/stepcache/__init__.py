"""Input-addressed step caching: a task whose cache key matches an earlier successful
task is not executed; the earlier task's artifacts are cloned by reference.

``fingerprint`` hashes code and finds what a step reads, ``key`` assembles a task's key
from its parts, ``step_cache`` plugs lookups and records into the runtime,
``commands`` holds ``cache explain`` and ``cache clear``. See ``docs/caching.md``.
"""
