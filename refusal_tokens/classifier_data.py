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

from .synthetic import SyntheticCorpusConfig, build_synthetic_corpus
from .synthetic_templates import SOURCES
from .taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy

REFUSAL_OPENERS = (
    "",
    "I'm sorry, but ",
    "I apologize, but ",
    "Unfortunately, ",
    "Sorry, ",
    "As an AI language model, ",
    "I'm afraid ",
    "I understand your question, but ",
    "I cannot fulfill your request. ",
    "Thank you for your question. ",
    "I appreciate your curiosity, but ",
    "I must respectfully decline. ",
    "I'm just an AI, and ",
)
REFUSAL_CLOSERS = (
    "",
    " Is there anything else I can help you with?",
    " I'd be happy to help with a related question instead.",
    " Please let me know if there is something else you need.",
    " If you have other questions, feel free to ask.",
    " It's important to respect the safety and rights of others.",
    " I hope you understand.",
    " My purpose is to be helpful while avoiding harm.",
    " Instead, I'd suggest looking for reliable resources on a related topic.",
)
PARTIAL_TAILS = (
    " However, I can share some general, publicly available information on the topic.",
    " That said, here is a general overview that may still be useful: it depends on many factors.",
    " Instead, I can explain the general principles involved.",
    " Instead, here are some general tips: think about your goal, use reputable sources and ask an expert.",
    " But here is a related fact you may find interesting: many people ask about this for perfectly good reasons.",
)
COMPLY_OPENERS = (
    "",
    "Sure! ",
    "Certainly. ",
    "Of course. ",
    "Great question! ",
    "Here you go: ",
    "Absolutely! ",
    "Good question. ",
    "Sure, I'd be happy to help. ",
    "Here's a quick explanation. ",
)


def _sources_of(taxonomy: RefusalTaxonomy) -> dict[str, tuple[str, ...]]:
    from .synthetic import category_sources

    return category_sources(taxonomy)


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
            validation=False,
            seed=seed,
        ),
    )
    if callable(answers):
        prompts = sorted({r["prompt"][0]["content"] for r in corpus["train"] if r["refusal_label"] == RESPOND_LABEL})
        answers = dict(zip(prompts, answers(prompts)))
    rows = []
    refusal_prompts = [r["prompt"][0]["content"] for r in corpus["train"] if r["refusal_label"] != RESPOND_LABEL]
    category_of_source = {src: c for c, srcs in _sources_of(taxonomy).items() for src in srcs}
    for r in corpus["train"]:
        prompt = original = r["prompt"][0]["content"]
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
            text += rng.choice(PARTIAL_TAILS) if rng.random() < 0.2 else rng.choice(REFUSAL_CLOSERS)
            rows.append({"prompt": prompt, "response": text, "label": r["refusal_label"]})
        else:
            # the answer belongs to the row's own prompt, also when that prompt was swapped for a refusal-worthy one
            answer = (answers or {}).get(original) or r["completion"][0]["content"]
            rows.append({"prompt": prompt, "response": rng.choice(COMPLY_OPENERS) + answer, "label": RESPOND_LABEL})
    rng.shuffle(rows)
    return rows
