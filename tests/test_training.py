"""Train a tiny model with LoRA + token rows through TRL, save, reload, generate: the user's path end to end."""

import pytest
import torch
from datasets import Dataset
from peft import PeftModel
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer

from refusal_tokens import (
    RefusalSettings,
    RefusalTokenLogitsProcessor,
    add_refusal_tokens,
    build_chat_prompts,
    count_parameters,
    first_token_probabilities,
    get_refusal_lora_config,
    get_refusal_peft_model,
    load_taxonomy,
    parse_generations,
    tag_dataset,
)
from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def trained(request, tmp_path_factory):
    import conftest

    tied = request.param
    train_rows, held_out = (
        conftest.synthetic_rows(0, 24, conftest.FILLERS[:10]),
        conftest.synthetic_rows(1, 10, conftest.FILLERS[10:]),
    )
    tok = build_tiny_tokenizer("chatml")
    model = build_tiny_model(tok, tied=tied)
    ids = add_refusal_tokens(model, tok, "coconot")
    peft_model = get_refusal_peft_model(model, get_refusal_lora_config(model, ids, r=8, lora_dropout=0.0))
    args = SFTConfig(
        output_dir=str(tmp_path_factory.mktemp("sft")),
        max_steps=150,
        per_device_train_batch_size=16,
        learning_rate=5e-3,
        lr_scheduler_type="constant",
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=50,
        max_length=64,
        use_cpu=True,
        seed=0,
    )
    trainer = SFTTrainer(
        model=peft_model,
        args=args,
        processing_class=tok,
        train_dataset=tag_dataset(Dataset.from_list(train_rows), "coconot"),
    )
    trainer.train()
    peft_model.eval()
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"tied": tied, "model": peft_model, "tok": tok, "ids": ids, "held_out": held_out, "dir": out}


def test_trained_model_routes_held_out_prompts(trained):
    tok, ids, held = trained["tok"], trained["ids"], trained["held_out"]
    probs = first_token_probabilities(trained["model"], tok, [r["prompt"] for r in held])
    pred = [ids.labels[i] for i in probs.argmax(-1).tolist()]
    accuracy = sum(p == r["refusal_label"] for p, r in zip(pred, held)) / len(held)
    assert accuracy >= 0.9, accuracy

    # generate() with the default thresholds emits the same decisions, the token first
    enc = tok(
        build_chat_prompts(tok, [r["prompt"] for r in held]),
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
    )
    proc = RefusalTokenLogitsProcessor.from_tokenizer(tok, RefusalSettings(default=0.5))
    gen = trained["model"].generate(**enc, logits_processor=[proc], max_new_tokens=4, do_sample=False)
    parsed = parse_generations(tok, gen, enc["input_ids"].shape[1])
    top = probs.max(-1)
    expected = [
        ids.labels[i] if (i == 0 or p >= 0.5) else "respond" for i, p in zip(top.indices.tolist(), top.values.tolist())
    ]
    assert [p.label for p in parsed] == expected

    # raising one category's threshold to 1 turns exactly its refusals into respond
    proc = RefusalTokenLogitsProcessor.from_tokenizer(tok, RefusalSettings(categories={"humanizing": 1.0}))
    gen2 = trained["model"].generate(**enc, logits_processor=[proc], max_new_tokens=1, do_sample=False)
    labels2 = [p.label for p in parse_generations(tok, gen2, enc["input_ids"].shape[1])]
    assert labels2 == ["respond" if lab == "humanizing" else lab for lab in expected]
    assert "humanizing" in expected


def test_only_token_rows_and_lora_are_trainable(trained):
    trainable, total = count_parameters(trained["model"])
    names = [n for n, p in trained["model"].named_parameters() if p.requires_grad]
    assert all("lora_" in n or "trainable_tokens_delta" in n for n in names)
    n_rows = 1 if trained["tied"] else 2
    assert sum("trainable_tokens_delta" in n for n in names) == n_rows
    assert trainable < total / 5


def test_adapter_reloads_into_fresh_base_with_identical_logits(trained):
    tok2 = AutoTokenizer.from_pretrained(trained["dir"])
    base = build_tiny_model(build_tiny_tokenizer("chatml"), tied=trained["tied"])
    add_refusal_tokens(base, tok2, load_taxonomy(tok2))  # resize before loading the adapter
    reloaded = PeftModel.from_pretrained(base, trained["dir"]).eval()
    prompts = [r["prompt"] for r in trained["held_out"][:8]]
    enc = tok2(build_chat_prompts(tok2, prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        want = trained["model"](**enc).logits
        torch.testing.assert_close(reloaded(**enc).logits, want, atol=1e-5, rtol=1e-5)
        merged = reloaded.merge_and_unload()
        torch.testing.assert_close(merged(**enc).logits, want, atol=1e-4, rtol=1e-4)
