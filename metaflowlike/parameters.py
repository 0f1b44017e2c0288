"""Run parameters: ``Parameter``, ``JSONType`` and ``IncludeFile``.

A parameter is declared as a class attribute of the flow and shows up as ``--name`` on
``run``. Its value is an artifact of every task; reading ``self.name`` in a step goes
through the descriptor below to that artifact.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .exceptions import InvalidParameter, ReadOnlyAttribute

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


class _JSONType:
    """Marker type: the parameter's command-line value is parsed as JSON."""

    name = "JSON"

    def __repr__(self) -> str:
        return "JSONType"


JSONType = _JSONType()


class Parameter:
    """A value given on the command line of ``run`` (``--name value``)."""

    def __init__(
        self,
        name: str,
        default: Any = None,
        type: Any = None,
        help: str | None = None,
        required: bool = False,
        show_default: bool = True,
        separator: str | None = None,
    ) -> None:
        self.name = name
        self.default = default
        self.help = help or ""
        self.required = required
        self.show_default = show_default
        #: ``separator=","`` makes the value a list: ``--ids 1,2,3`` gives ``[1, 2, 3]``
        #: for ``type=int``; each item is converted with ``type``
        self.separator = separator
        if type is None:
            sample = default[0] if separator and isinstance(default, list) and default else default
            type = _infer_type(sample)
        if type not in (str, int, float, bool, JSONType):
            raise InvalidParameter(
                f'Parameter "{name}": type must be str, int, float, bool or JSONType, not {type!r}.'
            )
        self.type = type
        self.attr_name = name  # replaced by __set_name__ with the class attribute name

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr_name = attr

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._artifact(self.attr_name)

    @property
    def type_name(self) -> str:
        return "JSON" if self.type is JSONType else self.type.__name__

    @property
    def env_var(self) -> str:
        """``METAFLOW_RUN_<NAME>``: the variable that sets this parameter, as in Metaflow."""
        return "METAFLOW_RUN_" + self.name.upper().replace("-", "_")

    def convert(self, raw: str) -> Any:
        """Parse a command-line string; errors name the parameter."""
        if self.separator:
            return [self._convert_one(item) for item in raw.split(self.separator)]
        return self._convert_one(raw)

    def _convert_one(self, raw: str) -> Any:
        try:
            if self.type is bool:
                low = raw.strip().lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
                raise ValueError("expected true or false")
            if self.type is JSONType:
                return json.loads(raw)
            return self.type(raw)
        except ValueError as e:
            raise InvalidParameter(
                f'Invalid value "{raw}" for parameter "{self.name}" (--{self.name}): '
                f"expected {self.type_name} ({e})."
            ) from None

    def default_value(self) -> Any:
        value = self.default
        if hasattr(value, "resolve_delayed"):  # config_expr(...): known once configs are read
            value = value.resolve_delayed()
        elif callable(value):
            value = value()
        if isinstance(value, str) and (self.type is JSONType or self.separator):
            return self.convert(value)
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        raise ReadOnlyAttribute(
            f'Cannot set self.{self.attr_name}: it is the Parameter "{self.name}", whose '
            "value is fixed for the whole run. Store the value under another name."
        )


class IncludeFile(Parameter):
    """A parameter whose value is a local file path; the file's *contents* are stored
    as the artifact, so the run keeps them even after the file changes or disappears."""

    def __init__(
        self,
        name: str,
        default: str | None = None,
        is_text: bool = True,
        encoding: str = "utf-8",
        help: str | None = None,
        required: bool = False,
    ) -> None:
        super().__init__(name, default=default, type=str, help=help, required=required)
        self.is_text = is_text
        self.encoding = encoding

    def convert(self, raw: str) -> Any:
        return self.read(raw)

    def default_value(self) -> Any:
        value = super().default_value()
        return None if value is None else self.read(value)

    def read(self, path: str) -> str | bytes:
        try:
            with open(os.path.expanduser(path), "rb") as f:
                data = f.read()
        except OSError as e:
            raise InvalidParameter(
                f'Cannot read file "{path}" for parameter "{self.name}": {e.strerror}.'
            ) from None
        return data.decode(self.encoding) if self.is_text else data


def flow_parameters(flow_cls: type) -> list[Parameter]:
    """The flow's parameters in declaration order, subclasses overriding bases."""
    params = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Parameter):
                params[attr] = value
    return list(params.values())


def _infer_type(default: Any) -> Any:
    if callable(default) or default is None:
        return str
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, (dict, list)):
        return JSONType
    return str
