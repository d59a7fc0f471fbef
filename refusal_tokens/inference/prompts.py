"""Chat prompts: the text before the first assistant token, and the ids that end it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..taxonomy import TAXONOMY_KEY, RefusalTaxonomy

Prompt = str | list[dict[str, str]]
"""A user prompt (one user turn) or a conversation as a list of `{"role", "content"}` messages."""


def build_chat_prompts(tokenizer: Any, prompts: Sequence[Prompt]) -> list[str]:
    """Render prompts as the text that precedes the first assistant token.

    A string becomes a single user turn; a list of messages is used as is. With no chat template, strings are used
    verbatim. When the tokenizer carries refusal tokens, their text in user and system turns is escaped
    (`RefusalTaxonomy.escape`), so no prompt can put a refusal token into the model's input.

    Raises:
        `ValueError`: naming the index of a prompt that is neither a string nor a list of messages.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    stored = getattr(tokenizer, "init_kwargs", {}).get(TAXONOMY_KEY)
    taxonomy = RefusalTaxonomy.from_dict(stored) if stored else None
    texts = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            if not has_template:
                texts.append(taxonomy.escape(p) if taxonomy else p)
                continue
            messages = [{"role": "user", "content": p}]
        elif isinstance(p, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in p):
            if not has_template:
                raise ValueError(f"prompt {i}: a list of messages needs a tokenizer with a chat template.")
            messages = p
        else:
            raise ValueError(f"prompt {i}: expected a string or a list of {{'role', 'content'}} messages, got {p!r}.")
        if taxonomy is not None:
            messages = taxonomy.escape_turns(messages)
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return texts


def assistant_header_ids(tokenizer: Any) -> list[int]:
    """Token ids the chat template appends for `add_generation_prompt=True` (e.g. `<|im_start|>assistant\\n`).

    A row whose ids end with these is at the first assistant position, whatever its length or padding.

    Raises:
        `ValueError`: if the tokenizer has no chat template or the template adds no generation prompt.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("The tokenizer has no chat template; pass `prompt_length=` to the processor instead.")
    msgs = [{"role": "user", "content": "Hi"}]
    with_gen = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    without = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
    a = tokenizer(with_gen, add_special_tokens=False)["input_ids"]
    b = tokenizer(without, add_special_tokens=False)["input_ids"]
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    header = a[common:]
    if not header:
        raise ValueError("The chat template adds no generation prompt; pass `prompt_length=` to the processor.")
    return header
