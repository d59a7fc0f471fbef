"""Built-in real prompts: public, labelled refusal data whose license allows shipping it, with a fixed split.

`builtin:coconot` is CoCoNot (Brahman et al., 2024; MIT, see `coconot/LICENSE` and `coconot/SOURCE.md`): 1,001
should-refuse prompts in CoCoNot's five categories and 1,298 look-alike contrast prompts to answer, each assigned once
and for all to `train`, `validation` or `test` (`coconot_split.py`). Prompts only: answers are completed by the recipe
(the base model's own for contrast prompts, a per-category refusal wording for the others).
"""

from __future__ import annotations

import json
import os
from typing import Any

from .coconot_split import COCONOT_LABELS, COCONOT_WORDING_SOURCES, build_coconot_split

_HERE = os.path.dirname(os.path.abspath(__file__))
BUILTIN_CORPORA: dict[str, str] = {"coconot": os.path.join(_HERE, "coconot", "prompts.jsonl")}
"""Built-in real corpora by name (`builtin:<name>` in a recipe's `datasets`) and their shipped files."""
SPLITS = ("train", "validation", "test")


def builtin_corpus_file(name: str) -> str:
    """The shipped file of `builtin:<name>` (or `<name>`).

    Raises:
        `ValueError`: for an unknown name, listing the known ones.
    """
    key = name.removeprefix("builtin:")
    if key not in BUILTIN_CORPORA:
        raise ValueError(f"{name!r}: no such built-in corpus; known: {['builtin:' + k for k in BUILTIN_CORPORA]}.")
    return BUILTIN_CORPORA[key]


def load_builtin_corpus(name: str = "coconot", split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a built-in real corpus, all or one split.

    Args:
        name (`str`, *optional*, defaults to `"coconot"`): `coconot` or `builtin:coconot`.
        split (`str`, *optional*): `train`, `validation`, `test`, `train+validation` (the training half), or `None`
            for every row.

    Returns:
        Rows with `id`, `prompt` (text), `refusal_label` (`coconot` taxonomy names or `respond`), `kind` (`refusal`
        or `contrast`), `category`, `subcategory`, `origin` and `split`.

    Example:

    ```python
    >>> rows = load_builtin_corpus("coconot", split="test")
    >>> sorted({r["kind"] for r in rows})
    ['contrast', 'refusal']
    ```
    """
    wanted = None if split is None else split.split("+")
    for part in wanted or ():
        if part not in SPLITS:
            raise ValueError(f"split={split!r}: use one of {list(SPLITS)}, joined with '+', or None for all rows.")
    with open(builtin_corpus_file(name), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if wanted is None or r["split"] in wanted]


__all__ = [
    "BUILTIN_CORPORA",
    "COCONOT_LABELS",
    "COCONOT_WORDING_SOURCES",
    "build_coconot_split",
    "builtin_corpus_file",
    "load_builtin_corpus",
]
