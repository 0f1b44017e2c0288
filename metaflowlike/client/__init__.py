"""The client API: read past runs from a notebook, as Metaflow's ``Flow('X').latest_run``.

Objects form the hierarchy ``Metaflow > Flow > Run > Step > Task > DataArtifact`` and
are *lazy*: building or iterating them lists folders and reads small JSON records only
when a property needs them, and artifact bytes are read only through ``.data``. A loop
over a thousand foreach tasks thus costs one folder listing, one task record and one
blob per task.

Run records never change once written, so they are cached per process; what can still
change while a run is in progress (task markers, folder listings) is
cached on the object that read it, so a fresh object sees new results. Which datastore
and namespace to read are process-wide settings, as in Metaflow.
"""

from .objects import Flow, Metaflow, Run, Step
from .settings import (
    MetaflowArtifactNotFound,
    MetaflowInvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    MetaflowObject,
    default_namespace,
    get_datastore,
    get_metadata,
    get_namespace,
    namespace,
    set_datastore,
)
from .task import DataArtifact, MetaflowArtifacts, MetaflowData, Task, TaskException

__all__ = [
    "Metaflow", "Flow", "Run", "Step", "Task", "DataArtifact", "MetaflowData",
    "MetaflowArtifacts", "MetaflowObject", "TaskException", "namespace", "get_namespace",
    "default_namespace", "get_metadata", "get_datastore", "set_datastore",
    "MetaflowNotFound", "MetaflowNamespaceMismatch", "MetaflowInvalidPathspec",
    "MetaflowArtifactNotFound",
]  # fmt: skip
