"""The classifier interface: label (prompt, response) pairs as comply (`respond`) or a refusal category, with scores.

Every backend subclasses `RefusalClassifier` and implements `_scores(prompts, responses) -> (n, 1 + C)`. Every
classifier is also a plain callable `(prompts, responses) -> labels`, so it plugs into `tag_dataset`.

Decision rule (categories are not mutually exclusive): the column with the highest score wins; equal scores go to
the earlier column (`respond` first, then taxonomy order), so a taxonomy's order is its priority order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy


@dataclass
class Classification:
    """Scores and decisions of a classifier on a batch of pairs.

    Args:
        labels (`list[str]`): Decision per pair: `"respond"` (comply) or a category name.
        scores (`torch.Tensor` of shape `(n, 1 + C)`): Score per class, columns in `columns` order; rows sum to 1.
        columns (`list[str]`): `["respond"] + taxonomy.names`.
    """

    labels: list[str]
    scores: torch.Tensor
    columns: list[str]

    @property
    def refused(self) -> list[bool]:
        return [label != RESPOND_LABEL for label in self.labels]


class RefusalClassifier:
    """Base class: subclasses implement `_scores(prompts, responses) -> Tensor (n, 1 + C)`.

    Args:
        taxonomy (`RefusalTaxonomy` or `str`): The categories to classify into.
    """

    def __init__(self, taxonomy: RefusalTaxonomy | str) -> None:
        self.taxonomy = get_taxonomy(taxonomy)
        self.columns = [RESPOND_LABEL] + self.taxonomy.names

    def _scores(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def classify(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        batch_size: int = 256,
        show_progress: bool | None = None,
    ) -> Classification:
        """Classify pairs in batches.

        Args:
            prompts (`Sequence[str]`): Prompts (may be empty strings for response-only data).
            responses (`Sequence[str]`): Responses.
            batch_size (`int`, *optional*, defaults to 256): Pairs per backend call.
            show_progress (`bool`, *optional*): Progress bar; by default on for more than 2,000 pairs.

        Raises:
            `ValueError`: if the lengths differ or a field is not a string, naming the index.
        """
        prompts, responses = list(prompts), list(responses)
        if len(prompts) != len(responses):
            raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses; pass one of each per pair.")
        for i, (p, r) in enumerate(zip(prompts, responses)):
            if not isinstance(p, str) or not isinstance(r, str):
                bad = "prompt" if not isinstance(p, str) else "response"
                raise ValueError(
                    f"pair {i}: {bad} must be a string, got {type(p if bad == 'prompt' else r).__name__}."
                )
        show = len(prompts) > 2000 if show_progress is None else show_progress
        parts = []
        for start in tqdm(
            range(0, len(prompts), batch_size), disable=not show, desc=f"Classifying ({type(self).__name__})"
        ):
            parts.append(self._scores(prompts[start : start + batch_size], responses[start : start + batch_size]))
        scores = torch.cat(parts) if parts else torch.empty(0, len(self.columns))
        return Classification(labels=self._labels(scores), scores=scores, columns=self.columns)

    def _labels(self, scores: torch.Tensor) -> list[str]:
        """The label of each row: the highest score (the first column of equal maxima, so respond wins ties)."""
        return [self.columns[i] for i in scores.argmax(dim=1).tolist()]

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
        return self.classify(prompts, responses).labels
