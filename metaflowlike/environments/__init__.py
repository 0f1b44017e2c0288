"""Per-step Python environments: ``@pypi``, ``@pypi_base`` and ``--environment``.

``--environment=pypi`` runs each step in a virtualenv holding the packages its
``@pypi``/``@pypi_base`` declare; ``--environment=uv`` runs every step in one built
from the project's ``uv.lock``. Environments are resolved and built with uv, keyed by
the hash of the resolved lock, cached across runs, and saved with the run.

Modules: ``request`` (what a step asks for), ``lock`` (resolution and its cache),
``build`` (building environments into the cache), ``plan`` (a run's environments),
``commands`` (the CLI), ``bootstrap`` (rebuilding from a saved lock on a remote machine).
"""
