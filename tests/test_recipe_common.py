"""Recipe helpers shared by the SFT and DPO recipes."""

import torch

from refusal_tokens.config import RefusalModelArguments
from refusal_tokens.recipe_common import add_tokens_and_peft
from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer


def _lora_weights(draws_before: int) -> dict[str, torch.Tensor]:
    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok)
    torch.rand(draws_before)  # e.g. a first run's GGUF conversion initialises a model and draws random numbers
    _, peft_model = add_tokens_and_peft(model, tok, "coconot", RefusalModelArguments(lora_r=4), seed=7)
    return {k: v.detach().clone() for k, v in peft_model.named_parameters() if "lora_A" in k}


def test_same_seed_same_lora_init_whatever_ran_before():
    first, second = _lora_weights(0), _lora_weights(1000)
    assert first and first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], msg=name)
