"""Metaflow names metaflowlike does not have yet: the one list, and the error for them.

``from metaflowlike import project`` should not end in a bare ``ImportError: cannot
import name``: the package ``__getattr__`` asks here *after* every real name (the
client, the step decorator plugins...) has been tried, so a name that gains a real
implementation stops being reported automatically, wherever it is added.
"""

from __future__ import annotations

from .exceptions import MetaflowlikeException

PORTING_GUIDE = "docs/porting.md"

#: Metaflow's top-level names that have no counterpart here yet
METAFLOW_NAMES = frozenset(
    {
        "Deployer",
        "NBDeployer",
        "USER_SKIP_STEP",
        "trigger",
        "trigger_on_finish",
        "exit_hook",
        "get_cards",
        "conda",
        "conda_base",
        "metadata",
        "default_metadata",
        "profile",
        "inspect_spin",
        "airflow_external_task_sensor",
        "airflow_s3_key_sensor",
    }
)


class NotSupportedYet(MetaflowlikeException, ImportError):
    """A Metaflow name imported from metaflowlike that it does not provide yet.

    An ``ImportError`` so that ``from metaflowlike import x`` and code guarding such an
    import with ``except ImportError`` behave as they would for any missing name."""

    headline = "Not supported yet"


def not_supported(name: str) -> NotSupportedYet | None:
    """The error to raise for Metaflow's ``name``, or None if Metaflow has no such name."""
    if name not in METAFLOW_NAMES:
        return None
    return NotSupportedYet(
        f'metaflowlike does not support Metaflow\'s "{name}" yet; see {PORTING_GUIDE} '
        "in the metaflowlike repository for what is missing and the alternatives."
    )
