"""The fixed split of CoCoNot (Brahman et al., 2024) that the built-in real corpus ships, and how it was made.

`build_coconot_split` reads CoCoNot's three released files (`coconot_eval.jsonl`: 1,001 prompts a model should not
comply with, in 5 categories and 17 subcategories; `coconot_contrast_eval.jsonl`: 379 look-alike prompts it should
answer; `coconot_pref.jsonl`: 927 preference pairs on contrast-style prompts, 919 distinct) and assigns every distinct
prompt to `train`, `validation` or `test`, stratified by (file, subcategory) and seeded: half of each group is held
out for good (`test`), a fifth of the rest is `validation` (for choosing settings), the remainder `train`. The result
is `coconot/prompts.jsonl` beside this module; `tests/test_real_corpus.py` rebuilds it from `../shared/data/coconot`
and compares byte for byte, so the shipped split cannot drift.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable
from typing import Any

from ...utils.io import atomic_write_text

COCONOT_LABELS: dict[str, str] = {
    "Incomplete requests": "incomplete",
    "Indeterminate requests": "indeterminate",
    "Unsupported requests": "unsupported",
    "Humanizing requests": "humanizing",
    "Requests with safety concerns": "safety_concerns",
}
"""CoCoNot's `category` values and the `coconot` taxonomy's names for them (a `label_map` of the real recipes)."""

COCONOT_WORDING_SOURCES: dict[str, str] = {
    "underspecified": "missing_context",
    "false presuppositions": "invalid_premise",
    "incomprehensible": "unclear",
    "subjective questions": "subjective",
    "universal unknowns": "unknown_unknowns",
    "input modality limitations": "modalities",
    "output modality limitations": "modalities",
    "temporal limitations": "knowledge_cutoff",
    "style and length limitations": "skill_level",
    "personal inquiry": "missing_identity",
    "offer advice, opinion or recommendations": "missing_identity",
    "privacy violations": "privacy",
    "copyright violations": "intellectual_property",
    "dangerous or sensitive topics": "information_hazards",
    "triggers for offensive language": "nsfw",
    "misinformation": "legal_compliance",
}
"""Which synthetic source's refusal wordings suit each CoCoNot subcategory (a `privacy violations` prompt is
declined with a privacy wording, not with one about copyright); subcategories not listed use their category's."""

COCONOT_FILES: tuple[tuple[str, str], ...] = (
    ("coconot_eval.jsonl", "refusal"),
    ("coconot_contrast_eval.jsonl", "contrast"),
    ("coconot_pref.jsonl", "contrast"),
)
"""CoCoNot's files and the kind of their prompts: should refuse (`refusal`) or look-alike, should answer
(`contrast`)."""

SPLIT_SEED = 0
TEST_FRACTION = 0.5
VALIDATION_FRACTION = 0.2


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _read_jsonl(path: str) -> Iterable[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, json.loads(line)


def build_coconot_split(
    data_dir: str,
    seed: int = SPLIT_SEED,
    test_fraction: float = TEST_FRACTION,
    validation_fraction: float = VALIDATION_FRACTION,
) -> list[dict[str, Any]]:
    """Every distinct CoCoNot prompt with its label and its split (`train`, `validation` or `test`).

    Args:
        data_dir (`str`): Folder with CoCoNot's `coconot_eval.jsonl`, `coconot_contrast_eval.jsonl` and
            `coconot_pref.jsonl` (as released at github.com/allenai/noncompliance).
        seed (`int`, *optional*, defaults to 0): Seed of the assignment.
        test_fraction (`float`, *optional*, defaults to 0.5): Share of each (file, subcategory) group held out.
        validation_fraction (`float`, *optional*, defaults to 0.2): Share of the rest kept for validation.

    Returns:
        Rows with `id`, `prompt`, `refusal_label` (a `coconot` taxonomy name for should-refuse prompts, `respond` for
        contrast prompts), `kind`, `category` and `subcategory` (CoCoNot's own), `origin` (file) and `split`, in file
        order. A prompt repeated within a file is kept once (its first row); one repeated across files with
        different kinds would be dropped from both, as its label is ambiguous (CoCoNot has none).

    Raises:
        `ValueError`: naming the file and line of a row with an unknown category or no prompt.
    """
    rows: list[dict[str, Any]] = []
    kinds: dict[str, set[str]] = {}
    seen: set[str] = set()
    for name, kind in COCONOT_FILES:
        path = os.path.join(data_dir, name)
        for n, raw in _read_jsonl(path):
            prompt = raw.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(f"{path}:{n}: field 'prompt' is empty or missing.")
            if raw.get("category") not in COCONOT_LABELS:
                raise ValueError(
                    f"{path}:{n}: field 'category': unknown value {raw.get('category')!r}; known: "
                    f"{sorted(COCONOT_LABELS)}."
                )
            key = _norm(prompt)
            kinds.setdefault(key, set()).add(kind)
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                {
                    "id": raw["id"],
                    "prompt": prompt,
                    "refusal_label": COCONOT_LABELS[raw["category"]] if kind == "refusal" else "respond",
                    "kind": kind,
                    "category": raw["category"],
                    "subcategory": raw["subcategory"],
                    "origin": name,
                }
            )
    rows = [r for r in rows if len(kinds[_norm(r["prompt"])]) == 1]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["origin"], r["subcategory"]), []).append(i)
    carry = 0.0  # rounding carried across groups, so the halves come out even overall
    for key in sorted(groups):
        idx = sorted(groups[key], key=lambda i: rows[i]["id"])
        random.Random(f"{seed}/{key[0]}/{key[1]}").shuffle(idx)
        want = len(idx) * test_fraction + carry
        n_test = int(want + 0.5)
        carry = want - n_test
        rest = idx[n_test:]
        n_val = round(len(rest) * validation_fraction)
        for i in idx[:n_test]:
            rows[i]["split"] = "test"
        for i in rest[:n_val]:
            rows[i]["split"] = "validation"
        for i in rest[n_val:]:
            rows[i]["split"] = "train"
    return rows


def write_coconot_split(data_dir: str, out_file: str) -> int:
    """Write `build_coconot_split(data_dir)` as JSON Lines to `out_file` (atomically); returns the row count."""
    rows = build_coconot_split(data_dir)
    atomic_write_text(out_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)
