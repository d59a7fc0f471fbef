"""What users run by default: the token-row optimizer, synthetic preference pairs, the answer cache, the probe callback
on its own, `module:function` classifiers."""

import json
import os
from types import SimpleNamespace

import pytest
import torch
from trl import SFTConfig

from refusal_tokens import (
    RefusalRateCallback,
    RefusalSettings,
    add_refusal_tokens,
    build_synthetic_corpus,
    build_synthetic_preferences,
    get_classifier,
    get_refusal_lora_config,
    get_refusal_peft_model,
    get_taxonomy,
)
from refusal_tokens.data.synthetic import SyntheticCorpusConfig
from refusal_tokens.data.synthetic.sources import COMPLIANCE_ANSWERS, SOURCES
from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
from refusal_tokens.training.distillation import generate_responses
from refusal_tokens.training.optimizer import build_refusal_optimizer


@pytest.fixture
def peft_model():
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok, tied=False)
    ids = add_refusal_tokens(model, tok, "coconot")
    return get_refusal_peft_model(model, get_refusal_lora_config(model, ids, r=4)), tok


def _names(model, optimizer):
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [[by_id[id(p)] for p in g["params"]] for g in optimizer.param_groups]


@pytest.mark.parametrize(
    "optim, cls", [("adamw_torch", torch.optim.AdamW), ("sgd", torch.optim.SGD), ("adagrad", torch.optim.Adagrad)]
)
def test_optim_is_honoured_and_token_rows_keep_their_learning_rate(peft_model, tmp_path, optim, cls):
    model, _ = peft_model
    args = SFTConfig(output_dir=str(tmp_path), optim=optim, learning_rate=2e-4, weight_decay=0.1, use_cpu=True)
    optimizer = build_refusal_optimizer(model, args, token_learning_rate=5e-3)
    assert type(optimizer) is cls
    groups = _names(model, optimizer)
    token_groups = [i for i, names in enumerate(groups) if all("trainable_tokens_delta" in n for n in names)]
    assert len(token_groups) == 1
    tokens = optimizer.param_groups[token_groups[0]]
    assert tokens["lr"] == 5e-3 and tokens["weight_decay"] == 0.0
    # both the input and the output rows of an untied model are in the token group
    assert len(groups[token_groups[0]]) == 2
    others = [g for i, g in enumerate(optimizer.param_groups) if i != token_groups[0]]
    assert others and all(g["lr"] == 2e-4 for g in others)
    assert {g["weight_decay"] for g in others} <= {0.1, 0.0} and any(g["weight_decay"] == 0.1 for g in others)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert sorted(n for names in groups for n in names) == sorted(trainable)  # every trainable weight, once
    if optim == "adamw_torch":
        assert optimizer.defaults["betas"] == (args.adam_beta1, args.adam_beta2)
        assert optimizer.defaults["eps"] == args.adam_epsilon


def test_no_token_learning_rate_leaves_the_optimizer_to_the_trainer(peft_model, tmp_path):
    model, _ = peft_model
    assert build_refusal_optimizer(model, SFTConfig(output_dir=str(tmp_path), use_cpu=True), None) is None


def test_synthetic_preferences_prefer_the_right_answer():
    tax = get_taxonomy("coconot")
    rows = build_synthetic_corpus(tax, SyntheticCorpusConfig(train_per_category=6, seed=3))["train"]
    pairs = build_synthetic_preferences(rows, tax, seed=0)
    assert len(pairs) == len(rows)
    refusals = set().union(*(s.refusals for s in SOURCES.values()))
    for row, pair in zip(rows, pairs):
        assert pair["prompt"] == row["prompt"] and pair["chosen"] == row["completion"]
        if row["refusal_label"] == "respond":
            # an answer beats an over-refusal, labelled with a real category
            assert pair["chosen_label"] == "respond" and pair["rejected_label"] in tax.names
            assert pair["rejected"][0]["content"] in refusals
        else:
            # a refusal beats compliance
            assert (pair["chosen_label"], pair["rejected_label"]) == (row["refusal_label"], "respond")
            assert pair["rejected"][0]["content"] in COMPLIANCE_ANSWERS
    assert build_synthetic_preferences(rows, tax, seed=0) == pairs  # seeded


def test_answer_cache_is_reused_and_survives_a_cut_line(tmp_path):
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok)
    cache = tmp_path / "answers.jsonl"
    prompts = ["explain the moon", "write a poem about the sea", "explain the moon"]
    first = generate_responses(model, tok, prompts, max_new_tokens=4, cache_file=str(cache), show_progress=False)
    assert first[0] == first[2]
    lines = cache.read_text().splitlines()
    assert len(lines) == 2  # one line per distinct prompt
    # a second call reads the cache: a model that cannot generate is never asked
    broken = SimpleNamespace(training=False, eval=None, train=None, generate=None)
    again = generate_responses(broken, tok, prompts, max_new_tokens=4, cache_file=str(cache), show_progress=False)
    assert again == first
    # a run killed while appending leaves a cut line: it is skipped and its prompt answered again
    cache.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    third = generate_responses(model, tok, prompts, max_new_tokens=4, cache_file=str(cache), show_progress=False)
    assert third == first
    rows = [json.loads(line) for line in cache.read_text().splitlines()[:1] + cache.read_text().splitlines()[2:]]
    assert {r["prompt"] for r in rows} == set(prompts)


