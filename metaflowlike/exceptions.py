"""One exception root for everything metaflowlike raises on purpose.

A ``MetaflowlikeException`` is a *user* mistake or an environmental failure: the CLI
prints its ``headline`` and message as one paragraph, without a traceback. Anything
else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MetaflowlikeException(Exception):
    headline = "Error"

    def __init__(self, msg: str = "", lineno: int | None = None) -> None:
        super().__init__(msg)
        self.message = msg
        self.lineno = lineno

    def __str__(self) -> str:
        return self.message


class InvalidGraph(MetaflowlikeException):
    headline = "Invalid flow graph"


class InvalidParameter(MetaflowlikeException):
    headline = "Invalid parameter"


class ReadOnlyAttribute(MetaflowlikeException, AttributeError):
    """Assigning to a Parameter or a class constant of the flow (an AttributeError, as in
    Metaflow, so code that guards with ``except AttributeError`` ports)."""

    headline = "Read-only attribute"


class UnknownDecorator(MetaflowlikeException):
    headline = "Unknown decorator"


class UnserializableArtifact(MetaflowlikeException):
    headline = "Artifact cannot be saved"


class ArtifactLoadError(MetaflowlikeException):
    """An artifact's bytes are intact but cannot be unpickled in this environment.

    Raised with the unpickling error alone; :meth:`naming` adds which artifact of which
    task it was, once a caller knows."""

    headline = "Artifact cannot be loaded"

    def naming(self, name: str, task: str, type_name: str = "") -> ArtifactLoadError:
        of_type = f" of type {type_name}" if type_name else ""
        return ArtifactLoadError(
            f'Artifact "{name}"{of_type} from task {task} cannot be unpickled here: '
            f"{self.message}. It needs the same modules and classes as the task that "
            f"stored it: install them, or make them importable, and try again."
        )


class CorruptArtifact(MetaflowlikeException):
    headline = "Corrupt artifact"


class DamagedBlob(CorruptArtifact):
    """A blob's bytes do not decode or do not match its key (not merely missing, nor
    written by another version): the content store sets it aside so that it heals."""


class MergeArtifactsError(MetaflowlikeException):
    headline = "Conflicting artifacts in merge_artifacts"


class NotFound(MetaflowlikeException):
    headline = "Not found"


class DamagedRecordWarning(UserWarning):
    """A run or task record in the datastore is damaged: it is skipped, as if absent."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' Did you mean "x"?' when a close match exists, else ''."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(f'"{c}"' for c in close) + "?"
