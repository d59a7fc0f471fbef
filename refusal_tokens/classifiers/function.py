"""The function backend: any user function `(prompts, responses) -> labels`, with one-hot scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..taxonomy import RefusalTaxonomy
from .base import RefusalClassifier


class CallableRefusalClassifier(RefusalClassifier):
    """Wrap a user function `(prompts, responses) -> labels` (one-hot scores).

    Raises:
        `ValueError`: naming the pair whose label is not `respond` or a category, or a length mismatch.
    """

    def __init__(self, fn: Callable[[list[str], list[str]], Sequence[str]], taxonomy: RefusalTaxonomy | str) -> None:
        super().__init__(taxonomy)
        self.fn = fn

    def _scores(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        labels = list(self.fn(prompts, responses))
        if len(labels) != len(prompts):
            raise ValueError(f"classifier returned {len(labels)} labels for {len(prompts)} pairs.")
        out = torch.zeros(len(prompts), len(self.columns))
        for i, label in enumerate(labels):
            try:
                out[i, self.columns.index(self.taxonomy.normalize_label(label))] = 1.0
            except (ValueError, KeyError) as e:
                raise ValueError(f"pair {i}: classifier label {label!r} is not respond or a category ({e}).") from None
        return out
