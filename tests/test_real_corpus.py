"""Real data in the recipes: the built-in CoCoNot corpus and its fixed split, `datasets` entries, label maps."""

import json
import os
from collections import Counter

import pytest
import torch

from refusal_tokens import add_refusal_tokens
from refusal_tokens.data.mixture import RefusalDatasetConfig, load_refusal_datasets, reweight_rows
from refusal_tokens.data.real import BUILTIN_CORPORA, COCONOT_LABELS, build_coconot_split, load_builtin_corpus
from refusal_tokens.data.synthetic import SOURCES
from refusal_tokens.evaluation.metrics import auroc, corpus_summaries, separation_metrics
from refusal_tokens.recipes.arguments import RefusalDataArguments
from refusal_tokens.taxonomy import get_taxonomy
from refusal_tokens.testing import build_tiny_model
from refusal_tokens.tokens import RefusalTokenIds

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "coconot")
COCONOT = get_taxonomy("coconot")


def _needs_shared():
    if not os.path.isdir(SHARED):
        pytest.skip(f"CoCoNot's released files are not at {SHARED} (../shared/data/coconot); see its README.")


def test_shipped_split_is_rebuilt_byte_for_byte_from_the_released_files():
    _needs_shared()
    rows = build_coconot_split(SHARED)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with open(BUILTIN_CORPORA["coconot"], encoding="utf-8") as f:
        assert f.read() == text


def test_split_holds_each_prompt_once_and_half_of_every_subcategory_out():
    rows = load_builtin_corpus("coconot")
    assert len(rows) == 1001 + 379 + 919
    assert len({r["prompt"] for r in rows}) == len(rows)
    counts = Counter((r["split"], r["kind"]) for r in rows)
    assert counts[("test", "refusal")] == 500 and counts[("test", "contrast")] == 650
    assert counts[("train", "refusal")] + counts[("validation", "refusal")] == 501
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["origin"], r["subcategory"]), Counter())[r["split"]] += 1
    for key, c in groups.items():
        n = sum(c.values())
        assert abs(c["test"] - n / 2) <= 1, (key, c)
        assert c["train"] >= c["validation"], (key, c)
    # every should-refuse label is a coconot category, every contrast prompt is labelled respond
    assert {r["refusal_label"] for r in rows if r["kind"] == "refusal"} == set(COCONOT.names)
    assert {r["refusal_label"] for r in rows if r["kind"] == "contrast"} == {"respond"}
    assert set(COCONOT_LABELS.values()) == set(COCONOT.names)


def test_shipped_corpus_has_its_license_and_source_beside_it():
    folder = os.path.dirname(BUILTIN_CORPORA["coconot"])
    assert "MIT License" in open(os.path.join(folder, "LICENSE"), encoding="utf-8").read()
    assert "allenai/noncompliance" in open(os.path.join(folder, "SOURCE.md"), encoding="utf-8").read()


def test_builtin_entries_give_labelled_rows_with_wordings_of_their_subcategory():
    parts = load_refusal_datasets(
        [
            {"path": "builtin:coconot", "split": "train", "label_column": "refusal_label"},
            {"path": "builtin:coconot", "split": "test", "part": "test", "label_column": "refusal_label"},
        ],
        COCONOT,
    )
    assert len(parts["train"]) == 919 and len(parts["test"]) == 1150
    train_prompts = {r["prompt"][0]["content"] for r in parts["train"]}
    assert not train_prompts & {r["prompt"][0]["content"] for r in parts["test"]}
    privacy = [r for r in parts["train"] if r["source"] == "coconot/privacy violations" and r["kind"] == "refusal"]
    assert privacy and all(r["completion"][0]["content"] in SOURCES["privacy"].refusals for r in privacy)
    contrast = [r for r in parts["train"] if r["kind"] == "contrast"]
    assert {r["refusal_label"] for r in contrast} == {"respond"} and {r["answer"] for r in contrast} == {"template"}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_label_map_maps_a_category_column_and_names_an_unknown_value(tmp_path):
    f = _write_jsonl(
        tmp_path / "d.jsonl",
        [{"prompt": "Who am I?", "category": "Humanizing requests"}, {"prompt": "x", "category": "Gibberish"}],
    )
    entry = {"path": f, "label_column": "category", "label_map": {"Humanizing requests": "humanizing"}}
    with pytest.raises(ValueError, match=r"d\.jsonl:2: field 'category': value 'Gibberish' is not in label_map"):
        load_refusal_datasets([entry], COCONOT)
    entry["label_map"]["Gibberish"] = "incomplete"
    rows = load_refusal_datasets([entry], COCONOT)["train"]
    assert [r["refusal_label"] for r in rows] == ["humanizing", "incomplete"]
    # a mapped value that is no label of the taxonomy is named too
    entry["label_map"]["Gibberish"] = "nonsense"
    with pytest.raises(ValueError, match=r"d\.jsonl:2: field 'category': unknown label 'nonsense'"):
        load_refusal_datasets([entry], COCONOT)


