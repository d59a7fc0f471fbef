"""The built-in synthetic corpus: deterministic, sized as asked, whole templates held out, every category covered."""

import pytest

from refusal_tokens import RefusalTaxonomy, get_taxonomy
from refusal_tokens.data.synthetic import SyntheticCorpusConfig, build_synthetic_corpus, category_sources
from refusal_tokens.data.synthetic.sources import SOURCES


@pytest.mark.parametrize("preset", ["coconot", "cannot-should-not", "single"])
def test_every_category_gets_rows_and_templates_are_held_out(preset):
    taxonomy = get_taxonomy(preset)
    cfg = SyntheticCorpusConfig(train_per_category=20, train_benign=30, train_contrast=30, eval_fraction=0.5, seed=3)
    splits = build_synthetic_corpus(taxonomy, cfg)
    assert set(splits) == {"train", "validation", "test"}
    no_val = build_synthetic_corpus(taxonomy, SyntheticCorpusConfig(train_per_category=4, validation=False, seed=3))
    assert set(no_val) == {"train", "test"}
    train = splits["train"]
    for name in taxonomy.names:
        assert sum(r["refusal_label"] == name for r in train) == 20
    assert sum(r["kind"] == "benign" for r in train) == 30
    assert sum(r["kind"] == "contrast" for r in train) == 30
    assert all(r["refusal_label"] == "respond" for r in train if r["kind"] != "refusal")
    for name in taxonomy.names:
        assert sum(r["refusal_label"] == name for r in splits["test"]) == 10
    # a template wording seen in train, as a refusal or as a contrast prompt of any source, never appears in
    # validation or test: look-alike contrast templates share refusal wordings, so they are split together
    for seed in range(6):
        splits = build_synthetic_corpus(taxonomy, SyntheticCorpusConfig(train_per_category=20, seed=seed))
        seen = {r["template"] for r in splits["train"]}
        for split in ("validation", "test"):
            held = {r["template"] for r in splits[split]}
            assert held and not held & seen, (seed, split, held & seen)
    # rows are in TRL's conversational prompt-completion format, untagged
    row = train[0]
    assert row["prompt"][0]["role"] == "user" and row["completion"][0]["role"] == "assistant"
    assert not row["completion"][0]["content"].startswith("[")


def test_same_seed_same_corpus_other_seed_other_corpus():
    cfg = SyntheticCorpusConfig(train_per_category=8, train_benign=8, train_contrast=8)
    a = build_synthetic_corpus("coconot", cfg)
    b = build_synthetic_corpus("coconot", cfg)
    c = build_synthetic_corpus(
        "coconot", SyntheticCorpusConfig(train_per_category=8, train_benign=8, train_contrast=8, seed=1)
    )
    assert a == b
    assert a["train"] != c["train"]


def test_contrast_prompts_share_surface_words_with_refusals():
    splits = build_synthetic_corpus("coconot", SyntheticCorpusConfig(train_per_category=64, train_contrast=200))
    contrast = [r for s in splits.values() for r in s if r["kind"] == "contrast"]
    used = {src for sources in category_sources(get_taxonomy("coconot")).values() for src in sources}
    assert {r["source"] for r in contrast} == used  # every source contributes look-alikes
    refusal_templates = {r["template"] for s in splits.values() for r in s if r["kind"] == "refusal"}
    assert {r["template"] for r in contrast} & refusal_templates  # same wording, benign filler
    assert all("{x}" not in r["prompt"][0]["content"] for r in contrast)


def test_custom_taxonomy_maps_by_source_name_or_explicit_mapping():
    tax = RefusalTaxonomy(
        name="mine",
        categories=[
            {"name": "privacy", "token": "[p]", "branch": "should_not", "description": "private data"},
            {"name": "feelings", "token": "[f]", "branch": "cannot", "description": "no feelings"},
        ],
    )
    with pytest.raises(ValueError, match="'feelings' of taxonomy 'mine' has no synthetic prompt templates"):
        category_sources(tax)
    mapping = category_sources(tax, {"feelings": ["missing_identity"]})
    assert mapping == {"privacy": ("privacy",), "feelings": ("missing_identity",)}
    splits = build_synthetic_corpus(tax, SyntheticCorpusConfig(train_per_category=4), category_sources_map=mapping)
    assert {r["refusal_label"] for r in splits["train"]} == {"privacy", "feelings", "respond"}
    with pytest.raises(ValueError, match="unknown source 'nope'"):
        category_sources(tax, {"feelings": ["nope"]})
    with pytest.raises(ValueError, match="source 'privacy' feeds both 'privacy' and 'feelings'"):
        category_sources(tax, {"feelings": ["missing_identity", "privacy"]})


def test_sources_are_well_formed():
    for name, src in SOURCES.items():
        assert len(src.templates) >= 3 and len(src.contrast_templates) >= 3, name
        assert all("{x}" in t for t in src.templates + src.contrast_templates), name
        assert len(src.refusals) >= 2, name


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="train_per_category"):
        SyntheticCorpusConfig(train_per_category=0)
    with pytest.raises(ValueError, match="eval_fraction"):
        SyntheticCorpusConfig(eval_fraction=0)


def test_held_out_splits_hold_each_prompt_once():
    # far more rows than the held-out templates x fillers hold: train repeats prompts, validation and test do not
    cfg = SyntheticCorpusConfig(train_per_category=512, train_benign=1024, train_contrast=1024, eval_fraction=0.25)
    splits = build_synthetic_corpus("coconot", cfg)
    assert sum(r["refusal_label"] == "humanizing" for r in splits["train"]) == 512
    for split in ("validation", "test"):
        prompts = [r["prompt"][0]["content"] for r in splits[split]]
        assert len(prompts) == len(set(prompts)), split
        assert 0 < sum(r["refusal_label"] == "humanizing" for r in splits[split]) < 128
