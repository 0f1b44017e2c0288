"""metaflowlike: write an ML workflow once as a Python class; run it anywhere.

Flows port from Metaflow by changing the import line::

    from metaflowlike import FlowSpec, step, Parameter, current

Only the authoring API is imported eagerly; the client (``Flow``, ``Run``...) and the
step decorators load on first use so that ``import metaflowlike`` stays fast.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from .config_values import Config, ConfigValue, config_expr
from .current import current
from .decorators import StepDecorator, TaskContext, make_decorator, step
from .flowspec import FlowSpec
from .mutators import FlowMutator, StepMutator
from .parameters import IncludeFile, JSONType, Parameter
from .project_decorator import project
from .user_decorators import user_step_decorator

__version__ = "0.1.0"

_CLIENT_NAMES = {
    "Flow",
    "Run",
    "Step",
    "Task",
    "DataArtifact",
    "Metaflow",
    "namespace",
    "get_namespace",
    "default_namespace",
    "get_metadata",
    "get_datastore",
    "set_datastore",
}

#: the model registry (``from metaflowlike import Model``), loaded on first use
_MODEL_NAMES = {"Model", "register_artifact", "set_alias", "alias_history", "list_models"}

#: loaded on first use: name -> module
_LAZY = {
    "Runner": "metaflowlike.runner",
    "NBRunner": "metaflowlike.runner",
    "ExecutingRun": "metaflowlike.runner",
    "S3": "metaflowlike_aws.s3_tool",
}

__all__ = [
    "FlowSpec",
    "Config",
    "ConfigValue",
    "config_expr",
    "project",
    "user_step_decorator",
    "FlowMutator",
    "StepMutator",
    *sorted(_LAZY),
    "step",
    "Parameter",
    "JSONType",
    "IncludeFile",
    "current",
    "StepDecorator",
    "TaskContext",
    "make_decorator",
    *sorted(_CLIENT_NAMES),
    *sorted(_MODEL_NAMES),
]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _CLIENT_NAMES:
        return getattr(importlib.import_module(".client", __name__), name)
    if name in _MODEL_NAMES:
        return getattr(importlib.import_module(".tracking.model", __name__), name)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if _is_submodule(name):
        # `from . import config` asks here before importing the submodule: say no
        # quickly instead of scanning every installed package's entry points.
        raise AttributeError(name)
    # Step decorators (`from metaflowlike import retry`) come from the plugin registry.
    plugins = importlib.import_module(".plugins", __name__)

    if name in plugins.names(plugins.STEP_DECORATORS):
        deco = make_decorator(plugins.load(plugins.STEP_DECORATORS, name, "decorator"))
        globals()[name] = deco
        return deco
    if name in plugins.names(plugins.FLOW_DECORATORS):  # applied to the class: @pypi_base
        deco = plugins.load(plugins.FLOW_DECORATORS, name, "decorator")
        globals()[name] = deco
        return deco
    # Last: a Metaflow name with no real implementation here gets a clear error.
    missing = importlib.import_module(".unsupported", __name__).not_supported(name)
    if missing is not None:
        raise missing
    raise AttributeError(f"module 'metaflowlike' has no attribute '{name}'")


def _is_submodule(name: str) -> bool:
    here = os.path.dirname(__file__)
    return os.path.exists(os.path.join(here, name + ".py")) or os.path.isdir(
        os.path.join(here, name)
    )