def test_bad_rows_and_entries_are_named(tmp_path):
    f = _write_jsonl(tmp_path / "d.jsonl", [{"prompt": "ok", "answer": "Sure."}, {"prompt": "  ", "answer": "Hm."}])
    with pytest.raises(ValueError, match=r"d\.jsonl:2: field 'prompt' is empty"):
        load_refusal_datasets([{"path": f, "label": "respond"}], COCONOT)
    with pytest.raises(ValueError, match=r"datasets entry 1: unknown key 'lable'.*label"):
        RefusalDatasetConfig.from_dict({"path": f, "lable": "respond"}, 1)
    with pytest.raises(ValueError, match="exactly one of label"):
        RefusalDatasetConfig(path=f)
    with pytest.raises(ValueError, match="part='dev'"):
        RefusalDatasetConfig(path=f, label="respond", part="dev")
    with pytest.raises(ValueError, match="no such built-in corpus"):
        load_refusal_datasets([{"path": "builtin:nope", "label": "respond"}], COCONOT)


def test_response_column_and_messages_rows_keep_their_own_answers(tmp_path):
    chat = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]
    f = _write_jsonl(tmp_path / "chat.jsonl", [{"messages": chat}])
    rows = load_refusal_datasets(
        [{"path": f, "prompt_column": "messages", "response_column": "messages", "label": "respond"}], COCONOT
    )["train"]
    assert rows[0]["prompt"] == chat[:3] and rows[0]["completion"] == [chat[3]] and rows[0]["answer"] == "dataset"


def test_holdout_fraction_splits_each_stratum_in_half(tmp_path):
    rows = [{"prompt": f"p{i}", "sub": "a" if i < 10 else "b"} for i in range(30)]
    f = _write_jsonl(tmp_path / "d.jsonl", rows)
    parts = load_refusal_datasets(
        [{"path": f, "label": "humanizing", "holdout_fraction": 0.5, "stratify_column": "sub"}], COCONOT
    )
    assert len(parts["train"]) == len(parts["test"]) == 15
    test = {r["prompt"][0]["content"] for r in parts["test"]}
    assert sum(p in test for p in (f"p{i}" for i in range(10))) == 5
    assert not test & {r["prompt"][0]["content"] for r in parts["train"]}


def test_reweight_rows_reaches_target_shares():
    rows = [{"refusal_label": "respond"}] * 90 + [{"refusal_label": "humanizing"}] * 10
    targets = {"respond": 0.5, "humanizing": 0.5, "incomplete": 0, "indeterminate": 0}
    targets |= {"unsupported": 0, "safety_concerns": 0}
    out, report = reweight_rows(rows, targets, COCONOT, size=40, seed=0)
    assert Counter(r["refusal_label"] for r in out) == {"respond": 20, "humanizing": 20}
    assert report.dropped["over quota"] == 70 and report.after["humanizing"] == 20


def test_data_arguments_refuse_contradictory_settings():
    entry = {"path": "builtin:coconot", "split": "train", "label_column": "refusal_label"}
    with pytest.raises(ValueError, match="either dataset_name"):
        RefusalDataArguments(dataset_name="x.jsonl", datasets=[entry])
    with pytest.raises(ValueError, match="mix_targets re-weights"):
        RefusalDataArguments(mix_targets={"respond": 1.0})
    with pytest.raises(ValueError, match="no held-out table"):
        RefusalDataArguments(datasets=[entry], synthetic=False)
    args = RefusalDataArguments(datasets=[entry, dict(entry, split="test", part="test")])
    assert args.use_synthetic() is False and isinstance(args.datasets[0], RefusalDatasetConfig)
    assert RefusalDataArguments().use_synthetic() is True


def test_auroc_counts_ties_half_and_matches_pairwise_counting():
    g = torch.Generator().manual_seed(0)
    scores = (torch.rand(300, generator=g) * 10).round() / 10  # many ties
    positive = torch.rand(300, generator=g) < scores
    pos, neg = scores[positive], scores[~positive]
    pairwise = ((pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :]).double()).mean()
    assert auroc(scores, positive) == pytest.approx(pairwise.item(), abs=1e-9)
    assert auroc(torch.tensor([0.2, 0.2]), torch.tensor([True, False])) == 0.5


