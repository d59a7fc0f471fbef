"""Importing a user's callable named as `package.module:function`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def import_callable(spec: str) -> Callable[..., Any]:
    """Import `package.module:function` (or `package.module.function`) and return the callable.

    This imports and runs the named module's code, as `trust_remote_code=True` does in transformers: name only
    modules you trust.

    Raises:
        `ValueError`: naming the spec if the module or attribute is missing or not callable.

    Example:

    ```python
    >>> import_callable("os.path:basename")("/tmp/data.jsonl")
    'data.jsonl'
    ```
    """
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"classifier={spec!r}: write it as 'package.module:function'.")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"classifier={spec!r}: cannot import it ({e}).") from None
    if not callable(obj):
        raise ValueError(f"classifier={spec!r} is not callable.")
    return obj
