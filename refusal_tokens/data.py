"""Loading real datasets for the recipes: local files, `save_to_disk` folders and hub ids, through `datasets`."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

_FILE_BUILDERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}


def _source_kind(name: str) -> tuple[str, str | None]:
    """`("file", builder)` for a local data file, `("disk", None)` for a `save_to_disk` folder, else `("hub", None)`.

    Raises:
        `ValueError`: for a local file of an unsupported type.
    """
    if os.path.isfile(name):
        ext = os.path.splitext(name)[1].lower()
        if ext not in _FILE_BUILDERS:
            raise ValueError(f"{name!r}: unsupported file type {ext!r}; use one of {sorted(_FILE_BUILDERS)}.")
        return "file", _FILE_BUILDERS[ext]
    if os.path.isdir(name) and (
        os.path.isfile(os.path.join(name, "dataset_dict.json")) or os.path.isfile(os.path.join(name, "state.json"))
    ):
        return "disk", None
    return "hub", None


def load_dataset_splits(
    name: str,
    *,
    config: str | None = None,
    train_split: str = "train",
    test_split: str | None = "test",
    test_size: float = 0.1,
    seed: int = 0,
) -> dict[str, Any]:
    """Load a train and a held-out split from a local file, a `save_to_disk` folder or a hub dataset id.

    A local file has only a train split, and a dataset may have no `test_split`: then `test_size` of the train rows
    are held out (seeded), so there is always a test split to evaluate on.

    Args:
        name (`str`): `data.jsonl`, `data.csv`, `data.parquet`, a folder, or a hub id such as `allenai/coconot`.
        config (`str`, *optional*): Hub dataset configuration.
        train_split (`str`, *optional*, defaults to `"train"`): Split to train on.
        test_split (`str`, *optional*, defaults to `"test"`): Held-out split, if the dataset has it.
        test_size (`float`, *optional*, defaults to 0.1): Fraction held out when there is no test split.
        seed (`int`, *optional*, defaults to 0): Seed of that hold-out.

    Returns:
        `dict` with `"train"` and `"test"` `datasets.Dataset`s.

    Raises:
        `ValueError`: for an unsupported file type or a missing train split, naming the available splits.
    """
    import datasets

    kind, builder = _source_kind(name)
    if kind == "file":
        loaded = datasets.load_dataset(builder, data_files={"train": name})
    elif kind == "disk":
        loaded = datasets.load_from_disk(name)
        if isinstance(loaded, datasets.Dataset):
            loaded = datasets.DatasetDict({"train": loaded})
    else:
        loaded = datasets.load_dataset(name, config)  # a data folder or a hub id
    if train_split not in loaded:
        raise ValueError(f"dataset {name!r} has no split {train_split!r}; available: {sorted(loaded)}.")
    if test_split and test_split in loaded and test_split != train_split:
        return {"train": loaded[train_split], "test": loaded[test_split]}
    parts = loaded[train_split].train_test_split(test_size=test_size, seed=seed)
    return {"train": parts["train"], "test": parts["test"]}


def import_callable(spec: str) -> Callable[..., Any]:
    """Import `module.path:function` (or `module.path.function`) and return the callable.

    Raises:
        `ValueError`: naming the spec if the module or attribute is missing or not callable.
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


def load_split(name: str, split: str = "train", config: str | None = None, streaming: bool = False) -> Any:
    """One split of a local file (JSON/JSONL/CSV/parquet), a `save_to_disk` folder or a hub dataset id.

    Raises:
        `ValueError`: for an unsupported file type or a missing split, naming the available ones.
    """
    import datasets

    kind, builder = _source_kind(name)
    if kind == "file":
        return datasets.load_dataset(builder, data_files={split: name}, split=split, streaming=streaming)
    if kind == "disk":
        loaded = datasets.load_from_disk(name)
        if isinstance(loaded, datasets.Dataset):
            return loaded
        if split not in loaded:
            raise ValueError(f"{name!r} has no split {split!r}; available: {sorted(loaded)}.")
        return loaded[split]
    return datasets.load_dataset(name, config, split=split, streaming=streaming)