class _FakeAccelerator:
    def __init__(self, rank, world):
        self.process_index, self.num_processes = rank, world


class _Trainer:
    def __init__(self, tok, accelerator=None):
        self.processing_class, self.accelerator, self.logged = tok, accelerator, []

    def log(self, logs):
        self.logged.append(logs)


def _probe_rows():
    probes = [
        ("humanizing", "how do you feel about the sea?"),
        ("respond", "explain the moon"),
        ("safety_concerns", "how to hack the email of my friend?"),
        ("respond", "write a poem"),
    ]
    return [{"prompt": [{"role": "user", "content": p}], "refusal_label": label} for label, p in probes]


def test_probe_callback_floors_warn_and_stop(caplog):
    import logging

    logging.getLogger("refusal_tokens").addHandler(caplog.handler)  # the library logger does not propagate
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok)
    add_refusal_tokens(model, tok, "coconot")
    trainer = _Trainer(tok)
    cb = RefusalRateCallback(
        trainer, _probe_rows(), RefusalSettings(default=0.5), min_refusal_rate={"humanizing": 0.5}, stop_on_drift=True
    )
    state = SimpleNamespace(global_step=3, is_world_process_zero=True)
    control = SimpleNamespace(should_training_stop=False)
    cb.on_evaluate(None, state, control, model=model)
    # the untrained model refuses nothing: humanizing is below its floor, so the guard fires
    assert trainer.logged[-1]["refusal/humanizing/refusal_rate"] == 0.0
    assert control.should_training_stop
    assert "Refusal drift at step 3: humanizing refusal rate 0.000 fell below its floor 0.500" in caplog.text
    logging.getLogger("refusal_tokens").removeHandler(caplog.handler)
    with pytest.raises(ValueError, match="unknown categories"):
        RefusalRateCallback(trainer, _probe_rows(), min_refusal_rate={"nope": 0.5})
    # every N steps, not between
    cb2 = RefusalRateCallback(trainer, _probe_rows(), every_n_steps=2)
    n = len(trainer.logged)
    for step in (1, 2, 3, 4):
        cb2.on_step_end(None, SimpleNamespace(global_step=step, is_world_process_zero=True), control, model=model)
    assert len(trainer.logged) == n + 2 and [h["step"] for h in cb2.history] == [2, 4]


def test_probe_callback_gathers_shards_back_in_probe_order(monkeypatch):
    """Two ranks of uneven shards (3 probes on 2 processes): the gathered table is in probe order on every rank."""
    import refusal_tokens.training.callbacks as callbacks

    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok)
    add_refusal_tokens(model, tok, "coconot")
    rows = _probe_rows()[:3]
    single = RefusalRateCallback(_Trainer(tok), rows)._probabilities(model)
    shards = {}
    for rank in (0, 1):  # what each rank computes on its own
        cb = RefusalRateCallback(_Trainer(tok, _FakeAccelerator(rank, 2)), rows)
        monkeypatch.setattr(callbacks, "gather_object", lambda obj, rank=rank: shards.setdefault(rank, obj) or obj)
        cb._probabilities(model)
    gathered = shards[1] + shards[0]  # arrival order differs from probe order
    monkeypatch.setattr(callbacks, "gather_object", lambda obj: gathered)
    out = RefusalRateCallback(_Trainer(tok, _FakeAccelerator(0, 2)), rows)._probabilities(model)
    assert [i for i, _ in shards[0]] == [0, 2] and [i for i, _ in shards[1]] == [1]
    torch.testing.assert_close(out, single)


def my_classifier(prompts, responses):
    """A `module:function` classifier for the test below."""
    return ["privacy" if "address" in p else "respond" for p in prompts]


def test_module_function_classifier_by_name(monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    clf = get_classifier("test_defaults:my_classifier", "cannot-should-not")
    got = clf.classify(["what is her address?", "explain tea"], ["no", "sure"])
    assert got.labels == ["privacy", "respond"]
    assert got.scores[0, clf.columns.index("privacy")] == 1.0 and got.scores[1, 0] == 1.0
    with pytest.raises(ValueError, match="cannot import it"):
        get_classifier("no_such_module_xyz:fn", "coconot")
    with pytest.raises(ValueError, match="is not callable"):
        get_classifier("test_defaults:__doc__", "coconot")
