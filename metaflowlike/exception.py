"""Metaflow's exception names, bound to the exceptions metaflowlike raises.

Code written for Metaflow catches ``metaflow.exception.MetaflowNotFound`` and friends;
after the import-line change it catches the same situations here, because each name
below *is* the class we raise (not a look-alike), so ``except`` clauses keep working.
"""

from __future__ import annotations

from .client.settings import (
    MetaflowArtifactNotFound,
    MetaflowInvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
)
from .exceptions import (
    InvalidParameter,
    MergeArtifactsError,
    MetaflowlikeException,
    UnknownDecorator,
)
from .tagging import MetaflowTaggingError

#: the root: everything metaflowlike raises on purpose
MetaflowException = MetaflowlikeException


class MetaflowInternalError(MetaflowlikeException):
    """An invariant of metaflowlike itself was broken (a bug, not a user mistake)."""

    headline = "Internal error"


#: merge_artifacts() met an artifact whose values differ between the join's inputs
UnhandledInMergeArtifactsException = MergeArtifactsError
#: merge_artifacts(include=[...]) named an artifact no input has
MissingInMergeArtifactsException = MergeArtifactsError
#: a step decorator name that no plugin provides
UnknownStepDecorator = UnknownDecorator
#: a parameter value that cannot be converted to the parameter's type
ParameterFieldTypeMismatch = InvalidParameter

__all__ = [
    "MetaflowException",
    "MetaflowInternalError",
    "MetaflowNotFound",
    "MetaflowNamespaceMismatch",
    "MetaflowInvalidPathspec",
    "MetaflowArtifactNotFound",
    "MetaflowTaggingError",
    "UnhandledInMergeArtifactsException",
    "MissingInMergeArtifactsException",
    "UnknownStepDecorator",
    "ParameterFieldTypeMismatch",
]
