"""Synthetic preference pairs for the DPO recipe, built from rows of the synthetic corpus."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ...taxonomy import RESPOND_LABEL, RefusalTaxonomy
from .sources import COMPLIANCE_ANSWERS, PRESET_SOURCES, SOURCES


def build_synthetic_preferences(
    rows: Sequence[dict[str, Any]], taxonomy: RefusalTaxonomy, seed: int = 0
) -> list[dict[str, Any]]:
    """Preference pairs from rows of `build_synthetic_corpus` (conversational prompt-completion).

    A refusal row prefers its category's refusal over compliance (one of the corpus's compliant answers); a respond
    row (benign or contrast) prefers its answer over a refusal from the category its look-alike source belongs to
    (benign rows: a random category), which teaches against over-refusal. Labels go to `chosen_label` and
    `rejected_label`; `refusal_label` and `kind` are kept.

    Args:
        rows (`Sequence[dict]`): Rows of `build_synthetic_corpus` (answers self-distilled or not).
        taxonomy (`RefusalTaxonomy`): Their taxonomy.
        seed (`int`, *optional*, defaults to 0): Seed of the rejected answers.

    Returns:
        `list[dict]` in TRL's conversational preference format (`prompt`, `chosen`, `rejected`).

    Example:

    ```python
    >>> from refusal_tokens import build_synthetic_corpus, get_taxonomy
    >>> tax = get_taxonomy("coconot")
    >>> pairs = build_synthetic_preferences(build_synthetic_corpus(tax)["train"], tax)
    >>> sorted(pairs[0])
    ['chosen', 'chosen_label', 'kind', 'prompt', 'refusal_label', 'rejected', 'rejected_label']
    ```
    """
    rng = random.Random(seed)
    source_category = {s: c for c, sources in PRESET_SOURCES.get(taxonomy.name, {}).items() for s in sources}
    out = []
    for row in rows:
        answer = row["completion"]
        if row["refusal_label"] != RESPOND_LABEL:
            chosen_label = row["refusal_label"]
            rejected = [{"role": "assistant", "content": rng.choice(COMPLIANCE_ANSWERS)}]
            rejected_label = RESPOND_LABEL
        else:
            category = source_category.get(row["source"]) or rng.choice(taxonomy.names)
            if category not in taxonomy:
                category = rng.choice(taxonomy.names)
            source = row["source"] if row["source"] in SOURCES else rng.choice(sorted(SOURCES))
            chosen_label = RESPOND_LABEL
            rejected = [{"role": "assistant", "content": rng.choice(SOURCES[source].refusals)}]
            rejected_label = category
        out.append(
            {
                "prompt": row["prompt"],
                "chosen": answer,
                "rejected": rejected,
                "chosen_label": chosen_label,
                "rejected_label": rejected_label,
                "refusal_label": row["refusal_label"],
                "kind": row["kind"],
            }
        )
    return out
