"""The built-in synthetic refusal corpus: category prompts, refusal wordings, benign and contrast prompts.

As "Cannot or Should Not?" trained its classifiers on synthetic refusals, this corpus gives every category of a
taxonomy varied prompts (templates with fillers) and several refusal wordings, plus benign prompts and *contrast*
prompts that look like a category but should be answered. Whole templates are held out per split (a contrast
template worded like a refusal template goes to the same split), so the test split measures generalisation to unseen
phrasings rather than memory. Everything is deterministic given the seed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...taxonomy import RESPOND_LABEL, RefusalTaxonomy, get_taxonomy
from .sources import BENIGN_FILLERS, BENIGN_TEMPLATES, COMPLIANCE_ANSWERS, PRESET_SOURCES, SOURCES

SPLITS = ("train", "validation", "test")
KINDS = ("refusal", "benign", "contrast")


@dataclass
class SyntheticCorpusConfig:
    """Size and seed of the built-in synthetic corpus.

    Args:
        train_per_category (`int`, *optional*, defaults to 64): Refusal rows per category in the train split.
        train_benign (`int`, *optional*, defaults to 96): Benign (answer) rows in the train split.
        train_contrast (`int`, *optional*, defaults to 96): Contrast (look-alike, answer) rows in the train split.
        eval_fraction (`float`, *optional*, defaults to 0.25): Size of the validation and test splits, each, as a
            fraction of the train counts (at least one row per category and kind). These splits hold each prompt
            once (a repeated prompt adds nothing to a measurement), so they come out smaller where the held-out
            templates x fillers run out; the train split repeats prompts to reach its counts.
        seed (`int`, *optional*, defaults to 0): Seed of the template split and the sampling.
        validation (`bool`, *optional*, defaults to `True`): Hold out validation templates and build a validation
            split. Without one, those templates train instead (more variety for short runs that never evaluate).
    """

    train_per_category: int = 64
    train_benign: int = 96
    train_contrast: int = 96
    eval_fraction: float = 0.25
    seed: int = 0
    validation: bool = True

    def __post_init__(self) -> None:
        for name in ("train_per_category", "train_benign", "train_contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0.")
        if self.train_per_category < 1:
            raise ValueError("train_per_category must be >= 1: every category needs training rows.")
        if not 0 < self.eval_fraction <= 1:
            raise ValueError(f"eval_fraction={self.eval_fraction} must be in (0, 1].")


def category_sources(
    taxonomy: RefusalTaxonomy, category_sources: Mapping[str, Sequence[str]] | None = None
) -> dict[str, tuple[str, ...]]:
    """Which template sources feed each category of `taxonomy`.

    Presets have a built-in mapping; a custom taxonomy maps categories named like a source (e.g. `privacy`)
    automatically, and others through `category_sources`.

    Raises:
        `ValueError`: naming a category with no source, an unknown source name, or a source given to two categories
            (its prompts would be labelled with both).
    """
    mapping = dict(PRESET_SOURCES.get(taxonomy.name, {}))
    mapping = {k: v for k, v in mapping.items() if k in taxonomy}
    for name in taxonomy.names:
        if name not in mapping and name in SOURCES:
            mapping[name] = (name,)
    for name, sources in (category_sources or {}).items():
        if name not in taxonomy:
            raise ValueError(f"category_sources: {name!r} is not a category of taxonomy {taxonomy.name!r}.")
        mapping[name] = tuple(sources)
    owner: dict[str, str] = {}
    for name in taxonomy.names:
        if not mapping.get(name):
            raise ValueError(
                f"Category {name!r} of taxonomy {taxonomy.name!r} has no synthetic prompt templates. Map it to some "
                f"of {sorted(SOURCES)} with category_sources, or train on your own labelled dataset."
            )
        for s in mapping[name]:
            if s not in SOURCES:
                raise ValueError(f"category_sources[{name!r}]: unknown source {s!r}; known: {sorted(SOURCES)}.")
            if owner.setdefault(s, name) != name:
                raise ValueError(
                    f"category_sources: source {s!r} feeds both {owner[s]!r} and {name!r}, so its prompts would be "
                    "labelled with both categories; give each category sources of its own."
                )
    return {name: mapping[name] for name in taxonomy.names}


def _split_templates(templates: Sequence[str], rng: random.Random, validation: bool = True) -> dict[str, list[str]]:
    """Hold out whole templates: at least one each for test (and validation), the rest (at least one) for train."""
    if len(templates) < 3:
        raise ValueError(f"need at least 3 templates to hold some out, got {len(templates)}: {list(templates)}")
    order = list(templates)
    rng.shuffle(order)
    n_test = max(1, round(0.2 * len(order)))
    n_val = max(1, round(0.1 * len(order))) if validation else 0
    return {
        "test": order[:n_test],
        "validation": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }


def _split_source(
    refusal: Sequence[str], contrast: Sequence[str], rng: random.Random, validation: bool = True
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Hold out whole wordings of a source: a contrast template worded like a refusal template shares its split.

    Otherwise a test contrast prompt could reuse a refusal template the model trained on (or the reverse), and the
    test split would measure memory of that wording instead of generalisation. The distinct wordings go 20/10/70 to
    test/validation/train, reshuffled until each kind has at least one template in each split.
    """
    wordings = list(dict.fromkeys([*refusal, *contrast]))
    for kind, templates in (("refusal", refusal), ("contrast", contrast)):
        if len(templates) < 3:
            raise ValueError(f"need at least 3 {kind} templates to hold some out, got {len(templates)}: {templates}")
    for _ in range(1000):
        split = _split_templates(wordings, rng, validation)
        kinds = [
            {name: [t for t in part if t in templates] for name, part in split.items()}
            for templates in (refusal, contrast)
        ]
        if all(part or (name == "validation" and not validation) for k in kinds for name, part in k.items()):
            return kinds[0], kinds[1]
    raise ValueError(f"cannot split {wordings} so that every split has refusal and contrast templates.")


