"""``Config`` and ``config_expr``: values read when a run starts, usable in decorators.

A ``Config`` is declared as a class attribute, like a ``Parameter``, but its value is
known *before* the graph is built, so it may appear in decorator arguments
(``@retry(times=cfg.retries)``, ``@project(name=cfg.project)``) as well as in step code
(``self.cfg.lr``). At class-definition time ``cfg.retries`` is only a *delayed*
expression; :func:`apply_configs` evaluates every one of them once the values are
read from ``--config NAME FILE``, ``--config-value NAME VALUE`` or the defaults.

The values are stored in the run record, so ``resume`` and every task of the run
(forked or started as ``python flow.py step ...`` on another machine) see the very
values the run started with, even if the file changed since.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .exceptions import MetaflowlikeException, ReadOnlyAttribute, did_you_mean


class ConfigError(MetaflowlikeException):
    headline = "Invalid config"


#: attribute name -> value of every Config of the flow being run (this process)
_VALUES: dict[str, Any] = {}


class ConfigValue(Mapping):
    """A read-only view of a config: ``cfg.a.b``, ``cfg["a"]["b"]``, ``cfg.to_dict()``."""

    def __init__(self, data: Mapping) -> None:
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return _wrap(self._data[name])
        except KeyError:
            raise AttributeError(
                f"The config has no key '{name}'." + did_you_mean(name, self._data)
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise ReadOnlyAttribute(f"Cannot set '{name}': config values are read-only.")

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConfigValue):
            other = other._data
        return isinstance(other, Mapping) and dict(other) == self._data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ConfigValue({self._data!r})"

    def __reduce__(self) -> tuple:
        return (ConfigValue, (self._data,))

    def to_dict(self) -> dict:
        """A plain, mutable deep copy."""
        return copy.deepcopy(self._data)


def _wrap(value: Any) -> Any:
    if isinstance(value, Mapping) and not isinstance(value, ConfigValue):
        return ConfigValue(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class DelayedEvaluator:
    """An expression over configs, evaluated once their values are known.

    Made by attribute or item access on a ``Config`` at class-definition time
    (``cfg.train.epochs``) or by :func:`config_expr` (any Python expression in which
    the flow's configs are names)."""

    def __init__(self, expr: str, root: Config | None = None, path: tuple = ()) -> None:
        self._expr, self._root, self._path = expr, root, path

    def __getattr__(self, name: str) -> DelayedEvaluator:
        if name.startswith("_"):
            raise AttributeError(name)
        return DelayedEvaluator(f"{self._expr}.{name}", self._root, (*self._path, name))

    def __getitem__(self, key: Any) -> DelayedEvaluator:
        return DelayedEvaluator(f"{self._expr}[{key!r}]", self._root, (*self._path, [key]))

    def __repr__(self) -> str:
        return f"config_expr({self._expr!r})"

    def resolve_delayed(self) -> Any:
        if self._root is not None:
            return self._walk()
        namespace = {name: _wrap(value) for name, value in _VALUES.items()}
        try:
            return eval(self._expr, {"__builtins__": __builtins__}, namespace)  # noqa: S307
        except Exception as e:
            raise ConfigError(
                f"config_expr({self._expr!r}) failed: {type(e).__name__}: {e}. "
                f"Configs in scope: {', '.join(sorted(namespace)) or 'none'}."
            ) from None

    def _walk(self) -> Any:
        root = self._root
        assert root is not None
        value: Any = _VALUES.get(root._attr_name)
        if value is None and root._attr_name not in _VALUES:
            raise ConfigError(f'The config "{root._name}" is used before its value was read.')
        for step in self._path:
            try:
                value = value[step[0]] if isinstance(step, list) else _wrap(value)[step]
            except (KeyError, IndexError, TypeError):
                key = step[0] if isinstance(step, list) else step
                known = list(value) if isinstance(value, Mapping) else []
                raise ConfigError(
                    f'{self._expr}: the config "{root._name}" has no key {key!r}.'
                    + did_you_mean(str(key), known)
                ) from None
        return _wrap(value)


def config_expr(expr: str) -> DelayedEvaluator:
    """``config_expr("cfg.lr * 2")``: a Python expression over the flow's configs,
    usable wherever a config may be (decorator arguments, parameter defaults)."""
    if not isinstance(expr, str):
        raise ConfigError(f"config_expr() takes a string expression, not {expr!r}.")
    return DelayedEvaluator(expr)


def resolve(value: Any) -> Any:
    """``value`` with every delayed expression in it (also inside dicts and lists) evaluated."""
    if isinstance(value, DelayedEvaluator):
        return value.resolve_delayed()
    if isinstance(value, dict):
        return {resolve(k): resolve(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(resolve(v) for v in value)
    return value


def _has_delayed(value: Any) -> bool:
    if isinstance(value, DelayedEvaluator):
        return True
    if isinstance(value, dict):
        return any(_has_delayed(k) or _has_delayed(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_delayed(v) for v in value)
    return False


class Config:
    """A configuration read when the run starts: ``cfg = Config("cfg", default="cfg.json")``.

    ``default`` is a file path, ``default_value`` a dict (or text for ``parser``);
    ``parser`` turns the text into a dict (JSON by default; a callable or a dotted
    name such as ``"tomllib.loads"``). ``--config NAME FILE`` and
    ``--config-value NAME TEXT`` override them."""

    def __init__(
        self,
        name: str,
        default: str | None = None,
        default_value: Any = None,
        help: str | None = None,
        required: bool = False,
        parser: str | Callable[[str], Any] | None = None,
    ) -> None:
        if default is not None and default_value is not None:
            raise ConfigError(f'Config "{name}": give default (a file) or default_value, not both.')
        self._name = name
        self._default = default
        self._default_value = default_value
        self._help = help or ""
        self._required = required
        self._parser = parser
        self._attr_name = name  # replaced by __set_name__ with the class attribute name

    def __set_name__(self, owner: type, attr: str) -> None:
        self._attr_name = attr

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        if self._attr_name not in _VALUES:
            raise ConfigError(f'The config "{self._name}" has no value in this process.')
        return _wrap(_VALUES[self._attr_name])

    def __set__(self, obj: Any, value: Any) -> None:
        raise ReadOnlyAttribute(
            f'Cannot set self.{self._attr_name}: it is the Config "{self._name}", whose value '
            "is fixed for the whole run. Store the value under another name."
        )

    def __getattr__(self, name: str) -> DelayedEvaluator:
        if name.startswith("_"):
            raise AttributeError(name)
        # every public name is a key of the config: internals all start with "_"
        return DelayedEvaluator(f"{self._name}.{name}", self, (name,))

    def __getitem__(self, key: Any) -> DelayedEvaluator:
        return DelayedEvaluator(f"{self._name}[{key!r}]", self, ([key],))

    def __repr__(self) -> str:
        return f"Config({self._name!r})"

    # --- reading -------------------------------------------------------------------

    def _parse(self, text: str, where: str) -> Any:
        parser = self._parser or json.loads
        if isinstance(parser, str):
            parser = _named_function(parser, self._name)
        try:
            value = parser(text)
        except Exception as e:
            raise ConfigError(
                f'Config "{self._name}" from {where} cannot be parsed: {type(e).__name__}: {e}.'
            ) from None
        _check_storable(self._name, value, where)
        return value

    def _read_file(self, path: str) -> Any:
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(
                f'Cannot read the file "{path}" of config "{self._name}": {e.strerror}.'
            ) from None
        return self._parse(text, f'file "{path}"')

    def _default_data(self) -> Any:
        if self._default is not None:
            return self._read_file(self._default)
        value = self._default_value
        if callable(value):
            value = value()
        if isinstance(value, str):
            return self._parse(value, "its default_value")
        if value is None and self._required:
            raise ConfigError(
                f'The config "{self._name}" is required: pass --config {self._name} FILE '
                f"or --config-value {self._name} VALUE before the command."
            )
        _check_storable(self._name, value, "its default_value")
        return value


def _named_function(dotted: str, config_name: str) -> Callable[[str], Any]:
    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(
            f'The parser "{dotted}" of config "{config_name}" not found: {e}.'
        ) from None


def _check_storable(name: str, value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f'Config "{name}" from {where} must be made of JSON-like values (dict, list, '
            f"str, numbers, booleans, None) so the run can store it: {e}."
        ) from None


def flow_configs(flow_cls: type) -> list[Config]:
    found: dict[str, Config] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Config):
                found[attr] = value
    return list(found.values())


def read_configs(
    flow_cls: type,
    files: list[tuple[str, str]] | tuple = (),
    values: list[tuple[str, str]] | tuple = (),
) -> dict[str, Any]:
    """Each config's value (attribute name -> plain data) from the command line or its
    default; every name given must be a config of the flow."""
    configs = {c._name: c for c in flow_configs(flow_cls)}
    given: dict[str, Any] = {}
    for option, pairs in (("--config", files), ("--config-value", values)):
        for name, arg in pairs:
            cfg = configs.get(name)
            if cfg is None:
                raise ConfigError(
                    f'{option} {name}: the flow {flow_cls.__name__} has no Config "{name}". '
                    f"Configs: {', '.join(configs) or 'none'}." + did_you_mean(name, configs)
                )
            if name in given:
                raise ConfigError(f'The config "{name}" is given twice on the command line.')
            if option == "--config":
                given[name] = cfg._read_file(arg)
            else:
                given[name] = cfg._parse(arg, "--config-value")
    return {
        c._attr_name: given[c._name] if c._name in given else c._default_data()
        for c in configs.values()
    }


def apply_configs(flow_cls: type, values: dict[str, Any]) -> None:
    """Make ``values`` the configs of this process, run the flow's mutators, and
    evaluate every delayed expression in the decorators of the flow and of its steps."""
    from .mutators import apply_mutators

    _VALUES.clear()
    _VALUES.update(values)
    apply_mutators(flow_cls)  # mutators read the configs and may add decorators using them
    for deco in _decorators(flow_cls):
        original = deco.__dict__.get("_unresolved_attributes")
        if original is None:
            if not _has_delayed(deco.attributes):
                continue
            original = deco.__dict__["_unresolved_attributes"] = dict(deco.attributes)
        deco.attributes = {k: resolve(v) for k, v in original.items()}


def _decorators(flow_cls: type) -> Iterator[Any]:
    seen: set[int] = set()
    for klass in flow_cls.__mro__:
        for value in vars(klass).values():
            for deco in list(getattr(value, "decorators", None) or []) if callable(value) else []:
                if id(deco) not in seen and hasattr(deco, "attributes"):
                    seen.add(id(deco))
                    yield deco
    for deco in getattr(flow_cls, "_flow_decorators", {}).values():
        if id(deco) not in seen:
            seen.add(id(deco))
            yield deco
