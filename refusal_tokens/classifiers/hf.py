"""The Hugging Face backend: any sequence-classification checkpoint, its labels mapped onto a taxonomy.

The published refusal classifiers' labels, such as `[Should Not Do] Privacy` ("Cannot or Should Not?"), map onto
`cannot-should-not` by default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

from ..taxonomy import RESPOND_LABEL, RefusalTaxonomy
from .base import RefusalClassifier

_PAPER_LABELS = {
    "legal compliance": "legal_compliance",
    "legal compliance/illegal": "legal_compliance",
    "information hazards": "information_hazards",
    "intellectual property rights": "intellectual_property",
    "privacy": "privacy",
    "nsfw content": "nsfw",
    "chain of command": "chain_of_command",
    "modalities": "modalities",
    "skill level": "skill_level",
    "invalid premise": "invalid_premise",
    "missing identity": "missing_identity",
    "missing information – knowledge cutoff": "knowledge_cutoff",
    "missing information - knowledge cutoff": "knowledge_cutoff",
    "knowledge cutoff": "knowledge_cutoff",
    "missing information – unknown unknown information": "unknown_unknowns",
    "missing information - unknown unknown information": "unknown_unknowns",
    "unknown unknown information": "unknown_unknowns",
    "missing information – training data limits": "training_data_limits",
    "missing information - training data limits": "training_data_limits",
    "training data limits": "training_data_limits",
    "missing information – missing context": "missing_context",
    "missing information - missing context": "missing_context",
    "missing context": "missing_context",
    "unclear": "unclear",
    "not a refusal": RESPOND_LABEL,
    "no refusal": RESPOND_LABEL,
    "comply": RESPOND_LABEL,
    "compliance": RESPOND_LABEL,
}


def paper_label_map(label: str) -> str | None:
    """Map a "Cannot or Should Not?" classifier label (e.g. `[Should Not Do] Privacy`) onto `cannot-should-not`."""
    text = re.sub(r"^\[(should not do|cannot do)\]\s*", "", label.strip(), flags=re.I).strip().lower()
    return _PAPER_LABELS.get(text)


class HFRefusalClassifier(RefusalClassifier):
    """Any Hugging Face sequence-classification checkpoint, its labels mapped onto a taxonomy.

    Args:
        model_name_or_path (`str`): Checkpoint folder or hub id.
        taxonomy (`RefusalTaxonomy` or `str`, *optional*, defaults to `"cannot-should-not"`): Target taxonomy.
        label_map (`Mapping[str, str]` or `Callable`, *optional*): Model label -> `"respond"` or a category.
            Defaults to the mapping of the "Cannot or Should Not?" labels. Every model label must map somewhere.
        text_template (`str`, *optional*): How a pair becomes the model's input; defaults to `"{response}"` (the
            published classifiers read the response), e.g. `"{prompt}\\n{response}"`.
        device (`str`, *optional*): CUDA when available.
        max_length (`int`, *optional*, defaults to 512): Truncation length.
    """

    def __init__(
        self,
        model_name_or_path: str,
        taxonomy: RefusalTaxonomy | str = "cannot-should-not",
        *,
        label_map: Mapping[str, str] | Callable[[str], str | None] | None = None,
        text_template: str = "{response}",
        device: str | None = None,
        max_length: int = 512,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        super().__init__(taxonomy)
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = AutoModelForSequenceClassification.from_pretrained(model_name_or_path).to(self.device).eval()
        lookup = label_map if callable(label_map) else (dict(label_map).get if label_map else paper_label_map)
        id2label = self.model.config.id2label
        index = []
        for i in range(len(id2label)):
            name = id2label[i]
            target = lookup(name)
            if target is not None:
                target = self.taxonomy.normalize_label(target) if target != RESPOND_LABEL else target
            if target not in self.columns:
                raise ValueError(
                    f"{model_name_or_path}: model label {name!r} maps to {target!r}, which is not one of "
                    f"{self.columns}; pass label_map covering every model label."
                )
            index.append(self.columns.index(target))
        self.index = torch.tensor(index)
        self.text_template = text_template
        self.max_length = max_length

    @torch.no_grad()
    def _scores(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        texts = [self.text_template.format(prompt=p, response=r) for p, r in zip(prompts, responses)]
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(
            self.device
        )
        probs = self.model(**enc).logits.float().softmax(-1).cpu()
        out = torch.zeros(len(texts), len(self.columns))
        return out.index_add_(1, self.index, probs)