def _sample(
    templates: Sequence[str], fillers: Sequence[str], n: int, rng: random.Random, repeat: bool = True
) -> list[tuple[str, str]]:
    """`n` (template, prompt) pairs, all distinct while the template x filler grid lasts, then repeated (or, with
    `repeat=False`, no more than the grid holds)."""
    grid = [(t, t.replace("{x}", f)) for t in templates for f in fillers]
    out: list[tuple[str, str]] = []
    while len(out) < n and grid:
        batch = list(grid)
        rng.shuffle(batch)
        out.extend(batch[: n - len(out)])
        if not repeat:
            break
    return out


def _spread(n: int, k: int) -> list[int]:
    """Split `n` rows over `k` sources as evenly as possible."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def build_synthetic_corpus(
    taxonomy: RefusalTaxonomy | str = "coconot",
    config: SyntheticCorpusConfig | None = None,
    *,
    category_sources_map: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Build the train/validation/test splits of the synthetic refusal corpus for a taxonomy.

    Each row is in TRL's conversational prompt-completion format, untagged (tag it with `tag_dataset`), with the
    columns `prompt`, `completion`, `refusal_label` (`"respond"` or a category), `kind` (`"refusal"`, `"benign"` or
    `"contrast"`), `source` (the fine-grained template source) and `template`. Benign and contrast rows get a short
    template answer; replace them with the base model's own answers with `self_distill_responses` to teach the token
    without changing what the model says.

    Args:
        taxonomy (`RefusalTaxonomy` or `str`, *optional*, defaults to `"coconot"`): Taxonomy or preset name.
        config (`SyntheticCorpusConfig`, *optional*): Sizes and seed.
        category_sources_map (`Mapping[str, Sequence[str]]`, *optional*): Template sources for categories of a
            custom taxonomy (see `category_sources`).

    Returns:
        `dict` mapping `"train"`, `"validation"` (unless `config.validation=False`) and `"test"` to lists of rows
        (`datasets.Dataset.from_list` them).

    Example:

    ```python
    >>> splits = build_synthetic_corpus("coconot", SyntheticCorpusConfig(train_per_category=8, seed=1))
    >>> splits["train"][0]["refusal_label"] in ["respond", "incomplete", "indeterminate", ...]
    True
    ```
    """
    taxonomy = get_taxonomy(taxonomy)
    config = config or SyntheticCorpusConfig()
    mapping = category_sources(taxonomy, category_sources_map)
    rng = random.Random(config.seed)
    used_sources = sorted({s for sources in mapping.values() for s in sources})
    # One template split per (source, kind), fixed by the seed, shared by all categories that use the source.
    val = config.validation
    split_of = {("benign", "benign"): _split_templates(BENIGN_TEMPLATES, rng, val)}
    for s in used_sources:
        split_of[(s, "refusal")], split_of[(s, "contrast")] = _split_source(
            SOURCES[s].templates, SOURCES[s].contrast_templates, rng, val
        )

    def size(n: int, split: str) -> int:
        return n if split == "train" else max(1, round(n * config.eval_fraction)) if n else 0

    out: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS if val else ("train", "test"):
        rows: list[dict[str, Any]] = []
        repeat = split == "train"
        for label, sources in mapping.items():
            for s, n in zip(sources, _spread(size(config.train_per_category, split), len(sources))):
                for template, prompt in _sample(split_of[(s, "refusal")][split], SOURCES[s].fillers, n, rng, repeat):
                    rows.append(_row(prompt, rng.choice(SOURCES[s].refusals), label, "refusal", s, template))
        for template, prompt in _sample(
            split_of[("benign", "benign")][split], BENIGN_FILLERS, size(config.train_benign, split), rng, repeat
        ):
            rows.append(_row(prompt, rng.choice(COMPLIANCE_ANSWERS), RESPOND_LABEL, "benign", "benign", template))
        for s, n in zip(used_sources, _spread(size(config.train_contrast, split), len(used_sources))):
            src = SOURCES[s]
            for template, prompt in _sample(split_of[(s, "contrast")][split], src.contrast_fillers, n, rng, repeat):
                rows.append(_row(prompt, rng.choice(COMPLIANCE_ANSWERS), RESPOND_LABEL, "contrast", s, template))
        rng.shuffle(rows)
        out[split] = rows
    return out


