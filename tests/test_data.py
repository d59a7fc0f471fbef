"""Loading real datasets for the recipes: local files, save_to_disk folders, held-out splits, clear errors."""

import json

import pytest
from datasets import Dataset, DatasetDict

from refusal_tokens.data.loading import load_dataset_splits, load_split

ROWS = [{"prompt": f"p{i}", "completion": "c", "refusal_label": "respond"} for i in range(20)]


def test_local_file_gets_a_seeded_held_out_split(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    a = load_dataset_splits(str(path), test_size=0.25, seed=3)
    b = load_dataset_splits(str(path), test_size=0.25, seed=3)
    assert (len(a["train"]), len(a["test"])) == (15, 5)
    assert a["test"]["prompt"] == b["test"]["prompt"]
    assert len(load_split(str(path))) == 20


def test_save_to_disk_folder_keeps_its_test_split(tmp_path):
    DatasetDict({"train": Dataset.from_list(ROWS[:12]), "test": Dataset.from_list(ROWS[12:])}).save_to_disk(
        tmp_path / "dd"
    )
    splits = load_dataset_splits(str(tmp_path / "dd"))
    assert (len(splits["train"]), len(splits["test"])) == (12, 8)
    assert len(load_split(str(tmp_path / "dd"), "test")) == 8
    with pytest.raises(ValueError, match="no split 'validation'; available: \\['test', 'train'\\]"):
        load_split(str(tmp_path / "dd"), "validation")
    with pytest.raises(ValueError, match="no split 'dev'"):
        load_dataset_splits(str(tmp_path / "dd"), train_split="dev")


def test_unsupported_file_type_is_named(tmp_path):
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        load_dataset_splits(str(tmp_path / "d.txt"))
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        load_split(str(tmp_path / "d.txt"))
