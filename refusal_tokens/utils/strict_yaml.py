"""Strict YAML reading, shared by the settings files and the command-line parser: a key given twice is an error
(plain YAML keeps the last one silently), and errors name the file and line. Light on purpose (PyYAML only), so the
core's file readers import no `transformers`."""

from __future__ import annotations

import os
from typing import Any

import yaml


class ConfigError(ValueError):
    """A user error in a configuration file or the command line; the message is one line naming what to fix."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"{getattr(loader, 'path', 'YAML')}:{key_node.start_mark.line + 1}: key {key!r} is given twice "
                f"(first on line {seen[key]}); keep one."
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | os.PathLike, *, mapping: bool = True) -> Any:
    """Read a YAML (or JSON) file strictly: duplicate keys are errors, and with `mapping` the top level must be one.

    Raises:
        `ConfigError`: naming the file (and line) for a missing file, a YAML syntax error or a duplicate key.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such file.")
    try:
        with open(path, encoding="utf-8") as f:
            loader = _UniqueKeyLoader(f)
            loader.path = path
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', None) or e}).") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from None
    if mapping and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}.")
    return data