def _row(prompt: str, answer: str, label: str, kind: str, source: str, template: str) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": answer}],
        "refusal_label": label,
        "kind": kind,
        "source": source,
        "template": template,
    }


GENERIC_REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that request.",
    "I can't help with this one.",
    "Sorry, that's not something I can do.",
)
"""Refusal wordings of a custom category that no synthetic source feeds."""


def refusal_wordings(taxonomy: RefusalTaxonomy | str) -> dict[str, tuple[str, ...]]:
    """The refusal wordings of each category of `taxonomy`: those of the synthetic sources that feed it (see
    `category_sources`), or `GENERIC_REFUSALS` for a custom category without sources.

    They complete the answers of real should-refuse prompts that come without one (CoCoNot's prompts, for example).

    Example:

    ```python
    >>> wordings = refusal_wordings("coconot")
    >>> len(wordings["humanizing"]) > 1
    True
    ```
    """
    taxonomy = get_taxonomy(taxonomy)
    mapping = dict(PRESET_SOURCES.get(taxonomy.name, {}))
    out: dict[str, tuple[str, ...]] = {}
    for name in taxonomy.names:
        sources = mapping.get(name) or ((name,) if name in SOURCES else ())
        wordings = tuple(w for s in sources for w in SOURCES[s].refusals)
        out[name] = wordings or GENERIC_REFUSALS
    return out
