"""Refusal classifiers: label (prompt, response) pairs as comply (`respond`) or a refusal category, with scores.

One interface (`base.RefusalClassifier`), one module per backend, as PEFT gives each tuner its own sub-package:

- `keyword`: refusal phrases plus category cue words; fast, transparent, a floor and a fallback.
- `embedding`: all-MiniLM-L6-v2 sentence embeddings + a logistic-regression head (`heads`), shipped per taxonomy.
- `hf`: any Hugging Face sequence-classification checkpoint, through a label map.
- `function`: any function `(prompts, responses) -> labels` (also `module:function` by name).

`get_classifier(name, taxonomy)` builds one by name, as the `classifier` options of the recipes and commands do.
"""

from __future__ import annotations

from typing import Any

from ..taxonomy import RefusalTaxonomy, get_taxonomy
from ..utils.imports import import_callable
from .base import Classification, RefusalClassifier
from .embedding import EmbeddingRefusalClassifier, SentenceEmbedder, pair_features
from .function import CallableRefusalClassifier
from .heads import LinearHead, shipped_heads, train_embedding_head
from .hf import HFRefusalClassifier, paper_label_map
from .keyword import KeywordRefusalClassifier, is_refusal_text

__all__ = [
    "CallableRefusalClassifier",
    "Classification",
    "EmbeddingRefusalClassifier",
    "HFRefusalClassifier",
    "KeywordRefusalClassifier",
    "LinearHead",
    "RefusalClassifier",
    "SentenceEmbedder",
    "get_classifier",
    "is_refusal_text",
    "pair_features",
    "paper_label_map",
    "shipped_heads",
    "train_embedding_head",
]


def get_classifier(
    name: str, taxonomy: RefusalTaxonomy | str = "cannot-should-not", **kwargs: Any
) -> RefusalClassifier:
    """Build a classifier by name: `keyword`, `embedding`, `hf:<model path or id>`, or `module:function`.

    Args:
        name (`str`): Backend name.
        taxonomy (`RefusalTaxonomy` or `str`): Target taxonomy.
        **kwargs: Passed to the backend.
    """
    if name == "keyword":
        return KeywordRefusalClassifier(taxonomy, **kwargs)
    if name == "embedding":
        tax = get_taxonomy(taxonomy)
        return EmbeddingRefusalClassifier(taxonomy=tax.name, **kwargs)
    if name.endswith(".safetensors"):
        return EmbeddingRefusalClassifier(name, **kwargs)
    if name.startswith("hf:"):
        return HFRefusalClassifier(name[3:], taxonomy, **kwargs)
    if ":" in name:
        return CallableRefusalClassifier(import_callable(name), taxonomy)
    raise ValueError(
        f"Unknown classifier {name!r}: use 'keyword', 'embedding', a head .safetensors file, 'hf:<checkpoint>', or "
        "'module:function'."
    )
