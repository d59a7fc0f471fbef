"""Parsing generated ids: the refusal decision (the first token) and the answer text without it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..taxonomy import RESPOND_LABEL
from ..tokens import RefusalTokenIds


@dataclass
class ParsedGeneration:
    """A generated answer split into its refusal decision and its text.

    Args:
        label (`str` or `None`): `"respond"`, a category name, or `None` when the answer does not start with one of
            the tokens.
        text (`str`): The answer without the leading token and without special tokens.
    """

    label: str | None
    text: str

    @property
    def refused(self) -> bool:
        return self.label is not None and self.label != RESPOND_LABEL


def parse_generation(
    tokenizer: Any, ids: Sequence[int] | torch.Tensor, token_ids: RefusalTokenIds | None = None
) -> ParsedGeneration:
    """Split generated ids (the new tokens only, padding allowed) into the refusal label and the clean text.

    Args:
        tokenizer: The tokenizer holding the refusal tokens.
        ids (`Sequence[int]` or 1-D `torch.Tensor`): Generated token ids, without the prompt.
        token_ids (`RefusalTokenIds`, *optional*): Defaults to the ids stored with `tokenizer`.

    Returns:
        `ParsedGeneration`.
    """
    token_ids = token_ids or RefusalTokenIds.from_tokenizer(tokenizer)
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    pad = tokenizer.pad_token_id
    while ids and ids[0] == pad and pad not in token_ids.all_ids:
        ids = ids[1:]
    label = token_ids.label_for_id(ids[0]) if ids else None
    rest = ids[1:] if label is not None else ids
    return ParsedGeneration(label=label, text=tokenizer.decode(rest, skip_special_tokens=True).strip())


def parse_generations(
    tokenizer: Any, sequences: torch.Tensor, prompt_length: int, token_ids: RefusalTokenIds | None = None
) -> list[ParsedGeneration]:
    """Parse the output of `model.generate(...)` for a left-padded batch whose inputs had `prompt_length` columns."""
    token_ids = token_ids or RefusalTokenIds.from_tokenizer(tokenizer)
    return [parse_generation(tokenizer, row, token_ids) for row in sequences[:, prompt_length:].tolist()]
