"""Shared by the bench scripts: write a run's figures as JSON (for `bench/results/`)."""

from __future__ import annotations

import json
import os
from typing import Any


def write_results(path: str | None, result: Any) -> None:
    """Write `result` as indented JSON to `path` (creating its folder); nothing when `path` is None."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