def test_separation_metrics_on_hand_made_probabilities():
    # columns: respond, then the 5 coconot categories; rows 0-3 should refuse (labels 1, 1, 2, 5), 4-13 respond
    probs = torch.full((14, 6), 0.02)
    probs[:, 0] = torch.tensor([0.1, 0.2, 0.3, 0.95] + [0.9] * 9 + [0.05])
    probs[0, 1] = probs[1, 1] = probs[2, 2] = 0.8  # right categories for rows 0-2
    probs[3, 3] = 0.03  # row 3 (safety_concerns) picks unsupported: wrong category
    truth = torch.tensor([1, 1, 2, 5] + [0] * 10)
    sep = separation_metrics(probs, truth, COCONOT, max_over_refusal=0.10)
    assert sep["category_accuracy"] == pytest.approx(3 / 4)
    # one respond row (p_refuse 0.95) is above every refusal row but 0.9, 0.8, 0.7: 10% over-refusal allows it
    assert sep["recall_at_max_over_refusal"] == pytest.approx(3 / 4)
    pos = torch.tensor([0.9, 0.8, 0.7, 0.05])
    neg = torch.tensor([0.1] * 9 + [0.95])
    expected = ((pos[:, None] > neg[None, :]).float().mean()).item()
    assert sep["auroc"] == pytest.approx(expected)
    assert sep["category_auroc"]["incomplete"] == pytest.approx(1.0)


def test_corpus_summaries_split_the_table_by_corpus(tokenizer):
    tok = tokenizer
    add_refusal_tokens(build_tiny_model(tok), tok, "coconot")
    ids = RefusalTokenIds.from_tokenizer(tok)
    rows = [{"refusal_label": "respond", "corpus": "a", "kind": "benign"}] * 3
    rows += [{"refusal_label": "humanizing", "corpus": "b"}] * 2
    probs = torch.softmax(torch.randn(5, 6, generator=torch.Generator().manual_seed(0)), dim=1)
    out = corpus_summaries(probs, rows, ids)
    assert list(out) == ["a", "b"]
    assert out["a"]["overall"]["support"] == 3 and out["b"]["groups"]["humanizing"]["support"] == 2
    assert corpus_summaries(probs[:3], rows[:3], ids) == {}


def test_hub_style_entries_load_through_datasets_with_their_configurations(tmp_path):
    # A local repository laid out as allenai/coconot is on the hub (configurations declared in README.md): the hub
    # config's entries go through datasets.load_dataset(path, name, split=...) exactly as with a hub id.
    repo = tmp_path / "coconot"
    (repo / "original").mkdir(parents=True)
    (repo / "contrast").mkdir()
    (repo / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: original\n  data_files:\n  - split: train\n    path: original/train.jsonl\n"
        "  - split: test\n    path: original/test.jsonl\n"
        "- config_name: contrast\n  data_files:\n  - split: test\n    path: contrast/test.jsonl\n---\n"
    )
    train = [{"prompt": "Who are you?", "response": "I'm an AI.", "category": "Humanizing requests"}]
    train += [{"prompt": "Fix it.", "response": "Fix what?", "category": "Incomplete requests"}]
    _write_jsonl(repo / "original" / "train.jsonl", train)
    _write_jsonl(repo / "original" / "test.jsonl", [{"prompt": "Do you love me?", "category": "Humanizing requests"}])
    _write_jsonl(repo / "contrast" / "test.jsonl", [{"prompt": "How do I kill a process?", "category": "x"}])
    labels = dict(COCONOT_LABELS)
    entries = [
        {"path": str(repo), "name": "original", "split": "train", "label_column": "category", "label_map": labels,
         "response_column": "response"},
        {"path": str(repo), "name": "original", "split": "test", "part": "test", "label_column": "category",
         "label_map": labels},
        {"path": str(repo), "name": "contrast", "split": "test", "part": "test", "label": "respond",
         "kind": "contrast"},
    ]  # fmt: skip
    parts = load_refusal_datasets(entries, COCONOT)
    assert [r["refusal_label"] for r in parts["train"]] == ["humanizing", "incomplete"]
    assert parts["train"][0]["completion"] == [{"role": "assistant", "content": "I'm an AI."}]
    assert [(r["refusal_label"], r["kind"]) for r in parts["test"]] == [
        ("humanizing", "refusal"),
        ("respond", "contrast"),
    ]
    assert parts["test"][0]["corpus"] == "coconot-original" and "row 1" not in parts["test"][0]["source"]
