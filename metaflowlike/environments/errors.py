"""What can go wrong while preparing a step's Python environment, worded for users."""

from __future__ import annotations

from ..exceptions import MetaflowlikeException


class EnvironmentFailure(MetaflowlikeException):
    headline = "Environment error"


class ResolutionFailed(EnvironmentFailure):
    headline = "Cannot resolve the environment"


class PythonNotAvailable(EnvironmentFailure):
    headline = "Python version not available"


class MissingUv(EnvironmentFailure):
    headline = "Missing optional dependency"
