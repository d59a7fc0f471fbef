"""Training pairs for the embedding classifier head, written by this project from its synthetic corpus.

Refusals: each category's prompts with its refusal wordings, varied with common openers ("I'm sorry, but"), closers
and partial-compliance tails (a refusal followed by general information still counts as a refusal). Compliance: the
benign and contrast prompts with answers (the base model's own, when given, else fixed phrases), varied with
compliance openers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy
from ..formats import request_text
from .corpus import SyntheticCorpusConfig, build_synthetic_corpus, category_sources
from .sources import COMPLIANCE_OPENERS, PARTIAL_REFUSAL_TAILS, REFUSAL_CLOSERS, REFUSAL_OPENERS, SOURCES


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:1].isupper() and not text.startswith("I ") else text


def synthetic_classifier_pairs(
    taxonomy: RefusalTaxonomy | str,
    *,
    per_category: int = 200,
    n_comply: int | None = None,
    answers: Mapping[str, str] | Callable[[list[str]], Sequence[str]] | None = None,
    swap_share: float = 0.3,
    seed: int = 0,
    split: str = "train",
) -> list[dict[str, Any]]:
    """(prompt, response, label) rows for training a classifier head.

    Args:
        taxonomy (`RefusalTaxonomy` or `str`): Taxonomy of the labels.
        per_category (`int`, *optional*, defaults to 200): Refusal pairs per category.
        n_comply (`int`, *optional*): Compliance pairs; defaults to as many as all refusal pairs together.
        answers (`Mapping[str, str]` or `Callable`, *optional*): Answer per benign/contrast prompt, or a function
            giving the answers of a list of prompts (e.g. wrapping `generate_responses`); prompts without an answer
            get fixed phrases.
        swap_share (`float`, *optional*, defaults to 0.3): Share of contrast prompts paired with a refusal (labelled
            with the category of their source) and of compliant answers paired with a refusal-worthy prompt
            (labelled respond), so the head learns refuse-vs-comply from the response.
        seed (`int`, *optional*, defaults to 0): Seed.
        split (`str`, *optional*, defaults to `"train"`): `"train"`, or `"test"` for pairs from the templates the
            corpus holds out at this seed (prompt wordings the train pairs never use), to measure generalisation.

    Returns:
        `list[dict]` with `prompt`, `response`, `label`.
    """
    taxonomy = get_taxonomy(taxonomy)
    rng = random.Random(seed)
    n_comply = n_comply if n_comply is not None else per_category * len(taxonomy)
    corpus = build_synthetic_corpus(
        taxonomy,
        SyntheticCorpusConfig(
            train_per_category=per_category,
            train_benign=n_comply // 2,
            train_contrast=n_comply - n_comply // 2,
            eval_fraction=1.0,
            validation=False,
            seed=seed,
        ),
    )
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: use 'train' or 'test'.")
    corpus = {"train": corpus[split]}
    if callable(answers):
        prompts = sorted({request_text(r["prompt"]) for r in corpus["train"] if r["refusal_label"] == RESPOND_LABEL})
        answers = dict(zip(prompts, answers(prompts)))
    rows = []
    refusal_prompts = [request_text(r["prompt"]) for r in corpus["train"] if r["refusal_label"] != RESPOND_LABEL]
    category_of_source = {src: c for c, srcs in category_sources(taxonomy).items() for src in srcs}
    for r in corpus["train"]:
        prompt = original = request_text(r["prompt"])
        if r["kind"] == "contrast" and rng.random() < swap_share:
            # An over-refusal is still a refusal: a look-alike prompt answered with its source's refusal teaches the
            # head that the response, not the prompt, decides refuse vs comply (the prompt still tells the category).
            wording = rng.choice(SOURCES[r["source"]].refusals)
            label = category_of_source.get(r["source"])
            if label is not None:
                rows.append({"prompt": prompt, "response": wording, "label": label})
                continue
        if r["refusal_label"] == RESPOND_LABEL and rng.random() < swap_share and refusal_prompts:
            # ... and a compliant answer to a refusal-worthy prompt is compliance.
            prompt = rng.choice(refusal_prompts)
        if r["refusal_label"] != RESPOND_LABEL:
            wording = rng.choice(SOURCES[r["source"]].refusals)
            opener = rng.choice(REFUSAL_OPENERS)
            text = opener + (_lower_first(wording) if opener else wording)
            text += rng.choice(PARTIAL_REFUSAL_TAILS) if rng.random() < 0.2 else rng.choice(REFUSAL_CLOSERS)
            rows.append({"prompt": prompt, "response": text, "label": r["refusal_label"]})
        else:
            # the answer belongs to the row's own prompt, also when that prompt was swapped for a refusal-worthy one
            answer = (answers or {}).get(original) or r["completion"][0]["content"]
            rows.append(
                {"prompt": prompt, "response": rng.choice(COMPLIANCE_OPENERS) + answer, "label": RESPOND_LABEL}
            )
    rng.shuffle(rows)
    return rows
