"""Loading real datasets for the recipes: local files, `save_to_disk` folders and hub ids, through `datasets`."""

from __future__ import annotations

import json
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


def read_rows(
    path: str, *, split: str = "train", check: Callable[[dict[str, Any]], str | None] | None = None
) -> list[dict[str, Any]]:
    """Every row of a JSON Lines / JSON file (line by line, so a bad line is named), or of any `load_split` source.

    Args:
        path (`str`): The file (or folder / hub id, read with `load_split`).
        split (`str`, *optional*, defaults to `"train"`): Split of a `load_split` source.
        check (`Callable`, *optional*): Called on each row; a returned message is an error naming that row's line.

    Raises:
        `ValueError`: naming the file and the line (as an editor numbers it) of a row that is not a JSON object or
            fails `check`.
    """
    located = _located_rows(path, split)
    if check is not None:
        for where, row in located:
            problem = check(row)
            if problem:
                raise ValueError(f"{where}: {problem}.")
    return [row for _, row in located]


def _located_rows(path: str, split: str) -> list[tuple[str, dict[str, Any]]]:
    """`(where, row)` for every row of `path`: `path:line` for JSON Lines, `path: item N` / `path: row N` otherwise."""
    if os.path.isfile(path) and path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            head = f.read(1024).lstrip()
        if head.startswith("["):  # one JSON array of objects
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            bad = next((i for i, row in enumerate(data, 1) if not isinstance(row, dict)), None)
            if bad is not None:
                raise ValueError(f"{path}: item {bad} of the array is not a JSON object.")
            return [(f"{path}: item {i}", row) for i, row in enumerate(data, 1)]
    if os.path.isfile(path) and path.endswith((".jsonl", ".json")):
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}).") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{n}: expected a JSON object per line, got {type(row).__name__}.")
                rows.append((f"{path}:{n}", row))
        return rows
    return [(f"{path}: row {n}", row) for n, row in enumerate(load_split(path, split).to_list(), 1)]
