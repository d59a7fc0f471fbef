import pytest
import torch

from refusal_tokens import add_refusal_tokens, build_chat_prompts, first_token_probabilities, parse_generation
from refusal_tokens.testing import build_tiny_model


def test_batched_probabilities_equal_one_prompt_at_a_time(tokenizer):
    model = build_tiny_model(tokenizer, tied=False)
    ids = add_refusal_tokens(model, tokenizer, "coconot")
    with torch.no_grad():  # make the token rows matter so the check is not trivially ~0 == ~0
        model.get_output_embeddings().weight[ids.all_ids] *= 40
    prompts = ["hi", "explain the moon and the river to my friend please", [{"role": "user", "content": "why?"}]]
    probs = first_token_probabilities(model, tokenizer, prompts, batch_size=2)
    assert probs.shape == (3, 6)
    for i, text in enumerate(build_chat_prompts(tokenizer, prompts)):
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        expected = model(**enc).logits[0, -1].softmax(-1)[ids.all_ids]
        torch.testing.assert_close(probs[i], expected.detach(), atol=1e-6, rtol=1e-4)
    assert probs.max() > 1e-3


def test_parse_generation(tokenizer):
    ids = add_refusal_tokens(build_tiny_model(tokenizer), tokenizer, "coconot")
    body = tokenizer.encode("the moon", add_special_tokens=False)
    parsed = parse_generation(tokenizer, [ids.id_for("humanizing"), *body, tokenizer.eos_token_id])
    assert (parsed.label, parsed.text, parsed.refused) == ("humanizing", "the moon", True)
    parsed = parse_generation(tokenizer, body)
    assert (parsed.label, parsed.text, parsed.refused) == (None, "the moon", False)
    assert parse_generation(tokenizer, [ids.respond_id, *body]).refused is False


def test_bad_prompt_is_named(tokenizer):
    with pytest.raises(ValueError, match="prompt 1"):
        build_chat_prompts(tokenizer, ["ok", 3])
