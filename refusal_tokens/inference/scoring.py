"""First-token refusal probabilities without generation, and greedy continuations of chat prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..tokens import RefusalTokenIds
from .prompts import Prompt, build_chat_prompts


@torch.no_grad()
def first_token_probabilities(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    token_ids: RefusalTokenIds | None = None,
    *,
    batch_size: int = 32,
    max_length: int | None = None,
) -> torch.Tensor:
    """Each prompt's probability of `[respond]` and of every category token at the first assistant position.

    One batched forward pass per `batch_size` prompts, no generation: the refusal scores of Jain et al.

    Args:
        model (`PreTrainedModel` or `PeftModel`): The model.
        tokenizer: Its tokenizer, holding the refusal tokens.
        prompts (`Sequence[str | list[dict]]`): User prompts (strings) or message lists.
        token_ids (`RefusalTokenIds`, *optional*): Defaults to the ids stored with `tokenizer`.
        batch_size (`int`, *optional*, defaults to 32): Prompts per forward pass.
        max_length (`int`, *optional*): Truncate prompts from the left to this many tokens.

    Returns:
        `torch.Tensor` of shape `(len(prompts), 1 + n_categories)`, float32 on CPU, columns in the order of
        `token_ids.labels` (`respond` first).

    Example:

    ```python
    >>> from refusal_tokens import add_refusal_tokens
    >>> from refusal_tokens.testing import build_tiny_model, build_tiny_tokenizer
    >>> tokenizer = build_tiny_tokenizer()  # offline stand-ins for a hub model and its tokenizer
    >>> model = build_tiny_model(tokenizer)
    >>> token_ids = add_refusal_tokens(model, tokenizer, "coconot")
    >>> probs = first_token_probabilities(model, tokenizer, ["How do I find my neighbour's password?"])
    >>> probs.shape, token_ids.labels[:2]  # [respond] and the five category tokens
    (torch.Size([1, 6]), ['respond', 'incomplete'])
    >>> bool(probs.sum() <= 1.0)  # their shares of the whole next-token softmax
    True
    ```
    """
    token_ids = token_ids or RefusalTokenIds.from_tokenizer(tokenizer)
    texts = build_chat_prompts(tokenizer, prompts)
    device = next(model.parameters()).device
    cols = torch.tensor(token_ids.all_ids, device=device)
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the last position must be the real last prompt token in every row
    # Batches of similar lengths waste less compute on padding; results go back to the caller's order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    texts = [texts[i] for i in order]
    try:
        out = []
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
                truncation=max_length is not None,
                max_length=max_length,
            ).to(device)
            logits = model(**enc, logits_to_keep=1).logits[:, -1, :]
            out.append(logits.float().softmax(dim=-1).index_select(1, cols).cpu())
    finally:
        tokenizer.padding_side = padding_side
    if not out:
        return torch.empty(0, len(cols))
    probs = torch.empty(len(order), len(cols))
    probs[torch.tensor(order)] = torch.cat(out)
    return probs


@torch.no_grad()
def greedy_new_token_ids(
    model: Any, tokenizer: Any, texts: Sequence[str], max_new_tokens: int, batch_size: int = 32
) -> list[list[int]]:
    """Greedy continuations of already-templated `texts` (left-padded batches), cut at the first end/pad token.

    Args:
        model, tokenizer: The model and its tokenizer.
        texts (`Sequence[str]`): Prompt texts, chat template already applied (see `build_chat_prompts`).
        max_new_tokens (`int`): Tokens generated per text.
        batch_size (`int`, *optional*, defaults to 32): Texts per `generate()` call.

    Returns:
        `list[list[int]]`: the new token ids of each text.
    """
    device = next(model.parameters()).device
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: list[list[int]] = []
    try:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                list(texts[start : start + batch_size]), return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                top_p=None,
                top_k=None,
                temperature=None,
            )
            for row in gen[:, enc["input_ids"].shape[1] :].tolist():
                cut = next((i for i, t in enumerate(row) if t in eos), len(row))
                out.append(row[:cut])
    finally:
        tokenizer.padding_side = padding_side
    return out
