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


def test_teacher_forced_agreement_counts_the_tokens_the_model_ranks_first(tokenizer):
    from refusal_tokens.evaluation.agreement import _teacher_forced_agreement
    from refusal_tokens.inference.scoring import greedy_new_token_ids

    torch.manual_seed(0)
    model = build_tiny_model(tokenizer).eval()
    texts = build_chat_prompts(tokenizer, ["hi", "explain the moon and the river to my friend please", "why?"])
    answers = greedy_new_token_ids(model, tokenizer, texts, max_new_tokens=6, batch_size=2)
    assert all(answers)
    # a model's own greedy answers are its first choice at every position, whatever the padding of the batch
    assert _teacher_forced_agreement(model, tokenizer, texts, answers, batch_size=2) == [1.0, 1.0, 1.0]
    changed = [a[:-1] + [(a[-1] + 1) % len(tokenizer)] for a in answers]
    shares = _teacher_forced_agreement(model, tokenizer, texts, changed, batch_size=3)
    assert shares == pytest.approx([(len(a) - 1) / len(a) for a in answers])
