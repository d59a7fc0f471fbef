"""Shared by the bench scripts: the default device, and writing a run's figures as JSON (for `bench/results/`)."""

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


def default_device() -> str:
    """`cuda` when a GPU is visible, else `cpu`: where a bench runs when `--device` is not given."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
