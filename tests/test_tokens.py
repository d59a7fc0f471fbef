import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from refusal_tokens import RefusalTokenIds, add_refusal_tokens, get_taxonomy, load_taxonomy
from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
from refusal_tokens.tokens import RESPOND_DESCRIPTION


def test_each_token_is_one_stable_id(model_and_tokenizer):
    model, tok = model_and_tokenizer
    ids = add_refusal_tokens(model, tok, "cannot-should-not")
    tax = get_taxonomy("cannot-should-not")
    assert len(set(ids.all_ids)) == len(tax) + 1
    for token, tid in zip(tax.all_tokens, ids.all_ids):
        assert tok.encode(token, add_special_tokens=False) == [tid]
        # inside running text the token is still one id, and the text around it is unchanged
        around = tok.encode(f"hello{token}world", add_special_tokens=False)
        assert around == tok.encode("hello", add_special_tokens=False) + [tid] + tok.encode(
            "world", add_special_tokens=False
        )
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert model.get_output_embeddings().weight.shape[0] == len(tok)


def test_rows_start_at_description_mean(model_and_tokenizer, tied):
    model, tok = model_and_tokenizer
    ids = add_refusal_tokens(model, tok, "coconot")
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings().weight
    assert (out is emb) == tied
    tax = get_taxonomy("coconot")
    for tid, text in zip(ids.all_ids, [RESPOND_DESCRIPTION, *(c.description for c in tax)]):
        src = tok(text, add_special_tokens=False)["input_ids"]
        torch.testing.assert_close(emb[tid], emb[src].mean(0))
        torch.testing.assert_close(out[tid], out[src].mean(0))


def test_pad_to_multiple_of(tokenizer):
    model = build_tiny_model(tokenizer, tied=False)
    add_refusal_tokens(model, tokenizer, "coconot", pad_to_multiple_of=64)
    assert model.get_input_embeddings().weight.shape[0] % 64 == 0
    assert model.get_output_embeddings().weight.shape[0] % 64 == 0
    assert model.get_input_embeddings().weight.shape[0] >= len(tokenizer)


def test_saved_checkpoint_carries_taxonomy_and_reload_changes_nothing(model_and_tokenizer, tmp_path):
    model, tok = model_and_tokenizer
    ids = add_refusal_tokens(model, tok, "coconot")
    with torch.no_grad():  # stand-in for training: rows that a re-initialisation would overwrite
        model.get_input_embeddings().weight[ids.all_ids] += 1.0
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)

    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert load_taxonomy(tok2) == get_taxonomy("coconot")
    assert load_taxonomy(model2) == get_taxonomy("coconot")
    before = {k: v.clone() for k, v in model2.state_dict().items()}
    n_tok = len(tok2)
    ids2 = add_refusal_tokens(model2, tok2, load_taxonomy(tok2))
    assert ids2 == ids == RefusalTokenIds.from_tokenizer(tok2)
    assert len(tok2) == n_tok
    for k, v in model2.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_other_taxonomy_on_tagged_tokenizer_is_an_error(tokenizer):
    add_refusal_tokens(build_tiny_model(tokenizer), tokenizer, "coconot")
    with pytest.raises(ValueError, match="already carries refusal taxonomy 'coconot'"):
        add_refusal_tokens(build_tiny_model(tokenizer), tokenizer, "single")


def test_ids_require_the_tokens():
    with pytest.raises(ValueError, match="add_refusal_tokens"):
        RefusalTokenIds.from_tokenizer(build_tiny_tokenizer(), "coconot")
    with pytest.raises(ValueError, match="No refusal taxonomy"):
        load_taxonomy(build_tiny_tokenizer())


def test_label_lookup(tokenizer):
    ids = add_refusal_tokens(build_tiny_model(tokenizer), tokenizer, "coconot")
    assert ids.labels[0] == "respond"
    assert ids.label_for_id(ids.id_for("humanizing")) == "humanizing"
    assert ids.label_for_id(5) is None


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_adapter_trained_with_pad_to_multiple_of_reloads_with_the_same_probabilities(tmp_path, monkeypatch, tied):
    from refusal_tokens import first_token_probabilities, get_refusal_lora_config, get_refusal_peft_model
    from refusal_tokens.inference.builtin import resolve_model_path
    from refusal_tokens.inference.models import load_model_and_tokenizer, load_refusal_model

    monkeypatch.setenv("REFUSAL_TOKENS_CACHE", str(tmp_path / "cache"))
    base_dir = resolve_model_path("builtin:tiny-random")
    if not tied:  # an untied base of the same tokenizer, saved where the adapter can name it
        tok = build_tiny_tokenizer()
        build_tiny_model(tok, tied=False).save_pretrained(tmp_path / "untied")
        tok.save_pretrained(tmp_path / "untied")
        base_dir = str(tmp_path / "untied")
    model, tok = load_model_and_tokenizer(base_dir)
    ids = add_refusal_tokens(model, tok, "coconot", pad_to_multiple_of=64)
    assert model.get_input_embeddings().weight.shape[0] % 64 == 0 and len(tok) % 64 != 0
    peft_model = get_refusal_peft_model(model, get_refusal_lora_config(model, ids, r=4))
    torch.manual_seed(0)
    with torch.no_grad():  # "training": known values in every trainable parameter
        for name, p in peft_model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * (3.0 if "trainable_tokens" in name else 0.05))
    prompts = ["how do you feel about the city?", "explain the moon", "fix this"]
    before = first_token_probabilities(peft_model.eval(), tok, prompts)
    out = tmp_path / "adapter"
    peft_model.save_pretrained(out, save_embedding_layers=False)  # what the recipe saves
    tok.save_pretrained(out)
    reloaded, reloaded_tok = load_refusal_model(str(out))
    assert reloaded.get_input_embeddings().weight.shape[0] == model.get_input_embeddings().weight.shape[0]
    torch.testing.assert_close(first_token_probabilities(reloaded, reloaded_tok, prompts), before)
