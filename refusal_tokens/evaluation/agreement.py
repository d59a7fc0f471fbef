"""Do the answers after `[respond]` stay the base model's? Greedy and teacher-forced agreement with the base."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..inference.prompts import build_chat_prompts
from ..inference.scoring import greedy_new_token_ids
from ..tokens import RefusalTokenIds


@torch.no_grad()
def answer_agreement(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    reference_model: Any = None,
    token_ids: RefusalTokenIds | None = None,
    max_new_tokens: int = 24,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Does the tuned model still answer as before? Greedy answers after a forced `[respond]` vs the base model's.

    The reference is `reference_model`, or, for a `PeftModel`, the same model with its adapter disabled (the
    untrained base). Both answers are compared token by token over the first `max_new_tokens` tokens. Greedy
    answers part for good at the first token that differs, so `token_agreement` is harsh; `next_token_agreement`
    feeds the base answer to the tuned model (after `[respond]`) and counts the positions where the tuned model's
    most probable next token is the base model's, which measures how far its distribution moved without the
    compounding.

    Returns:
        `dict` with `exact_match` (share of prompts whose answers are identical), `token_agreement` (mean share of
        positions before the first difference), `next_token_agreement` (mean share of the base answer's tokens the
        tuned model also ranks first, given the same prefix), `prompts`, `max_new_tokens` and a few `examples`.

    Example:

    ```python
    >>> from refusal_tokens import add_refusal_tokens
    >>> from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()  # offline stand-ins for a hub model and its tokenizer
    >>> model = build_tiny_model(tokenizer)
    >>> from refusal_tokens import get_refusal_lora_config, get_refusal_peft_model
    >>> ids = add_refusal_tokens(model, tokenizer, "coconot")
    >>> peft_model = get_refusal_peft_model(model, get_refusal_lora_config(model, ids, r=8))
    >>> agreement = answer_agreement(peft_model, tokenizer, ["Write a haiku about tea."], max_new_tokens=8)
    >>> agreement["prompts"], 0.0 <= agreement["next_token_agreement"] <= 1.0
    (1, True)
    ```
    """
    token_ids = token_ids or RefusalTokenIds.from_tokenizer(tokenizer)
    texts = build_chat_prompts(tokenizer, list(prompts))
    respond = tokenizer.convert_ids_to_tokens(token_ids.respond_id)
    was_training = model.training
    model.eval()
    try:
        tuned = greedy_new_token_ids(model, tokenizer, [t + respond for t in texts], max_new_tokens, batch_size)
        if reference_model is not None:
            base = greedy_new_token_ids(reference_model, tokenizer, texts, max_new_tokens, batch_size)
        elif hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                base = greedy_new_token_ids(model, tokenizer, texts, max_new_tokens, batch_size)
        else:
            raise ValueError("answer_agreement needs a PeftModel (its adapter is disabled) or a reference_model.")
        forced = _teacher_forced_agreement(model, tokenizer, [t + respond for t in texts], base, batch_size)
    finally:
        model.train(was_training)
    exact, shares = [], []
    for a, b in zip(tuned, base):
        n = max(len(a), len(b), 1)
        same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        exact.append(a == b)
        shares.append(same / n)
    k = len(exact) or 1
    return {
        "prompts": len(exact),
        "max_new_tokens": max_new_tokens,
        "exact_match": sum(exact) / k,
        "token_agreement": sum(shares) / k,
        "next_token_agreement": sum(forced) / len(forced) if forced else math.nan,
        "examples": [
            {"prompt": p, "tuned": tokenizer.decode(a), "base": tokenizer.decode(b)}
            for p, a, b in list(zip(prompts, tuned, base))[:3]
        ],
    }


@torch.no_grad()
def _teacher_forced_agreement(
    model: Any, tokenizer: Any, prefixes: Sequence[str], answers: Sequence[Sequence[int]], batch_size: int
) -> list[float]:
    """Per prompt, the share of `answers`' tokens that `model` ranks first after `prefix` + the answer so far."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    shares: list[float] = []
    for start in range(0, len(prefixes), batch_size):
        rows = [
            (tokenizer(prefix, add_special_tokens=False)["input_ids"], list(answer))
            for prefix, answer in zip(prefixes[start : start + batch_size], answers[start : start + batch_size])
        ]
        # Right padding: every real token keeps its position, and causal attention never sees the pads after it.
        width = max(len(p) + len(a) for p, a in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, a) in enumerate(rows):
            ids[i, : len(p) + len(a)] = torch.tensor(p + a, dtype=torch.long)
            mask[i, : len(p) + len(a)] = 1
        predicted = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.argmax(dim=-1).cpu()
        for i, (p, a) in enumerate(rows):
            if a:  # position t predicts token t + 1
                got = predicted[i, len(p) - 1 : len(p) - 1 + len(a)]
                shares.append((got == torch.tensor(a, dtype=torch.long)).float().mean().item())
    return shares
